//! What the conversation tests read out of a step's effects.

use super::Effect;
use crate::ids::StreamId;
use crate::message::Message;
use crate::ports::{LiveEventKind, Record};

/// Every record the step commits, in order.
pub fn records(effects: &[Effect]) -> Vec<Record> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(records) => Some(records.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The messages the step stores.
pub fn messages(effects: &[Effect]) -> Vec<Message> {
    records(effects)
        .into_iter()
        .filter_map(|r| match r {
            Record::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// The live events the step publishes.
pub fn live(effects: &[Effect]) -> Vec<LiveEventKind> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Publish(event) => Some(event.kind.clone()),
            _ => None,
        })
        .collect()
}

/// The stream of the reply the step starts, if it starts one.
pub fn started(effects: &[Effect]) -> Option<StreamId> {
    effects.iter().find_map(|e| match e {
        Effect::StartReply(request) => Some(request.stream.clone()),
        _ => None,
    })
}
