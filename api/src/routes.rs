//! The HTTP surface: which path goes to which handler, and the state they share.

pub mod auth;
pub mod channel_settings;
pub mod channels;
pub mod chat;
pub mod gdpr;
pub mod health;
pub mod live;
pub mod openapi;
pub mod rest;
pub mod web;
pub mod widget;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;
use twin_actors::EngineHandle;
use twin_channels::websocket::SessionHub;
use twin_store::Store;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::auth::{Authenticator, TokenKeys};
use crate::channels::{ChannelRegistry, Inbox};
use twin_engine::ports::Clock;

#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub hub: Arc<SessionHub>,
    /// The creators' live events, for `/v1/live` watchers.
    pub live: Arc<twin_actors::LiveHub>,
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
    /// The login throttle's delays.
    pub throttle: crate::accounts::ThrottlePolicy,
    /// Where GDPR exports and erasures are audited (`crate::gdpr::TracingAudit` until the audit
    /// table is wired in).
    pub audit: Arc<dyn crate::gdpr::AuditSink>,
    /// The web widget's visitor tokens and chat tickets.
    pub widget: Arc<crate::widget::Widget>,
    /// Turns true when the server shuts down; open sessions close.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Cluster mode (`TWIN_REDIS_URL`): this node's membership, for readiness and `/healthz/cluster`.
    pub cluster: Option<Arc<twin_cluster::RedisCluster>>,
}

/// Every route with its OpenAPI description: each handler is registered through `routes!`, which
/// takes its path and methods from the handler's `#[utoipa::path]` annotation, so the served
/// routes and the generated document (`/v1/openapi.json`) cannot drift apart. A new handler is one
/// `.routes(routes!(module::handler))` line; handlers of one path share a `routes!`.
pub fn api() -> OpenApiRouter<AppState> {
    let webhook_limit = || DefaultBodyLimit::max(channels::MAX_WEBHOOK_BYTES);
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::cluster))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::document))
        .routes(routes!(chat::upgrade))
        .routes(routes!(live::upgrade))
        .routes(routes!(widget::script))
        .routes(routes!(widget::ticket, widget::preflight).layer(DefaultBodyLimit::max(widget::MAX_BODY_BYTES)))
        .routes(routes!(widget::embed))
        .routes(routes!(channels::link_code))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::create_account))
        .routes(routes!(auth::create_agent, auth::list_agents))
        .routes(routes!(auth::disable_agent))
        .routes(routes!(auth::audit_log))
        .routes(routes!(crate::auth::jwks::jwks))
        .routes(routes!(crate::auth::jwks::well_known_jwks))
        .routes(routes!(channel_settings::get_channels))
        .routes(
            routes!(channel_settings::put_telegram, channel_settings::delete_telegram)
                .layer(DefaultBodyLimit::max(channel_settings::MAX_BODY_BYTES)),
        )
        .routes(
            routes!(channel_settings::put_whatsapp, channel_settings::delete_whatsapp)
                .layer(DefaultBodyLimit::max(channel_settings::MAX_BODY_BYTES)),
        )
        .routes(routes!(channels::telegram_webhook).layer(webhook_limit()))
        .routes(routes!(channels::whatsapp_shared_handshake, channels::whatsapp_shared_webhook).layer(webhook_limit()))
        .routes(routes!(channels::whatsapp_handshake, channels::whatsapp_webhook).layer(webhook_limit()))
        .merge(rest::api())
}

pub fn router(state: AppState) -> Router {
    let (router, _) = api().split_for_parts();
    // The dashboard's files: not the API, so not in the OpenAPI document.
    let router = router.merge(web::router());
    let by_address = axum::middleware::from_fn_with_state(state.clone(), crate::limits::by_address);
    router
        .layer(by_address)
        .layer(axum::middleware::from_fn(crate::problem::normalize))
        // Spans carry the method and path only: never the query, where `?token=` lives.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
        }))
        .with_state(state)
}
