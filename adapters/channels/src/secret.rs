//! Channel secrets in memory: resolved from `channels.toml` references, compared in constant
//! time, never printed.

use subtle::ConstantTimeEq;
use twin_engine::channel::SecretRef;

#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Resolves `env:NAME` through `env`, or takes a literal as is.
    pub fn resolve(reference: &SecretRef, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SecretError> {
        match reference.env_name() {
            Some(name) => match env(name) {
                Some(value) if !value.is_empty() => Ok(Self(value)),
                _ => Err(SecretError::MissingEnv(name.to_owned())),
            },
            None if reference.raw().is_empty() => Err(SecretError::Empty),
            None => Ok(Self(reference.raw().to_owned())),
        }
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the environment variable {0} is not set")]
    MissingEnv(String),
    #[error("a secret must not be empty")]
    Empty,
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
