//! How sqlx failures become the engine's `StoreError`, and the store's own failure causes.

use twin_engine::ConversationId;
use twin_engine::ports::StoreError;

/// A database failure. A value that cannot be decoded, or a row the schema's checks refuse, is a
/// bug that retrying will not fix (`Corrupt`); anything else means the database is unavailable,
/// with the sqlx error kept as the source.
pub(crate) fn from_sqlx(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
            StoreError::Corrupt(error.to_string())
        }
        sqlx::Error::Database(db) if db.is_check_violation() => {
            StoreError::Corrupt(format!("refused by the schema: {db}"))
        }
        _ => StoreError::unavailable(error),
    }
}

/// An insert of rows that belong to a conversation: a foreign-key refusal means the conversation
/// is not stored for this tenant, which the commit reports as a conflict (the writer reloads it);
/// anything else as [`from_sqlx`] says.
pub(crate) fn conversation_rows(error: sqlx::Error, conversation: ConversationId) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict { conversation, expected: 0 }
        }
        _ => from_sqlx(error),
    }
}

pub(crate) fn from_migrate(error: sqlx::migrate::MigrateError) -> StoreError {
    StoreError::unavailable(error)
}

/// A stored integer that does not fit the engine's type.
pub(crate) fn out_of_range(what: &str, value: i64) -> StoreError {
    StoreError::Corrupt(format!("{what} {value} is out of range"))
}

/// The database URL names no backend this crate speaks.
#[derive(Debug, thiserror::Error)]
#[error("unsupported database URL scheme {scheme:?}: expected postgres:// or sqlite://")]
pub struct UnsupportedUrl {
    /// Only the scheme: the rest of a URL may hold a password.
    pub scheme: String,
}

/// The database answers but a migration is not applied yet (or failed): not ready.
#[derive(Debug, thiserror::Error)]
#[error("database migration {version} ({description}) is not applied")]
pub struct MigrationPending {
    pub version: i64,
    pub description: String,
}
