//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use crate::problem::ApiError;

#[utoipa::path(get, path = "/healthz", tag = "meta", summary = "Liveness",
    responses((status = 200, description = "The process is up", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the store answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "meta", summary = "Readiness: the store answers and migrations are applied",
    responses(
        (status = 200, description = "Ready", content_type = "text/plain", body = String),
        (status = 503, description = "Not ready", content_type = "application/problem+json", body = super::openapi::Problem),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.store.ready().await.map_err(|e| ApiError::unavailable(format!("the store is not ready: {e}")))?;
    Ok((StatusCode::OK, "ready"))
}

#[utoipa::path(get, path = "/metrics", tag = "meta", summary = "Prometheus metrics",
    responses((status = 200, description = "Text exposition format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
