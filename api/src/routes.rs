//! The HTTP surface: which path goes to which handler, and the state they share.

pub mod channels;
pub mod chat;
pub mod gdpr;
pub mod health;
pub mod openapi;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;
use twin_actors::EngineHandle;
use twin_channels::websocket::SessionHub;
use twin_store::Store;

use crate::auth::TokenKeys;
use crate::channels::{ChannelRegistry, Inbox};
use twin_engine::ports::Clock;

#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub hub: Arc<SessionHub>,
    pub keys: TokenKeys,
    pub store: Store,
    pub metrics: PrometheusHandle,
    /// Each creator's Telegram and WhatsApp clients.
    pub channels: Arc<ChannelRegistry>,
    /// The webhook inbox.
    pub inbox: Inbox,
    pub clock: Arc<dyn Clock>,
    /// `TWIN_WHATSAPP_VERIFY_TOKEN`: the handshake of the shared WhatsApp endpoint.
    pub whatsapp_verify_token: Option<twin_channels::Secret>,
    /// Where GDPR exports and erasures are audited (`crate::gdpr::TracingAudit` until the audit
    /// table is wired in).
    pub audit: Arc<dyn crate::gdpr::AuditSink>,
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
        .route("/v1/channels/link-code", post(channels::link_code))
        .route("/v1/creators/{slug}", delete(gdpr::erase_creator))
        .route("/v1/creators/{slug}/export", get(gdpr::export_creator))
        .route("/v1/creators/{slug}/users/{user}", delete(gdpr::erase_user))
        .route("/v1/creators/{slug}/users/{user}/export", get(gdpr::export_user))
        .route(
            "/v1/channels/telegram/{slug}/webhook",
            post(channels::telegram_webhook).layer(DefaultBodyLimit::max(channels::MAX_WEBHOOK_BYTES)),
        )
        .route(
            "/v1/channels/whatsapp/webhook",
            get(channels::whatsapp_shared_handshake)
                .post(channels::whatsapp_shared_webhook)
                .layer(DefaultBodyLimit::max(channels::MAX_WEBHOOK_BYTES)),
        )
        .route(
            "/v1/channels/whatsapp/{slug}/webhook",
            get(channels::whatsapp_handshake)
                .post(channels::whatsapp_webhook)
                .layer(DefaultBodyLimit::max(channels::MAX_WEBHOOK_BYTES)),
        )
        // Spans carry the method and path only: never the query, where `?token=` lives.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}
