//! Accounts (operators, creators and their agents), rotating refresh tokens, the login throttle and
//! the audit log, on both backends. End users are not accounts.
//!
//! On PostgreSQL, what happens before the tenant is known runs as `twin_system`: a login finds its
//! account by email and counts failures, a refresh or logout finds its token by hash, and an
//! admin-level action (no tenant) is audited. Everything a creator reads or changes (their own
//! account, their agents, their audit log) is tenant work as `twin_app`. The grants keep the
//! password hash out of `twin_app`'s reach.

use serde_json::Value;
use sqlx::types::Json;
use twin_engine::ports::StoreError;
use twin_engine::{CreatorId, Slug, Timestamp};
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use crate::error::{from_sqlx, out_of_range};
use crate::postgres::PgStore;
use crate::sqlite::{SqliteStore, WRITE_TX};
use crate::{Backend, Store};

/// What a stored account may do. Stored, never derived from anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountRole {
    /// The operator of the server; belongs to no tenant.
    Admin,
    /// Owns a tenant.
    Creator,
    /// A creator's team member.
    Agent,
}

impl AccountRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Admin => "admin",
            AccountRole::Creator => "creator",
            AccountRole::Agent => "agent",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "admin" => Some(AccountRole::Admin),
            "creator" => Some(AccountRole::Creator),
            "agent" => Some(AccountRole::Agent),
            _ => None,
        }
    }
}

/// An account to create. The email is stored lowercased; `creator` (the tenant, by its slug) is
/// `None` exactly for admins.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: Uuid,
    pub creator: Option<Slug>,
    pub email: String,
    pub role: AccountRole,
    /// An argon2id PHC string; never the password.
    pub password_hash: String,
    pub created_at: Timestamp,
}

/// Failed logins of one account over a period, as its owner is told about them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFailures {
    pub count: u32,
    pub last_at: Option<Timestamp>,
    pub last_address: Option<String>,
}

/// A stored account (without its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: Uuid,
    /// The tenant; `None` for admins.
    pub creator: Option<CreatorId>,
    /// The tenant's slug (what creator paths name).
    pub creator_slug: Option<Slug>,
    pub email: String,
    pub role: AccountRole,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
    pub last_login_at: Option<Timestamp>,
    /// Failed logins since the last successful one: the per-account throttle counts these.
    pub failures: LoginFailures,
    /// The failed logins the last successful login cleared.
    pub failures_before_last_login: LoginFailures,
}

/// An account with its password hash, for verifying a login.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub account: Account,
    pub password_hash: String,
}

/// The outcome of [`Store::create_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Account(Box<Account>),
    /// Another account (of any tenant) has this email.
    EmailTaken,
}

/// Failed logins from one client address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressFailures {
    pub count: u32,
    pub last_at: Option<Timestamp>,
}

/// A refresh token to store: only its hash, never the token.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// Lowercase hex sha-256 of the opaque token.
    pub token_hash: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Whose a refresh token family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshGrant {
    pub account: Uuid,
    pub creator: Option<CreatorId>,
    pub family: Uuid,
}

/// The outcome of presenting a refresh token ([`Store::rotate_refresh`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is now used and the next one of its family is stored.
    Rotated(RefreshGrant),
    /// The token had been used already: its whole family is now revoked.
    Reused(RefreshGrant),
    /// Unknown, expired, revoked, or its account is disabled.
    Invalid,
}

/// One security-relevant action. `detail` never holds passwords, tokens or message text.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// `None` for admin-level actions.
    pub creator: Option<CreatorId>,
    pub at: Timestamp,
    /// An account id, or `system` / `cli`.
    pub actor: String,
    /// e.g. `login.failed`, `refresh.reused`, `account.created`.
    pub action: String,
    pub target: Option<String>,
    pub client_address: Option<String>,
    pub detail: Value,
}

/// A stored audit entry; `id` is the cursor of [`Store::audit_entries`].
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
}

const ACCOUNT_COLUMNS: &str = "id, creator_id, creator_slug, email, role, created_at, disabled_at, last_login_at, failed_count, \
     last_failed_at, last_failed_address, reported_failed_count, reported_last_failed_at, reported_last_failed_address";

/// [`ACCOUNT_COLUMNS`] in order; ids as each backend decodes them.
type AccountTuple<I> = (
    I,
    Option<I>,
    Option<String>,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
);

