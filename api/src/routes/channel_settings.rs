//! `/v1/creators/{slug}/channels`: a creator's Telegram bot and WhatsApp number, set through the
//! API. Secrets are sealed with the server's key before they are stored and are never returned:
//! reading the settings says only where each secret comes from.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use twin_engine::channel::{ChannelKind, SecretRef, TelegramSettings, TemplateRef, WhatsAppSettings};
use twin_engine::ports::{ChannelStore, CreatorStore};
use utoipa::ToSchema;

use super::AppState;
use super::rest::writer;
use crate::audit;
use crate::auth::Caller;
use crate::creators::update_profile;
use crate::limits::ClientAddress;
use crate::problem::ApiError;

/// The largest secret accepted (bot tokens and app secrets are well under 1 KiB).
const MAX_SECRET_LEN: usize = 4096;
/// The largest body of these routes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Where a secret comes from, never its value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretSourceView {
    /// Set through the API and stored encrypted.
    Sealed,
    /// An environment variable of the server, named in the creator bundle.
    Env { name: String },
    /// Written into the creator bundle as is.
    Bundle,
}

impl SecretSourceView {
    fn of(secret: &SecretRef) -> Self {
        match (secret.env_name(), secret.sealed()) {
            (Some(name), _) => Self::Env { name: name.to_owned() },
            (None, Some(_)) => Self::Sealed,
            (None, None) => Self::Bundle,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TelegramView {
    pub bot_username: Option<String>,
    pub bot_token: SecretSourceView,
    pub webhook_secret: SecretSourceView,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NudgeTemplate {
    pub name: String,
    /// The template's approved language code, e.g. `en_US`.
    pub language: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhatsAppView {
    pub phone_number_id: String,
    pub access_token: SecretSourceView,
    pub app_secret: SecretSourceView,
    pub verify_token: SecretSourceView,
    pub nudge_template: Option<NudgeTemplate>,
}

/// A creator's channels; an absent channel is not configured.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelsView {
    pub telegram: Option<TelegramView>,
    pub whatsapp: Option<WhatsAppView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TelegramInput {
    /// The token @BotFather gave.
    pub bot_token: String,
    /// What Telegram must present in `X-Telegram-Bot-Api-Secret-Token`; generated when absent.
    pub webhook_secret: Option<String>,
    /// The bot's username; without it the twin ignores group chats.
    pub bot_username: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppInput {
    pub phone_number_id: String,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token: String,
    pub nudge_template: Option<NudgeTemplate>,
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/channels",
    tag = "channels",
    params(("slug" = String, Path, description = "The creator")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The channels; secrets only say where they come from", body = ChannelsView),
        (status = 401, description = "Missing or invalid token", body = crate::problem::Problem),
        (status = 404, description = "No such creator (or not yours)", body = crate::problem::Problem),
    )
)]
pub async fn get_channels(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<ChannelsView>, ApiError> {
    let creator = caller.scope(&slug)?;
    let stored = state
        .store
        .creator(creator)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| crate::auth::no_creator(&slug))?;
    Ok(Json(view(&stored.profile.channels)))
}

#[utoipa::path(
    put,
    path = "/v1/creators/{slug}/channels/telegram",
    tag = "channels",
    params(("slug" = String, Path, description = "The creator")),
    request_body = TelegramInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored (secrets sealed); the bot is used from the next update on", body = ChannelsView),
        (status = 403, description = "Agents cannot change channels", body = crate::problem::Problem),
        (status = 404, description = "No such creator (or not yours)", body = crate::problem::Problem),
        (status = 422, description = "A value cannot be used (the detail names it)", body = crate::problem::Problem),
    )
)]
pub async fn put_telegram(
    State(state): State<AppState>,
    caller: Caller,
    address: ClientAddress,
    Path(slug): Path<String>,
    Json(input): Json<TelegramInput>,
) -> Result<Json<ChannelsView>, ApiError> {
    let creator = writer(&caller, &slug)?;
    let webhook_secret = match input.webhook_secret {
        Some(secret) => secret,
        None => twin_channels::telegram::config::generate_webhook_secret(),
    };
    let settings = TelegramSettings {
        bot_token: seal(&state, "bot_token", &input.bot_token)?,
        webhook_secret: seal(&state, "webhook_secret", &webhook_secret)?,
        bot_username: input.bot_username.map(|name| name.trim().trim_start_matches('@').to_owned()),
    };
    let profile = update_profile(&state, &slug, creator, |profile| {
        profile.channels.telegram = Some(settings);
        Ok(())
    })
    .await?;
    let detail = serde_json::json!({"channel": "telegram"});
    audit::record(&state, creator, caller.identity(), &address, "channel.updated", Some(slug), detail).await?;
    Ok(Json(view(&profile.channels)))
}

#[utoipa::path(
    put,
    path = "/v1/creators/{slug}/channels/whatsapp",
    tag = "channels",
    params(("slug" = String, Path, description = "The creator")),
    request_body = WhatsAppInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Stored (secrets sealed); the number is used from the next notification on", body = ChannelsView),
        (status = 403, description = "Agents cannot change channels", body = crate::problem::Problem),
        (status = 404, description = "No such creator (or not yours)", body = crate::problem::Problem),
        (status = 409, description = "Another creator has this phone number id", body = crate::problem::Problem),
        (status = 422, description = "A value cannot be used (the detail names it)", body = crate::problem::Problem),
    )
)]
pub async fn put_whatsapp(
    State(state): State<AppState>,
    caller: Caller,
    address: ClientAddress,
    Path(slug): Path<String>,
    Json(input): Json<WhatsAppInput>,
) -> Result<Json<ChannelsView>, ApiError> {
    let creator = writer(&caller, &slug)?;
    let phone_number_id = input.phone_number_id.trim().to_owned();
    if phone_number_id.is_empty() || phone_number_id.len() > 64 || !phone_number_id.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ApiError::unprocessable(
            "`phone_number_id` must be the digits of the number's id in Meta's settings",
        ));
    }
    match state.store.whatsapp_creator(&phone_number_id).await.map_err(ApiError::internal)? {
        Some(owner) if owner != creator => {
            return Err(ApiError::conflict("`phone_number_id` belongs to another creator of this server"));
        }
        _ => {}
    }
    let settings = WhatsAppSettings {
        phone_number_id,
        access_token: seal(&state, "access_token", &input.access_token)?,
        app_secret: seal(&state, "app_secret", &input.app_secret)?,
        verify_token: seal(&state, "verify_token", &input.verify_token)?,
        nudge_template: input.nudge_template.map(|t| TemplateRef { name: t.name, language: t.language }),
    };
    let profile = update_profile(&state, &slug, creator, |profile| {
        profile.channels.whatsapp = Some(settings);
        Ok(())
    })
    .await?;
    let detail = serde_json::json!({"channel": "whatsapp"});
    audit::record(&state, creator, caller.identity(), &address, "channel.updated", Some(slug), detail).await?;
    Ok(Json(view(&profile.channels)))
}

