//! The accounts tables on SQLite: every write on the one writer connection, so a rotation's read
//! and writes are one transaction that nothing interleaves with.

use twin_engine::ports::StoreError;
use twin_engine::{CreatorId, Slug, Timestamp};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use super::{
    ACCOUNT_COLUMNS, AUDIT_COLUMNS, Account, AccountTuple, AddressFailures, AuditEntry, AuditRecord, AuditTuple,
    Created, Credentials, LoginFailures, NewAccount, NewRefreshToken, RefreshGrant, Rotation, account_from_new,
    account_of, address_failures_of, audit_of, detail_json, is_unique_violation, login_failures_of, split_credentials,
};
use crate::error::from_sqlx;
use crate::sqlite::{SqliteStore, WRITE_TX};

impl SqliteStore {
    pub(super) async fn create_account(&self, new: &NewAccount) -> Result<Created, StoreError> {
        let email = new.email.to_lowercase();
        let result = sqlx::query(
            "INSERT INTO accounts (id, creator_id, creator_slug, email, role, password_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id.hyphenated())
        .bind(new.creator.as_ref().map(|slug| slug.creator_id().0.hyphenated()))
        .bind(new.creator.as_ref().map(Slug::as_str))
        .bind(&email)
        .bind(new.role.as_str())
        .bind(&new.password_hash)
        .bind(new.created_at.millis())
        .execute(&self.writer)
        .await;
        match result {
            Ok(_) => Ok(Created::Account(Box::new(account_from_new(new, email)))),
            Err(e) if is_unique_violation(&e) => Ok(Created::EmailTaken),
            Err(e) => Err(from_sqlx(e)),
        }
    }

    pub(super) async fn account(&self, creator: Option<CreatorId>, id: Uuid) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE creator_id IS ? AND id = ?");
        let row: Option<AccountTuple<Hyphenated>> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(creator.map(|c| c.0.hyphenated()))
            .bind(id.hyphenated())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.map(account_of).transpose()
    }

    pub(super) async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE email = ?");
        let row: Option<(AccountTuple<Hyphenated>, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?
            .map(split_credentials);
        row.map(|(account, password_hash)| Ok(Credentials { account: account_of(account)?, password_hash })).transpose()
    }

