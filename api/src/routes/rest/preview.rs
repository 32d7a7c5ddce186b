//! `/v1/creators/{slug}/preview`: "test my twin". The caller gets an end-user token for their own
//! preview user (`preview:<account>`) and chats on `/v1/chat` like any user; `fast-forward` fires
//! the preview conversation's next timer now, so a program's days pass in clicks.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use twin_actors::ConversationKey;
use twin_engine::conversation::Answer;
use twin_engine::{ConversationId, Event, ProgramId};
use utoipa::ToSchema;

use super::{JsonBody, engine_error, existing, store_error};
use crate::auth::{Caller, Role};
use crate::problem::ApiError;
use crate::routes::AppState;
use crate::routes::openapi::Problem;

/// How long a preview token lasts; the dashboard asks for a new one when it runs out.
const PREVIEW_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// Start this program (its latest version) in the preview conversation.
    #[serde(default)]
    pub program: Option<String>,
    /// Start from an empty conversation (the default): the previous preview is erased.
    #[serde(default)]
    pub reset: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Preview {
    /// The fictional end user, `preview:<account>`.
    pub user: String,
    pub conversation: String,
    /// An end-user token for `/v1/chat?token=…`, valid 15 minutes.
    pub token: String,
    /// Seconds the token is valid.
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FastForwarded {
    /// The nudge or program timer that fired, if one was pending.
    pub fired: Option<String>,
    /// When it was due (milliseconds since the Unix epoch): the preview's clock jumped there.
    pub due_at: Option<i64>,
}

fn preview_key(caller: &Caller, slug: &str) -> Result<ConversationKey, ApiError> {
    let creator = caller.scope(slug)?;
    let user = crate::preview::user_of(&caller.identity().subject).map_err(ApiError::internal)?;
    Ok(ConversationKey { creator, user })
}

#[utoipa::path(
    post,
    path = "/v1/creators/{slug}/preview",
    tag = "live",
    summary = "Test my twin: a preview chat as a fictional user",
    description = "Answers an end-user token for the caller's own preview user; the conversation runs through the real engine and is marked `preview` (not counted in stats).",
    params(("slug" = String, Path, description = "The creator")),
    request_body = PreviewRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The preview user and a chat token", body = Preview),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "Unknown program", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The engine or the database is unavailable; retry", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    body: Result<JsonBody<PreviewRequest>, ApiError>,
) -> Result<Json<Preview>, ApiError> {
    let key = preview_key(&caller, &slug)?;
    let JsonBody(body) = body?;
    existing(&state, key.creator, &slug).await?;
    let program = match body.program.as_deref() {
        None => None,
        Some(raw) => {
            let id = ProgramId::parse(raw).map_err(|e| ApiError::unprocessable(format!("program: {e}")))?;
            let twin = state.engine.twin(key.creator).await.map_err(engine_error(&slug))?;
            if twin.programs.latest(&id).is_none() {
                return Err(ApiError::unprocessable(format!("program: the creator has no program {raw:?}")));
            }
            Some(id)
        }
    };
    if body.reset.unwrap_or(true) {
        let erase = state.store.erase_user(key.creator, &key.user);
        state.engine.erase_user(&key, erase).await.map_err(engine_error(&slug))?.map_err(store_error)?;
    }
    if let Some(program) = program {
        // A command, not a plain event: the answer comes once the enrolment is committed, so the
        // chat that opens next sees the program's first step.
        state.engine.command(&key, Event::Enrol { program }).await.map_err(engine_error(&slug))?;
    }
    let token = state.keys.mint(key.creator, &key.user, Role::User, PREVIEW_TOKEN_TTL).map_err(ApiError::internal)?;
    Ok(Json(Preview {
        user: key.user.to_string(),
        conversation: ConversationId::of(key.creator, &key.user).0.to_string(),
        token,
        expires_in: PREVIEW_TOKEN_TTL.as_secs(),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/creators/{slug}/preview/fast-forward",
    tag = "live",
    summary = "Fire the preview conversation's next nudge or program timer now",
    params(("slug" = String, Path, description = "The creator")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "What fired (`fired` is null when nothing was pending)", body = FastForwarded),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The change could not be saved; retry", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn fast_forward(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<FastForwarded>, ApiError> {
    let key = preview_key(&caller, &slug)?;
    existing(&state, key.creator, &slug).await?;
    match state.engine.command(&key, Event::FastForward).await.map_err(engine_error(&slug))? {
        Answer::FastForwarded { nudge } => Ok(Json(FastForwarded {
            fired: nudge.map(|(id, _)| id.to_string()),
            due_at: nudge.map(|(_, due)| due.millis()),
        })),
        other => Err(ApiError::internal(format!("a fast-forward was answered with {other:?}"))),
    }
}
