//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use crate::problem::ApiError;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the store answers and every migration is applied.
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.store.ready().await.map_err(|e| ApiError::unavailable(format!("the store is not ready: {e}")))?;
    Ok((StatusCode::OK, "ready"))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
