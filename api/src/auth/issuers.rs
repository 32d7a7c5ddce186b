//! End-user tokens signed by a creator's own platform (`[user_tokens]` in `creator.toml`).
//!
//! The token's unverified `iss` names the creator whose `[user_tokens] issuer` it is (a store
//! lookup, cached for [`CACHE_TTL`]); the token is then verified with that creator's secret or
//! published keys only, so one creator's secret can never vouch for another creator's users. A
//! verified token makes its bearer an end user (`role: user`) of that creator, whatever `role` or
//! `tenant` claims it carries: only `sub`, `exp`, `iss` and `aud` are read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use twin_engine::twin::{CreatorProfile, UserTokens};
use twin_engine::{CreatorId, UserId};
use twin_store::Store;

use super::remote_jwks::RemoteJwks;
use super::tokens::{self, AuthError, Identity, Role, refusal, refuse};

/// How long a creator's issuer settings (or their absence) are reused before the store is asked
/// again; a changed secret or a newly imported creator takes effect within this.
pub const CACHE_TTL: Duration = Duration::from_secs(30);
/// Issuers remembered at most; past it the cache starts over (made-up issuers cannot grow it).
const CACHE_CAPACITY: usize = 10_000;
/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;
/// What a creator's platform may sign with through its published keys.
const ASYMMETRIC: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Resolves the creators' secrets (`env:NAME` references, sealed values): the server's
/// [`crate::secrets::SecretBox`] in production.
pub type EnvLookup = Arc<dyn twin_channels::SecretSource + Send + Sync>;

/// The creators' own token issuers, found by `iss`.
pub struct CreatorIssuers {
    store: Store,
    default_audience: String,
    env: EnvLookup,
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    at: Instant,
    issuer: Option<Arc<CreatorIssuer>>,
}

/// One creator's issuer, ready to verify.
struct CreatorIssuer {
    creator: CreatorId,
    issuer: String,
    audience: String,
    keys: IssuerKeys,
}

enum IssuerKeys {
    Secret(DecodingKey),
    Published(RemoteJwks),
}

/// The claims read from a creator platform's token; everything else in it is ignored.
#[derive(Deserialize)]
struct UserClaims {
    sub: String,
    #[serde(default)]
    iat: Option<u64>,
}

impl CreatorIssuers {
    pub fn new(store: Store, default_audience: String, env: EnvLookup, http: reqwest::Client) -> Self {
        Self { store, default_audience, env, http, cache: Mutex::new(HashMap::new()) }
    }

    /// Verifies `token`, whose unverified `iss` is `issuer`, as an end user of that issuer's creator.
    pub async fn verify(&self, issuer: &str, token: &str) -> Result<Identity, AuthError> {
        let header = tokens::header_of(token)?;
        let Some(found) = self.issuer(issuer).await? else {
            return Err(refuse("unknown issuer"));
        };
        let (key, alg) = match &found.keys {
            IssuerKeys::Secret(key) => {
                if header.alg != Algorithm::HS256 {
                    return Err(refuse(format_args!("algorithm {:?} where HS256 is expected", header.alg)));
                }
                (key.clone(), Algorithm::HS256)
            }
            IssuerKeys::Published(jwks) => {
                if !ASYMMETRIC.contains(&header.alg) {
                    return Err(refuse(format_args!("algorithm {:?} is not accepted from published keys", header.alg)));
                }
                let jwk = jwks.key(header.kid.as_deref()).await.map_err(refuse)?;
                (published_key(&jwk, header.alg)?, header.alg)
            }
        };
        let validation: Validation = tokens::validation(alg, &found.issuer, &found.audience);
        let data = jsonwebtoken::decode::<UserClaims>(token, &key, &validation).map_err(|e| refusal(&e))?;
        tokens::check_issued_at(data.claims.iat)?;
        let subject = UserId::parse(&data.claims.sub).map_err(|e| refuse(format_args!("sub: {e}")))?;
        Ok(Identity { creator: found.creator, subject, role: Role::User })
    }

