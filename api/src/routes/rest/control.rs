//! Humans steering a conversation from the live view: take over, write, release, and decide on
//! the twin's drafts. The rules are the engine's (`twin_engine::conversation::control`); each
//! command answers once its change is committed, with the conversation as it now stands.
//!
//! Creators, agents and admins may steer (agents exist for this); end users get 403, other
//! tenants the 404 of a conversation that does not exist.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use twin_actors::ConversationKey;
use twin_engine::conversation::{Answer, DraftAction};
use twin_engine::{ClientMsgId, CreatorId, Event, StreamId};
use utoipa::ToSchema;

use super::conversations::{ConversationView, creator_drafts, find, view};
use super::{JsonBody, engine_error, existing};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::routes::AppState;
use crate::routes::openapi::Problem;

/// `POST …/messages`: a human's message to the user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HumanMessage {
    pub text: String,
    /// An idempotency key: the same key again stores nothing new and answers the same seq.
    #[serde(default)]
    pub client_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Sent {
    /// Where the message is in the conversation.
    pub seq: u64,
}

/// `PUT …/drafts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftsMode {
    /// `true` or `false` for this conversation; `null` follows the creator's `replies.drafts`.
    pub drafts: Option<bool>,
}

/// `POST …/draft`: what to do with the pending draft.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftDecision {
    /// The pending draft's stream (from `control.draft` or the `draft_proposed` event).
    pub stream: String,
    /// `approve`, `edit` (send `text` instead) or `reject`.
    pub action: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// The conversation a command is for, and who gives it (their account's email when they have
/// one, else the token's subject).
struct Target {
    creator: CreatorId,
    key: ConversationKey,
    by: String,
}

async fn target(state: &AppState, caller: &Caller, slug: &str, id: &str) -> Result<Target, ApiError> {
    let creator = caller.scope(slug)?;
    existing(state, creator, slug).await?;
    let found = find(state, creator, id).await?;
    let by = crate::routes::auth::display_name(state, caller.identity()).await;
    Ok(Target { creator, key: ConversationKey { creator, user: found.user }, by })
}

/// Sends the command and turns a refusal into its problem.
async fn command(state: &AppState, slug: &str, target: &Target, event: Event) -> Result<Answer, ApiError> {
    match state.engine.command(&target.key, event).await.map_err(engine_error(slug))? {
        Answer::Refused { conflict: true, reason } => Err(ApiError::conflict(reason)),
        Answer::Refused { conflict: false, reason } => Err(ApiError::unprocessable(reason)),
        answer => Ok(answer),
    }
}

/// The conversation as stored now (the command's commit is in).
async fn current(state: &AppState, target: &Target) -> Result<Json<ConversationView>, ApiError> {
    let found = find(state, target.creator, &target.key.id().0.to_string()).await?;
    Ok(Json(view(&found, creator_drafts(state, target.creator).await)))
}

