//! Provider webhooks and channel linking:
//! - `POST /v1/channels/telegram/{slug}/webhook` — Telegram updates (secret header);
//! - `GET`/`POST /v1/channels/whatsapp/{slug}/webhook` — WhatsApp handshake / notifications
//!   (raw-body HMAC);
//! - `GET`/`POST /v1/channels/whatsapp/webhook` — one Meta app for many creators, routed by
//!   `metadata.phone_number_id`;
//! - `POST /v1/channels/link-code` — an end user (user token) asks for a one-time code that links
//!   a Telegram or WhatsApp chat to them.
//!
//! A webhook verifies first, stores the delivery in the inbox, and answers 200; nothing slow (the
//! conversation, a model) runs inside the request.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use twin_actors::EngineError;
use twin_channels::telegram::TelegramClient;
use twin_channels::whatsapp::WhatsAppClient;
use twin_channels::{InboundItem, WebhookError, telegram, whatsapp};
use twin_engine::channel::ChannelKind;
use twin_engine::ports::ChannelStore;
use twin_engine::{CreatorId, Slug};

use super::AppState;
use crate::auth::Role;
use crate::channels::identity;
use crate::problem::ApiError;

/// Webhook bodies larger than this are refused (413) before they are read: Telegram updates and
/// WhatsApp notifications are a few KiB; Meta batches stay far below it.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

#[utoipa::path(
    post,
    path = "/v1/channels/telegram/{slug}/webhook",
    tag = "channels",
    summary = "Telegram Bot API updates for one creator's bot",
    params(("slug" = String, Path, description = "The creator"), ("X-Telegram-Bot-Api-Secret-Token" = String, Header, description = "The secret set with setWebhook")),
    request_body(content = Object, content_type = "application/json", description = "A Telegram Update"),
    responses(
        (status = 200, description = "Stored in the inbox (or acknowledged and ignored); processed after the answer"),
        (status = 400, description = "Malformed body", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 401, description = "Missing or wrong secret / signature; nothing stored", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 404, description = "No such creator or channel", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 413, description = "Body over 1 MiB"),
        (status = 503, description = "The channel is misconfigured or the store is unavailable; the provider retries", content_type = "application/problem+json", body = super::openapi::Problem),
    )
)]
pub async fn telegram_webhook(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (creator, client) = telegram_client(&state, &slug).await?;
    let presented = headers.get(telegram::config::SECRET_HEADER).map(|v| v.as_bytes());
    telegram::inbound::verify(presented, client.config()).map_err(webhook_error(ChannelKind::Telegram))?;
    let items = telegram::inbound::parse(&body, client.config().bot_username.as_deref())
        .map_err(webhook_error(ChannelKind::Telegram))?;
    accept(&state, creator, ChannelKind::Telegram, &items).await
}

/// Meta's subscription check: echo `hub.challenge` when `hub.verify_token` is right.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

impl Handshake {
    /// The challenge when the verify token is `expected`.
    fn answer(&self, expected: &twin_channels::Secret) -> Result<String, ApiError> {
        whatsapp::handshake(self.mode.as_deref(), self.verify_token.as_deref(), self.challenge.as_deref(), expected)
            .map_err(webhook_error(ChannelKind::WhatsApp))
    }
}

#[utoipa::path(
    get,
    path = "/v1/channels/whatsapp/{slug}/webhook",
    tag = "channels",
    summary = "WhatsApp subscription handshake for one creator's number",
    params(("slug" = String, Path, description = "The creator"), Handshake),
    responses(
        (status = 200, description = "The challenge, echoed", content_type = "text/plain", body = String),
        (status = 400, description = "Missing parameters", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 403, description = "Wrong verify token", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 404, description = "No such creator or channel", content_type = "application/problem+json", body = super::openapi::Problem),
    )
)]
pub async fn whatsapp_handshake(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(query): Query<Handshake>,
) -> Result<String, ApiError> {
    let (_, client) = whatsapp_client(&state, &slug).await?;
    query.answer(&client.config().verify_token)
}

#[utoipa::path(
    post,
    path = "/v1/channels/whatsapp/{slug}/webhook",
    tag = "channels",
    summary = "WhatsApp Cloud API notifications for one creator's number",
    params(("slug" = String, Path, description = "The creator"), ("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the raw body with the app secret>")),
    request_body(content = Object, content_type = "application/json", description = "A WhatsApp notification"),
    responses(
        (status = 200, description = "Stored in the inbox (or acknowledged and ignored); processed after the answer"),
        (status = 400, description = "Malformed body", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 403, description = "Missing or wrong secret / signature; nothing stored", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 404, description = "No such creator or channel", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 413, description = "Body over 1 MiB"),
        (status = 503, description = "The channel is misconfigured or the store is unavailable; the provider retries", content_type = "application/problem+json", body = super::openapi::Problem),
    )
)]
pub async fn whatsapp_webhook(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (creator, client) = whatsapp_client(&state, &slug).await?;
    let signature = headers.get(whatsapp::config::SIGNATURE_HEADER).map(|v| v.as_bytes());
    whatsapp::verify_signature(signature, &body, &client.config().app_secret)
        .map_err(webhook_error(ChannelKind::WhatsApp))?;
    let routed = whatsapp::parse(&body).map_err(webhook_error(ChannelKind::WhatsApp))?;
    let own = &client.config().phone_number_id;
    let (mine, others): (Vec<_>, Vec<_>) = routed.into_iter().partition(|r| &r.phone_number_id == own);
    if !others.is_empty() {
        tracing::warn!(creator = %slug, items = others.len(), "WhatsApp items for another number; dropped");
    }
    let items: Vec<InboundItem> = mine.into_iter().map(|r| r.item).collect();
    accept(&state, creator, ChannelKind::WhatsApp, &items).await
}

