//! `/v1/creators/{slug}/nudges`: the creator's scheduled nudges, and cancelling one.
//!
//! Listed by due time (then id); the cursor is opaque (`<due>.<id>`). A cancel settles the row as
//! `cancelled` in the store, refused while a scheduler holds a claim on it (it is being delivered
//! right now): the scheduler only claims pending rows, so a cancelled nudge never fires. The
//! conversation is then told to forget its copy (`Event::NudgeAbandoned`, whose settle is a no-op
//! on the already cancelled row), so its bookkeeping (one inactivity nudge at a time, a held
//! program timer) stays right: a cancelled program timer is held, and the program resumes from it
//! when the user writes next.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use twin_actors::ConversationKey;
use twin_engine::{Event, NudgeId, Timestamp};
use twin_store::{NUDGE_STATUSES, NudgeCancel, NudgeSummary};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::conversations::nudge_kind;
use super::{Page, Paged, existing, problem, query_rejection, store_error, writer};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::routes::AppState;
use crate::routes::openapi::Problem;

/// A scheduled nudge.
#[derive(Debug, Serialize, ToSchema)]
pub struct NudgeView {
    pub id: String,
    pub conversation: String,
    pub user: String,
    /// Milliseconds since the Unix epoch.
    pub due_at: i64,
    /// `pending`, `fired`, `skipped` or `cancelled`.
    pub status: String,
    /// `inactivity` or `step:<step id>` while pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A scheduler is delivering it now.
    pub in_flight: bool,
}

/// `?status=pending&after=<cursor>&limit=<n>`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NudgeQuery {
    /// `pending` (default), `fired`, `skipped` or `cancelled`.
    pub status: Option<String>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

fn view(nudge: &NudgeSummary, now: Timestamp) -> NudgeView {
    NudgeView {
        id: nudge.id.0.to_string(),
        conversation: nudge.conversation.0.to_string(),
        user: nudge.user.to_string(),
        due_at: nudge.due_at.millis(),
        status: nudge.status.clone(),
        kind: nudge.kind.as_ref().map(nudge_kind),
        in_flight: nudge.status == "pending" && nudge.claimed_until.is_some_and(|until| until >= now),
    }
}

fn parse_cursor(raw: &str) -> Option<(Timestamp, NudgeId)> {
    let (due, id) = raw.split_once('.')?;
    Some((Timestamp::from_millis(due.parse().ok()?), NudgeId(Uuid::parse_str(id).ok()?)))
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/nudges",
    tag = "nudges",
    summary = "The creator's nudges with a status (pending by default), by due time",
    params(("slug" = String, Path, description = "The creator"), NudgeQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of nudges", body = Paged<NudgeView>),
        (status = 400, description = "Bad status, cursor or limit", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<NudgeQuery>, QueryRejection>,
) -> Result<Json<Paged<NudgeView>>, ApiError> {
    let creator = caller.scope(&slug)?;
    let Query(query) = query.map_err(|r| query_rejection(&r))?;
    let page = Page { after: query.after.clone(), limit: query.limit };
    let limit = page.limit()?;
    let status = query.status.as_deref().unwrap_or("pending");
    if !NUDGE_STATUSES.contains(&status) {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            format!("status: {status:?} is not one of {}", NUDGE_STATUSES.join(", ")),
        ));
    }
    let after = match page.after.as_deref() {
        None => None,
        Some(raw) => Some(parse_cursor(raw).ok_or_else(|| page.bad_cursor())?),
    };
    existing(&state, creator, &slug).await?;
    let rows = state.store.nudges_page(creator, status, after, limit + 1).await.map_err(store_error)?;
    let now = state.clock.now();
    let items = rows.iter().map(|n| view(n, now)).collect();
    Ok(Json(Paged::of(items, limit, |n: &NudgeView| format!("{}.{}", n.due_at, n.id))))
}

#[utoipa::path(
    delete,
    path = "/v1/creators/{slug}/nudges/{id}",
    tag = "nudges",
    summary = "Cancel a pending nudge: it will not fire",
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The nudge id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not a creator or admin token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or pending nudge (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "The nudge is being delivered right now", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let creator = writer(&caller, &slug)?;
    existing(&state, creator, &slug).await?;
    let not_found = || ApiError::not_found(format!("no pending nudge {id:?}"));
    let nudge = Uuid::parse_str(&id).map(NudgeId).map_err(|_| not_found())?;
    match state.store.cancel_nudge(creator, nudge, state.clock.now()).await.map_err(store_error)? {
        NudgeCancel::Cancelled { user, .. } => {
            let key = ConversationKey { creator, user };
            if let Err(error) = state.engine.route(&key, Event::NudgeAbandoned { id: nudge }).await {
                // The row is cancelled and never fires; the conversation drops its copy when it
                // next settles its nudges.
                tracing::warn!(%nudge, %error, "a cancelled nudge could not be passed to its conversation");
            }
            Ok(StatusCode::NO_CONTENT)
        }
        NudgeCancel::InFlight => {
            Err(problem(StatusCode::CONFLICT, format!("nudge {id:?} is being delivered right now")))
        }
        NudgeCancel::NotFound => Err(not_found()),
    }
}
