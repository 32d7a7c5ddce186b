//! Twin's domain: ids, messages, the creator's persona and knowledge, and the pure conversation step.
//!
//! Nothing here does I/O or knows about a runtime. Actors feed events into
//! [`Conversation::step`] and carry out the [`Effect`]s it returns; adapters implement the
//! [`ports`] the actors talk through.

pub mod channel;
pub mod conversation;
pub mod ids;
pub mod knowledge;
pub mod message;
pub mod nudge;
pub mod persona;
pub mod placement;
pub mod ports;
pub mod program;
pub mod prompt;
pub mod time;
pub mod twin;

pub use conversation::{Conversation, Effect, Event, Outbound, Recipient, Record};
pub use ids::{
    ClientMsgId, ConversationId, CreatorId, IdError, NudgeId, ProgramId, Seq, SessionId, Slug, StepId, StreamId, UserId,
};
pub use message::{Choice, Message, Origin};
pub use time::Timestamp;
pub use twin::TwinSnapshot;
