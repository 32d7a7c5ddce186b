//! The most recent client ids of a conversation, for idempotent retries.

use std::collections::{HashMap, VecDeque};

use super::CLIENT_ID_WINDOW;
use crate::ids::{ClientMsgId, Seq};

#[derive(Debug, Clone, Default)]
pub(super) struct ClientIdWindow {
    seqs: HashMap<ClientMsgId, Seq>,
    order: VecDeque<ClientMsgId>,
}

impl ClientIdWindow {
    pub(super) fn get(&self, id: &ClientMsgId) -> Option<Seq> {
        self.seqs.get(id).copied()
    }

    pub(super) fn insert(&mut self, id: ClientMsgId, seq: Seq) {
        if self.seqs.insert(id.clone(), seq).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > CLIENT_ID_WINDOW {
            if let Some(old) = self.order.pop_front() {
                self.seqs.remove(&old);
            }
        }
    }
}