const AUDIT_COLUMNS: &str = "id, creator_id, at, actor, action, target, client_address, detail";

type AuditTuple<I> = (i64, Option<I>, i64, String, String, Option<String>, Option<String>, String);

fn count_of(raw: i64) -> Result<u32, StoreError> {
    u32::try_from(raw).map_err(|_| out_of_range("failed login count", raw))
}

fn millis(raw: Option<i64>) -> Option<Timestamp> {
    raw.map(Timestamp::from_millis)
}

fn account_of<I: Into<Uuid>>(
    (
        id,
        creator,
        creator_slug,
        email,
        role,
        created,
        disabled,
        login,
        failed,
        failed_at,
        failed_from,
        reported,
        reported_at,
        reported_from,
    ): AccountTuple<I>,
) -> Result<Account, StoreError> {
    Ok(Account {
        id: id.into(),
        creator: creator.map(|c| CreatorId(c.into())),
        creator_slug: creator_slug
            .map(|raw| Slug::parse(&raw).map_err(|e| StoreError::Corrupt(format!("account slug {raw:?}: {e}"))))
            .transpose()?,
        email,
        role: AccountRole::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("unknown account role {role:?}")))?,
        created_at: Timestamp::from_millis(created),
        disabled_at: millis(disabled),
        last_login_at: millis(login),
        failures: LoginFailures { count: count_of(failed)?, last_at: millis(failed_at), last_address: failed_from },
        failures_before_last_login: LoginFailures {
            count: count_of(reported)?,
            last_at: millis(reported_at),
            last_address: reported_from,
        },
    })
}

fn audit_of<I: Into<Uuid>>(
    (id, creator, at, actor, action, target, client_address, detail): AuditTuple<I>,
) -> Result<AuditRecord, StoreError> {
    let detail = serde_json::from_str(&detail).map_err(|e| StoreError::Corrupt(format!("audit detail {id}: {e}")))?;
    Ok(AuditRecord {
        id,
        entry: AuditEntry {
            creator: creator.map(|c| CreatorId(c.into())),
            at: Timestamp::from_millis(at),
            actor,
            action,
            target,
            client_address,
            detail,
        },
    })
}

fn account_from_new(new: &NewAccount, email: String) -> Account {
    Account {
        id: new.id,
        creator: new.creator.as_ref().map(Slug::creator_id),
        creator_slug: new.creator.clone(),
        email,
        role: new.role,
        created_at: new.created_at,
        disabled_at: None,
        last_login_at: None,
        failures: LoginFailures::default(),
        failures_before_last_login: LoginFailures::default(),
    }
}

