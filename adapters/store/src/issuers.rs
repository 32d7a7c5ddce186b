//! Which creator a foreign end-user token speaks for: the creator whose `[user_tokens] issuer` is
//! the token's `iss`. The token is not verified yet when this runs, so the lookup is cross-tenant:
//! on PostgreSQL it runs as `twin_system` (`creators_system_read`), indexed by
//! `creators_token_issuer`.

use twin_engine::CreatorId;
use twin_engine::ports::StoreError;
use twin_engine::twin::CreatorProfile;
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use crate::error::from_sqlx;
use crate::postgres::PgStore;
use crate::rows::corrupt;
use crate::sqlite::SqliteStore;

/// At most one creator may own an issuer: a token must never be credited to whichever of two
/// creators the database returns first, so two is refused.
fn one_creator(
    issuer: &str,
    rows: Vec<(Uuid, CreatorProfile)>,
) -> Result<Option<(CreatorId, CreatorProfile)>, StoreError> {
    let mut rows = rows.into_iter();
    match (rows.next(), rows.next()) {
        (None, _) => Ok(None),
        (Some((id, profile)), None) => Ok(Some((CreatorId(id), profile))),
        (Some(_), Some(_)) => {
            Err(StoreError::Corrupt(format!("several creators are configured with the token issuer {issuer:?}")))
        }
    }
}

impl PgStore {
    pub(crate) async fn creator_by_token_issuer(
        &self,
        issuer: &str,
    ) -> Result<Option<(CreatorId, CreatorProfile)>, StoreError> {
        let rows: Vec<(Uuid, sqlx::types::Json<CreatorProfile>)> =
            sqlx::query_as("SELECT id, profile FROM creators WHERE profile->'user_tokens'->>'issuer' = $1 LIMIT 2")
                .bind(issuer)
                .fetch_all(self.system_pool())
                .await
                .map_err(from_sqlx)?;
        one_creator(issuer, rows.into_iter().map(|(id, profile)| (id, profile.0)).collect())
    }
}

impl SqliteStore {
    pub(crate) async fn creator_by_token_issuer(
        &self,
        issuer: &str,
    ) -> Result<Option<(CreatorId, CreatorProfile)>, StoreError> {
        let rows: Vec<(Hyphenated, String)> = sqlx::query_as(
            "SELECT id, profile FROM creators WHERE json_extract(profile, '$.user_tokens.issuer') = ? LIMIT 2",
        )
        .bind(issuer)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        let rows = rows
            .into_iter()
            .map(|(id, profile)| {
                let profile: CreatorProfile = serde_json::from_str(&profile).map_err(corrupt("creator profile"))?;
                Ok((id.into_uuid(), profile))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        one_creator(issuer, rows)
    }
}
