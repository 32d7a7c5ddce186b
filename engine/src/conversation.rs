//! One conversation between a twin and an end user, as a pure state machine.
//!
//! The conversation actor owns one [`Conversation`], feeds it [`Event`]s in mailbox order with the
//! twin's current [`TwinSnapshot`], and carries out the returned [`Effect`]s in order. An
//! [`Effect::Persist`] must commit before any later effect of the same step runs: that is how
//! "acknowledged means committed" holds.

mod batch;
mod client_ids;
mod coaching;
mod control;
mod effect;
mod event;
mod state;
#[cfg(test)]
mod test_effects;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

pub use effect::{Answer, Effect};
pub use event::{DraftAction, Event};
pub use state::{AudienceState, Control, ConversationState, Draft, NudgeKind, PendingNudge, Variables};

use crate::channel::{Arrival, ChannelAddress, OutboxBody, OutboxEntry};
use crate::ids::{ClientMsgId, ConversationId, CreatorId, Seq, SessionId, StreamId, UserId};
use crate::knowledge::Retrieved;
use crate::message::{Message, Origin};
use crate::ports::{ConversationHeader, LiveEvent, LiveEventKind, LoadLimits, StoredConversation};
pub use crate::ports::{ErrorCode, Outbound, Recipient, Record};
use crate::prompt::{ReplyRequest, Turn};
use crate::time::Timestamp;
use crate::twin::TwinSnapshot;
use batch::Batch;
use client_ids::ClientIdWindow;

/// How many client ids a conversation remembers for idempotency. A retry of a message older than
/// this many user messages would be stored again; clients retry within seconds, not hundreds of
/// messages later, and the store's unique index refuses it in any case.
pub const CLIENT_ID_WINDOW: usize = 256;

/// Longest text a user message may carry, in bytes (the socket refuses frames over 64 KiB first).
pub const MAX_TEXT_BYTES: usize = 32 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
struct PendingReply {
    stream: StreamId,
    /// A user message arrived while this reply was being generated: answer again when it ends.
    again: bool,
}

#[derive(Debug, Clone)]
pub struct Conversation {
    header: ConversationHeader,
    /// Largest seq assigned. Seqs are assigned in step and committed before anyone sees them; if a
    /// commit fails the actor reloads from the store, so a seq no client saw may be reassigned but
    /// one a client saw never is.
    last_seq: Seq,
    /// Recent messages for reply context, oldest first, at most the twin's history window.
    history: VecDeque<Message>,
    client_ids: ClientIdWindow,
    reply: Option<PendingReply>,
    /// When the user last wrote (from the loaded history after a reload); inactivity nudges that
    /// fall due re-arm from here instead of each message rewriting their row.
    last_user_at: Option<Timestamp>,
}

impl Conversation {
    /// A conversation nobody has written to yet.
    pub fn new(creator: CreatorId, user: UserId, now: Timestamp) -> Self {
        let header = ConversationHeader {
            id: ConversationId::of(creator, &user),
            creator,
            user,
            version: 0,
            created_at: now,
            state: ConversationState::default(),
        };
        Self {
            header,
            last_seq: Seq::ZERO,
            history: VecDeque::new(),
            client_ids: ClientIdWindow::default(),
            reply: None,
            last_user_at: None,
        }
    }

    /// What to load from the store to rebuild a conversation for this twin.
    pub fn load_limits(twin: &TwinSnapshot) -> LoadLimits {
        LoadLimits { history: twin.profile.replies.history_window, client_ids: CLIENT_ID_WINDOW }
    }

    pub fn from_stored(stored: StoredConversation) -> Self {
        let mut client_ids = ClientIdWindow::default();
        for (id, seq) in stored.client_ids {
            client_ids.insert(id, seq);
        }
        let history: VecDeque<Message> = stored.recent.into();
        let last_user_at = history.iter().rev().find(|m| m.origin == Origin::User).map(|m| m.created_at);
        Self { header: stored.header, last_seq: stored.last_seq, history, client_ids, reply: None, last_user_at }
    }

    pub fn id(&self) -> ConversationId {
        self.header.id
    }

