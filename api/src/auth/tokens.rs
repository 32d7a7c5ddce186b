//! Platform tokens: minting (`twin token`, the accounts routes) and verifying (every authenticated
//! route) the JWTs this server issues itself.
//!
//! Two kinds of key ring, never mixed:
//! - Ed25519 (`EdDSA`), the default: `TWIN_JWT_PRIVATE_KEY` signs, and it plus every key of
//!   `TWIN_JWT_PUBLIC_KEY` verifies (previous keys, until their tokens expire). Unconfigured, a
//!   development ring in `<data_dir>/jwt-keys/` ([`keyfiles`](super::keyfiles)). Every key is
//!   named by its RFC 7638 thumbprint (`kid`), which every token must carry; the public keys are
//!   published as a JWKS.
//! - HS256 with `TWIN_JWT_SECRET`, one shared secret, kid `hs256-1` (optional in tokens).
//!
//! A token is refused unless its algorithm is the ring's, its `kid` names a key of the ring, its
//! signature holds, and its `iss`, `aud`, `exp`, `nbf` and `iat` are right (30 s of clock leeway).
//! Tokens over [`MAX_TOKEN_BYTES`] are refused before parsing. Why a token was refused goes to a
//! debug log line only; callers get [`AuthError`], which says nothing more than expired or invalid.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use twin_engine::{CreatorId, UserId};
use uuid::Uuid;

use super::keyfiles::{self, PrivateKey};
use crate::settings::Settings;

/// The longest token read at all; real ones are well under 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 30;
const HS256_KID: &str = "hs256-1";

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

/// Refuses a token, logging why at debug level only (the client hears "invalid").
pub(crate) fn refuse(reason: impl std::fmt::Display) -> AuthError {
    tracing::debug!(%reason, "token refused");
    AuthError::Invalid
}

/// What a jsonwebtoken error means for the client: expired, or invalid with the reason logged.
pub(crate) fn refusal(error: &jsonwebtoken::errors::Error) -> AuthError {
    match error.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
            tracing::debug!("token refused: expired");
            AuthError::Expired
        }
        _ => refuse(error),
    }
}

/// A token's header, once its size is known to be sane.
pub(crate) fn header_of(token: &str) -> Result<Header, AuthError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(refuse(format_args!("{} bytes long", token.len())));
    }
    jsonwebtoken::decode_header(token).map_err(|e| refuse(format_args!("header: {e}")))
}

/// Refuses an `iat` further in the future than the leeway: a token cannot be issued later.
pub(crate) fn check_issued_at(iat: Option<u64>) -> Result<(), AuthError> {
    match iat {
        Some(iat) if iat > now_secs() + LEEWAY_SECS => Err(refuse(format_args!("iat {iat} is in the future"))),
        _ => Ok(()),
    }
}

/// The checks every token gets besides its key: algorithm, issuer, audience, times.
pub(crate) fn validation(alg: Algorithm, issuer: &str, audience: &str) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_SECS;
    validation.validate_nbf = true;
    validation
}

/// One key that verifies tokens.
struct VerifyingKey {
    kid: String,
    key: DecodingKey,
    /// The public JWK (asymmetric keys only: a secret is never published).
    jwk: Option<Jwk>,
}

struct Ring {
    alg: Algorithm,
    signing_kid: String,
    signing: EncodingKey,
    verifying: Vec<VerifyingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
}

/// The platform's key ring: signs with one key, verifies with each of its keys. Cheap to clone.
#[derive(Clone)]
pub struct TokenKeys {
    ring: Arc<Ring>,
}

