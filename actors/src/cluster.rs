//! The engine's side of running as one node of several (ARCHITECTURE §9, docs/CLUSTER.md).
//!
//! Everything goes through the one routing function, [`Engine::route_hops`]: it asks the cluster
//! port where the conversation belongs and either hands the event to the local registry or forwards
//! it to the owner's stream. What arrives from other nodes comes in through
//! [`EngineHandle::receive`]. The rules:
//!
//! - **Ownership** is rendezvous hashing over the live nodes (the port's `place`). An actor that
//!   starts claims its conversation in the store first ([`ConversationStore::claim_owner`]): a new
//!   epoch, which every commit of it carries as a `Record::Fence`. A node that lost ownership (a
//!   stale view, a pause, a partition) is refused by the store, whatever it believes.
//! - **Hand-over**: when the live set changes, [`EngineHandle::rebalance`] tells each actor whose
//!   conversation now belongs elsewhere to stop after what its mailbox holds (a reply being
//!   generated is dropped: the new owner answers the message when it loads, as after a crash). It
//!   releases its claim; events that arrived meanwhile are forwarded to the new owner. The new owner
//!   waits for that release (up to `handover_wait`) before it claims, so the two never write at the
//!   same time; past the wait it claims anyway and fencing keeps the old one out.
//! - **Sockets on another node**: a node holding sockets of a conversation it does not own tells
//!   the owner ([`Forward::Watch`]); the owner sends it the conversation's frames. Frames are
//!   previews or re-sent on `resume`, so they travel best-effort, in order.
//! - **Commands** (takeover, a human message…) forwarded to the owner are answered through the
//!   asking node's stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use ractor::RpcReplyPort;
use twin_engine::conversation::Answer;
use twin_engine::ports::{Forward, Outbound, Placement, Recipient};
use twin_engine::{ConversationId, Event};

use crate::conversation::ConversationMsg;
use crate::handle::{ConversationKey, Engine, EngineError, EngineHandle, Spawner};

/// Forwards of one event at most: past this, views of the live set disagree for longer than a
/// heartbeat, and the sender is told to retry rather than the event bouncing on.
const MAX_HOPS: u8 = 4;

/// How often a starting actor asks again whether the previous owner has let go.
const CLAIM_RETRY: Duration = Duration::from_millis(50);

/// Cluster bookkeeping of one engine.
#[derive(Default)]
pub(crate) struct Remote {
    /// As owner: the other nodes holding sockets of a conversation.
    watchers: DashMap<ConversationId, Vec<String>>,
    /// Local sockets per conversation (a count), so the owner can be told when it changes.
    watched: DashMap<ConversationId, usize>,
    /// Commands forwarded to another node, waiting for its answer (since when).
    pending: DashMap<u64, (tokio::time::Instant, RpcReplyPort<Answer>)>,
    next_request: AtomicU64,
}

pub(crate) fn not_a_member() -> EngineError {
    EngineError::Unavailable("this node is not a member of the cluster right now; try again".to_owned())
}

fn hopped_out() -> EngineError {
    EngineError::Unavailable("the cluster is changing; try again".to_owned())
}

impl Engine {
    /// Where a conversation belongs; always here on a single node.
    pub(crate) fn placement(&self, id: ConversationId) -> Placement {
        self.ports.cluster.as_ref().map_or(Placement::Here, |cluster| cluster.place(id))
    }

    /// Sends a routed message to the owner `node`. On failure the message comes back (an event, so
    /// its sender can be told) or is dropped (a command: its caller sees the port close).
    pub(crate) async fn forward_message(
        self: &Arc<Self>,
        node: &str,
        key: &ConversationKey,
        message: ConversationMsg,
        hops: u8,
    ) -> Result<(), (EngineError, Option<ConversationMsg>)> {
        let Some(cluster) = &self.ports.cluster else {
            return Err((not_a_member(), Some(message)));
        };
        let (creator, user) = (key.creator, key.user.clone());
        let item = match message {
            ConversationMsg::Event(event) if hops >= MAX_HOPS => {
                return Err((hopped_out(), Some(ConversationMsg::Event(event))));
            }
            ConversationMsg::Event(event) => Forward::Event { creator, user, event, hops: hops + 1 },
            ConversationMsg::Command(_, _) if hops >= MAX_HOPS => return Err((hopped_out(), None)),
            ConversationMsg::Command(event, port) => {
                let request = self.remote.next_request.fetch_add(1, Ordering::Relaxed);
                // Answers that never came (their node died) are forgotten once their caller has
                // given up waiting (`EngineHandle::command` waits twice the commit timeout).
                let given_up = self.config.commit_timeout * 4;
                self.remote.pending.retain(|_, (since, _)| since.elapsed() < given_up);
                self.remote.pending.insert(request, (tokio::time::Instant::now(), port));
                let reply_to = cluster.node().to_owned();
                let item = Forward::Command { creator, user, event, reply_to, request, hops: hops + 1 };
                return match cluster.forward(node, item).await {
                    Ok(()) => Ok(()),
                    Err(error) => {
                        self.remote.pending.remove(&request);
                        Err((EngineError::Unavailable(error.to_string()), None))
                    }
                };
            }
            // Only events and commands are routed; the rest is cast to a local actor directly.
            _ => return Ok(()),
        };
        metrics::counter!(crate::metrics::CLUSTER_FORWARDS).increment(1);
        cluster.forward(node, item).await.map_err(|error| (EngineError::Unavailable(error.to_string()), None))
    }