    pub fn creator(&self) -> CreatorId {
        self.header.creator
    }

    pub fn user(&self) -> &UserId {
        &self.header.user
    }

    pub fn last_seq(&self) -> Seq {
        self.last_seq
    }

    pub fn version(&self) -> u64 {
        self.header.version
    }

    /// The stream of the reply being generated, if any.
    pub fn pending_reply(&self) -> Option<&StreamId> {
        self.reply.as_ref().map(|r| &r.stream)
    }

    /// Program position, variables and pending nudges.
    pub fn state(&self) -> &ConversationState {
        &self.header.state
    }

    /// Nothing in flight: the conversation may be passivated without losing work.
    pub fn is_quiescent(&self) -> bool {
        self.reply.is_none()
    }

    pub fn step(&mut self, twin: &TwinSnapshot, event: Event, now: Timestamp) -> Vec<Effect> {
        match event {
            Event::UserMessage { client_id, text, session, channel } => {
                self.on_user_message(twin, client_id, text, session, channel, now)
            }
            Event::Reachability { address, reachable } => self.on_reachability(address, reachable),
            Event::Linked { address } => self.on_linked(twin, address, now),
            Event::LinkRefused { address } => self.on_link_refused(twin, address, now),
            Event::ReplyDelta { stream, text } => self.on_reply_delta(twin, stream, text),
            Event::ReplyFinished { stream, text, consistency } => {
                self.on_reply_finished(twin, stream, text, consistency, now)
            }
            Event::ReplyFailed { stream, reason, partial } => self.on_reply_failed(twin, stream, reason, partial),
            Event::Recovered => self.on_recovered(twin),
            Event::NudgeDue { id } => {
                let batch = self.on_nudge_due(twin, id, now);
                self.finish(batch)
            }
            Event::NudgeAbandoned { id } => {
                let batch = self.on_nudge_abandoned(id);
                self.finish(batch)
            }
            Event::Enrol { program } => {
                let batch = self.on_enrol(twin, program, now);
                self.finish_answered(batch, Answer::Done { seq: None })
            }
            Event::TakeOver { by } => self.on_take_over(by, now),
            Event::Release { by } => self.on_release(twin, by, now),
            Event::HumanMessage { by, text, client_id } => self.on_human_message(twin, by, text, client_id, now),
            Event::SetDrafts { drafts } => self.on_set_drafts(twin, drafts),
            Event::ResolveDraft { stream, action, by } => self.on_resolve_draft(twin, stream, action, by, now),
            Event::FastForward => self.on_fast_forward(twin, now),
        }
    }

    fn on_user_message(
        &mut self,
        twin: &TwinSnapshot,
        client_id: ClientMsgId,
        text: String,
        session: Option<SessionId>,
        channel: Option<Arrival>,
        now: Timestamp,
    ) -> Vec<Effect> {
        let to = session.map_or(Recipient::User, Recipient::Session);
        let inbox_done = channel
            .as_ref()
            .and_then(|arrival| arrival.inbox)
            .map(|id| Record::InboxDone { creator: self.header.creator, id });
        if let Some(seq) = self.client_ids.get(&client_id) {
            // A retry of a message already stored: the same ack again, nothing else (a webhook
            // delivery replayed after a crash: its inbox row is marked, since its turn exists).
            let ack = Effect::Send { to, out: Outbound::Ack { client_id, seq } };
            return match inbox_done {
                Some(done) => vec![Effect::Persist(vec![done]), ack],
                None => vec![ack],
            };
        }
        if text.trim().is_empty() || text.len() > MAX_TEXT_BYTES {
            let message = if text.trim().is_empty() {
                "text must not be empty".to_owned()
            } else {
                format!("text must be at most {MAX_TEXT_BYTES} bytes")
            };
            let code = if text.trim().is_empty() { ErrorCode::InvalidField } else { ErrorCode::TooLarge };
            let refusal = Effect::Send { to, out: Outbound::Error { code, message, client_id: Some(client_id) } };
            // A refused webhook item is settled too, or every replay would refuse it again.
            return match inbox_done {
                Some(done) => vec![Effect::Persist(vec![done]), refusal],
                None => vec![refusal],
            };
        }

        let first_contact = self.header.version == 0;
        let message = self.append(twin, Origin::User, text, Some(client_id.clone()), None, now);
        self.client_ids.insert(client_id.clone(), message.seq);
        let address = channel.map_or_else(ChannelAddress::web, |arrival| arrival.address);
        let moved = self.heard_from(&address, now);
        let mut batch = Batch { state_changed: first_contact || moved, ..Batch::default() };
        batch.persist(Record::Message(message.clone()));
        batch.records.extend(inbox_done);
        batch.send(to, Outbound::Ack { client_id, seq: message.seq });
        if first_contact {
            batch.publish(LiveEventKind::ConversationStarted);
        }
        batch.publish(LiveEventKind::Message(message.clone()));
        if self.held_by().is_none() || crate::nudge::opt_command(&message.text).is_some() {
            self.coach_user_text(twin, &message.text, first_contact, now, &mut batch);
        } else {
            // A human holds the conversation: they answer; the twin and the program wait.
            self.last_user_at = Some(now);
        }
        if !batch.reply_requested {
            self.header.state.handled_up_to = message.seq;
            batch.state_changed = true;
        }
        self.finish(batch)
    }

