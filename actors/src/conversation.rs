//! ConversationActor: one per (creator, end user). Feeds events to the pure
//! [`twin_engine::Conversation`] in mailbox order and carries out its effects; a Persist effect is
//! committed before any later effect runs, so acks and final messages follow their commit.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::AbortHandle;
use twin_engine::conversation::Answer;
use twin_engine::ports::LiveEvent;
use twin_engine::ports::{ErrorCode, LiveEventKind, Outbound, Placement, Recipient};
use twin_engine::{ClientMsgId, Conversation, Effect, Event, Record, Seq, StreamId, Timestamp};

use crate::handle::{ConversationKey, Engine, EngineError, Spawner, TwinCell};
use crate::metrics as m;

pub enum ConversationMsg {
    Event(Event),
    /// A human's command (takeover, a human message, a draft decision): answered once its effects
    /// are durable; the port is dropped unanswered when the commit fails.
    Command(Event, RpcReplyPort<Answer>),
    /// Passivate if idle past the TTL (sent by the engine's sweep).
    IdleCheck,
    /// Second half of the passivation hand-over; everything routed before it has been handled.
    Stop,
    /// Cluster: the conversation belongs to another node now. Stop after the mailbox, at once
    /// even with a reply in flight (the new owner answers the message when it loads).
    HandOver,
    Inspect(RpcReplyPort<ConversationView>),
    /// Reload from the store after a failed commit (sent to itself after a back-off).
    Recover,
    /// Fault injection: fail as a bug outside the handler's guard would (tests and drills).
    Fail(String),
}

/// What a conversation actor holds, for tests and (later) the live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationView {
    pub loaded: bool,
    pub last_seq: Seq,
    pub version: u64,
    pub pending_reply: Option<StreamId>,
}

pub(crate) struct ConversationArgs {
    pub(crate) key: ConversationKey,
    pub(crate) twin: Arc<TwinCell>,
    pub(crate) engine: Arc<Engine>,
}

pub struct ConversationState {
    key: ConversationKey,
    twin: Arc<TwinCell>,
    engine: Arc<Engine>,
    /// None until loaded from the store (after spawning, off the spawner's path) or after a failed
    /// commit, when the in-memory state can no longer be trusted.
    conversation: Option<Conversation>,
    last_activity: Timestamp,
    replies: Vec<(StreamId, AbortHandle)>,
    /// Client ids whose message made the step panic: a retry is refused instead of crashing again.
    poisoned: HashSet<ClientMsgId>,
    stopping: bool,
    /// Commits failed in a row; the back-off before reloading grows with it.
    failed_commits: u32,
    /// Who waits for the outcome of the command being handled.
    answer: Option<RpcReplyPort<Answer>>,
    /// Cluster: the ownership epoch claimed before loading; every commit is fenced with it.
    epoch: Option<u64>,
    /// Stopping to hand the conversation to another node, not because it was idle.
    handing_over: bool,
}

pub(crate) struct ConversationActor;

