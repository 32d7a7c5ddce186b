//! Humans steering a conversation from the live view: taking it over, writing to the user,
//! handing it back, and approving the twin's drafts.
//!
//! Stated rules:
//! - Taking over stops the twin at once: a reply being generated is cancelled (the user saw at most
//!   its preview), and while a human holds the conversation the twin neither replies nor moves the
//!   program. User messages are stored, acknowledged and shown live; STOP/START still apply.
//! - While held, nudges wait: a program timer that falls due is held (the program resumes from it on
//!   release) and an inactivity nudge is skipped (`human_holds`). A handoff's timeout is such a
//!   timer: a human who took over a handoff decides when it ends, by releasing.
//! - Releasing hands the conversation back with the program where it was: a held timer runs, a
//!   `handoff` step moves on, and the twin answers the user's next message (not one the human
//!   already handled).
//! - Draft mode (per creator, `replies.drafts`, or per conversation): a finished twin reply becomes
//!   the pending draft instead of a message; the user sees nothing of it. Approved, it is stored as
//!   the twin's message; edited, as the human's; rejected, nothing is sent. A newer draft supersedes
//!   a pending one. The program moves on only when a draft is sent.

use crate::ids::{ClientMsgId, StreamId};
use crate::message::{Origin, Score};
use crate::nudge::TimeZone;
use crate::ports::{LiveEventKind, NudgeOutcome, Outbound, Recipient, Record};
use crate::program::{Context, Phase};
use crate::time::Timestamp;
use crate::twin::TwinSnapshot;

use super::batch::Batch;

#[cfg(test)]
mod tests;
use super::{Answer, Conversation, Draft, DraftAction, Effect, MAX_TEXT_BYTES, NudgeKind, PendingNudge};

impl Conversation {
    /// A human holds the conversation: the twin is silent.
    pub fn held_by(&self) -> Option<&str> {
        self.header.state.control.held_by.as_deref()
    }

    /// Whether the twin's replies wait for approval here.
    pub fn drafting(&self, twin: &TwinSnapshot) -> bool {
        self.header.state.control.drafting(twin.profile.replies.drafts)
    }

    pub(super) fn on_take_over(&mut self, by: String, now: Timestamp) -> Vec<Effect> {
        let mut batch = Batch::default();
        self.take_over(by, now, &mut batch);
        self.finish_answered(batch, Answer::Done { seq: None })
    }

    /// Marks the conversation held by `by` (a second human taking over replaces the first) and
    /// cancels a reply in flight.
    fn take_over(&mut self, by: String, now: Timestamp, batch: &mut Batch) {
        let control = &mut self.header.state.control;
        if control.held_by.as_deref() == Some(by.as_str()) {
            return;
        }
        control.held_by = Some(by.clone());
        control.held_since = Some(now);
        batch.state_changed = true;
        if let Some(pending) = self.reply.take() {
            batch.then.push(Effect::CancelReply(pending.stream.clone()));
            batch.publish(LiveEventKind::ReplyFailed {
                stream: pending.stream,
                reason: format!("{by} took the conversation over"),
                partial: String::new(),
            });
        }
        // The user's last message is the human's to answer now, also after a reload.
        self.header.state.handled_up_to = self.last_seq;
        batch.publish(LiveEventKind::TakenOver { by, at: now });
    }

    pub(super) fn on_release(&mut self, twin: &TwinSnapshot, by: String, now: Timestamp) -> Vec<Effect> {
        let mut batch = Batch::default();
        let control = &mut self.header.state.control;
        if control.held_by.take().is_some() {
            control.held_since = None;
            batch.state_changed = true;
            batch.publish(LiveEventKind::Released { by });
            self.resume_after_release(twin, now, &mut batch);
        }
        self.finish_answered(batch, Answer::Done { seq: None })
    }

    /// The program goes on from where the human found it: a timer held meanwhile runs; a handoff
    /// that the human answered moves on.
    fn resume_after_release(&mut self, twin: &TwinSnapshot, now: Timestamp, batch: &mut Batch) {
        if self.resume_held(twin, now, batch) {
            return;
        }
        let Some(mut cursor) = self.header.state.enrolment.clone() else {
            self.arm_inactivity(twin, now, batch);
            return;
        };
        if cursor.phase == Phase::Handoff
            && let Some(program) = twin.programs.version(&cursor.program, cursor.version)
        {
            let timezone: TimeZone = self.timezone(twin);
            let ctx = Context { program, user: &self.header.user, timezone: &timezone, now };
            let outputs = cursor.on_released(&ctx);
            self.carry_out(twin, program, cursor, outputs, now, batch);
        }
        self.arm_inactivity(twin, now, batch);
    }

    pub(super) fn on_human_message(
        &mut self,
        twin: &TwinSnapshot,
        by: String,
        text: String,
        client_id: Option<ClientMsgId>,
        now: Timestamp,
    ) -> Vec<Effect> {
        if let Some(seq) = client_id.as_ref().and_then(|id| self.client_ids.get(id)) {
            return vec![Effect::Answer(Answer::Done { seq: Some(seq) })];
        }
        if let Some(reason) = invalid_text(&text) {
            return vec![Effect::Answer(Answer::Refused { conflict: false, reason })];
        }
        let mut batch = Batch::default();
        self.take_over(by, now, &mut batch);
        let seq = self.say_as_human(twin, text, client_id, now, &mut batch);
        self.finish_answered(batch, Answer::Done { seq: Some(seq) })
    }

