//! The frames of the live view (`/v1/live`): live events as JSON, one object per frame with a
//! `type`, next to the chat protocol's frames (docs/LIVE.md).

use serde_json::{Value, json};
use twin_engine::ports::{LiveEvent, LiveEventKind};

/// `{"type":"event","conversation":"<id>","event":{"kind":"…",…}}`.
pub fn event_frame(event: &LiveEvent) -> Value {
    json!({"type": "event", "conversation": event.conversation.0.to_string(), "event": kind(&event.kind)})
}

fn kind(kind: &LiveEventKind) -> Value {
    match kind {
        LiveEventKind::Message(message) => json!({"kind": "message", "message": message}),
        LiveEventKind::ReplyStarted { stream } => json!({"kind": "reply_started", "stream": stream}),
        LiveEventKind::ReplyFailed { stream, reason, partial } => {
            json!({"kind": "reply_failed", "stream": stream, "reason": reason, "partial": partial})
        }
        LiveEventKind::Enrolled { program, version } => {
            json!({"kind": "enrolled", "program": program, "version": version})
        }
        LiveEventKind::StepEntered { program, step, kind } => {
            json!({"kind": "step_entered", "program": program, "step": step, "step_kind": kind})
        }
        LiveEventKind::StepLeft { program, step } => json!({"kind": "step_left", "program": program, "step": step}),
        LiveEventKind::ProgramFinished { program } => json!({"kind": "program_finished", "program": program}),
        LiveEventKind::AnswerInvalid { step, attempts, gave_up } => {
            json!({"kind": "answer_invalid", "step": step, "attempts": attempts, "gave_up": gave_up})
        }
        LiveEventKind::ConditionFailed { step, error } => {
            json!({"kind": "condition_failed", "step": step, "error": error})
        }
        LiveEventKind::HandoffRequested { step } => json!({"kind": "handoff_requested", "step": step}),
        LiveEventKind::NudgeScheduled { id, due_at, kind } => {
            json!({"kind": "nudge_scheduled", "nudge": id, "due_at": due_at, "nudge_kind": kind})
        }
        LiveEventKind::NudgeFired { id } => json!({"kind": "nudge_fired", "nudge": id}),
        LiveEventKind::NudgeDeferred { id, until, reason } => {
            json!({"kind": "nudge_deferred", "nudge": id, "until": until, "reason": reason})
        }
        LiveEventKind::NudgeSkipped { id, reason } => json!({"kind": "nudge_skipped", "nudge": id, "reason": reason}),
        LiveEventKind::NudgesOptedOut { opted_out } => json!({"kind": "nudges_opted_out", "opted_out": opted_out}),
        LiveEventKind::Delivery { seq, channel, state, error } => {
            json!({"kind": "delivery", "seq": seq, "channel": channel, "state": state, "error": error})
        }
        LiveEventKind::MessageEdited { channel, provider_message_id, text } => json!({
            "kind": "message_edited", "channel": channel, "provider_message_id": provider_message_id, "text": text
        }),
        LiveEventKind::Reachability { address, reachable } => {
            json!({"kind": "reachability", "channel": address.kind, "reachable": reachable})
        }
        LiveEventKind::ChannelLinked { address } => json!({"kind": "channel_linked", "channel": address.kind}),
        LiveEventKind::Delta { stream, text } => json!({"kind": "delta", "stream": stream, "text": text}),
        LiveEventKind::TakenOver { by, at } => json!({"kind": "taken_over", "by": by, "at": at}),
        LiveEventKind::Released { by } => json!({"kind": "released", "by": by}),
        LiveEventKind::DraftProposed { stream, text, consistency } => {
            json!({"kind": "draft_proposed", "stream": stream, "text": text, "consistency": consistency})
        }
        LiveEventKind::DraftResolved { stream, outcome, by } => {
            json!({"kind": "draft_resolved", "stream": stream, "outcome": outcome, "by": by})
        }
        LiveEventKind::DraftsMode { drafts } => json!({"kind": "drafts_mode", "drafts": drafts}),
        LiveEventKind::ConversationStarted => json!({"kind": "conversation_started"}),
        LiveEventKind::ConversationIdle => json!({"kind": "conversation_idle"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin_engine::{ConversationId, CreatorId, StreamId};
    use uuid::Uuid;

    #[test]
    fn events_carry_their_conversation_and_kind() {
        let event = LiveEvent {
            creator: CreatorId(Uuid::from_u128(1)),
            conversation: ConversationId(Uuid::from_u128(2)),
            kind: LiveEventKind::ReplyStarted { stream: StreamId::parse("r1").unwrap_or_else(|e| panic!("{e}")) },
        };
        let frame = event_frame(&event);
        assert_eq!(frame["type"], "event");
        assert_eq!(frame["conversation"], "00000000-0000-0000-0000-000000000002");
        assert_eq!(frame["event"], json!({"kind": "reply_started", "stream": "r1"}));
    }
}
