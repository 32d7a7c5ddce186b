//! The live-event port: what creators watching their conversations see.
//!
//! Live events are serializable so that nodes of a cluster can pass them to each other (the
//! Redis fan-out in `twin-cluster`); that JSON is node to node, never the client wire
//! (`api/src/live_wire.rs` owns that).

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Deserializer, Serialize};

use crate::channel::{ChannelAddress, ChannelKind, DeliveryState};
use crate::ids::{ConversationId, CreatorId, NudgeId, ProgramId, Seq, StepId, StreamId};
use crate::message::Message;

/// A word from the engine's small fixed vocabulary (a step kind, a policy reason, a draft
/// outcome). An alias, not `&'static str` written out, because serde would take a spelled-out
/// `&str` field as borrowed from the input, and live events must outlive the bytes they came in.
pub type Word = &'static str;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveEvent {
    pub creator: CreatorId,
    pub conversation: ConversationId,
    pub kind: LiveEventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveEventKind {
    /// A message became durable (either direction).
    Message(Message),
    ReplyStarted {
        stream: StreamId,
    },
    /// A reply failed; `partial` is the text the user saw streaming before it did (not stored as a
    /// message: it is marked here, for the creator, as cut off).
    ReplyFailed {
        stream: StreamId,
        reason: String,
        partial: String,
    },
    Enrolled {
        program: ProgramId,
        version: u32,
    },
    StepEntered {
        program: ProgramId,
        step: StepId,
        #[serde(deserialize_with = "static_word")]
        kind: Word,
    },
    StepLeft {
        program: ProgramId,
        step: StepId,
    },
    ProgramFinished {
        program: ProgramId,
    },
    AnswerInvalid {
        step: StepId,
        attempts: u32,
        gave_up: bool,
    },
    /// A condition failed at run time; the program took its stated path (see `program::cursor`).
    ConditionFailed {
        step: StepId,
        error: String,
    },
    HandoffRequested {
        step: StepId,
    },
    NudgeScheduled {
        id: NudgeId,
        due_at: crate::time::Timestamp,
        #[serde(deserialize_with = "static_word")]
        kind: Word,
    },
    NudgeFired {
        id: NudgeId,
    },
    /// The policy moved the nudge (quiet hours, daily cap) to `until`.
    NudgeDeferred {
        id: NudgeId,
        until: crate::time::Timestamp,
        #[serde(deserialize_with = "static_word")]
        reason: Word,
    },
    NudgeSkipped {
        id: NudgeId,
        #[serde(deserialize_with = "static_word")]
        reason: Word,
    },
    /// The user opted out of (or back into) nudges.
    NudgesOptedOut {
        opted_out: bool,
    },
    /// A provider reported what became of a message the twin sent (`seq`).
    Delivery {
        seq: Seq,
        channel: ChannelKind,
        state: DeliveryState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The user edited a message they sent on a provider channel; the stored turn is unchanged.
    MessageEdited {
        channel: ChannelKind,
        provider_message_id: String,
        text: String,
    },
    /// A provider said the user blocked (`false`) or unblocked the twin on a channel.
    Reachability {
        address: ChannelAddress,
        reachable: bool,
    },
    /// A channel identity was linked to this user (with a one-time code).
    ChannelLinked {
        address: ChannelAddress,
    },
    /// A piece of the reply being generated (the user sees it too unless drafts are on).
    Delta {
        stream: StreamId,
        text: String,
    },
    /// A human (`by`, an account's email) took the conversation over.
    TakenOver {
        by: String,
        at: crate::time::Timestamp,
    },
    /// The human handed the conversation back to the twin.
    Released {
        by: String,
    },
    /// Draft mode: the twin proposes this reply; nothing reached the user.
    DraftProposed {
        stream: StreamId,
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consistency: Option<crate::message::Score>,
    },
    /// The pending draft was `approved`, `edited`, `rejected` or `superseded` (by a newer draft).
    DraftResolved {
        stream: StreamId,
        #[serde(deserialize_with = "static_word")]
        outcome: Word,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Draft approval for this conversation is now on or off.
    DraftsMode {
        drafts: bool,
    },
    /// The first event of a new conversation.
    ConversationStarted,
    /// The conversation went idle and left memory; the next event brings it back.
    ConversationIdle,
}

pub trait LivePublisher: Send + Sync + 'static {
    /// Publishes to the creator's watchers. Never blocks and costs next to nothing when nobody
    /// watches.
    fn publish(&self, event: LiveEvent);
}

/// The most distinct words [`static_word`] keeps; any further word reads as `"other"`.
const MAX_WORDS: usize = 256;

/// The `&'static str` fields of a live event (a step kind, a policy reason, a draft outcome) are
/// words from a small fixed vocabulary the engine writes. Read back from another node, each
/// distinct word is kept once for the life of the process, so the events stay the same type
/// without a `String` per event; the table is bounded, so a peer sending ever new words cannot
/// grow it without limit.
fn static_word<'de, D: Deserializer<'de>>(deserializer: D) -> Result<&'static str, D::Error> {
    static WORDS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let word = String::deserialize(deserializer)?;
    // A poisoned lock only means another thread panicked while inserting; the set is still valid.
    let mut words = WORDS.get_or_init(Default::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok(keep_word(&mut words, word))
}

/// `word` from `words`, added to them while there is room.
fn keep_word(words: &mut HashSet<&'static str>, word: String) -> &'static str {
    if let Some(known) = words.get(word.as_str()) {
        return known;
    }
    if words.len() >= MAX_WORDS {
        return "other";
    }
    // Leaked on purpose, once per distinct word and at most MAX_WORDS of them.
    let kept: &'static str = Box::leak(word.into_boxed_str());
    words.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConversationId, CreatorId, NudgeId, StreamId};
    use uuid::Uuid;

    fn round_trip(kind: LiveEventKind) -> LiveEventKind {
        let event = LiveEvent {
            creator: CreatorId(Uuid::from_u128(1)),
            conversation: ConversationId(Uuid::from_u128(2)),
            kind,
        };
        let json = serde_json::to_string(&event).expect("serializes");
        let back: LiveEvent = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back.creator, event.creator);
        assert_eq!(back.conversation, event.conversation);
        back.kind
    }

    #[test]
    fn live_events_survive_the_trip_between_nodes() {
        let kinds = [
            LiveEventKind::Delta { stream: StreamId::parse("r1").expect("valid"), text: "Hel".into() },
            LiveEventKind::NudgeSkipped { id: NudgeId(Uuid::from_u128(3)), reason: "human_holds" },
            LiveEventKind::DraftResolved {
                stream: StreamId::parse("r2").expect("valid"),
                outcome: "superseded",
                by: None,
            },
            LiveEventKind::ConversationIdle,
        ];
        for kind in kinds {
            assert_eq!(round_trip(kind.clone()), kind);
        }
    }

    #[test]
    fn the_node_to_node_json_is_compact() {
        let event = LiveEvent {
            creator: CreatorId(Uuid::nil()),
            conversation: ConversationId(Uuid::nil()),
            kind: LiveEventKind::Delta { stream: StreamId::parse("r1").expect("valid"), text: "Hi".into() },
        };
        let json = serde_json::to_string(&event).expect("serializes");
        assert!(json.contains(r#""delta":{"stream":"r1","text":"Hi"}"#), "{json}");
        let idle = serde_json::to_string(&LiveEventKind::ConversationIdle).expect("serializes");
        assert_eq!(idle, r#""conversation_idle""#);
    }

    #[test]
    fn words_beyond_the_bound_read_as_other_and_known_ones_stay_shared() {
        let mut words = HashSet::new();
        let first = keep_word(&mut words, "quiet_hours".into());
        let again = keep_word(&mut words, "quiet_hours".into());
        assert!(std::ptr::eq(first, again), "one copy per word");
        for n in 0..MAX_WORDS {
            let _ = keep_word(&mut words, format!("made_up_{n}"));
        }
        assert_eq!(words.len(), MAX_WORDS);
        assert_eq!(keep_word(&mut words, "yet_another".into()), "other");
        assert_eq!(keep_word(&mut words, "quiet_hours".into()), "quiet_hours");
    }
}
