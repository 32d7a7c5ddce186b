//! The HTTP surface: which path goes to which handler, and the state they share.

pub mod chat;
pub mod health;
pub mod openapi;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;
use twin_actors::EngineHandle;
use twin_channels::websocket::SessionHub;
use twin_store::Store;

use crate::auth::TokenKeys;

#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub hub: Arc<SessionHub>,
    pub keys: TokenKeys,
    pub store: Store,
    pub metrics: PrometheusHandle,
    /// Turns true when the server shuts down; open sessions close.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/chat", get(chat::upgrade))
        // Spans carry the method and path only: never the query, where `?token=` lives.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}
