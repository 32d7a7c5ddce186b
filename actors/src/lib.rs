//! Twin's actor tree: every creator twin and every user conversation is a supervised actor.
//!
//! ```text
//! EngineHandle (typed handle; the api crate sees nothing else)
//!   │  route(conversation, event) ── the one routing function ──► Registry ──► ConversationActor
//!   │
//! RootActor                            starts and watches the two below; if either dies the engine
//! │                                    reports itself failed and the server exits for a restart
//! ├── WriterActor                      group commit: all conversations' records, few transactions
//! ├── NudgeScheduler                   one timing wheel of the nudges due within the horizon, loaded
//! │                                    from the nudge table; claims due rows and routes NudgeDue
//! └── TwinSupervisor                   loads creators, restarts nothing itself (twins do not fail)
//!     └── CreatorTwinActor (per creator)   holds the TwinSnapshot; supervises its conversations
//!         │                                and restarts a crashed one from the store (bounded)
//!         └── ConversationActor (per creator × end user)
//!                                      feeds events to engine::Conversation::step, carries out the
//!                                      effects; loads its state after spawning, passivates when idle
//! LiveHub                              per-creator broadcast of live events (not an actor: a map of
//!                                      broadcast channels, so publishing never waits on anyone)
//! ```
//!
//! Everything the tree does to the world goes through the ports in [`twin_engine::ports`].

mod cluster;
mod conversation;
mod creator_twin;
mod handle;
mod knowledge;
mod live_hub;
pub mod metrics;
mod nudge_scheduler;
mod registry;
mod reply;
mod root;
mod twin_supervisor;
mod writer;

pub use conversation::ConversationView;
pub use handle::{ConversationKey, EngineConfig, EngineError, EngineHandle, Ports};
pub use knowledge::{IngestReport, KnowledgePorts, ingest, retrieve};
pub use live_hub::{LIVE_BUFFER, LiveHub};
pub use nudge_scheduler::{SchedulerConfig, SchedulerStats};
