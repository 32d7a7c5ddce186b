//! What one step of a conversation produces, gathered in order and turned into effects at the end,
//! so the state record, the messages and the nudge rows go out in one commit before anything else.

use crate::ports::{LiveEventKind, Outbound, Recipient, Record, ScheduledNudge};

use super::Effect;

#[derive(Debug, Default)]
pub(super) struct Batch {
    pub records: Vec<Record>,
    pub sends: Vec<(Recipient, Outbound)>,
    pub live: Vec<LiveEventKind>,
    pub scheduled: Vec<ScheduledNudge>,
    /// Effects that must wait for the commit and the frames (starting a reply).
    pub then: Vec<Effect>,
    /// The conversation's state changed: its row is written with the next version.
    pub state_changed: bool,
    /// A twin reply was asked for (started now or queued behind the current one).
    pub reply_requested: bool,
    /// Messages (by seq) that go out on a provider channel as something other than their text:
    /// a WhatsApp template outside the customer-service window.
    pub bodies: Vec<(crate::ids::Seq, crate::channel::OutboxBody)>,
}

impl Batch {
    pub fn persist(&mut self, record: Record) {
        self.records.push(record);
    }

    pub fn send(&mut self, to: Recipient, out: Outbound) {
        self.sends.push((to, out));
    }

    pub fn publish(&mut self, kind: LiveEventKind) {
        self.live.push(kind);
    }
}