    /// Records that the user wrote on `address`. True when the stored state must change: the
    /// user's current channel moved, or the channel has a service window whose start matters.
    fn heard_from(&mut self, address: &ChannelAddress, now: Timestamp) -> bool {
        let reach = &mut self.header.state.reach;
        let moved = reach.contacts.first().is_none_or(|c| c.address != *address || !c.reachable);
        reach.heard_from(address, now);
        moved || address.kind.service_window_ms().is_some()
    }

    fn on_reachability(&mut self, address: ChannelAddress, reachable: bool) -> Vec<Effect> {
        if !self.header.state.reach.set_reachable(&address, reachable) {
            return Vec::new();
        }
        let mut batch = Batch { state_changed: true, ..Batch::default() };
        batch.publish(LiveEventKind::Reachability { address, reachable });
        self.finish(batch)
    }

    fn on_linked(&mut self, twin: &TwinSnapshot, address: ChannelAddress, now: Timestamp) -> Vec<Effect> {
        self.header.state.reach.heard_from(&address, now);
        let mut batch = Batch { state_changed: true, ..Batch::default() };
        let text = format!("This {} chat is now linked: we carry on right here.", address.kind.label());
        batch.publish(LiveEventKind::ChannelLinked { address });
        self.say(twin, &mut batch, text, Vec::new(), Origin::Program, now);
        self.finish(batch)
    }

    fn on_link_refused(&mut self, twin: &TwinSnapshot, address: ChannelAddress, now: Timestamp) -> Vec<Effect> {
        self.header.state.reach.heard_from(&address, now);
        let mut batch = Batch { state_changed: true, ..Batch::default() };
        let text = "That link code is unknown or has expired. Ask for a new one where you started and send it here.";
        self.say(twin, &mut batch, text.to_owned(), Vec::new(), Origin::Program, now);
        self.finish(batch)
    }

    fn on_reply_delta(&mut self, twin: &TwinSnapshot, stream: StreamId, text: String) -> Vec<Effect> {
        if !self.is_current(&stream) || text.is_empty() {
            return Vec::new();
        }
        let mut effects = Vec::with_capacity(2);
        if twin.profile.replies.stream_previews && !self.drafting(twin) {
            let out = Outbound::Delta { stream: stream.clone(), text: text.clone() };
            effects.push(Effect::Send { to: Recipient::User, out });
        }
        // The live view streams previews too (in draft mode it is the only one that sees them).
        effects.push(self.live(LiveEventKind::Delta { stream, text }));
        effects
    }