/// The account's role and tenant agree: admins have none, everyone else has one.
fn check_new(new: &NewAccount) -> Result<(), StoreError> {
    if (new.role == AccountRole::Admin) != new.creator.is_none() {
        return Err(StoreError::Corrupt(format!("a {} account with creator {:?}", new.role.as_str(), new.creator)));
    }
    Ok(())
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn detail_json(entry: &AuditEntry) -> String {
    entry.detail.to_string()
}

impl Store {
    /// Stores a new account; [`Created::EmailTaken`] when any account has its email (in any case).
    /// Admins are created outside any tenant, everyone else as their tenant.
    pub async fn create_account(&self, new: &NewAccount) -> Result<Created, StoreError> {
        check_new(new)?;
        match &self.backend {
            Backend::Postgres(s) => s.create_account(new).await,
            Backend::Sqlite(s) => s.create_account(new).await,
        }
    }

    /// The account `id` of tenant `creator`, or the admin account `id` when `creator` is `None`.
    pub async fn account(&self, creator: Option<CreatorId>, id: Uuid) -> Result<Option<Account>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.account(creator, id).await,
            Backend::Sqlite(s) => s.account(creator, id).await,
        }
    }

    /// The account with this email (any case) and its password hash, across tenants: a login
    /// names no tenant.
    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.credentials(&email.to_lowercase()).await,
            Backend::Sqlite(s) => s.credentials(&email.to_lowercase()).await,
        }
    }

    /// The agent accounts of `creator`, oldest first, disabled ones included.
    pub async fn agents(&self, creator: CreatorId) -> Result<Vec<Account>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.agents(creator).await,
            Backend::Sqlite(s) => s.agents(creator).await,
        }
    }

    /// Disables the agent `id` of `creator` and revokes its refresh families, in one transaction.
    /// `false` when `creator` has no such agent. Disabling twice keeps the first time.
    pub async fn disable_agent(&self, creator: CreatorId, id: Uuid, now: Timestamp) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.disable_agent(creator, id, now).await,
            Backend::Sqlite(s) => s.disable_agent(creator, id, now).await,
        }
    }

    /// Failed logins from `address`.
    pub async fn address_failures(&self, address: &str) -> Result<AddressFailures, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.address_failures(address).await,
            Backend::Sqlite(s) => s.address_failures(address).await,
        }
    }

    /// Counts a failed login from `address`, and against `account` when the email named one. A
    /// count whose last failure is before `forget_before` starts over.
    pub async fn record_login_failure(
        &self,
        account: Option<Uuid>,
        address: &str,
        now: Timestamp,
        forget_before: Timestamp,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.record_login_failure(account, address, now, forget_before).await,
            Backend::Sqlite(s) => s.record_login_failure(account, address, now, forget_before).await,
        }
    }

    /// A successful login: the account's failure count moves to `failures_before_last_login` and
    /// starts over, and `last_login_at` is set. Returns the failures it cleared. The address's
    /// count is kept (it only ages out), so a caller with one valid account cannot reset it.
    pub async fn record_login_success(&self, account: Uuid, now: Timestamp) -> Result<LoginFailures, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.record_login_success(account, now).await,
            Backend::Sqlite(s) => s.record_login_success(account, now).await,
        }
    }

    /// Starts a refresh token family for `account` (a login); returns the family id.
    pub async fn start_refresh_family(&self, account: &Account, token: &NewRefreshToken) -> Result<Uuid, StoreError> {
        let family = Uuid::new_v4();
        match &self.backend {
            Backend::Postgres(s) => s.insert_refresh(account.id, account.creator, family, token).await?,
            Backend::Sqlite(s) => s.insert_refresh(account.id, account.creator, family, token).await?,
        }
        Ok(family)
    }

    /// Uses the refresh token whose hash is `token_hash` and stores `next` in its family, in one
    /// transaction: of two concurrent uses of one token exactly one rotates; the other, like any
    /// later use, is a reuse and revokes the whole family.
    pub async fn rotate_refresh(
        &self,
        token_hash: &str,
        next: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.rotate_refresh(token_hash, next, now).await,
            Backend::Sqlite(s) => s.rotate_refresh(token_hash, next, now).await,
        }
    }

    /// Revokes the family of the refresh token whose hash is `token_hash` (a logout); `None` when
    /// no token has that hash.
    pub async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<RefreshGrant>, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.revoke_refresh_family(token_hash, now).await,
            Backend::Sqlite(s) => s.revoke_refresh_family(token_hash, now).await,
        }
    }

    /// Appends an entry to the audit log: as its tenant, or outside any tenant for admin-level
    /// actions.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(s) => s.audit(entry).await,
            Backend::Sqlite(s) => s.audit(entry).await,
        }
    }

    /// The audit entries of `creator`, newest first: up to `limit` entries older than the entry
    /// `before` (from the start when `None`).
    pub async fn audit_entries(
        &self,
        creator: CreatorId,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let before = before.unwrap_or(i64::MAX);
        match &self.backend {
            Backend::Postgres(s) => s.audit_entries(creator, before, limit).await,
            Backend::Sqlite(s) => s.audit_entries(creator, before, limit).await,
        }
    }
}