    /// A conversation whose slot is held belongs to another node (or to none): its held events go
    /// there instead of to a new actor here.
    pub(crate) async fn forward_held(
        self: &Arc<Self>,
        key: ConversationKey,
        spawner: Spawner,
    ) -> Result<(), EngineError> {
        let id = key.id();
        let held = self.registry.abandon(id);
        let target = match self.placement(id) {
            Placement::There(node) => Some(node),
            Placement::Here | Placement::Nowhere => None,
        };
        let mut outcome = Ok(());
        for (index, message) in held.into_iter().enumerate() {
            let result = match &target {
                Some(node) => self.forward_message(node, &key, message, 0).await,
                None => Err((not_a_member(), Some(message))),
            };
            if let Err((error, message)) = result {
                if index == 0 && spawner == Spawner::Router {
                    // The router's caller learns from the result.
                    outcome = Err(error);
                } else if let Some(message) = message {
                    self.refuse(id, message, &error);
                }
            }
        }
        outcome
    }

    /// Hands a frame to the conversation's sockets: those here, and those on nodes that watch it.
    pub(crate) fn deliver(&self, id: ConversationId, to: Recipient, out: Outbound) {
        if let Some(cluster) = &self.ports.cluster
            && let Some(nodes) = self.remote.watchers.get(&id)
        {
            for node in nodes.iter() {
                let frame = Forward::Frame { conversation: id, to, out: out.clone() };
                cluster.send(node, frame);
            }
        }
        self.ports.delivery.deliver(id, to, out);
    }

    /// Claims the conversation for this node before its state is loaded: the epoch its commits
    /// carry. Waits while the previous owner, still live, hands it over; past `handover_wait` it
    /// claims anyway. `Ok(None)` on a single node.
    pub(crate) async fn claim(&self, key: &ConversationKey) -> Result<Option<u64>, EngineError> {
        let Some(cluster) = &self.ports.cluster else { return Ok(None) };
        let started = tokio::time::Instant::now();
        loop {
            let live = cluster.live();
            let force = started.elapsed() >= self.config.handover_wait;
            let claimed = self
                .ports
                .conversations
                .claim_owner(key.creator, key.id(), cluster.node(), &live, force)
                .await
                .map_err(|error| EngineError::Unavailable(error.to_string()))?;
            if let Some(epoch) = claimed {
                if force {
                    tracing::warn!(conversation = %key.id(), epoch, "took a conversation its previous owner did not hand over in time");
                }
                return Ok(Some(epoch));
            }
            if self.is_closed() {
                return Err(EngineError::Unavailable("the server is shutting down".to_owned()));
            }
            tokio::time::sleep(CLAIM_RETRY).await;
        }
    }

    /// Gives up a claim (passivation, hand-over), so the next owner need not wait.
    pub(crate) async fn release(&self, key: &ConversationKey, epoch: u64) {
        if let Err(error) = self.ports.conversations.release_owner(key.creator, key.id(), epoch).await {
            // The next owner waits `handover_wait`, then claims anyway.
            tracing::warn!(conversation = %key.id(), %error, "could not release a conversation");
        }
    }
}

