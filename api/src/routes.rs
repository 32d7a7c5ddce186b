//! The HTTP surface: which path goes to which handler, and the state they share.

pub mod channel_settings;
pub mod channels;
pub mod chat;
pub mod health;
pub mod openapi;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;
use twin_actors::EngineHandle;
use twin_channels::websocket::SessionHub;
use twin_store::Store;

use crate::auth::{Authenticator, TokenKeys};
use crate::channels::{ChannelRegistry, Inbox};
use twin_engine::ports::Clock;

#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub hub: Arc<SessionHub>,
    /// The platform's token keys: what the server signs with (and publishes as a JWKS).
    pub keys: TokenKeys,
    /// Rate limits per client address and per tenant.
    pub limits: crate::limits::Limits,
    /// Seals channel secrets set through the API (`TWIN_SECRET_KEY`).
    pub secrets: Arc<crate::secrets::SecretBox>,
    /// Verifies every token: the platform's, and those of creators' own platforms.
    pub auth: Arc<Authenticator>,
    pub store: Store,
    pub metrics: PrometheusHandle,
    /// Each creator's Telegram and WhatsApp clients.
    pub channels: Arc<ChannelRegistry>,
    /// The webhook inbox.
    pub inbox: Inbox,
    pub clock: Arc<dyn Clock>,
    /// `TWIN_WHATSAPP_VERIFY_TOKEN`: the handshake of the shared WhatsApp endpoint.
    pub whatsapp_verify_token: Option<twin_channels::Secret>,
    /// Turns true when the server shuts down; open sessions close.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

pub fn router(state: AppState) -> Router {
    let by_address = axum::middleware::from_fn_with_state(state.clone(), crate::limits::by_address);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/auth/jwks.json", get(crate::auth::jwks::jwks))
        .route("/.well-known/jwks.json", get(crate::auth::jwks::well_known_jwks))
        .route("/v1/chat", get(chat::upgrade))
        .route("/v1/channels/link-code", post(channels::link_code).layer(by_address.clone()))
        .route("/v1/creators/{slug}/channels", get(channel_settings::get_channels).layer(by_address.clone()))
        .route(
            "/v1/creators/{slug}/channels/telegram",
            put(channel_settings::put_telegram)
                .delete(channel_settings::delete_telegram)
                .layer(DefaultBodyLimit::max(channel_settings::MAX_BODY_BYTES))
                .layer(by_address.clone()),
        )
        .route(
            "/v1/creators/{slug}/channels/whatsapp",
            put(channel_settings::put_whatsapp)
                .delete(channel_settings::delete_whatsapp)
                .layer(DefaultBodyLimit::max(channel_settings::MAX_BODY_BYTES))
                .layer(by_address),
        )
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
        .layer(axum::middleware::from_fn(crate::problem::normalize))
        // Spans carry the method and path only: never the query, where `?token=` lives.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}
