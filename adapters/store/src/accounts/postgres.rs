//! The accounts tables on PostgreSQL: tenant work as `twin_app` (the tenant set per transaction),
//! logins, refresh tokens and admin-level audit entries as `twin_system`.

use sqlx::types::Json;
use twin_engine::ports::StoreError;
use twin_engine::{CreatorId, Slug, Timestamp};
use uuid::Uuid;

use super::{
    ACCOUNT_COLUMNS, Account, AccountTuple, AddressFailures, AuditEntry, AuditRecord, AuditTuple, Created, Credentials,
    LoginFailures, NewAccount, NewRefreshToken, RefreshGrant, Rotation, account_from_new, account_of,
    address_failures_of, audit_of, is_unique_violation, login_failures_of, split_credentials,
};
use crate::error::from_sqlx;
use crate::postgres::PgStore;

impl PgStore {
    pub(super) async fn create_account(&self, new: &NewAccount) -> Result<Created, StoreError> {
        let email = new.email.to_lowercase();
        let insert = sqlx::query(
            "INSERT INTO accounts (id, creator_id, creator_slug, email, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new.id)
        .bind(new.creator.as_ref().map(|slug| slug.creator_id().0))
        .bind(new.creator.as_ref().map(Slug::as_str))
        .bind(&email)
        .bind(new.role.as_str())
        .bind(&new.password_hash)
        .bind(new.created_at.millis());
        let result = match &new.creator {
            Some(slug) => {
                let mut tx = self.tenant_tx(slug.creator_id(), "BEGIN").await?;
                let result = insert.execute(&mut *tx).await;
                if result.is_ok() {
                    tx.commit().await.map_err(from_sqlx)?;
                }
                result
            }
            None => insert.execute(self.system_pool()).await,
        };
        match result {
            Ok(_) => Ok(Created::Account(Box::new(account_from_new(new, email)))),
            Err(e) if is_unique_violation(&e) => Ok(Created::EmailTaken),
            Err(e) => Err(from_sqlx(e)),
        }
    }

    pub(super) async fn account(&self, creator: Option<CreatorId>, id: Uuid) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountTuple<Uuid>> = match creator {
            Some(creator) => {
                let mut tx = self.tenant_tx(creator, "BEGIN READ ONLY").await?;
                let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE creator_id = $1 AND id = $2");
                let row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(creator.0)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)?;
                row
            }
            None => {
                let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE creator_id IS NULL AND id = $1");
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(self.system_pool())
                    .await
                    .map_err(from_sqlx)?
            }
        };
        row.map(account_of).transpose()
    }

    pub(super) async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE email = $1");
        let row: Option<(AccountTuple<Uuid>, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(self.system_pool())
            .await
            .map_err(from_sqlx)?
            .map(split_credentials);
        row.map(|(account, password_hash)| Ok(Credentials { account: account_of(account)?, password_hash })).transpose()
    }

    pub(super) async fn agents(&self, creator: CreatorId) -> Result<Vec<Account>, StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN READ ONLY").await?;
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE creator_id = $1 AND role = 'agent' ORDER BY created_at, id"
        );
        let rows: Vec<AccountTuple<Uuid>> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(creator.0).fetch_all(&mut *tx).await.map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        rows.into_iter().map(account_of).collect()
    }

    pub(super) async fn disable_agent(&self, creator: CreatorId, id: Uuid, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN").await?;
        let found: Option<Uuid> = sqlx::query_scalar(
            "UPDATE accounts SET disabled_at = coalesce(disabled_at, $3) \
             WHERE creator_id = $1 AND id = $2 AND role = 'agent' RETURNING id",
        )
        .bind(creator.0)
        .bind(id)
        .bind(now.millis())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if found.is_some() {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $3 \
                 WHERE creator_id = $1 AND account_id = $2 AND revoked_at IS NULL",
            )
            .bind(creator.0)
            .bind(id)
            .bind(now.millis())
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(found.is_some())
    }

    pub(super) async fn address_failures(&self, address: &str) -> Result<AddressFailures, StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT failures, last_failure_at FROM login_throttles WHERE address = $1")
                .bind(address)
                .fetch_optional(self.system_pool())
                .await
                .map_err(from_sqlx)?;
        address_failures_of(row)
    }

    pub(super) async fn record_login_failure(
        &self,
        account: Option<Uuid>,
        address: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.system_pool().begin().await.map_err(from_sqlx)?;
        sqlx::query(
            "INSERT INTO login_throttles AS t (address, failures, last_failure_at) VALUES ($1, 1, $2) \
             ON CONFLICT (address) DO UPDATE SET \
             failures = CASE WHEN t.last_failure_at < $3 THEN 1 ELSE t.failures + 1 END, last_failure_at = $2",
        )
        .bind(address)
        .bind(now.millis())
        .bind(forget_before.millis())
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if let Some(account) = account {
            sqlx::query(
                "UPDATE accounts SET failed_count = CASE WHEN last_failed_at < $3 THEN 1 ELSE failed_count + 1 END, \
                 last_failed_at = $2, last_failed_address = $4 WHERE id = $1",
            )
            .bind(account)
            .bind(now.millis())
            .bind(forget_before.millis())
            .bind(address)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)
    }

    pub(super) async fn record_login_success(
        &self,
        account: Uuid,
        now: Timestamp,
    ) -> Result<LoginFailures, StoreError> {
        // SET reads the row as it was, RETURNING the row as it is: the cleared values come back.
        let row: Option<(i64, Option<i64>, Option<String>)> = sqlx::query_as(
            "UPDATE accounts SET last_login_at = $2, reported_failed_count = failed_count, \
             reported_last_failed_at = last_failed_at, reported_last_failed_address = last_failed_address, \
             failed_count = 0, last_failed_at = NULL, last_failed_address = NULL WHERE id = $1 \
             RETURNING reported_failed_count, reported_last_failed_at, reported_last_failed_address",
        )
        .bind(account)
        .bind(now.millis())
        .fetch_optional(self.system_pool())
        .await
        .map_err(from_sqlx)?;
        login_failures_of(row)
    }

    pub(super) async fn insert_refresh(
        &self,
        account: Uuid,
        creator: Option<CreatorId>,
        family: Uuid,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        pg_insert_refresh(self.system_pool(), account, creator.map(|c| c.0), family, token).await
    }

    pub(super) async fn rotate_refresh(
        &self,
        token_hash: &str,
        next: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.system_pool().begin().await.map_err(from_sqlx)?;
        // A concurrent use of the same token waits on the row lock here, then finds it used.
        let used: Option<(Uuid, Uuid, Option<Uuid>)> = sqlx::query_as(
            "UPDATE refresh_tokens SET used_at = $2 \
             WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
             RETURNING family_id, account_id, creator_id",
        )
        .bind(token_hash)
        .bind(now.millis())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let outcome = match used {
            Some((family, account, creator)) => {
                let grant = RefreshGrant { account, creator: creator.map(CreatorId), family };
                let disabled: Option<Option<i64>> =
                    sqlx::query_scalar("SELECT disabled_at FROM accounts WHERE id = $1")
                        .bind(account)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                if matches!(disabled, Some(None)) {
                    pg_insert_refresh(&mut *tx, account, creator, family, next).await?;
                    Rotation::Rotated(grant)
                } else {
                    pg_revoke_family(&mut *tx, family, now).await?;
                    Rotation::Invalid
                }
            }
            None => {
                let found: Option<(Uuid, Uuid, Option<Uuid>, Option<i64>)> = sqlx::query_as(
                    "SELECT family_id, account_id, creator_id, used_at FROM refresh_tokens WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                match found {
                    Some((family, account, creator, Some(_))) => {
                        pg_revoke_family(&mut *tx, family, now).await?;
                        Rotation::Reused(RefreshGrant { account, creator: creator.map(CreatorId), family })
                    }
                    _ => Rotation::Invalid,
                }
            }
        };
        tx.commit().await.map_err(from_sqlx)?;
        Ok(outcome)
    }

    pub(super) async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<RefreshGrant>, StoreError> {
        let mut tx = self.system_pool().begin().await.map_err(from_sqlx)?;
        let found: Option<(Uuid, Uuid, Option<Uuid>)> =
            sqlx::query_as("SELECT family_id, account_id, creator_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        if let Some((family, _, _)) = found {
            pg_revoke_family(&mut *tx, family, now).await?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(found.map(|(family, account, creator)| RefreshGrant { account, creator: creator.map(CreatorId), family }))
    }

    pub(super) async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let insert = sqlx::query(
            "INSERT INTO audit_log (creator_id, at, actor, action, target, client_address, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(entry.creator.map(|c| c.0))
        .bind(entry.at.millis())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.client_address)
        .bind(Json(&entry.detail));
        match entry.creator {
            Some(creator) => {
                let mut tx = self.tenant_tx(creator, "BEGIN").await?;
                insert.execute(&mut *tx).await.map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)
            }
            None => insert.execute(self.system_pool()).await.map(|_| ()).map_err(from_sqlx),
        }
    }

    pub(super) async fn audit_entries(
        &self,
        creator: CreatorId,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN READ ONLY").await?;
        let sql = format!(
            "SELECT {AUDIT_COLUMNS_PG} FROM audit_log WHERE creator_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
        );
        let rows: Vec<AuditTuple<Uuid>> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(creator.0)
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        rows.into_iter().map(audit_of).collect()
    }
}

/// [`AUDIT_COLUMNS`] with the jsonb detail read as text.
const AUDIT_COLUMNS_PG: &str = "id, creator_id, at, actor, action, target, client_address, detail::text";

async fn pg_insert_refresh<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    account: Uuid,
    creator: Option<Uuid>,
    family: Uuid,
    token: &NewRefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, account_id, creator_id, token_hash, issued_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::new_v4())
    .bind(family)
    .bind(account)
    .bind(creator)
    .bind(&token.token_hash)
    .bind(token.issued_at.millis())
    .bind(token.expires_at.millis())
    .execute(executor)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

async fn pg_revoke_family<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    family: Uuid,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL")
        .bind(family)
        .bind(now.millis())
        .execute(executor)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}
