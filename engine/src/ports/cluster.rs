//! The cluster port: several nodes share one PostgreSQL and one Redis. The actors ask it where a
//! conversation lives and hand it what must travel to another node; the adapter (Redis, in the api
//! crate's wiring) keeps the live node set and the per-node streams. Single-node servers have no
//! cluster port at all.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::conversation::{Answer, Event};
use crate::ids::{ConversationId, CreatorId, UserId};
use crate::ports::{Outbound, Recipient};

/// Where a conversation's actor belongs under the current live node set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// On this node.
    Here,
    /// On that node.
    There(String),
    /// Nowhere: this node is not (or no longer) a member, so it owns nothing and cannot tell who
    /// does. Events are refused (`unavailable`) until it is a member again.
    Nowhere,
}

/// What one node sends another about a conversation. Delivered at least once through the
/// receiver's stream; each carries an id the receiver deduplicates on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Forward {
    /// An event for the conversation's owner. `hops` counts forwards, so two nodes whose views of
    /// the live set briefly disagree cannot bounce an event forever.
    Event { creator: CreatorId, user: UserId, event: Event, hops: u8 },
    /// A human's command for the owner, answered through `reply_to`'s stream with `request`.
    Command { creator: CreatorId, user: UserId, event: Event, reply_to: String, request: u64, hops: u8 },
    /// The answer to a forwarded command (`None`: it could not be handled or saved).
    Answer { request: u64, answer: Option<Answer> },
    /// A frame for sockets of the conversation held by the receiving node.
    Frame { conversation: ConversationId, to: Recipient, out: Outbound },
    /// The sending node holds sockets of the conversation (`watching`) or no longer does: the
    /// owner sends it the conversation's frames while it watches.
    Watch { conversation: ConversationId, node: String, watching: bool },
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("the cluster is unavailable: {0}")]
pub struct ClusterError(pub String);

#[async_trait::async_trait]
pub trait Cluster: Send + Sync + 'static {
    /// This node's id.
    fn node(&self) -> &str;

    /// The live node ids as this node sees them now (empty when it is not a member itself).
    fn live(&self) -> Arc<[String]>;

    /// Where `conversation` belongs now (rendezvous hashing over [`Cluster::live`]).
    fn place(&self, conversation: ConversationId) -> Placement;

    /// Appends `item` to node `to`'s stream; returns once Redis has it (durable as Redis is).
    async fn forward(&self, to: &str, item: Forward) -> Result<(), ClusterError>;

    /// Queues `item` for node `to` without waiting: items sent this way leave in the order they
    /// were sent. Best-effort: frames and answers, which their receivers can do without (a socket
    /// resumes; a command's caller times out).
    fn send(&self, to: &str, item: Forward);
}
