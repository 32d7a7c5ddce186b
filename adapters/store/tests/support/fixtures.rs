//! Builders for the engine values the store tests write.

#![allow(dead_code, clippy::unwrap_used)]

use twin_engine::channel::{ChannelAddress, ChannelKind, OutboxBody, OutboxEntry, SecretRef, WhatsAppSettings};
use twin_engine::conversation::{ConversationState, NudgeKind, PendingNudge};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::persona::Persona;
use twin_engine::ports::{ConversationHeader, NudgeOutcome, ProgramSource, Record, ScheduledNudge};
use twin_engine::program::Enrolment;
use twin_engine::twin::{CreatorProfile, ReplySettings};
use twin_engine::{
    Choice, ClientMsgId, ConversationId, CreatorId, Message, NudgeId, Origin, ProgramId, Seq, Slug, StepId, StreamId,
    Timestamp, UserId,
};

pub fn creator(slug: &str) -> CreatorId {
    Slug::parse(slug).unwrap().creator_id()
}

pub fn conversation(creator: CreatorId, user: &str) -> ConversationId {
    ConversationId::of(creator, &UserId::parse(user).unwrap())
}

pub fn header(creator: CreatorId, user: &str, version: u64) -> ConversationHeader {
    ConversationHeader {
        id: conversation(creator, user),
        creator,
        user: UserId::parse(user).unwrap(),
        version,
        created_at: Timestamp::from_millis(1_700_000_000_000),
        state: Default::default(),
    }
}

/// A state with every part filled in, distinct for each `n`.
pub fn busy_state(creator: CreatorId, user: &str, n: u64) -> ConversationState {
    let id = conversation(creator, user);
    let mut state = ConversationState {
        // Built from JSON: an enrolment's in-flight fields are not public (and not stored).
        enrolment: Some(
            serde_json::from_value::<Enrolment>(serde_json::json!({
                "program": "focus-week",
                "version": 2,
                "step": "day-1",
                "entry": n,
                "phase": "clock",
                "enrolled_at": 1_700_000_000_000_i64,
                "entered_at": 1_700_000_000_000_i64 + n as i64,
                "attempts": 1,
                "turns": 0,
                "vars": {"goal": "ship «it»", "n": n},
                "answers": {"intro": {"picked": [1, 2.5]}},
            }))
            .unwrap(),
        ),
        finished: vec![(ProgramId::parse("welcome").unwrap(), 1)],
        nudges: vec![PendingNudge {
            id: NudgeId::of(id, n),
            due_at: Timestamp::from_millis(1_700_000_100_000),
            kind: NudgeKind::Step { step: StepId::parse("day-1").unwrap(), entry: n },
        }],
        nudge_counter: n + 1,
        ..ConversationState::default()
    };
    state.audience.timezone = Some("Europe/Berlin".to_owned());
    state
}

pub fn conversation_record(creator: CreatorId, user: &str, version: u64) -> Record {
    Record::Conversation(header(creator, user, version))
}

/// A user message with a client id.
pub fn user_message(creator: CreatorId, user: &str, seq: u64, client_id: &str) -> Message {
    Message {
        conversation: conversation(creator, user),
        creator,
        seq: Seq(seq),
        origin: Origin::User,
        text: format!("user says {seq}"),
        client_id: Some(ClientMsgId::parse(client_id).unwrap()),
        stream: None,
        choices: Vec::new(),
        consistency: None,
        created_at: Timestamp::from_millis(1_700_000_000_000 + seq as i64),
    }
}

/// The twin's reply at `seq`, answering the message before it.
pub fn twin_message(creator: CreatorId, user: &str, seq: u64) -> Message {
    Message {
        conversation: conversation(creator, user),
        creator,
        seq: Seq(seq),
        origin: Origin::Twin,
        text: format!("twin answers «{seq}» with ünïcode"),
        client_id: None,
        stream: Some(StreamId::answering(Seq(seq - 1))),
        choices: Vec::new(),
        // Stored in thousandths and read back as the same score.
        consistency: Some(twin_engine::message::Score::new(0.742)),
        created_at: Timestamp::from_millis(1_700_000_000_000 + seq as i64),
    }
}

/// A program question at `seq`, offering two choices.
pub fn question_message(creator: CreatorId, user: &str, seq: u64) -> Message {
    Message {
        conversation: conversation(creator, user),
        creator,
        seq: Seq(seq),
        origin: Origin::Program,
        text: "How focused were you today?".to_owned(),
        client_id: None,
        stream: None,
        choices: vec![
            Choice { value: "high".to_owned(), label: "Très focused 🎯".to_owned() },
            Choice { value: "low".to_owned(), label: "Not \"really\"".to_owned() },
        ],
        consistency: None,
        created_at: Timestamp::from_millis(1_700_000_000_000 + seq as i64),
    }
}

pub fn record(message: Message) -> Record {
    Record::Message(message)
}

/// The `n`th nudge of (creator, user), due at `due_at` milliseconds.
pub fn nudge(creator: CreatorId, user: &str, n: u64, due_at: i64) -> ScheduledNudge {
    let conversation = conversation(creator, user);
    ScheduledNudge {
        id: NudgeId::of(conversation, n),
        creator,
        conversation,
        user: UserId::parse(user).unwrap(),
        due_at: Timestamp::from_millis(due_at),
    }
}

pub fn scheduled(nudge: &ScheduledNudge) -> Record {
    Record::NudgeScheduled(nudge.clone())
}

pub fn settled(nudge: &ScheduledNudge, outcome: NudgeOutcome) -> Record {
    Record::NudgeSettled { creator: nudge.creator, id: nudge.id, outcome }
}

pub fn at(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

pub fn program(id: &str, source: &str) -> ProgramSource {
    ProgramSource { id: ProgramId::parse(id).unwrap(), source: source.to_owned() }
}

pub fn profile(slug: &str, name: &str) -> CreatorProfile {
    CreatorProfile {
        slug: Slug::parse(slug).unwrap(),
        persona: Persona { name: name.to_owned(), role: "focus coach".to_owned(), ..Persona::default() },
        replies: ReplySettings::default(),
        allowed_origins: vec!["https://example.test".to_owned()],
        default_program: None,
        nudges: Default::default(),
        model: Default::default(),
        channels: Default::default(),
        user_tokens: None,
    }
}

pub fn document(path: &str, body: &str) -> KnowledgeDocument {
    KnowledgeDocument { path: path.to_owned(), body: body.to_owned() }
}

/// A creator whose WhatsApp business number is `phone_number_id`.
pub fn whatsapp_profile(slug: &str, phone_number_id: &str) -> CreatorProfile {
    let mut profile = profile(slug, slug);
    profile.channels.whatsapp = Some(WhatsAppSettings {
        phone_number_id: phone_number_id.to_owned(),
        access_token: SecretRef::new("env:WHATSAPP_ACCESS_TOKEN"),
        app_secret: SecretRef::new("env:WHATSAPP_APP_SECRET"),
        verify_token: SecretRef::new("env:WHATSAPP_VERIFY_TOKEN"),
        nudge_template: None,
    });
    profile
}

/// The outbox entry that sends `message` to `chat` on `kind`.
pub fn outbox_entry(message: &Message, kind: ChannelKind, chat: &str) -> OutboxEntry {
    OutboxEntry {
        creator: message.creator,
        conversation: message.conversation,
        seq: message.seq,
        address: ChannelAddress::new(kind, chat),
        body: OutboxBody::Text { text: message.text.clone(), choices: message.choices.clone() },
        created_at: message.created_at,
    }
}
