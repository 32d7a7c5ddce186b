//! The embedded migrations of each backend, and the readiness check over what is applied.

use sqlx::migrate::Migrator;
use twin_engine::ports::StoreError;

use crate::error::MigrationPending;

pub(crate) static POSTGRES: Migrator = sqlx::migrate!("../../migrations/postgres");
pub(crate) static SQLITE: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The versions sqlx records as successfully applied.
pub(crate) const APPLIED_SQL: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// Ok when every migration of `migrator` is among the `applied` versions.
pub(crate) fn check_applied(migrator: &Migrator, applied: &[i64]) -> Result<(), StoreError> {
    match migrator.iter().filter(|m| !m.migration_type.is_down_migration()).find(|m| !applied.contains(&m.version)) {
        None => Ok(()),
        Some(m) => Err(StoreError::unavailable(MigrationPending {
            version: m.version,
            description: m.description.to_string(),
        })),
    }
}
