//! Passwords: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), hashed and verified on
//! the blocking pool so a login never stalls the runtime's workers.

use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

/// Shorter passwords are refused.
pub const MIN_CHARS: usize = 12;
/// Longer passwords are refused: hashing cost grows with the input.
pub const MAX_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password must be at least {MIN_CHARS} characters long")]
    TooShort,
    #[error("the password must be at most {MAX_BYTES} bytes long")]
    TooLong,
}

/// A password a new account may have.
pub fn check(password: &str) -> Result<(), PasswordError> {
    if password.len() > MAX_BYTES {
        Err(PasswordError::TooLong)
    } else if password.chars().count() < MIN_CHARS {
        Err(PasswordError::TooShort)
    } else {
        Ok(())
    }
}

/// Hashes computed at once. Each takes 19 MiB and a core for a while: a burst of logins queues
/// here instead of exhausting memory and the blocking pool.
const CONCURRENT_HASHES: usize = 4;
static HASHING: Semaphore = Semaphore::const_new(CONCURRENT_HASHES);

fn argon2() -> Argon2<'static> {
    // These parameters are within argon2's bounds, so `Params::new` cannot fail.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The hash every login for an unknown email is verified against, so that answering "no such
/// email" costs as long as a wrong password (no timing oracle on which emails exist).
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_now("not-a-password-of-anyone").unwrap_or_else(|_| String::from("$argon2id$v=19$")));

fn hash_now(password: &str) -> anyhow::Result<String> {
    let hash = argon2().hash_password(password.as_bytes()).map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
    Ok(hash.to_string())
}

/// The argon2id PHC string of `password`, with a fresh random salt.
pub async fn hash(password: String) -> anyhow::Result<String> {
    let _permit = HASHING.acquire().await?;
    tokio::task::spawn_blocking(move || hash_now(&password)).await?
}

/// Whether `password` matches `hash`; with no hash (unknown email) a dummy hash is verified and
/// the answer is `false`. A malformed stored hash never matches.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    let known = hash.is_some();
    let Ok(_permit) = HASHING.acquire().await else {
        return false;
    };
    let result = tokio::task::spawn_blocking(move || {
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
        argon2().verify_password(password.as_bytes(), hash.as_str()).is_ok()
    })
    .await;
    known && result.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limits() {
        assert_eq!(check("short"), Err(PasswordError::TooShort));
        assert_eq!(check("ééééééééééé"), Err(PasswordError::TooShort), "characters are counted, not bytes");
        assert_eq!(check("twelve chars"), Ok(()));
        assert_eq!(check(&"x".repeat(1025)), Err(PasswordError::TooLong));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let hash = hash("correct horse battery".to_owned()).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery".to_owned(), Some(hash.clone())).await);
        assert!(!verify("wrong horse battery".to_owned(), Some(hash)).await);
        assert!(!verify("correct horse battery".to_owned(), None).await);
        assert!(!verify("x".to_owned(), Some("garbage".to_owned())).await);
    }
}