    fn on_reply_finished(
        &mut self,
        twin: &TwinSnapshot,
        stream: StreamId,
        text: String,
        consistency: Option<crate::message::Score>,
        now: Timestamp,
    ) -> Vec<Effect> {
        if !self.is_current(&stream) {
            return Vec::new();
        }
        if text.trim().is_empty() {
            return self.on_reply_failed(twin, stream, "the reply was empty".to_owned(), String::new());
        }
        let again = self.reply.take().is_some_and(|r| r.again);
        if self.drafting(twin) {
            let mut batch = Batch::default();
            self.propose_draft(stream, text, consistency, now, &mut batch);
            if again {
                batch.then.extend(self.start_reply(twin, self.reply_goal(twin)));
            }
            return self.finish(batch);
        }
        let mut message = self.append(twin, Origin::Twin, text, None, Some(stream), now);
        message.consistency = consistency;
        if let Some(last) = self.history.back_mut() {
            last.consistency = consistency;
        }
        let mut batch = Batch::default();
        batch.persist(Record::Message(message.clone()));
        batch.send(Recipient::User, Outbound::Message(message.clone()));
        batch.publish(LiveEventKind::Message(message));
        if again {
            batch.then.extend(self.start_reply(twin, self.reply_goal(twin)));
        } else {
            self.program_after_reply(twin, now, &mut batch);
        }
        self.finish(batch)
    }

    /// The user is told (their message is stored either way); a reply cut off mid-stream says so,
    /// since the user saw its beginning, and the live event carries the partial text, marked.
    fn on_reply_failed(
        &mut self,
        twin: &TwinSnapshot,
        stream: StreamId,
        reason: String,
        partial: String,
    ) -> Vec<Effect> {
        if !self.is_current(&stream) {
            return Vec::new();
        }
        let again = self.reply.take().is_some_and(|r| r.again);
        let message = if partial.is_empty() {
            "the twin could not answer just now; send your message again in a moment"
        } else {
            "the twin's reply was cut off and is not saved; send your message again in a moment"
        };
        let mut effects = vec![
            Effect::Send {
                to: Recipient::User,
                out: Outbound::Error { code: ErrorCode::Unavailable, message: message.to_owned(), client_id: None },
            },
            self.live(LiveEventKind::ReplyFailed { stream, reason, partial }),
        ];
        if again {
            effects.extend(self.start_reply(twin, self.reply_goal(twin)));
        }
        effects
    }

    /// After a (re)load: a user message that was acknowledged but never answered gets its answer.
    fn on_recovered(&mut self, twin: &TwinSnapshot) -> Vec<Effect> {
        let unanswered =
            self.history.back().is_some_and(|m| m.origin == Origin::User && m.seq > self.header.state.handled_up_to);
        let silent = self.header.state.enrolment.as_ref().is_some_and(|e| e.phase == crate::program::Phase::Handoff);
        let human = self.held_by().is_some() || self.header.state.control.draft.is_some();
        if unanswered && self.reply.is_none() && !silent && !human {
            self.start_reply(twin, self.reply_goal(twin))
        } else {
            Vec::new()
        }
    }

    /// The goal of the chat step the user is in, if any.
    fn reply_goal(&self, twin: &TwinSnapshot) -> Option<String> {
        let enrolment = self.header.state.enrolment.as_ref()?;
        let program = twin.programs.version(&enrolment.program, enrolment.version)?;
        match &program.step(&enrolment.step)?.kind {
            crate::program::StepKind::Chat { goal, .. } if enrolment.phase == crate::program::Phase::Chat => {
                Some(goal.clone())
            }
            _ => None,
        }
    }

    /// Turns what a step gathered into effects: one commit (with the state row when it changed),
    /// then the frames, the live events, the scheduler's news and any reply to start.
    fn finish(&mut self, batch: Batch) -> Vec<Effect> {
        let Batch { mut records, sends, live, scheduled, then, state_changed, bodies, .. } = batch;
        if state_changed {
            self.header.version += 1;
            records.insert(0, Record::Conversation(self.header.clone()));
        }
        let outbox = self.outbox(&records, bodies);
        records.extend(outbox.iter().cloned().map(Record::Outbox));
        let mut effects = Vec::with_capacity(1 + sends.len() + live.len() + then.len() + 2);
        if !records.is_empty() {
            effects.push(Effect::Persist(records));
        }
        effects.extend(sends.into_iter().map(|(to, out)| Effect::Send { to, out }));
        effects.extend(live.into_iter().map(|kind| self.live(kind)));
        if !scheduled.is_empty() {
            effects.push(Effect::Schedule(scheduled));
        }
        if !outbox.is_empty() {
            effects.push(Effect::Dispatch(outbox));
        }
        effects.extend(then);
        effects
    }