impl TokenKeys {
    /// The ring the settings name: `TWIN_JWT_SECRET` (HS256) or `TWIN_JWT_PRIVATE_KEY` (+
    /// `TWIN_JWT_PUBLIC_KEY`) as Ed25519, else the development ring in the data dir (created on
    /// first use).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let jwt = &settings.jwt;
        let (issuer, audience) = (jwt.issuer.as_str(), jwt.audience.as_str());
        match (&jwt.secret, &jwt.private_key) {
            (Some(_), Some(_)) => {
                anyhow::bail!("set TWIN_JWT_SECRET (HS256) or TWIN_JWT_PRIVATE_KEY (Ed25519), not both")
            }
            (Some(secret), None) => {
                if jwt.public_key.is_some() {
                    anyhow::bail!(
                        "TWIN_JWT_PUBLIC_KEY needs TWIN_JWT_PRIVATE_KEY; with TWIN_JWT_SECRET it is not used"
                    );
                }
                if secret.expose().len() < 32 {
                    anyhow::bail!("TWIN_JWT_SECRET must be at least 32 bytes long");
                }
                Ok(Self::from_secret(secret.expose().as_bytes(), issuer, audience))
            }
            (None, Some(private)) => {
                let private = keyfiles::pem_text_or_file(private.expose(), "TWIN_JWT_PRIVATE_KEY")?;
                let signing = PrivateKey::from_pem(&private).context("TWIN_JWT_PRIVATE_KEY")?;
                let mut public = vec![signing.public];
                if let Some(value) = &jwt.public_key {
                    let text = keyfiles::pem_text_or_file(value, "TWIN_JWT_PUBLIC_KEY")?;
                    public.extend(keyfiles::public_keys_from_pem(&text).context("TWIN_JWT_PUBLIC_KEY")?);
                }
                Self::from_ed25519(&signing, &public, issuer, audience)
            }
            (None, None) => {
                if jwt.public_key.is_some() {
                    anyhow::bail!("TWIN_JWT_PUBLIC_KEY needs TWIN_JWT_PRIVATE_KEY");
                }
                let (signing, public) = keyfiles::dev_ring(&settings.data_dir)?;
                Self::from_ed25519(&signing, &public, issuer, audience)
            }
        }
    }

    /// An HS256 ring with one shared secret.
    pub fn from_secret(secret: &[u8], issuer: &str, audience: &str) -> Self {
        let ring = Ring {
            alg: Algorithm::HS256,
            signing_kid: HS256_KID.to_owned(),
            signing: EncodingKey::from_secret(secret),
            verifying: vec![VerifyingKey {
                kid: HS256_KID.to_owned(),
                key: DecodingKey::from_secret(secret),
                jwk: None,
            }],
            validation: validation(Algorithm::HS256, issuer, audience),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        };
        Self { ring: Arc::new(ring) }
    }

    /// An Ed25519 ring: `signing` signs; it and each of `public` verify (duplicates are dropped).
    pub fn from_ed25519(
        signing: &PrivateKey,
        public: &[[u8; 32]],
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<Self> {
        let mut verifying: Vec<VerifyingKey> = Vec::new();
        for key in std::iter::once(&signing.public).chain(public) {
            let jwk = ed25519_jwk(key)?;
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            if verifying.iter().all(|v| v.kid != kid) {
                verifying.push(VerifyingKey { kid, key: DecodingKey::from_ed_der(key), jwk: Some(jwk) });
            }
        }
        let ring = Ring {
            alg: Algorithm::EdDSA,
            signing_kid: ed25519_kid(&signing.public)?,
            signing: EncodingKey::from_ed_der(&signing.pkcs8),
            verifying,
            validation: validation(Algorithm::EdDSA, issuer, audience),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        };
        Ok(Self { ring: Arc::new(ring) })
    }

    pub fn issuer(&self) -> &str {
        &self.ring.issuer
    }

    pub fn audience(&self) -> &str {
        &self.ring.audience
    }

    /// The key id new tokens carry.
    pub fn signing_kid(&self) -> &str {
        &self.ring.signing_kid
    }

    /// The key ids that verify, the signing one first.
    pub fn kids(&self) -> Vec<&str> {
        self.ring.verifying.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The public keys as a JWK Set: empty for an HS256 ring, whose secret is never published.
    pub fn jwks(&self) -> JwkSet {
        JwkSet { keys: self.ring.verifying.iter().filter_map(|k| k.jwk.clone()).collect() }
    }

    pub fn mint(&self, creator: CreatorId, subject: &UserId, role: Role, ttl: Duration) -> anyhow::Result<String> {
        let now = now_secs();
        self.sign(&Claims {
            sub: subject.to_string(),
            tenant: creator.as_uuid(),
            role,
            iat: now,
            exp: now + ttl.as_secs(),
            aud: self.ring.audience.clone(),
            iss: self.ring.issuer.clone(),
            jti: Uuid::new_v4().to_string(),
        })
    }

    /// Signs any claims with the signing key (tests build odd tokens with it).
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        let mut header = Header::new(self.ring.alg);
        header.kid = Some(self.ring.signing_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.ring.signing).context("cannot sign the token")
    }

    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let ring = &*self.ring;
        let header = header_of(token)?;
        if header.alg != ring.alg {
            return Err(refuse(format_args!("algorithm {:?} where {:?} is expected", header.alg, ring.alg)));
        }
        let key = match header.kid.as_deref() {
            Some(kid) => ring.verifying.iter().find(|k| k.kid == kid).ok_or_else(|| refuse("unknown kid"))?,
            // HS256 tokens minted before key ids existed have none; there is only one secret.
            None if ring.alg == Algorithm::HS256 => &ring.verifying[0],
            None => return Err(refuse("no kid")),
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &ring.validation).map_err(|e| refusal(&e))?;
        check_issued_at(Some(data.claims.iat))?;
        let subject = UserId::parse(&data.claims.sub).map_err(|e| refuse(format_args!("sub: {e}")))?;
        Ok(Identity { creator: CreatorId(data.claims.tenant), subject, role: data.claims.role })
    }
}

/// The public JWK of an Ed25519 key, its `kid` the key's thumbprint.
fn ed25519_jwk(public: &[u8; 32]) -> anyhow::Result<Jwk> {
    let bare = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(public)});
    let mut jwk: Jwk = serde_json::from_value(bare).context("cannot build a JWK")?;
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256).context("cannot hash a JWK")?);
    jwk.common.key_algorithm = Some(jsonwebtoken::jwk::KeyAlgorithm::EdDSA);
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    Ok(jwk)
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of an Ed25519 public key: its `kid`.
pub fn ed25519_kid(public: &[u8; 32]) -> anyhow::Result<String> {
    Ok(ed25519_jwk(public)?.common.key_id.unwrap_or_default())
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests;