impl Actor for ConversationActor {
    type Msg = ConversationMsg;
    type State = ConversationState;
    type Arguments = ConversationArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<ConversationMsg>,
        args: ConversationArgs,
    ) -> Result<ConversationState, ActorProcessingErr> {
        // No I/O here: the spawner awaits pre_start. Loading happens in post_start.
        let now = args.engine.ports.clock.now();
        Ok(ConversationState {
            key: args.key,
            twin: args.twin,
            engine: args.engine,
            conversation: None,
            last_activity: now,
            replies: Vec::new(),
            poisoned: HashSet::new(),
            stopping: false,
            failed_commits: 0,
            answer: None,
            epoch: None,
            handing_over: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ConversationMsg>,
        state: &mut ConversationState,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed here and below: a handler future is stored inline in the actor's task for the
        // actor's whole life, so an unboxed one would make every idle conversation carry the
        // largest handler's state machine (several KiB). Boxed, it exists only while it runs.
        Box::pin(state.guarded(&myself, None)).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<ConversationMsg>,
        message: ConversationMsg,
        state: &mut ConversationState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ConversationMsg::Event(event) => {
                state.last_activity = state.engine.ports.clock.now();
                Box::pin(state.guarded(&myself, Some(event))).await;
            }
            ConversationMsg::Command(event, answer) => {
                state.last_activity = state.engine.ports.clock.now();
                state.answer = Some(answer);
                Box::pin(state.guarded(&myself, Some(event))).await;
                // Not answered (the commit failed, or the state could not be loaded): dropping the
                // port tells the caller so.
                state.answer = None;
            }
            ConversationMsg::Recover => Box::pin(state.guarded(&myself, None)).await,
            ConversationMsg::IdleCheck => {
                let now = state.engine.ports.clock.now();
                let idle_ms = now.millis_since(state.last_activity);
                let quiescent = state.conversation.as_ref().is_none_or(Conversation::is_quiescent);
                if !state.stopping
                    && quiescent
                    && idle_ms as u128 >= state.engine.config.idle_ttl.as_millis()
                    && state.engine.registry.begin_stop(state.key.id(), &myself)
                {
                    state.stopping = true;
                    // Queued behind every event routed before the slot was held.
                    let _ = myself.cast(ConversationMsg::Stop);
                }
            }
            ConversationMsg::HandOver => {
                if !state.stopping && state.engine.registry.begin_stop(state.key.id(), &myself) {
                    state.stopping = true;
                    state.handing_over = true;
                    state.abort_replies();
                    let _ = myself.cast(ConversationMsg::Stop);
                }
            }
            ConversationMsg::Stop => {
                let quiescent = state.conversation.as_ref().is_none_or(Conversation::is_quiescent);
                if quiescent || state.handing_over {
                    myself.stop(Some("idle".to_owned()));
                } else {
                    state.stopping = false;
                    state.engine.registry.cancel_stop(state.key.id(), &myself);
                }
            }
            ConversationMsg::Inspect(reply) => {
                let view = match &state.conversation {
                    Some(c) => ConversationView {
                        loaded: true,
                        last_seq: c.last_seq(),
                        version: c.version(),
                        pending_reply: c.pending_reply().cloned(),
                    },
                    None => ConversationView { loaded: false, last_seq: Seq::ZERO, version: 0, pending_reply: None },
                };
                let _ = reply.send(view);
            }
            ConversationMsg::Fail(reason) => return Err(reason.into()),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<ConversationMsg>,
        state: &mut ConversationState,
    ) -> Result<(), ActorProcessingErr> {
        for (_, reply) in state.replies.drain(..) {
            reply.abort();
        }
        if state.stopping {
            metrics::counter!(m::CONVERSATION_PASSIVATIONS).increment(1);
            let engine = state.engine.clone();
            let key = state.key.clone();
            if let Some(epoch) = state.epoch.take() {
                // Before the held events move on: the next owner need not wait for the claim.
                engine.release(&key, epoch).await;
            }
            engine.ports.live.publish(LiveEvent {
                creator: key.creator,
                conversation: key.id(),
                kind: LiveEventKind::ConversationIdle,
            });
            if engine.registry.finish_stop(key.id(), myself.get_id()) {
                if engine.is_closed() {
                    let error = EngineError::Unavailable("the server is shutting down".to_owned());
                    for message in engine.registry.abandon(key.id()) {
                        engine.refuse(key.id(), message, &error);
                    }
                } else {
                    // Events arrived during the hand-over: a successor takes them.
                    tokio::spawn(async move {
                        let _ = engine.spawn_conversation(key, Spawner::Successor).await;
                    });
                }
            }
        }
        Ok(())
    }
}

impl ConversationState {
    /// Handles one event (or, with `None`, only makes sure the state is loaded) so that nothing
    /// can fail the actor: a panic anywhere in it is recorded, the in-memory state is dropped, and
    /// the next message starts from the store. The mailbox behind it is kept.
    async fn guarded(&mut self, myself: &ActorRef<ConversationMsg>, event: Option<Event>) {
        let id = self.key.id();
        let label = event.as_ref().map_or_else(|| "load".to_owned(), label);
        let poison_id = match &event {
            Some(Event::UserMessage { client_id, .. }) => Some(client_id.clone()),
            _ => None,
        };
        let poison_nudge = match &event {
            Some(Event::NudgeDue { id }) => Some(*id),
            _ => None,
        };
        let handled = AssertUnwindSafe(self.handle_event(myself, event)).catch_unwind().await;
        if handled.is_err() {
            metrics::counter!(m::CONVERSATION_POISON_EVENTS).increment(1);
            tracing::error!(conversation = %id, event = %label, "handling an event panicked; event recorded and skipped");
            self.poisoned.extend(poison_id);
            if let Some(nudge) = poison_nudge {
                // Given up through the conversation itself (settled in the same commit as the state
                // that forgets it), or its lease would bring it back to crash again forever.
                let _ = myself.cast(ConversationMsg::Event(Event::NudgeAbandoned { id: nudge }));
            }
            self.abort_replies();
            self.conversation = None;
        }
    }

    async fn handle_event(&mut self, myself: &ActorRef<ConversationMsg>, event: Option<Event>) {
        let id = self.key.id();
        if let Some(Event::UserMessage { client_id, session, .. }) = &event {
            let refusal = if self.poisoned.contains(client_id) {
                Some((ErrorCode::Internal, "this message could not be processed and was recorded for the operator"))
            } else if !self.ensure_loaded(myself).await {
                Some((ErrorCode::Unavailable, "the conversation could not be loaded; try again"))
            } else {
                None
            };
            if let Some((code, text)) = refusal {
                let to = session.map_or(Recipient::User, Recipient::Session);
                let out = Outbound::Error { code, message: text.to_owned(), client_id: Some(client_id.clone()) };
                self.engine.deliver(id, to, out);
                return;
            }
        } else if !self.ensure_loaded(myself).await {
            return;
        }
        if let Some(event) = event {
            self.step(myself, event).await;
        }
    }

    /// Loads the conversation if it is not in memory; a freshly loaded conversation first steps
    /// [`Event::Recovered`] (so an acknowledged but unanswered message gets its answer). False
    /// when the store failed.
    async fn ensure_loaded(&mut self, myself: &ActorRef<ConversationMsg>) -> bool {
        if self.conversation.is_some() {
            return true;
        }
        let twin = self.twin.current();
        let limits = Conversation::load_limits(&twin);
        let id = self.key.id();
        if self.engine.placement(id) != Placement::Here {
            // Owned elsewhere now (the live set changed while this actor had nothing loaded): hand
            // over instead of claiming it back. What the mailbox holds follows the hand-over.
            let _ = myself.cast(ConversationMsg::HandOver);
            return false;
        }
        self.epoch = match self.engine.claim(&self.key).await {
            Ok(epoch) => epoch,
            Err(error) => {
                tracing::warn!(conversation = %id, %error, "could not claim conversation");
                return false;
            }
        };
        let loaded = match self.engine.load_permits.acquire().await {
            Ok(_permit) => self.engine.ports.conversations.load(self.key.creator, id, limits).await,
            // The semaphore is never closed; treat it like a store that is down.
            Err(_) => return false,
        };
        match loaded {
            Ok(Some(stored)) => self.conversation = Some(Conversation::from_stored(stored)),
            Ok(None) => {
                let now = self.engine.ports.clock.now();
                self.conversation = Some(Conversation::new(self.key.creator, self.key.user.clone(), now));
            }
            Err(error) => {
                tracing::warn!(conversation = %id, %error, "could not load conversation");
                return false;
            }
        }
        self.step(myself, Event::Recovered).await;
        self.conversation.is_some()
    }

    /// One event through the pure step function, then its effects in order.
    async fn step(&mut self, myself: &ActorRef<ConversationMsg>, event: Event) {
        let Some(conversation) = self.conversation.as_mut() else { return };
        let twin = self.twin.current();
        let now = self.engine.ports.clock.now();
        let effects = conversation.step(&twin, event, now);
        self.execute(myself, effects).await;
    }

    async fn execute(&mut self, myself: &ActorRef<ConversationMsg>, effects: Vec<Effect>) {
        let id = self.key.id();
        let mut effects = effects.into_iter();
        while let Some(effect) = effects.next() {
            match effect {
                Effect::Persist(mut records) => {
                    if let Some(epoch) = self.epoch {
                        let fence = Record::Fence { creator: self.key.creator, conversation: id, epoch };
                        records.insert(0, fence);
                    }
                    if let Err(error) = self.engine.commit(records).await {
                        self.failed_commits += 1;
                        tracing::warn!(conversation = %id, %error, "commit failed; reloading the conversation");
                        // Nothing after the failed commit happens; whoever waits for it is told.
                        for later in effects.by_ref() {
                            let (to, message, client_id) = match later {
                                Effect::Send { to, out: Outbound::Ack { client_id, .. } } => {
                                    (to, "your message could not be saved; send it again", Some(client_id))
                                }
                                Effect::Send { to, out: Outbound::Message(_) } => {
                                    (to, "the reply could not be saved; it will be written again", None)
                                }
                                _ => continue,
                            };
                            let out = Outbound::Error {
                                code: ErrorCode::Unavailable,
                                message: message.to_owned(),
                                client_id,
                            };
                            self.engine.deliver(id, to, out);
                        }
                        self.abort_replies();
                        self.conversation = None;
                        // Claimed again on reload: if another node owns it now, that claim waits
                        // or the reload hands over instead.
                        self.epoch = None;
                        self.schedule_recovery(myself);
                        return;
                    }
                    self.failed_commits = 0;
                }
                Effect::Send { to, out } => self.engine.deliver(id, to, out),
                Effect::StartReply(request) => {
                    let stream = request.stream.clone();
                    let context = crate::reply::ReplyContext {
                        llm: self.engine.ports.llm.clone(),
                        knowledge: self.engine.ports.knowledge.clone(),
                        twin: self.twin.current(),
                        timeout: self.engine.config.reply_timeout,
                    };
                    let handle = crate::reply::start(context, *request, myself.clone());
                    self.replies.retain(|(_, h)| !h.is_finished());
                    self.replies.push((stream, handle));
                }
                Effect::CancelReply(stream) => {
                    self.replies.retain(|(s, h)| {
                        if *s == stream {
                            h.abort();
                        }
                        *s != stream
                    });
                }
                Effect::Dispatch(entries) => self.engine.ports.outbox.dispatch(entries),
                Effect::Publish(event) => {
                    if let LiveEventKind::ConditionFailed { step, error } = &event.kind {
                        tracing::warn!(conversation = %id, %step, %error, "a program condition failed; took its stated path");
                    }
                    self.engine.ports.live.publish(event)
                }
                Effect::Schedule(rows) => self.engine.scheduled(rows),
                Effect::Answer(answer) => {
                    if let Some(port) = self.answer.take() {
                        let _ = port.send(answer);
                    }
                }
            }
        }
    }

    /// After a failed commit the state is reloaded from the store, after a back-off (a store that
    /// is down is not hammered), so a committed message whose answer was lost still gets one.
    fn schedule_recovery(&self, myself: &ActorRef<ConversationMsg>) {
        let delay = Duration::from_millis(200u64 << self.failed_commits.min(8));
        let myself = myself.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = myself.cast(ConversationMsg::Recover);
        });
    }

    fn abort_replies(&mut self) {
        for (_, reply) in self.replies.drain(..) {
            reply.abort();
        }
    }
}

