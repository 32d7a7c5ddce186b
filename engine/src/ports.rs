//! The ports: how actors reach the world. Each is owned by its consumer (the actors) and
//! implemented by an adapter. Every method that sends must never block its caller.

mod channels;
mod clock;
mod cluster;
mod delivery;
mod knowledge;
mod live;
mod llm;
mod store;

pub use channels::{
    ChannelStore, INBOX_LEASE, InboxRow, NoOutbox, OUTBOX_LEASE, Outbox, OutboxRow, OutboxUpdate, StatusChange,
    lease_until,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use cluster::{Cluster, ClusterError, Forward, Placement};
pub use delivery::{Delivery, ErrorCode, Outbound, Recipient};
pub use knowledge::{
    ChunkKey, DocumentStatus, EmbedError, Embedder, EmbedderId, IndexError, IngestState, KnowledgeStore, VectorHit,
    VectorIndex,
};
pub use live::{LiveEvent, LiveEventKind, LivePublisher};
pub use llm::{Llm, LlmError, ReplyStream};
pub use store::{
    ConversationHeader, ConversationStore, CreatorStore, LoadLimits, NudgeOutcome, NudgeStore, ProgramSource,
    PutOutcome, Record, ScheduledNudge, StoreError, StoredConversation, StoredCreator, StoredProgram,
};