impl EngineHandle {
    /// Handles what another node sent this one (the cluster adapter's stream reader calls it).
    pub async fn receive(&self, item: Forward) {
        let engine = self.engine.clone();
        match item {
            Forward::Event { creator, user, event, hops } => {
                let key = ConversationKey { creator, user };
                // Who to tell if it cannot be routed: the ids only, not the message's text.
                let sender = match &event {
                    Event::UserMessage { client_id, session, .. } => Some((client_id.clone(), *session)),
                    _ => None,
                };
                if let Err(error) = engine.route_hops(&key, ConversationMsg::Event(event), hops).await
                    && let Some((client_id, session)) = sender
                {
                    engine.refuse_sender(key.id(), client_id, session, &error);
                }
            }
            Forward::Command { creator, user, event, reply_to, request, hops } => {
                // Waits for the commit: on its own task, so the stream reader goes on.
                tokio::spawn(async move {
                    let key = ConversationKey { creator, user };
                    let (port, answer) = tokio::sync::oneshot::channel();
                    let routed = engine.route_hops(&key, ConversationMsg::Command(event, port.into()), hops).await;
                    let answer = match routed {
                        Ok(()) => tokio::time::timeout(engine.config.commit_timeout * 2, answer)
                            .await
                            .ok()
                            .and_then(Result::ok),
                        Err(_) => None,
                    };
                    if let Some(cluster) = &engine.ports.cluster {
                        cluster.send(&reply_to, Forward::Answer { request, answer });
                    }
                });
            }
            Forward::Answer { request, answer } => {
                if let Some((_, (_, port))) = engine.remote.pending.remove(&request)
                    && let Some(answer) = answer
                {
                    let _ = port.send(answer);
                }
            }
            Forward::Frame { conversation, to, out } => engine.ports.delivery.deliver(conversation, to, out),
            Forward::Watch { conversation, node, watching } => {
                let mut nodes = engine.remote.watchers.entry(conversation).or_default();
                nodes.retain(|n| *n != node);
                if watching {
                    nodes.push(node);
                }
                let empty = nodes.is_empty();
                drop(nodes);
                if empty {
                    engine.remote.watchers.remove_if(&conversation, |_, nodes| nodes.is_empty());
                }
            }
        }
    }

    /// A socket of this conversation connected here (`true`) or disconnected (`false`). In a
    /// cluster, the owner is told when the first one connects and the last one leaves, so it sends
    /// this node the conversation's frames.
    /// Awaited (the owner has it in its stream) before the socket sends anything, so the owner
    /// knows of the socket before it handles the socket's first message.
    pub async fn watch(&self, id: ConversationId, watching: bool) {
        let engine = self.engine.clone();
        let Some(cluster) = &engine.ports.cluster else { return };
        let changed = if watching {
            let mut count = engine.remote.watched.entry(id).or_insert(0);
            *count += 1;
            *count == 1
        } else {
            let mut last = false;
            if let Some(mut count) = engine.remote.watched.get_mut(&id) {
                *count = count.saturating_sub(1);
                last = *count == 0;
            }
            if last {
                engine.remote.watched.remove_if(&id, |_, count| *count == 0);
            }
            last
        };
        if changed && let Placement::There(owner) = cluster.place(id) {
            let item = Forward::Watch { conversation: id, node: cluster.node().to_owned(), watching };
            if let Err(error) = cluster.forward(&owner, item).await {
                // The socket still works for what it sends; frames from the owner may not arrive
                // until the next rebalance re-announces it, and the client resumes on reconnect.
                tracing::warn!(conversation = %id, %error, "cluster: could not tell the owner about a socket");
            }
        }
    }

    /// The live node set changed: conversations that belong elsewhere now are handed over, owners
    /// forget watchers that are gone, and this node tells each conversation's (possibly new)
    /// owner about the sockets it holds. Returns how many actors were asked to hand over.
    pub fn rebalance(&self) -> usize {
        let engine = self.engine.clone();
        let Some(cluster) = &engine.ports.cluster else { return 0 };
        let live = cluster.live();
        engine.remote.watchers.retain(|_, nodes| {
            nodes.retain(|node| live.contains(node));
            !nodes.is_empty()
        });
        let me = cluster.node().to_owned();
        for entry in engine.remote.watched.iter() {
            if let Placement::There(owner) = cluster.place(*entry.key()) {
                cluster.send(&owner, Forward::Watch { conversation: *entry.key(), node: me.clone(), watching: true });
            }
        }
        let mut handed = 0;
        for actor in engine.registry.live_actors() {
            let Some(key) = engine.actors.get(&actor.get_id()).map(|k| k.clone()) else { continue };
            if cluster.place(key.id()) != Placement::Here && actor.cast(ConversationMsg::HandOver).is_ok() {
                handed += 1;
            }
        }
        if handed > 0 {
            metrics::counter!(crate::metrics::CLUSTER_HANDOVERS).increment(handed as u64);
        }
        handed
    }
}
