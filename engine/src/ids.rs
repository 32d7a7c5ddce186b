//! Identifiers as newtypes, so a creator id can never be passed where a user id is expected.
//!
//! Creator and conversation ids are name-based UUIDs (v5): a creator's id follows from its slug and
//! a conversation's from (creator, end user). Importing the same bundle on two machines, or minting
//! a token without a database, gives the same ids.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an identifier from outside was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} bytes long")]
    TooLong { max: usize },
    #[error("may only contain lowercase letters, digits and '-'")]
    BadSlug,
    #[error("may not contain control characters")]
    ControlCharacter,
}

/// Namespace for the name-based ids of Twin (a fixed random UUID).
const TWIN_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_3b8e_5a2d_4c71_9e0f_2b7a_d4c8_1e93);

/// A creator's URL-safe name: the folder name of its bundle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Slug(String);

impl Slug {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(IdError::TooLong { max: Self::MAX_LEN });
        }
        let valid =
            raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') && !raw.starts_with('-');
        if !valid {
            return Err(IdError::BadSlug);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The creator id this slug names.
    pub fn creator_id(&self) -> CreatorId {
        CreatorId(Uuid::new_v5(&TWIN_NAMESPACE, self.0.as_bytes()))
    }
}

impl TryFrom<String> for Slug {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Slug> for String {
    fn from(value: Slug) -> Self {
        value.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A creator (a tenant). Derived from the creator's slug.
    CreatorId
);
uuid_id!(
    /// One conversation between a creator's twin and one end user. Derived from both.
    ConversationId
);

impl ConversationId {
    pub fn of(creator: CreatorId, user: &UserId) -> Self {
        Self(Uuid::new_v5(&creator.0, user.as_str().as_bytes()))
    }
}

uuid_id!(
    /// One scheduled nudge. Derived from its conversation and the conversation's nudge counter, so a
    /// step replayed after a failed commit schedules the same id again instead of a second nudge.
    NudgeId
);

impl NudgeId {
    pub fn of(conversation: ConversationId, n: u64) -> Self {
        Self(Uuid::new_v5(&conversation.0, format!("nudge-{n}").as_bytes()))
    }
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(raw: &str) -> Result<Self, IdError> {
                if raw.is_empty() {
                    return Err(IdError::Empty);
                }
                if raw.len() > Self::MAX_LEN {
                    return Err(IdError::TooLong { max: Self::MAX_LEN });
                }
                if raw.chars().any(char::is_control) {
                    return Err(IdError::ControlCharacter);
                }
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// An end user of one creator, as the creator's platform or a channel names them.
    UserId,
    128
);
text_id!(
    /// A coaching program of one creator (the file name of `programs/<id>.yaml`).
    ProgramId,
    64
);
text_id!(
    /// A step of a program, unique within the program.
    StepId,
    64
);
text_id!(
    /// The client's idempotency key for one message it sends.
    ClientMsgId,
    128
);
text_id!(
    /// One streamed reply; deltas and the final message carry the same stream id.
    StreamId,
    64
);

impl StreamId {
    /// The stream of the reply to the user message at `seq`. A conversation answers a given
    /// message at most once, so this is unique within the conversation.
    pub fn answering(seq: Seq) -> Self {
        Self(format!("r{}", seq.0))
    }
}

/// Position of a durable message in its conversation: 1, 2, 3, … in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    pub const ZERO: Seq = Seq(0);

    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One connected client session (a socket), so an `ack` goes back to the socket that asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slug_accepts_lowercase_digits_and_dashes_only() {
        assert!(Slug::parse("demo-coach-2").is_ok());
        assert_eq!(Slug::parse("Demo"), Err(IdError::BadSlug));
        assert_eq!(Slug::parse("a/b"), Err(IdError::BadSlug));
        assert_eq!(Slug::parse("-x"), Err(IdError::BadSlug));
        assert_eq!(Slug::parse(""), Err(IdError::Empty));
        assert!(matches!(Slug::parse(&"a".repeat(65)), Err(IdError::TooLong { .. })));
    }

    #[test]
    fn ids_derived_from_names_are_stable_and_distinct() {
        let a = Slug::parse("alice").unwrap().creator_id();
        let b = Slug::parse("bob").unwrap().creator_id();
        assert_eq!(a, Slug::parse("alice").unwrap().creator_id());
        assert_ne!(a, b);
        let u = UserId::parse("u1").unwrap();
        assert_ne!(ConversationId::of(a, &u), ConversationId::of(b, &u));
    }

    #[test]
    fn text_ids_refuse_control_characters_and_overlong_values() {
        assert_eq!(ClientMsgId::parse("a\nb"), Err(IdError::ControlCharacter));
        assert!(UserId::parse(&"x".repeat(129)).is_err());
        assert!(UserId::parse(&"x".repeat(128)).is_ok());
    }
}