/// The shared endpoint's handshake: Meta checks the URL once per app, before any creator is known,
/// so it answers with the server's `TWIN_WHATSAPP_VERIFY_TOKEN`.
#[utoipa::path(
    get,
    path = "/v1/channels/whatsapp/webhook",
    tag = "channels",
    summary = "WhatsApp subscription handshake of the shared endpoint (TWIN_WHATSAPP_VERIFY_TOKEN)",
    params(Handshake),
    responses(
        (status = 200, description = "The challenge, echoed", content_type = "text/plain", body = String),
        (status = 400, description = "Missing parameters", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 403, description = "Wrong verify token", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 404, description = "No such creator or channel", content_type = "application/problem+json", body = super::openapi::Problem),
    )
)]
pub async fn whatsapp_shared_handshake(
    State(state): State<AppState>,
    Query(query): Query<Handshake>,
) -> Result<String, ApiError> {
    let Some(expected) = state.whatsapp_verify_token.as_ref() else {
        return Err(ApiError::not_found("the shared WhatsApp endpoint needs TWIN_WHATSAPP_VERIFY_TOKEN"));
    };
    query.answer(expected)
}

/// One Meta app serving many creators: each item goes to the creator whose number it names. The
/// body is signed with the app's secret, which every creator on that app configured: the signature
/// is checked with the secret of the first creator named, and items of creators whose secret
/// differs are dropped. Unknown numbers are acknowledged and dropped.
#[utoipa::path(
    post,
    path = "/v1/channels/whatsapp/webhook",
    tag = "channels",
    summary = "WhatsApp notifications for every creator on one Meta app, routed by metadata.phone_number_id",
    params(("X-Hub-Signature-256" = String, Header, description = "sha256=<hex HMAC-SHA256 of the raw body with the app secret>")),
    request_body(content = Object, content_type = "application/json", description = "A WhatsApp notification"),
    responses(
        (status = 200, description = "Stored in the inbox (or acknowledged and ignored); processed after the answer"),
        (status = 400, description = "Malformed body", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 403, description = "Missing or wrong secret / signature; nothing stored", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 404, description = "No such creator or channel", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 413, description = "Body over 1 MiB"),
        (status = 503, description = "The channel is misconfigured or the store is unavailable; the provider retries", content_type = "application/problem+json", body = super::openapi::Problem),
    )
)]
pub async fn whatsapp_shared_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    // Reading the numbers needs the JSON; nothing is stored or acted on before the signature holds,
    // and a request that carries no signature at all is refused before it is read.
    let signature = headers.get(whatsapp::config::SIGNATURE_HEADER).map(|v| v.as_bytes());
    if signature.is_none() {
        return Err(webhook_error(ChannelKind::WhatsApp)(WebhookError::Unauthenticated));
    }
    let routed = whatsapp::parse(&body).map_err(webhook_error(ChannelKind::WhatsApp))?;
    let mut by_creator: Vec<(CreatorId, Vec<InboundItem>)> = Vec::new();
    let mut owners: HashMap<String, Option<CreatorId>> = HashMap::new();
    for r in routed {
        let owner = match owners.get(&r.phone_number_id) {
            Some(owner) => *owner,
            None => {
                let owner = state.store.whatsapp_creator(&r.phone_number_id).await.map_err(ApiError::internal)?;
                owners.insert(r.phone_number_id.clone(), owner);
                owner
            }
        };
        match owner {
            Some(creator) => match by_creator.iter_mut().find(|(c, _)| *c == creator) {
                Some((_, items)) => items.push(r.item),
                None => by_creator.push((creator, vec![r.item])),
            },
            None => {
                tracing::info!(phone_number_id = %r.phone_number_id, "WhatsApp item for an unknown number; dropped")
            }
        }
    }
    let mut verified_secret: Option<twin_channels::Secret> = None;
    for (creator, items) in by_creator {
        let channels = state.channels.channels(creator).await.map_err(engine_error)?;
        let client = match channels.whatsapp.clone() {
            Some(Ok(client)) => client,
            // Meta retries a delivery that was not acknowledged: nothing is lost while it is fixed.
            Some(Err(_)) => return Err(ApiError::unavailable("a creator's WhatsApp channel is misconfigured")),
            None => continue,
        };
        let secret = &client.config().app_secret;
        match &verified_secret {
            None => {
                whatsapp::verify_signature(signature, &body, secret).map_err(webhook_error(ChannelKind::WhatsApp))?;
                verified_secret = Some(secret.clone());
            }
            Some(verified) if verified.matches(secret.expose().as_bytes()) => {}
            Some(_) => {
                tracing::warn!(%creator, "WhatsApp items for a creator of another Meta app; dropped");
                continue;
            }
        }
        accept(&state, creator, ChannelKind::WhatsApp, &items).await?;
    }
    Ok(StatusCode::OK)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LinkCode {
    /// Send `LINK <code>` on WhatsApp or Telegram, or open `telegram_url`.
    pub code: String,
    /// Milliseconds since the Unix epoch.
    pub expires_at: i64,
    /// `https://t.me/<bot>?start=link-<code>` when the creator's bot has a username configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram_url: Option<String>,
}

