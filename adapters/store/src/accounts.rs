//! Accounts (operators, creators and their agents), rotating refresh tokens, the login throttle and
//! the audit log, on both backends. End users are not accounts.
//!
//! On PostgreSQL, what happens before the tenant is known runs as `twin_system`: a login finds its
//! account by email and counts failures, a refresh or logout finds its token by hash, and an
//! admin-level action (no tenant) is audited. Everything a creator reads or changes (their own
//! account, their agents, their audit log) is tenant work as `twin_app`. The grants keep the
//! password hash out of `twin_app`'s reach.

use serde_json::Value;
use twin_engine::ports::StoreError;
use twin_engine::{CreatorId, Slug, Timestamp};
use uuid::Uuid;

use crate::error::out_of_range;
use crate::{Backend, Store};

mod postgres;
mod sqlite;

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