    /// [`Self::finish`], then the answer for whoever gave the command: after the commit it waits for.
    fn finish_answered(&mut self, batch: Batch, answer: Answer) -> Vec<Effect> {
        let mut effects = self.finish(batch);
        effects.push(Effect::Answer(answer));
        effects
    }

    /// Outbox entries for what the twin says in this commit, when the user is on a provider
    /// channel: every durable message not written by the user goes out there (web users get
    /// their frames from the sockets instead).
    fn outbox(&self, records: &[Record], mut bodies: Vec<(Seq, OutboxBody)>) -> Vec<OutboxEntry> {
        let Some(target) = self.header.state.reach.target().filter(|c| c.address.is_provider()) else {
            return Vec::new();
        };
        records
            .iter()
            .filter_map(|record| match record {
                Record::Message(m) if m.origin != Origin::User => Some(m),
                _ => None,
            })
            .map(|message| {
                let body = match bodies.iter().position(|(seq, _)| *seq == message.seq) {
                    Some(i) => bodies.swap_remove(i).1,
                    None => OutboxBody::Text { text: message.text.clone(), choices: message.choices.clone() },
                };
                OutboxEntry {
                    creator: message.creator,
                    conversation: message.conversation,
                    seq: message.seq,
                    address: target.address.clone(),
                    body,
                    created_at: message.created_at,
                }
            })
            .collect()
    }

    fn is_current(&self, stream: &StreamId) -> bool {
        self.reply.as_ref().is_some_and(|r| &r.stream == stream)
    }

    /// Assigns the next seq and remembers the message in the history window.
    fn append(
        &mut self,
        twin: &TwinSnapshot,
        origin: Origin,
        text: String,
        client_id: Option<ClientMsgId>,
        stream: Option<StreamId>,
        now: Timestamp,
    ) -> Message {
        self.last_seq = self.last_seq.next();
        let message = Message {
            conversation: self.header.id,
            creator: self.header.creator,
            seq: self.last_seq,
            origin,
            text,
            client_id,
            stream,
            choices: Vec::new(),
            consistency: None,
            created_at: now,
        };
        self.history.push_back(message.clone());
        let window = twin.profile.replies.history_window.max(1);
        while self.history.len() > window {
            self.history.pop_front();
        }
        message
    }

    fn start_reply(&mut self, twin: &TwinSnapshot, goal: Option<String>) -> Vec<Effect> {
        if let Some(pending) = &mut self.reply {
            // One reply at a time: answer again when the current one ends.
            pending.again = true;
            return Vec::new();
        }
        let Some(last_user) = self.history.iter().rev().find(|m| m.origin == Origin::User) else {
            return Vec::new();
        };
        let stream = StreamId::answering(last_user.seq);
        let passages = twin
            .knowledge
            .search(&last_user.text, twin.profile.replies.passages)
            .iter()
            .map(Retrieved::passage)
            .collect();
        let first_contact = !self.history.iter().any(|m| m.origin != Origin::User);
        let request = ReplyRequest {
            creator: self.header.creator,
            conversation: self.header.id,
            stream: stream.clone(),
            persona: twin.profile.persona.clone(),
            system_prompt: twin.system_prompt.clone(),
            turns: self.history.iter().map(Turn::of).collect(),
            passages,
            first_contact,
            goal,
            model: twin.profile.model.clone(),
        };
        self.reply = Some(PendingReply { stream: stream.clone(), again: false });
        vec![Effect::StartReply(Box::new(request)), self.live(LiveEventKind::ReplyStarted { stream })]
    }

    fn live(&self, kind: LiveEventKind) -> Effect {
        Effect::Publish(LiveEvent { creator: self.header.creator, conversation: self.header.id, kind })
    }
}