    /// The creator whose issuer this is, from the cache or the store.
    async fn issuer(&self, issuer: &str) -> Result<Option<Arc<CreatorIssuer>>, AuthError> {
        if let Some(cached) = self.cache_get(issuer) {
            return Ok(cached);
        }
        let found = match self.store.creator_by_token_issuer(issuer).await {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "cannot look up a token issuer");
                return Err(AuthError::Invalid);
            }
        };
        let built = found.and_then(|(creator, profile)| self.build(creator, &profile)).map(Arc::new);
        self.cache_put(issuer, built.clone());
        Ok(built)
    }

    fn build(&self, creator: CreatorId, profile: &CreatorProfile) -> Option<CreatorIssuer> {
        let settings = profile.user_tokens.as_ref()?;
        match self.keys(settings) {
            Ok(keys) => Some(CreatorIssuer {
                creator,
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone().unwrap_or_else(|| self.default_audience.clone()),
                keys,
            }),
            Err(error) => {
                tracing::warn!(creator = %profile.slug, %error, "the creator's [user_tokens] cannot be used");
                None
            }
        }
    }

    fn keys(&self, settings: &UserTokens) -> anyhow::Result<IssuerKeys> {
        match (&settings.secret, &settings.jwks_url) {
            (Some(secret), None) => {
                let secret = twin_channels::Secret::resolve(secret, self.env.as_ref())?;
                if secret.expose().len() < MIN_SECRET_BYTES {
                    anyhow::bail!("the secret is shorter than {MIN_SECRET_BYTES} bytes");
                }
                Ok(IssuerKeys::Secret(DecodingKey::from_secret(secret.expose().as_bytes())))
            }
            (None, Some(url)) => Ok(IssuerKeys::Published(RemoteJwks::new(url.clone(), self.http.clone()))),
            _ => anyhow::bail!("exactly one of `secret` and `jwks_url` must be set"),
        }
    }

    fn cache_get(&self, issuer: &str) -> Option<Option<Arc<CreatorIssuer>>> {
        let cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.get(issuer).filter(|c| c.at.elapsed() < CACHE_TTL).map(|c| c.issuer.clone())
    }

    fn cache_put(&self, issuer: &str, found: Option<Arc<CreatorIssuer>>) {
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(issuer.to_owned(), Cached { at: Instant::now(), issuer: found });
    }
}

/// The verifying key of a published JWK, refused unless it is a public signing key for `alg`: a
/// symmetric (`oct`) key, an encryption key, or a key declared for another algorithm never verifies.
fn published_key(jwk: &Jwk, alg: Algorithm) -> Result<DecodingKey, AuthError> {
    if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
        return Err(refuse("a published key is symmetric"));
    }
    if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature) {
        return Err(refuse("a published key is not for signatures"));
    }
    if let Some(declared) = jwk.common.key_algorithm
        && declared.to_string() != format!("{alg:?}")
    {
        return Err(refuse(format_args!("the key is for {declared}, the token says {alg:?}")));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| refuse(format_args!("published key: {e}")))?;
    if key.family() != alg.family() {
        return Err(refuse(format_args!("the key does not fit algorithm {alg:?}")));
    }
    Ok(key)
}

/// Checks a bundle's `[user_tokens]` against the server before import: its issuer is not the
/// server's own, and no other creator already has it.
pub async fn check_import(store: &Store, profile: &CreatorProfile, platform_issuer: &str) -> anyhow::Result<()> {
    let Some(settings) = &profile.user_tokens else {
        return Ok(());
    };
    if settings.issuer == platform_issuer {
        anyhow::bail!(
            "[user_tokens] issuer of {} is the server's own issuer (TWIN_JWT_ISSUER); use your platform's URL",
            profile.slug
        );
    }
    if let Some((owner, other)) = store.creator_by_token_issuer(&settings.issuer).await?
        && owner != profile.slug.creator_id()
    {
        anyhow::bail!(
            "[user_tokens] issuer {:?} of {} is already used by {}",
            settings.issuer,
            profile.slug,
            other.slug
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(value: serde_json::Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }

    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn only_public_signing_keys_for_the_tokens_algorithm_verify() {
        let ed = jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": X, "kid": "a"}));
        assert!(published_key(&ed, Algorithm::EdDSA).is_ok());
        assert!(published_key(&ed, Algorithm::ES256).is_err(), "an EC algorithm with an Ed25519 key");
        assert!(published_key(&ed, Algorithm::RS256).is_err(), "an RSA algorithm with an Ed25519 key");

        let declared = jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": X, "alg": "EdDSA"}));
        assert!(published_key(&declared, Algorithm::EdDSA).is_ok());
        let rsa_declared = jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": X, "alg": "RS256"}));
        assert!(published_key(&rsa_declared, Algorithm::EdDSA).is_err(), "declared for another algorithm");

        let encryption = jwk(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": X, "use": "enc"}));
        assert!(published_key(&encryption, Algorithm::EdDSA).is_err(), "an encryption key");

        let symmetric = jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}));
        assert!(published_key(&symmetric, Algorithm::HS256).is_err(), "a published secret");
    }
}