#[utoipa::path(
    post,
    path = "/v1/creators/{slug}/conversations/{id}/takeover",
    tag = "live",
    summary = "Take a conversation over: the twin stops at once",
    description = "A reply being generated is cancelled; until release the twin neither replies nor moves the program, and nudges wait. The dashboard also calls this when a human starts typing.",
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The conversation id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation, now held", body = ConversationView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or conversation (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The change could not be saved; retry", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn take_over(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<ConversationView>, ApiError> {
    let target = target(&state, &caller, &slug, &id).await?;
    command(&state, &slug, &target, Event::TakeOver { by: target.by.clone() }).await?;
    current(&state, &target).await
}

#[utoipa::path(
    post,
    path = "/v1/creators/{slug}/conversations/{id}/release",
    tag = "live",
    summary = "Hand a conversation back to the twin",
    description = "The program goes on where it was: a timer held meanwhile runs, a handoff step moves on; the twin answers the user's next message.",
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The conversation id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation, back with the twin", body = ConversationView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or conversation (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The change could not be saved; retry", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<ConversationView>, ApiError> {
    let target = target(&state, &caller, &slug, &id).await?;
    command(&state, &slug, &target, Event::Release { by: target.by.clone() }).await?;
    current(&state, &target).await
}

#[utoipa::path(
    post,
    path = "/v1/creators/{slug}/conversations/{id}/messages",
    tag = "live",
    summary = "Write to the user as a human (takes the conversation over)",
    description = "Stored with origin `human` and sent to the user on their channel (the web chat, Telegram or WhatsApp) once committed.",
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The conversation id")),
    request_body = HumanMessage,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored and on its way to the user", body = Sent),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or conversation (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "Empty or too long text, or a bad client id", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The message could not be saved; retry with the same client id", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    body: Result<JsonBody<HumanMessage>, ApiError>,
) -> Result<(StatusCode, Json<Sent>), ApiError> {
    let target = target(&state, &caller, &slug, &id).await?;
    let JsonBody(body) = body?;
    let client_id = match body.client_id.as_deref() {
        Some(raw) => Some(ClientMsgId::parse(raw).map_err(|e| ApiError::unprocessable(format!("client_id: {e}")))?),
        None => None,
    };
    let event = Event::HumanMessage { by: target.by.clone(), text: body.text, client_id };
    match command(&state, &slug, &target, event).await? {
        Answer::Done { seq: Some(seq) } => Ok((StatusCode::CREATED, Json(Sent { seq: seq.0 }))),
        other => Err(ApiError::internal(format!("a human message was answered with {other:?}"))),
    }
}

#[utoipa::path(
    put,
    path = "/v1/creators/{slug}/conversations/{id}/drafts",
    tag = "live",
    summary = "Turn draft approval on or off for one conversation",
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The conversation id")),
    request_body = DraftsMode,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or conversation (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "Not `true`, `false` or `null`", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The change could not be saved; retry", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn drafts(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    body: Result<JsonBody<DraftsMode>, ApiError>,
) -> Result<Json<ConversationView>, ApiError> {
    let target = target(&state, &caller, &slug, &id).await?;
    let JsonBody(body) = body?;
    command(&state, &slug, &target, Event::SetDrafts { drafts: body.drafts }).await?;
    current(&state, &target).await
}

#[utoipa::path(
    post,
    path = "/v1/creators/{slug}/conversations/{id}/draft",
    tag = "live",
    summary = "Approve, edit or reject the twin's pending draft",
    description = "Approved, the draft is stored and sent as the twin's message; edited, the new text is sent as the human's; rejected, nothing is sent.",
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The conversation id")),
    request_body = DraftDecision,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or conversation (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "That draft is no longer pending (decided, or superseded by a newer one)", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "Unknown action, or an edit without text", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The change could not be saved; retry", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn decide_draft(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    body: Result<JsonBody<DraftDecision>, ApiError>,
) -> Result<Json<ConversationView>, ApiError> {
    let target = target(&state, &caller, &slug, &id).await?;
    let JsonBody(body) = body?;
    let action = match (body.action.as_str(), body.text) {
        ("approve", None) => DraftAction::Approve,
        ("reject", None) => DraftAction::Reject,
        ("edit", Some(text)) => DraftAction::Edit(text),
        ("edit", None) => return Err(ApiError::unprocessable("text: an edit needs the text to send")),
        ("approve" | "reject", Some(_)) => {
            return Err(ApiError::unprocessable("text: only an edit carries text"));
        }
        (other, _) => {
            return Err(ApiError::unprocessable(format!("action: {other:?} is not approve, edit or reject")));
        }
    };
    let stream = StreamId::parse(&body.stream)
        .map_err(|_| ApiError::conflict(format!("draft {:?} is no longer pending", body.stream)))?;
    command(&state, &slug, &target, Event::ResolveDraft { stream, action, by: target.by.clone() }).await?;
    current(&state, &target).await
}