    pub(super) async fn agents(&self, creator: CreatorId) -> Result<Vec<Account>, StoreError> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE creator_id = ? AND role = 'agent' ORDER BY created_at, id"
        );
        let rows: Vec<AccountTuple<Hyphenated>> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(creator.0.hyphenated())
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        rows.into_iter().map(account_of).collect()
    }

    pub(super) async fn disable_agent(&self, creator: CreatorId, id: Uuid, now: Timestamp) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        let done = sqlx::query(
            "UPDATE accounts SET disabled_at = coalesce(disabled_at, ?) WHERE creator_id = ? AND id = ? AND role = 'agent'",
        )
        .bind(now.millis())
        .bind(creator.0.hyphenated())
        .bind(id.hyphenated())
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let found = done.rows_affected() > 0;
        if found {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = ? WHERE creator_id = ? AND account_id = ? AND revoked_at IS NULL",
            )
            .bind(now.millis())
            .bind(creator.0.hyphenated())
            .bind(id.hyphenated())
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(found)
    }

    pub(super) async fn address_failures(&self, address: &str) -> Result<AddressFailures, StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT failures, last_failure_at FROM login_throttles WHERE address = ?")
                .bind(address)
                .fetch_optional(&self.pool)
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
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        sqlx::query(
            "INSERT INTO login_throttles (address, failures, last_failure_at) VALUES (?1, 1, ?2) \
             ON CONFLICT (address) DO UPDATE SET \
             failures = CASE WHEN last_failure_at < ?3 THEN 1 ELSE failures + 1 END, last_failure_at = ?2",
        )
        .bind(address)
        .bind(now.millis())
        .bind(forget_before.millis())
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if let Some(account) = account {
            sqlx::query(
                "UPDATE accounts SET failed_count = CASE WHEN last_failed_at < ?3 THEN 1 ELSE failed_count + 1 END, \
                 last_failed_at = ?2, last_failed_address = ?4 WHERE id = ?1",
            )
            .bind(account.hyphenated())
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
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        let row: Option<(i64, Option<i64>, Option<String>)> = sqlx::query_as(
            "UPDATE accounts SET last_login_at = ?2, reported_failed_count = failed_count, \
             reported_last_failed_at = last_failed_at, reported_last_failed_address = last_failed_address, \
             failed_count = 0, last_failed_at = NULL, last_failed_address = NULL WHERE id = ?1 \
             RETURNING reported_failed_count, reported_last_failed_at, reported_last_failed_address",
        )
        .bind(account.hyphenated())
        .bind(now.millis())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        login_failures_of(row)
    }

    pub(super) async fn insert_refresh(
        &self,
        account: Uuid,
        creator: Option<CreatorId>,
        family: Uuid,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        sqlite_insert_refresh(&self.writer, account, creator.map(|c| c.0), family, token).await
    }

    pub(super) async fn rotate_refresh(
        &self,
        token_hash: &str,
        next: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        // One writer connection and BEGIN IMMEDIATE: two uses of one token run one after the other.
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        let found: Option<SqliteRefreshTuple> = sqlx::query_as(
            "SELECT t.family_id, t.account_id, t.creator_id, t.used_at, t.revoked_at, t.expires_at, a.disabled_at \
                 FROM refresh_tokens t JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = ?",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let outcome = match found {
            None => Rotation::Invalid,
            Some((family, account, creator, used, revoked, expires, disabled)) => {
                let (family, account, creator) =
                    (family.into_uuid(), account.into_uuid(), creator.map(|c| c.into_uuid()));
                let grant = RefreshGrant { account, creator: creator.map(CreatorId), family };
                if revoked.is_some() || expires <= now.millis() {
                    Rotation::Invalid
                } else if used.is_some() {
                    sqlite_revoke_family(&mut *tx, family, now).await?;
                    Rotation::Reused(grant)
                } else if disabled.is_some() {
                    sqlite_revoke_family(&mut *tx, family, now).await?;
                    Rotation::Invalid
                } else {
                    sqlx::query("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?")
                        .bind(now.millis())
                        .bind(token_hash)
                        .execute(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                    sqlite_insert_refresh(&mut *tx, account, creator, family, next).await?;
                    Rotation::Rotated(grant)
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
        let mut tx = self.writer.begin_with(WRITE_TX).await.map_err(from_sqlx)?;
        let found: Option<(Hyphenated, Hyphenated, Option<Hyphenated>)> =
            sqlx::query_as("SELECT family_id, account_id, creator_id FROM refresh_tokens WHERE token_hash = ?")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        let grant = found.map(|(family, account, creator)| RefreshGrant {
            account: account.into_uuid(),
            creator: creator.map(|c| CreatorId(c.into_uuid())),
            family: family.into_uuid(),
        });
        if let Some(grant) = &grant {
            sqlite_revoke_family(&mut *tx, grant.family, now).await?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(grant)
    }

    pub(super) async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (creator_id, at, actor, action, target, client_address, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.creator.map(|c| c.0.hyphenated()))
        .bind(entry.at.millis())
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.client_address)
        .bind(detail_json(entry))
        .execute(&self.writer)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    pub(super) async fn audit_entries(
        &self,
        creator: CreatorId,
        before: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE creator_id = ? AND id < ? ORDER BY id DESC LIMIT ?");
        let rows: Vec<AuditTuple<Hyphenated>> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(creator.0.hyphenated())
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        rows.into_iter().map(audit_of).collect()
    }
}

/// A refresh token as SQLite's rotation reads it: family, account, tenant, used at, revoked at,
/// expires at, and its account's disabled at.
type SqliteRefreshTuple = (Hyphenated, Hyphenated, Option<Hyphenated>, Option<i64>, Option<i64>, i64, Option<i64>);

async fn sqlite_insert_refresh<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    account: Uuid,
    creator: Option<Uuid>,
    family: Uuid,
    token: &NewRefreshToken,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, account_id, creator_id, token_hash, issued_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(Uuid::new_v4().hyphenated())
    .bind(family.hyphenated())
    .bind(account.hyphenated())
    .bind(creator.map(|c| c.hyphenated()))
    .bind(&token.token_hash)
    .bind(token.issued_at.millis())
    .bind(token.expires_at.millis())
    .execute(executor)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

async fn sqlite_revoke_family<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    family: Uuid,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL")
        .bind(now.millis())
        .bind(family.hyphenated())
        .execute(executor)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}
