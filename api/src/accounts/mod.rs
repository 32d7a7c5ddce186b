//! Creator, agent and admin accounts: passwords ([`password`]), login throttling ([`throttle`]),
//! refresh tokens ([`refresh`]), and creating an account with its audit entry (shared by
//! `POST /v1/accounts`, `POST /v1/creators/{slug}/agents` and `twin account create`).
//!
//! Access tokens are short (15 minutes) and are not checked against the account on each request:
//! disabling an account revokes its refresh tokens at once, and its access tokens stop working
//! when they expire, within 15 minutes.

pub mod password;
pub mod refresh;
pub mod throttle;

use std::time::Duration;

use serde_json::json;
use twin_engine::ports::CreatorStore;
use twin_engine::{CreatorId, Slug, Timestamp};
use twin_store::{Account, AccountRole, AuditEntry, Created, NewAccount, Store};
use uuid::Uuid;

use crate::auth::Role;
pub use password::PasswordError;
pub use throttle::ThrottlePolicy;

/// Lifetime of an access token minted at login or refresh.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Lifetime of a refresh token; each use replaces it with a new one.
pub const REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Longest email accepted (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// The token role of an account role.
pub fn token_role(role: AccountRole) -> Role {
    match role {
        AccountRole::Admin => Role::Admin,
        AccountRole::Creator => Role::Creator,
        AccountRole::Agent => Role::Agent,
    }
}

/// The tenant an account's access tokens carry: its creator, or the nil id for admins (whose
/// tokens reach every creator through their role, never through a tenant).
pub fn token_tenant(account: &Account) -> CreatorId {
    account.creator.unwrap_or(CreatorId(Uuid::nil()))
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("{0:?} is not an email address")]
    InvalidEmail(String),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("there is no creator {0}")]
    UnknownCreator(String),
    #[error("an account with this email exists already")]
    EmailTaken,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The email as stored: trimmed and lowercased; refused unless it looks like `local@domain`.
pub fn normalize_email(raw: &str) -> Result<String, CreateError> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
    if valid { Ok(email) } else { Err(CreateError::InvalidEmail(raw.trim().to_owned())) }
}

/// An account to create, before its password is hashed.
pub struct AccountRequest {
    pub email: String,
    pub password: String,
    pub role: AccountRole,
    /// The tenant; `None` for admins.
    pub creator: Option<Slug>,
}

/// Who asked, for the audit entry.
pub struct Actor {
    /// An account id, or `cli`.
    pub name: String,
    pub client_address: Option<String>,
}

/// Checks, hashes and stores a new account, and audits `account.created` (as the account's tenant,
/// or admin-level for an admin account).
pub async fn create(
    store: &Store,
    request: AccountRequest,
    actor: &Actor,
    now: Timestamp,
) -> Result<Account, CreateError> {
    let email = normalize_email(&request.email)?;
    password::check(&request.password)?;
    if let Some(slug) = &request.creator {
        let exists = store.creator(slug.creator_id()).await.map_err(anyhow::Error::from)?.is_some();
        if !exists {
            return Err(CreateError::UnknownCreator(slug.to_string()));
        }
    }
    let password_hash = password::hash(request.password).await?;
    let new = NewAccount {
        id: Uuid::new_v4(),
        creator: request.creator,
        email,
        role: request.role,
        password_hash,
        created_at: now,
    };
    let account = match store.create_account(&new).await.map_err(anyhow::Error::from)? {
        Created::Account(account) => *account,
        Created::EmailTaken => return Err(CreateError::EmailTaken),
    };
    let entry = AuditEntry {
        creator: account.creator,
        at: now,
        actor: actor.name.clone(),
        action: "account.created".to_owned(),
        target: Some(account.id.to_string()),
        client_address: actor.client_address.clone(),
        detail: json!({ "role": account.role.as_str() }),
    };
    store.audit(&entry).await.map_err(anyhow::Error::from)?;
    Ok(account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(normalize_email("  Ana@Example.COM ").unwrap(), "ana@example.com");
        for bad in ["", "ana", "@example.com", "ana@", "a b@example.com", &format!("{}@x.y", "a".repeat(300))] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
