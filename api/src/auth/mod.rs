//! Who is calling: tokens ([`tokens`]), the request extractor every authenticated route takes
//! ([`Caller`]), and the tenant scope of a creator path (`/v1/creators/{slug}/…`).
//!
//! The tenant comes only from the verified token: a path names a creator, and a caller that is not
//! that creator's (nor an admin) gets the same 404 as for a creator that does not exist, so ids
//! cannot be probed.

pub mod authenticator;
pub mod issuers;
pub mod jwks;
pub mod keyfiles;
mod remote_jwks;
pub mod tokens;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use twin_engine::{CreatorId, Slug};

use crate::problem::ApiError;
use crate::routes::AppState;
use crate::telemetry as t;

pub use authenticator::Authenticator;
pub use tokens::{AuthError, Claims, Identity, Role, TokenKeys};

/// The verified identity of a REST request (`Authorization: Bearer …`). Rejects with 401 before
/// the handler runs, and with 429 when the caller's tenant is over its rate limit.
#[derive(Debug, Clone)]
pub struct Caller(pub Identity);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let identity = authenticate(state, &parts.headers, None).await?;
        state.limits.tenant(identity.creator).await?;
        Ok(Caller(identity))
    }
}

impl Caller {
    pub fn identity(&self) -> &Identity {
        &self.0
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<&Identity, ApiError> {
        if roles.contains(&self.0.role) {
            Ok(&self.0)
        } else {
            Err(ApiError::forbidden(format!("this needs a token with role {}", role_list(roles))))
        }
    }

    /// The creator a `/v1/creators/{slug}/…` path names, when the caller may act on it: an admin on
    /// any creator, a creator or agent on their own. Anyone else, and a malformed slug, gets the
    /// 404 an unknown creator gets. End users (role `user`) never reach creator paths (403).
    pub fn scope(&self, slug: &str) -> Result<CreatorId, ApiError> {
        let identity = self.require(&[Role::Admin, Role::Creator, Role::Agent])?;
        let creator = Slug::parse(slug).map_err(|_| no_creator(slug))?.creator_id();
        if identity.role == Role::Admin || identity.creator == creator { Ok(creator) } else { Err(no_creator(slug)) }
    }
}

/// The 404 of a creator path whose creator does not exist or is not the caller's: one body for both.
pub fn no_creator(slug: &str) -> ApiError {
    ApiError::not_found(format!("no creator {slug:?}"))
}

fn role_list(roles: &[Role]) -> String {
    let names: Vec<String> = roles.iter().map(|r| format!("`{}`", r.as_str())).collect();
    names.join(" or ")
}

/// The identity behind a request: `Authorization: Bearer …`, or `?token=` where a browser cannot
/// set headers (WebSocket upgrades pass it as `query_token`). Counts failures in the metrics.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query_token: Option<&str>,
) -> Result<Identity, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let result = match bearer.or(query_token) {
        Some(token) => state.auth.verify(token.trim()).await,
        None => Err(AuthError::Missing),
    };
    result.map_err(|e| {
        metrics::counter!(t::HTTP_AUTH_FAILURES).increment(1);
        ApiError::unauthorized(e.to_string())
    })
}