impl PgStore {
    async fn create_account(&self, new: &NewAccount) -> Result<Created, StoreError> {
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

    async fn account(&self, creator: Option<CreatorId>, id: Uuid) -> Result<Option<Account>, StoreError> {
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

    async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE email = $1");
        let row: Option<(AccountTuple<Uuid>, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(self.system_pool())
            .await
            .map_err(from_sqlx)?
            .map(split_credentials);
        row.map(|(account, password_hash)| Ok(Credentials { account: account_of(account)?, password_hash })).transpose()
    }

    async fn agents(&self, creator: CreatorId) -> Result<Vec<Account>, StoreError> {
        let mut tx = self.tenant_tx(creator, "BEGIN READ ONLY").await?;
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE creator_id = $1 AND role = 'agent' ORDER BY created_at, id"
        );
        let rows: Vec<AccountTuple<Uuid>> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(creator.0).fetch_all(&mut *tx).await.map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        rows.into_iter().map(account_of).collect()
    }

    async fn disable_agent(&self, creator: CreatorId, id: Uuid, now: Timestamp) -> Result<bool, StoreError> {
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

    async fn address_failures(&self, address: &str) -> Result<AddressFailures, StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT failures, last_failure_at FROM login_throttles WHERE address = $1")
                .bind(address)
                .fetch_optional(self.system_pool())
                .await
                .map_err(from_sqlx)?;
        address_failures_of(row)
    }

    async fn record_login_failure(
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

    async fn record_login_success(&self, account: Uuid, now: Timestamp) -> Result<LoginFailures, StoreError> {
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

    async fn insert_refresh(
        &self,
        account: Uuid,
        creator: Option<CreatorId>,
        family: Uuid,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        pg_insert_refresh(self.system_pool(), account, creator.map(|c| c.0), family, token).await
    }

    async fn rotate_refresh(
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

    async fn revoke_refresh_family(
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

    async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
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

    async fn audit_entries(&self, creator: CreatorId, before: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
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

/// The account columns and the trailing password hash of a credentials row.
type CredentialsTuple<I> = (
    I,
    Option<I>,
    Option<String>,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
    Option<String>,
    String,
);

fn split_credentials<I>(
    (a, b, c, d, e, f, g, h, i, j, k, l, m, n, hash): CredentialsTuple<I>,
) -> (AccountTuple<I>, String) {
    ((a, b, c, d, e, f, g, h, i, j, k, l, m, n), hash)
}

fn address_failures_of(row: Option<(i64, i64)>) -> Result<AddressFailures, StoreError> {
    match row {
        None => Ok(AddressFailures::default()),
        Some((count, last)) => {
            Ok(AddressFailures { count: count_of(count)?, last_at: Some(Timestamp::from_millis(last)) })
        }
    }
}

fn login_failures_of(row: Option<(i64, Option<i64>, Option<String>)>) -> Result<LoginFailures, StoreError> {
    match row {
        None => Ok(LoginFailures::default()),
        Some((count, last_at, last_address)) => {
            Ok(LoginFailures { count: count_of(count)?, last_at: millis(last_at), last_address })
        }
    }
}

impl SqliteStore {
    async fn create_account(&self, new: &NewAccount) -> Result<Created, StoreError> {
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

    async fn account(&self, creator: Option<CreatorId>, id: Uuid) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE creator_id IS ? AND id = ?");
        let row: Option<AccountTuple<Hyphenated>> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(creator.map(|c| c.0.hyphenated()))
            .bind(id.hyphenated())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        row.map(account_of).transpose()
    }

    async fn credentials(&self, email: &str) -> Result<Option<Credentials>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS}, password_hash FROM accounts WHERE email = ?");
        let row: Option<(AccountTuple<Hyphenated>, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?
            .map(split_credentials);
        row.map(|(account, password_hash)| Ok(Credentials { account: account_of(account)?, password_hash })).transpose()
    }

    async fn agents(&self, creator: CreatorId) -> Result<Vec<Account>, StoreError> {
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

    async fn disable_agent(&self, creator: CreatorId, id: Uuid, now: Timestamp) -> Result<bool, StoreError> {
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

    async fn address_failures(&self, address: &str) -> Result<AddressFailures, StoreError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT failures, last_failure_at FROM login_throttles WHERE address = ?")
                .bind(address)
                .fetch_optional(&self.pool)
                .await
                .map_err(from_sqlx)?;
        address_failures_of(row)
    }

    async fn record_login_failure(
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

    async fn record_login_success(&self, account: Uuid, now: Timestamp) -> Result<LoginFailures, StoreError> {
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

    async fn insert_refresh(
        &self,
        account: Uuid,
        creator: Option<CreatorId>,
        family: Uuid,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        sqlite_insert_refresh(&self.writer, account, creator.map(|c| c.0), family, token).await
    }

    async fn rotate_refresh(
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

    async fn revoke_refresh_family(
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

    async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
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

    async fn audit_entries(&self, creator: CreatorId, before: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
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
