//! `/v1/creators/{slug}/users`: the end users a creator knows (each has one conversation), and
//! enrolling one of them in a program.
//!
//! Users are listed by id (byte order); the cursor is the last id of the page.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use twin_actors::ConversationKey;
use twin_engine::{CreatorId, ProgramId, UserId};
use twin_store::{ConversationFilter, ConversationSummary};
use utoipa::ToSchema;

use super::conversations::{ProgramPosition, position};
use super::creators::unprocessable;
use super::{JsonBody, Page, Paged, engine_error, existing, query_rejection, store_error, writer};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::routes::AppState;
use crate::routes::openapi::Problem;

/// An end user of the creator.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    /// Their conversation with the twin.
    pub conversation: String,
    /// Milliseconds since the Unix epoch.
    pub first_seen: i64,
    /// Milliseconds since the Unix epoch of the last stored message; absent before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<i64>,
    /// Provider channels bound to the user (`telegram`, `whatsapp`).
    pub channels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramPosition>,
}

/// `POST …/users/{user}/enrolments`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEnrolment {
    /// The program id; the user starts on its latest version.
    pub program: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enrolled {
    pub user: String,
    pub program: String,
}

fn view(summary: &ConversationSummary) -> UserView {
    UserView {
        id: summary.user.to_string(),
        conversation: summary.id.0.to_string(),
        first_seen: summary.created_at.millis(),
        last_activity: summary.last_activity.map(|t| t.millis()),
        channels: summary.channels.iter().map(|c| c.as_str().to_owned()).collect(),
        program: position(&summary.state),
    }
}

fn no_user(user: &str) -> ApiError {
    ApiError::not_found(format!("no user {user:?}"))
}

async fn find(state: &AppState, creator: CreatorId, raw: &str) -> Result<ConversationSummary, ApiError> {
    let user = UserId::parse(raw).map_err(|_| no_user(raw))?;
    let mut found =
        state.store.conversations_page(creator, &ConversationFilter::User(user), 1).await.map_err(store_error)?;
    found.pop().ok_or_else(|| no_user(raw))
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/users",
    tag = "users",
    summary = "The end users the creator knows (from their conversations), by id",
    params(("slug" = String, Path, description = "The creator"), Page),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = Paged<UserView>),
        (status = 400, description = "Bad cursor or limit", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Paged<UserView>>, ApiError> {
    let creator = caller.scope(&slug)?;
    let Query(page) = query.map_err(|r| query_rejection(&r))?;
    let limit = page.limit()?;
    let after = match page.after.as_deref() {
        None => None,
        Some(raw) => Some(UserId::parse(raw).map_err(|_| page.bad_cursor())?),
    };
    existing(&state, creator, &slug).await?;
    let rows = state
        .store
        .conversations_page(creator, &ConversationFilter::ByUser { after }, limit + 1)
        .await
        .map_err(store_error)?;
    let items = rows.iter().map(view).collect();
    Ok(Json(Paged::of(items, limit, |u: &UserView| u.id.clone())))
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/users/{user}",
    tag = "users",
    summary = "An end user: first seen, last activity, channels, program position",
    params(("slug" = String, Path, description = "The creator"), ("user" = String, Path, description = "The user id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or user (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, user)): Path<(String, String)>,
) -> Result<Json<UserView>, ApiError> {
    let creator = caller.scope(&slug)?;
    existing(&state, creator, &slug).await?;
    Ok(Json(view(&find(&state, creator, &user).await?)))
}

#[utoipa::path(
    post,
    path = "/v1/creators/{slug}/users/{user}/enrolments",
    tag = "users",
    summary = "Enrol a known user in the latest version of a program",
    description = "Accepted: the user's conversation carries it out next (an enrolment already running is replaced as \
                   the engine's `Enrol` event decides).",
    params(("slug" = String, Path, description = "The creator"), ("user" = String, Path, description = "The user id")),
    request_body = NewEnrolment,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Handed to the user's conversation", body = Enrolled),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not a creator or admin token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or user (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "No such program (named in `detail`)", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The engine is unavailable", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn enrol(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, user)): Path<(String, String)>,
    body: Result<JsonBody<NewEnrolment>, ApiError>,
) -> Result<(StatusCode, Json<Enrolled>), ApiError> {
    let creator = writer(&caller, &slug)?;
    let JsonBody(body) = body?;
    existing(&state, creator, &slug).await?;
    let known = find(&state, creator, &user).await?;
    let program = ProgramId::parse(&body.program).map_err(|e| unprocessable(format!("program: {e}")))?;
    let twin = state.engine.twin(creator).await.map_err(engine_error(&slug))?;
    if twin.programs.latest(&program).is_none() {
        return Err(unprocessable(format!("program: the creator has no program {:?}", body.program)));
    }
    let key = ConversationKey { creator, user: known.user.clone() };
    state.engine.enrol(&key, program.clone()).await.map_err(engine_error(&slug))?;
    Ok((StatusCode::ACCEPTED, Json(Enrolled { user: known.user.to_string(), program: program.to_string() })))
}