#[utoipa::path(
    delete,
    path = "/v1/creators/{slug}/channels/telegram",
    tag = "channels",
    params(("slug" = String, Path, description = "The creator")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed: its webhooks are refused and nothing more is sent through it"),
        (status = 403, description = "Agents cannot change channels", body = crate::problem::Problem),
        (status = 404, description = "No such creator, or no Telegram bot configured", body = crate::problem::Problem),
    )
)]
pub async fn delete_telegram(
    State(state): State<AppState>,
    caller: Caller,
    address: ClientAddress,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &caller, &address, &slug, ChannelKind::Telegram).await
}

#[utoipa::path(
    delete,
    path = "/v1/creators/{slug}/channels/whatsapp",
    tag = "channels",
    params(("slug" = String, Path, description = "The creator")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed: its webhooks are refused and nothing more is sent through it"),
        (status = 403, description = "Agents cannot change channels", body = crate::problem::Problem),
        (status = 404, description = "No such creator, or no WhatsApp number configured", body = crate::problem::Problem),
    )
)]
pub async fn delete_whatsapp(
    State(state): State<AppState>,
    caller: Caller,
    address: ClientAddress,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &caller, &address, &slug, ChannelKind::WhatsApp).await
}

async fn remove(
    state: &AppState,
    caller: &Caller,
    address: &ClientAddress,
    slug: &str,
    channel: ChannelKind,
) -> Result<StatusCode, ApiError> {
    let creator = writer(caller, slug)?;
    update_profile(state, slug, creator, |profile| {
        let removed = match channel {
            ChannelKind::Telegram => profile.channels.telegram.take().is_some(),
            ChannelKind::WhatsApp => profile.channels.whatsapp.take().is_some(),
            ChannelKind::Web => false,
        };
        if removed { Ok(()) } else { Err(ApiError::not_found(format!("{slug} has no {} channel", channel.as_str()))) }
    })
    .await?;
    let detail = serde_json::json!({"channel": channel.as_str()});
    audit::record(state, creator, caller.identity(), address, "channel.removed", Some(slug.to_owned()), detail).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A secret from a request, sealed. `env:` references are refused here: they let whoever calls
/// the API make the server read its own environment; they belong in bundle files the operator
/// controls.
fn seal(state: &AppState, field: &str, value: &str) -> Result<SecretRef, ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::unprocessable(format!("`{field}` must not be empty")));
    }
    if value.len() > MAX_SECRET_LEN {
        return Err(ApiError::unprocessable(format!("`{field}` is longer than {MAX_SECRET_LEN} bytes")));
    }
    if value.starts_with("env:") || value.starts_with("sealed:") {
        return Err(ApiError::unprocessable(format!(
            "`{field}` must be the secret itself: `env:` references belong in the creator bundle's channels.toml"
        )));
    }
    Ok(SecretRef::from_sealed(&state.secrets.seal(value)))
}

fn view(channels: &twin_engine::channel::ChannelsConfig) -> ChannelsView {
    ChannelsView {
        telegram: channels.telegram.as_ref().map(|t| TelegramView {
            bot_username: t.bot_username.clone(),
            bot_token: SecretSourceView::of(&t.bot_token),
            webhook_secret: SecretSourceView::of(&t.webhook_secret),
        }),
        whatsapp: channels.whatsapp.as_ref().map(|w| WhatsAppView {
            phone_number_id: w.phone_number_id.clone(),
            access_token: SecretSourceView::of(&w.access_token),
            app_secret: SecretSourceView::of(&w.app_secret),
            verify_token: SecretSourceView::of(&w.verify_token),
            nudge_template: w
                .nudge_template
                .as_ref()
                .map(|t| NudgeTemplate { name: t.name.clone(), language: t.language.clone() }),
        }),
    }
}