/// A short description of an event for logs: never the user's text.
fn label(event: &Event) -> String {
    match event {
        Event::UserMessage { client_id, text, .. } => format!("user message {client_id} ({} bytes)", text.len()),
        Event::ReplyDelta { stream, .. } => format!("reply delta {stream}"),
        Event::ReplyFinished { stream, .. } => format!("reply finished {stream}"),
        Event::ReplyFailed { stream, .. } => format!("reply failed {stream}"),
        Event::Recovered => "recovered".to_owned(),
        Event::NudgeDue { id } => format!("nudge due {id}"),
        Event::NudgeAbandoned { id } => format!("nudge abandoned {id}"),
        Event::Enrol { program } => format!("enrol in {program}"),
        Event::Reachability { address, reachable } => format!("reachability of {address}: {reachable}"),
        Event::Linked { address } => format!("linked {address}"),
        Event::LinkRefused { address } => format!("link refused on {address}"),
        Event::TakeOver { .. } => "take over".to_owned(),
        Event::Release { .. } => "release".to_owned(),
        Event::HumanMessage { text, .. } => format!("human message ({} bytes)", text.len()),
        Event::SetDrafts { drafts } => format!("drafts {drafts:?}"),
        Event::ResolveDraft { stream, .. } => format!("resolve draft {stream}"),
        Event::FastForward => "fast forward".to_owned(),
    }
}
