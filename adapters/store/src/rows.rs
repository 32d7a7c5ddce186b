//! Conversions between the engine's types and column values, shared by both backends.

use twin_engine::conversation::ConversationState;
use twin_engine::message::Score;
use twin_engine::ports::{ConversationHeader, ScheduledNudge, StoreError, StoredConversation, StoredProgram};
use twin_engine::{
    Choice, ClientMsgId, ConversationId, CreatorId, Message, NudgeId, Origin, ProgramId, Seq, StreamId, Timestamp,
    UserId,
};
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
    /// JSON of the choices; NULL when there are none.
    pub choices: Option<String>,
    /// The consistency score in thousandths, for twin replies.
    pub consistency: Option<i32>,
    pub created_at: i64,
}

impl MessageRow {
    pub(crate) fn into_message(self) -> Result<Message, StoreError> {
        let origin = Origin::parse(&self.origin)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown origin {:?}", self.origin)))?;
        let client_id = self.client_id.map(|raw| ClientMsgId::parse(&raw).map_err(corrupt("client id"))).transpose()?;
        let stream = self.stream.map(|raw| StreamId::parse(&raw).map_err(corrupt("stream id"))).transpose()?;
        let choices = match self.choices {
            None => Vec::new(),
            Some(raw) => serde_json::from_str(&raw).map_err(corrupt("message choices"))?,
        };
        Ok(Message {
            conversation: ConversationId(self.conversation),
            creator: CreatorId(self.creator),
            seq: seq_from(self.seq)?,
            origin,
            text: self.body,
            client_id,
            stream,
            choices,
            consistency: self
                .consistency
                .map(|v| {
                    u16::try_from(v).map(Score::from_thousandths).map_err(|_| out_of_range("consistency", i64::from(v)))
                })
                .transpose()?,
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

/// The choices column of a message: JSON, or NULL for none (most messages).
pub(crate) fn choices_json(choices: &[Choice]) -> Result<Option<String>, StoreError> {
    if choices.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(choices)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("message choices cannot be serialized: {e}")))
}

/// The state column of a conversation.
pub(crate) fn state_json(header: &ConversationHeader) -> Result<String, StoreError> {
    serde_json::to_string(&header.state)
        .map_err(|e| StoreError::Corrupt(format!("state of conversation {} cannot be serialized: {e}", header.id)))
}

/// A nudge as its columns hold it (the backends decode ids to `Uuid` first).
pub(crate) struct NudgeRow {
    pub id: Uuid,
    pub creator: Uuid,
    pub conversation: Uuid,
    pub user: String,
    pub due_at: i64,
}

impl NudgeRow {
    pub(crate) fn into_nudge(self) -> Result<ScheduledNudge, StoreError> {
        Ok(ScheduledNudge {
            id: NudgeId(self.id),
            creator: CreatorId(self.creator),
            conversation: ConversationId(self.conversation),
            user: UserId::parse(&self.user).map_err(corrupt("user id"))?,
            due_at: Timestamp::from_millis(self.due_at),
        })
    }
}

/// Claimed rows come back in no particular order; the port promises earliest first.
pub(crate) fn earliest_first(rows: Vec<NudgeRow>) -> Result<Vec<ScheduledNudge>, StoreError> {
    let mut nudges = rows.into_iter().map(NudgeRow::into_nudge).collect::<Result<Vec<_>, _>>()?;
    nudges.sort_by_key(|n| (n.due_at, n.id));
    Ok(nudges)
}

/// A stored program version; `(program id, version, source)` as the columns hold them.
pub(crate) fn stored_program((id, version, source): (String, i64, String)) -> Result<StoredProgram, StoreError> {
    Ok(StoredProgram {
        id: ProgramId::parse(&id).map_err(corrupt("program id"))?,
        version: u32::try_from(version).map_err(|_| out_of_range("program version", version))?,
        source,
    })
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
    /// JSON of the conversation's state.
    pub(crate) state: String,
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
                state: serde_json::from_str::<ConversationState>(&self.state).map_err(corrupt("conversation state"))?,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_migrations_default_state_loads_as_the_default() {
        // Conversations stored before the state column have '{}' (0004 / sqlite 0002).
        assert_eq!(serde_json::from_str::<ConversationState>("{}").unwrap(), ConversationState::default());
    }

    #[test]
    fn no_choices_are_stored_as_null() {
        assert_eq!(choices_json(&[]).unwrap(), None);
        let one = [Choice { value: "v".to_owned(), label: "l".to_owned() }];
        assert_eq!(choices_json(&one).unwrap().as_deref(), Some(r#"[{"value":"v","label":"l"}]"#));
    }
}
