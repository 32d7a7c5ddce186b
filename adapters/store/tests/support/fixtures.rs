//! Builders for the engine values the store tests write.

#![allow(dead_code, clippy::unwrap_used)]

use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::persona::Persona;
use twin_engine::ports::{ConversationHeader, Record};
use twin_engine::twin::{CreatorProfile, ReplySettings};
use twin_engine::{ClientMsgId, ConversationId, CreatorId, Message, Origin, Seq, Slug, StreamId, Timestamp, UserId};

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
    }
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
        created_at: Timestamp::from_millis(1_700_000_000_000 + seq as i64),
    }
}

pub fn record(message: Message) -> Record {
    Record::Message(message)
}

pub fn profile(slug: &str, name: &str) -> CreatorProfile {
    CreatorProfile {
        slug: Slug::parse(slug).unwrap(),
        persona: Persona { name: name.to_owned(), role: "focus coach".to_owned(), ..Persona::default() },
        replies: ReplySettings::default(),
        allowed_origins: vec!["https://example.test".to_owned()],
    }
}

pub fn document(path: &str, body: &str) -> KnowledgeDocument {
    KnowledgeDocument { path: path.to_owned(), body: body.to_owned() }
}
