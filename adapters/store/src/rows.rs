//! Conversions between the engine's types and column values, shared by both backends.

use twin_engine::ports::{ConversationHeader, StoreError, StoredConversation};
use twin_engine::{ClientMsgId, ConversationId, CreatorId, Message, Origin, Seq, StreamId, Timestamp, UserId};
use uuid::Uuid;

use crate::error::out_of_range;

/// A message as its columns hold it, before checking the values.
pub(crate) struct MessageRow {
    pub conversation: Uuid,
    pub creator: Uuid,
    pub seq: i64,
    pub origin: String,
    pub body: String,
    pub client_id: Option<String>,
    pub stream: Option<String>,
    pub created_at: i64,
}

impl MessageRow {
    pub(crate) fn into_message(self) -> Result<Message, StoreError> {
        let origin = Origin::parse(&self.origin)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown origin {:?}", self.origin)))?;
        let client_id = self.client_id.map(|raw| ClientMsgId::parse(&raw).map_err(corrupt("client id"))).transpose()?;
        let stream = self.stream.map(|raw| StreamId::parse(&raw).map_err(corrupt("stream id"))).transpose()?;
        Ok(Message {
            conversation: ConversationId(self.conversation),
            creator: CreatorId(self.creator),
            seq: seq_from(self.seq)?,
            origin,
            text: self.body,
            client_id,
            stream,
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

pub(crate) fn corrupt<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |error| StoreError::Corrupt(format!("stored {what} is invalid: {error}"))
}

pub(crate) fn seq_from(raw: i64) -> Result<Seq, StoreError> {
    u64::try_from(raw).map(Seq).map_err(|_| out_of_range("seq", raw))
}

pub(crate) fn version_from(raw: i64) -> Result<u64, StoreError> {
    u64::try_from(raw).map_err(|_| out_of_range("version", raw))
}

/// A seq or version for a bigint column; the engine counts from 1, so only a bug overflows.
pub(crate) fn to_db(what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} does not fit a bigint")))
}

/// A bound for `LIMIT` or `seq >`: values past i64::MAX mean "everything" or "nothing after".
pub(crate) fn saturating_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A conversation as both backends read it back, before it becomes engine values.
pub(crate) struct ConversationRows {
    pub(crate) user: String,
    pub(crate) version: i64,
    pub(crate) created_at: i64,
    pub(crate) last_seq: i64,
    /// Most recent first, as queried.
    pub(crate) recent_newest_first: Vec<MessageRow>,
    /// Most recent first, as queried.
    pub(crate) client_ids_newest_first: Vec<(String, i64)>,
}

impl ConversationRows {
    pub(crate) fn into_stored(self, id: ConversationId, creator: CreatorId) -> Result<StoredConversation, StoreError> {
        Ok(StoredConversation {
            header: ConversationHeader {
                id,
                creator,
                user: UserId::parse(&self.user).map_err(corrupt("user id"))?,
                version: version_from(self.version)?,
                created_at: Timestamp::from_millis(self.created_at),
            },
            last_seq: seq_from(self.last_seq)?,
            recent: self
                .recent_newest_first
                .into_iter()
                .rev()
                .map(MessageRow::into_message)
                .collect::<Result<_, _>>()?,
            client_ids: self
                .client_ids_newest_first
                .into_iter()
                .rev()
                .map(|(client, seq)| Ok((ClientMsgId::parse(&client).map_err(corrupt("client id"))?, seq_from(seq)?)))
                .collect::<Result<_, StoreError>>()?,
        })
    }
}