/// `POST /v1/channels/link-code` with an end user's token.
#[utoipa::path(
    post,
    path = "/v1/channels/link-code",
    tag = "channels",
    summary = "A one-time code that links a Telegram or WhatsApp chat to the calling end user",
    description = "Send `LINK <code>` on Telegram or WhatsApp, or open `telegram_url`. Single use; expires after 15 minutes.",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The code", body = LinkCode),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 403, description = "Not an end-user token", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 404, description = "The token's creator does not exist", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 503, description = "The store is unavailable", content_type = "application/problem+json", body = super::openapi::Problem),
    )
)]
pub async fn link_code(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let identity = crate::auth::authenticate(&state, &headers, None).await?;
    if identity.role != Role::User {
        return Err(ApiError::forbidden("link codes are for end-user tokens (role `user`)"));
    }
    let code = identity::new_code();
    let expires_at = state.clock.now().plus_millis(identity::CODE_TTL_MS);
    state
        .store
        .put_link_code(identity.creator, &code, &identity.subject, expires_at)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let twin = state.engine.twin(identity.creator).await.map_err(engine_error)?;
    let telegram_url = twin
        .profile
        .channels
        .telegram
        .as_ref()
        .and_then(|t| t.bot_username.as_deref())
        .map(|bot| format!("https://t.me/{}?start={}{code}", bot.trim_start_matches('@'), identity::START_PREFIX));
    let body = LinkCode { code, expires_at: expires_at.millis(), telegram_url };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn accept(
    state: &AppState,
    creator: CreatorId,
    channel: ChannelKind,
    items: &[InboundItem],
) -> Result<StatusCode, ApiError> {
    state.inbox.accept(creator, channel, items).await.map_err(|e| {
        // The provider retries a delivery that was not acknowledged: nothing is lost.
        ApiError::unavailable(format!("the delivery could not be stored: {e}"))
    })?;
    Ok(StatusCode::OK)
}

async fn telegram_client(state: &AppState, slug: &str) -> Result<(CreatorId, Arc<TelegramClient>), ApiError> {
    let creator = creator_of(slug)?;
    let channels = state.channels.channels(creator).await.map_err(engine_error)?;
    Ok((creator, configured(&channels.telegram, "Telegram")?.clone()))
}

async fn whatsapp_client(state: &AppState, slug: &str) -> Result<(CreatorId, Arc<WhatsAppClient>), ApiError> {
    let creator = creator_of(slug)?;
    let channels = state.channels.channels(creator).await.map_err(engine_error)?;
    Ok((creator, configured(&channels.whatsapp, "WhatsApp")?.clone()))
}

/// A creator's client of one channel: 404 when the creator has no such channel (as for an unknown
/// creator), 503 when it is configured but cannot work (an unset secret; the provider retries).
fn configured<'a, T>(channel: &'a Option<Result<Arc<T>, String>>, name: &str) -> Result<&'a Arc<T>, ApiError> {
    match channel {
        None => Err(not_found()),
        Some(Err(_)) => Err(ApiError::unavailable(format!("this creator's {name} channel is misconfigured"))),
        Some(Ok(client)) => Ok(client),
    }
}

/// An unknown slug and a creator without that channel look the same from outside.
fn creator_of(slug: &str) -> Result<CreatorId, ApiError> {
    Slug::parse(slug).map(|s| s.creator_id()).map_err(|_| not_found())
}

fn not_found() -> ApiError {
    ApiError::not_found("no such channel")
}

fn engine_error(error: EngineError) -> ApiError {
    match error {
        EngineError::UnknownCreator(_) => not_found(),
        EngineError::Unavailable(cause) => ApiError::unavailable(cause),
    }
}

fn webhook_error(channel: ChannelKind) -> impl Fn(WebhookError) -> ApiError {
    move |error| {
        metrics::counter!("twin_webhook_refused_total", "channel" => channel.as_str()).increment(1);
        match error {
            // Telegram's convention is 401; Meta's documentation answers a bad signature with 403.
            WebhookError::Unauthenticated if channel == ChannelKind::Telegram => {
                ApiError::unauthorized(error.to_string())
            }
            WebhookError::Unauthenticated => ApiError::forbidden(error.to_string()),
            WebhookError::Malformed(_) => ApiError::bad_request(error.to_string()),
        }
    }
}
