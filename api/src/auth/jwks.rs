//! `GET /v1/auth/jwks.json` and `GET /.well-known/jwks.json`: the platform's public token keys, so
//! other services can verify Twin's tokens without a shared secret. An HS256 server publishes an
//! empty set: a secret is never published.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use crate::routes::AppState;

/// How long clients may keep the key set: a rotated key is published well before tokens signed
/// with it are common, and a retired key stays until its tokens have expired.
pub const MAX_AGE_SECS: u64 = 300;

/// A JWK Set (RFC 7517 §5).
#[derive(Serialize, utoipa::ToSchema)]
pub struct JwksDocument {
    pub keys: Vec<PublicJwk>,
}

/// One public key: Ed25519 (`kty: OKP`, `crv: Ed25519`), `kid` its RFC 7638 thumbprint.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub key_use: String,
}

#[utoipa::path(
    get,
    path = "/v1/auth/jwks.json",
    tag = "auth",
    responses((status = 200, description = "The public keys that verify this server's tokens", body = JwksDocument))
)]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    document(&state)
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "auth",
    responses((status = 200, description = "The same key set as /v1/auth/jwks.json", body = JwksDocument))
)]
pub async fn well_known_jwks(State(state): State<AppState>) -> impl IntoResponse {
    document(&state)
}

fn document(state: &AppState) -> impl IntoResponse + use<> {
    // The ring's JWKs, serialized as jsonwebtoken writes them (RFC 7517 field names).
    let set = state.keys.jwks();
    let body = serde_json::to_value(&set).unwrap_or_else(|_| serde_json::json!({"keys": []}));
    ([(header::CACHE_CONTROL, format!("public, max-age={MAX_AGE_SECS}"))], Json(body))
}
