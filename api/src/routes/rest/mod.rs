//! The creator REST API under `/v1/creators`: profiles, knowledge, programs, end users and
//! enrolments, conversations and their messages, nudges, stats.
//!
//! Every handler takes the [`Caller`] and scopes the path's slug with [`Caller::scope`] before
//! anything else, so a token of another tenant gets the 404 of a creator that does not exist.
//! Reads are open to the creator's `creator` and `agent` tokens and to admins; writes to `creator`
//! and `admin` only ([`writer`]). Ids of another tenant are never found: every store read runs as
//! the tenant (row-level security on PostgreSQL) and names the tenant in its statement.

pub mod control;
pub mod conversations;
pub mod creators;
pub mod knowledge;
pub mod nudges;
pub mod preview;
pub mod programs;
pub mod stats;
pub mod users;

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use twin_actors::EngineError;
use twin_engine::CreatorId;
use twin_engine::ports::StoreError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::AppState;
use crate::auth::{Caller, Role};
use crate::problem::ApiError;

/// JSON bodies larger than this are refused (413): profiles and programs are small.
pub const MAX_JSON_BYTES: usize = 256 * 1024;
/// A knowledge upload (a PDF, mostly) may be this large.
pub const MAX_UPLOAD_BYTES: usize = 20 * 1024 * 1024;
/// Page sizes: the default and the most a client may ask for.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

/// The creator routes; one `routes!` per path.
pub fn api() -> OpenApiRouter<AppState> {
    let json_limit = || DefaultBodyLimit::max(MAX_JSON_BYTES);
    OpenApiRouter::new()
        .routes(routes!(creators::list, creators::create).layer(json_limit()))
        .routes(routes!(creators::get, creators::patch, crate::routes::gdpr::erase_creator).layer(json_limit()))
        .routes(routes!(crate::routes::gdpr::export_creator))
        .routes(routes!(knowledge::list))
        .routes(
            routes!(knowledge::get, knowledge::put, knowledge::delete).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .routes(routes!(programs::list))
        .routes(routes!(programs::validate).layer(json_limit()))
        .routes(routes!(programs::get, programs::put).layer(json_limit()))
        .routes(routes!(users::list))
        .routes(routes!(users::get, crate::routes::gdpr::erase_user))
        .routes(routes!(crate::routes::gdpr::export_user))
        .routes(routes!(users::enrol).layer(json_limit()))
        .routes(routes!(conversations::list))
        .routes(routes!(conversations::get))
        .routes(routes!(conversations::messages, control::send).layer(json_limit()))
        .routes(routes!(control::take_over))
        .routes(routes!(control::release))
        .routes(routes!(control::drafts).layer(json_limit()))
        .routes(routes!(control::decide_draft).layer(json_limit()))
        .routes(routes!(preview::start).layer(json_limit()))
        .routes(routes!(preview::fast_forward))
        .routes(routes!(nudges::list))
        .routes(routes!(nudges::cancel))
        .routes(routes!(stats::get))
}

/// The creator a write may change: [`Caller::scope`] first (another tenant gets its 404), then
/// the role: agents watch and take over, they do not change the twin (403).
pub fn writer(caller: &Caller, slug: &str) -> Result<CreatorId, ApiError> {
    let creator = caller.scope(slug)?;
    caller.require(&[Role::Creator, Role::Admin])?;
    Ok(creator)
}

/// The 404 of a creator that does not exist; the same words as [`Caller::scope`]'s, so a missing
/// creator and another tenant's look alike.
pub use crate::auth::no_creator;

/// 404 unless the creator exists (an admin's scope admits any slug).
pub async fn existing(state: &AppState, creator: CreatorId, slug: &str) -> Result<(), ApiError> {
    match state.store.creator_version(creator).await.map_err(store_error)? {
        Some(_) => Ok(()),
        None => Err(no_creator(slug)),
    }
}

/// An error with any status; the title is the status's reason phrase.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> ApiError {
    ApiError { status, title: status.canonical_reason().unwrap_or("Error"), detail: detail.into(), retry_after: None }
}

pub fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Unavailable(_) => ApiError::unavailable(format!("the store is unavailable: {error}")),
        other => ApiError::internal(other),
    }
}

pub fn engine_error(slug: &str) -> impl Fn(EngineError) -> ApiError + '_ {
    move |error| match error {
        EngineError::UnknownCreator(_) => no_creator(slug),
        EngineError::Unavailable(cause) => ApiError::unavailable(cause),
    }
}

/// A JSON body whose refusals are problem+json naming the field (axum's own answer is plain text):
/// 400 for malformed JSON, 415 without `Content-Type: application/json`, 413 over the size limit,
/// 422 when it does not fit the type (unknown or missing fields, wrong types). Handlers take it as
/// `Result<JsonBody<T>, ApiError>` and look at it after the caller's scope and role, so a caller
/// who may not write learns nothing from how a body is refused.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> ApiError {
    problem(rejection.status(), rejection.body_text())
}

pub fn bytes_rejection(rejection: &BytesRejection) -> ApiError {
    problem(rejection.status(), rejection.body_text())
}

pub fn query_rejection(rejection: &QueryRejection) -> ApiError {
    problem(StatusCode::BAD_REQUEST, rejection.body_text())
}

/// `?after=<cursor>&limit=<n>`: cursor pagination. The cursor is opaque: pass the `next` of the
/// previous page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// The `next` cursor of the previous page; the first page without it.
    pub after: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

impl Page {
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(problem(StatusCode::BAD_REQUEST, format!("limit: {n} is out of range (1 to {MAX_LIMIT})"))),
        }
    }

    /// A cursor this API did not hand out.
    pub fn bad_cursor(&self) -> ApiError {
        problem(StatusCode::BAD_REQUEST, "after: not a cursor of this list")
    }
}

/// One page of a list: `next` is the cursor of the following page, absent on the last.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl<T> Paged<T> {
    /// `items` fetched with `limit + 1`: the extra one only says that there is a next page.
    pub fn of(mut items: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> Self {
        let more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next = if more { items.last().map(cursor) } else { None };
        Self { items, next }
    }
}

/// Serializes engine values that have no OpenAPI schema of their own (persona, settings).
pub fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// One writer at a time changes creators on this node: a write reads the stored creator, changes
/// it and stores it back, and two overlapping writes would lose one change.
pub async fn creator_write_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
