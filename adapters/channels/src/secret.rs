//! Channel secrets in memory: resolved from `channels.toml` references (`env:NAME`) or sealed
//! values (`sealed:…`, opened by the server's key), compared in constant time, never printed.

use subtle::ConstantTimeEq;
use twin_engine::channel::SecretRef;

#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Resolves `env:NAME` and `sealed:…` through `source`, or takes a literal as is.
    pub fn resolve(reference: &SecretRef, source: &dyn SecretSource) -> Result<Self, SecretError> {
        if let Some(name) = reference.env_name() {
            return match source.env(name) {
                Some(value) if !value.is_empty() => Ok(Self(value)),
                _ => Err(SecretError::MissingEnv(name.to_owned())),
            };
        }
        if let Some(ciphertext) = reference.sealed() {
            return source.open(ciphertext).map(Self);
        }
        if reference.raw().is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(Self(reference.raw().to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with what a request presented (its length may leak, its content not).
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where references point: the environment, and the key that opens sealed secrets.
pub trait SecretSource {
    /// The value of the environment variable `name`.
    fn env(&self, name: &str) -> Option<String>;

    /// The plaintext of a sealed secret.
    fn open(&self, ciphertext: &str) -> Result<String, SecretError> {
        let _ = ciphertext;
        Err(SecretError::Sealed("no secret key to open it with".to_owned()))
    }
}

/// Any lookup function is an environment without a key.
impl<F: Fn(&str) -> Option<String>> SecretSource for F {
    fn env(&self, name: &str) -> Option<String> {
        self(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the environment variable {0} is not set")]
    MissingEnv(String),
    #[error("a secret must not be empty")]
    Empty,
    #[error("a sealed secret cannot be opened: {0} (was TWIN_SECRET_KEY changed?)")]
    Sealed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_from_the_environment_and_compare_exactly() {
        let env = |name: &str| (name == "TOKEN").then(|| "abc".to_owned());
        let secret = Secret::resolve(&SecretRef::new("env:TOKEN"), &env).unwrap();
        assert!(secret.matches(b"abc"));
        assert!(!secret.matches(b"abd"));
        assert!(!secret.matches(b"ab"));
        assert_eq!(
            Secret::resolve(&SecretRef::new("env:OTHER"), &env).unwrap_err(),
            SecretError::MissingEnv("OTHER".into())
        );
        assert!(Secret::resolve(&SecretRef::new("literal"), &env).unwrap().matches(b"literal"));
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
    }
}
