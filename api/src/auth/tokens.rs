//! Tokens: minting (`twin token`) and verifying (every authenticated route) JWTs.
//!
//! HS256 with `TWIN_JWT_SECRET`, or a development secret generated once in the data dir. Only
//! HS256 is accepted (so `alg: none` and algorithm confusion are refused), with the configured
//! issuer and audience, and a bounded clock leeway. The tenant comes from the verified token only.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use twin_engine::{CreatorId, UserId};
use uuid::Uuid;

use crate::settings::Settings;

const DEV_SECRET_FILE: &str = "jwt-dev-secret";
const KEY_ID: &str = "hs256-1";
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Agent,
    Creator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Agent => "agent",
            Role::Creator => "creator",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// The tenant: the creator id.
    pub tenant: Uuid,
    pub role: Role,
    pub iat: u64,
    pub exp: u64,
    pub aud: String,
    pub iss: String,
    pub jti: String,
}

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub creator: CreatorId,
    pub subject: UserId,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send it as `Authorization: Bearer …` or `?token=…`")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl TokenKeys {
    /// Keys from the settings, creating the development secret in the data dir when none is set.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let secret = match &settings.jwt.secret {
            Some(secret) => secret.expose().as_bytes().to_vec(),
            None => dev_secret(&settings.data_dir)?,
        };
        if secret.len() < 32 {
            anyhow::bail!("TWIN_JWT_SECRET must be at least 32 bytes long");
        }
        Ok(Self::from_secret(&secret, &settings.jwt.issuer, &settings.jwt.audience))
    }

    pub fn from_secret(secret: &[u8], issuer: &str, audience: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    pub fn mint(&self, creator: CreatorId, subject: &UserId, role: Role, ttl: Duration) -> anyhow::Result<String> {
        let now = now_secs();
        let claims = Claims {
            sub: subject.to_string(),
            tenant: creator.as_uuid(),
            role,
            iat: now,
            exp: now + ttl.as_secs(),
            aud: self.audience.clone(),
            iss: self.issuer.clone(),
            jti: Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(KEY_ID.to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding).context("cannot sign the token")
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        if data.header.kid.as_deref().is_some_and(|kid| kid != KEY_ID) {
            return Err(AuthError::Invalid);
        }
        let subject = UserId::parse(&data.claims.sub).map_err(|_| AuthError::Invalid)?;
        Ok(Identity { creator: CreatorId(data.claims.tenant), subject, role: data.claims.role })
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The development secret: 32 random bytes, hex, in the data dir, readable by the owner only.
fn dev_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join(DEV_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => return Ok(text.trim().as_bytes().to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &hex).with_context(|| format!("cannot write {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a development token secret");
    Ok(hex.into_bytes())
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn unb64(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> TokenKeys {
        TokenKeys::from_secret(SECRET, "twin", "twin")
    }

    fn alice() -> CreatorId {
        twin_engine::Slug::parse("alice").unwrap().creator_id()
    }

    #[test]
    fn a_minted_token_verifies_to_its_identity() {
        let user = UserId::parse("u1").unwrap();
        let token = keys().mint(alice(), &user, Role::User, Duration::from_secs(60)).unwrap();
        assert_eq!(keys().verify(&token).unwrap(), Identity { creator: alice(), subject: user, role: Role::User });
    }

    #[test]
    fn wrong_secret_issuer_audience_and_expiry_are_refused() {
        let user = UserId::parse("u1").unwrap();
        let token = keys().mint(alice(), &user, Role::User, Duration::from_secs(60)).unwrap();
        let other = TokenKeys::from_secret(b"another-secret-another-secret-xx", "twin", "twin");
        assert!(matches!(other.verify(&token), Err(AuthError::Invalid)));
        assert!(matches!(TokenKeys::from_secret(SECRET, "other", "twin").verify(&token), Err(AuthError::Invalid)));
        assert!(matches!(TokenKeys::from_secret(SECRET, "twin", "other").verify(&token), Err(AuthError::Invalid)));

        let now = now_secs();
        let expired = Claims {
            sub: "u1".into(),
            tenant: alice().as_uuid(),
            role: Role::User,
            iat: now - 7200,
            exp: now - 3600,
            aud: "twin".into(),
            iss: "twin".into(),
            jti: "x".into(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &EncodingKey::from_secret(SECRET)).unwrap();
        assert!(matches!(keys().verify(&token), Err(AuthError::Expired)));
    }

    #[test]
    fn alg_none_and_tampered_tokens_are_refused() {
        let user = UserId::parse("u1").unwrap();
        let token = keys().mint(alice(), &user, Role::User, Duration::from_secs(60)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys().verify(&format!("{none_header}.{}.", parts[1])).is_err());

        // Same signature, payload swapped to another tenant.
        let mut claims: serde_json::Value = serde_json::from_slice(&unb64(parts[1])).unwrap();
        claims["tenant"] = serde_json::json!(Uuid::nil());
        let forged = format!("{}.{}.{}", parts[0], b64(claims.to_string().as_bytes()), parts[2]);
        assert!(matches!(keys().verify(&forged), Err(AuthError::Invalid)));
    }
}