    /// A message written by a human: stored, sent to the user on their channel, shown live.
    fn say_as_human(
        &mut self,
        twin: &TwinSnapshot,
        text: String,
        client_id: Option<ClientMsgId>,
        now: Timestamp,
        batch: &mut Batch,
    ) -> crate::ids::Seq {
        let message = self.append(twin, Origin::Human, text, client_id.clone(), None, now);
        if let Some(id) = client_id {
            self.client_ids.insert(id, message.seq);
        }
        self.header.state.handled_up_to = message.seq;
        batch.state_changed = true;
        batch.persist(Record::Message(message.clone()));
        batch.send(Recipient::User, Outbound::Message(message.clone()));
        let seq = message.seq;
        batch.publish(LiveEventKind::Message(message));
        seq
    }

    pub(super) fn on_set_drafts(&mut self, twin: &TwinSnapshot, drafts: Option<bool>) -> Vec<Effect> {
        let mut batch = Batch::default();
        if self.header.state.control.drafts != drafts {
            self.header.state.control.drafts = drafts;
            batch.state_changed = true;
            batch.publish(LiveEventKind::DraftsMode { drafts: self.drafting(twin) });
        }
        self.finish_answered(batch, Answer::Done { seq: None })
    }

    /// Draft mode: the finished reply waits for a human instead of reaching the user.
    pub(super) fn propose_draft(
        &mut self,
        stream: StreamId,
        text: String,
        consistency: Option<Score>,
        now: Timestamp,
        batch: &mut Batch,
    ) {
        let draft = Draft { stream: stream.clone(), text: text.clone(), consistency, created_at: now };
        if let Some(old) = self.header.state.control.draft.replace(draft) {
            batch.publish(LiveEventKind::DraftResolved { stream: old.stream, outcome: "superseded", by: None });
        }
        // Answered, as far as a reload is concerned: the draft is pending, not lost.
        self.header.state.handled_up_to = self.last_seq;
        batch.state_changed = true;
        batch.publish(LiveEventKind::DraftProposed { stream, text, consistency });
    }

    pub(super) fn on_resolve_draft(
        &mut self,
        twin: &TwinSnapshot,
        stream: StreamId,
        action: DraftAction,
        by: String,
        now: Timestamp,
    ) -> Vec<Effect> {
        let pending = self.header.state.control.draft.as_ref().is_some_and(|d| d.stream == stream);
        if !pending {
            let reason = format!("draft {stream} is no longer pending");
            return vec![Effect::Answer(Answer::Refused { conflict: true, reason })];
        }
        if let DraftAction::Edit(text) = &action
            && let Some(reason) = invalid_text(text)
        {
            return vec![Effect::Answer(Answer::Refused { conflict: false, reason })];
        }
        let Some(draft) = self.header.state.control.draft.take() else { return Vec::new() };
        let mut batch = Batch { state_changed: true, ..Batch::default() };
        let (outcome, seq) = match action {
            DraftAction::Approve => {
                let mut message = self.append(twin, Origin::Twin, draft.text, None, Some(draft.stream.clone()), now);
                message.consistency = draft.consistency;
                if let Some(last) = self.history.back_mut() {
                    last.consistency = draft.consistency;
                }
                batch.persist(Record::Message(message.clone()));
                batch.send(Recipient::User, Outbound::Message(message.clone()));
                let seq = message.seq;
                batch.publish(LiveEventKind::Message(message));
                ("approved", Some(seq))
            }
            DraftAction::Edit(text) => ("edited", Some(self.say_as_human(twin, text, None, now, &mut batch))),
            DraftAction::Reject => ("rejected", None),
        };
        batch.publish(LiveEventKind::DraftResolved { stream: draft.stream, outcome, by: Some(by) });
        if seq.is_some() && self.held_by().is_none() {
            self.program_after_reply(twin, now, &mut batch);
        }
        self.finish_answered(batch, Answer::Done { seq })
    }

    /// While a human holds the conversation a nudge that falls due does not go out: a program
    /// timer is held for the release, an inactivity nudge is skipped. True when it was handled so.
    pub(super) fn nudge_while_held(&mut self, nudge: &PendingNudge, batch: &mut Batch) -> bool {
        if self.held_by().is_none() {
            return false;
        }
        let creator = self.header.creator;
        batch.persist(Record::NudgeSettled { creator, id: nudge.id, outcome: NudgeOutcome::Skipped });
        batch.publish(LiveEventKind::NudgeSkipped { id: nudge.id, reason: "human_holds" });
        if matches!(nudge.kind, NudgeKind::Step { .. }) {
            self.header.state.held = Some(nudge.kind.clone());
        }
        true
    }

    /// Preview only (the caller checks): the earliest pending nudge fires now, at its own due time,
    /// so a program's days pass in a click.
    pub(super) fn on_fast_forward(&mut self, twin: &TwinSnapshot, now: Timestamp) -> Vec<Effect> {
        let Some(next) = self.header.state.nudges.first().cloned() else {
            return vec![Effect::Answer(Answer::FastForwarded { nudge: None })];
        };
        let batch = self.on_nudge_due(twin, next.id, next.due_at.max(now));
        self.finish_answered(batch, Answer::FastForwarded { nudge: Some((next.id, next.due_at)) })
    }
}

/// Why a human's text cannot be sent, if it cannot.
fn invalid_text(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        Some("text must not be empty".to_owned())
    } else if text.len() > MAX_TEXT_BYTES {
        Some(format!("text must be at most {MAX_TEXT_BYTES} bytes"))
    } else {
        None
    }
}
