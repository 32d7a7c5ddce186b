//! `/v1/creators/{slug}/conversations`: a creator's conversations (one per end user), their state
//! and their messages.
//!
//! Conversations are listed by id (stable, so a cursor never skips or repeats one while new
//! conversations start); the cursor is the last id of the page. Messages are listed by seq,
//! oldest first; their cursor is the last seq.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use twin_engine::conversation::{ConversationState, NudgeKind};
use twin_engine::ports::ConversationStore;
use twin_engine::{ConversationId, CreatorId, Message, Seq};
use twin_store::{ConversationFilter, ConversationSummary};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{Page, Paged, query_rejection, store_error, to_json};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::routes::AppState;
use crate::routes::openapi::Problem;

/// A conversation: who, since when, and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: String,
    pub user: String,
    /// Milliseconds since the Unix epoch: when the user was first seen.
    pub created_at: i64,
    /// Milliseconds since the Unix epoch of the last stored message; absent before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<i64>,
    /// The seq of the last stored message (0 before the first).
    pub last_seq: u64,
    /// `human` (a human took over), `program` (enrolled), `handoff` (a human was asked for; the
    /// twin is silent) or `free_chat`.
    pub mode: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramPosition>,
    pub reachability: Reachability,
    /// Nudges scheduled and not settled.
    pub pending_nudges: usize,
    /// Who steers: a human who took over, draft approval, a pending draft, a handoff waiting.
    pub control: ControlView,
    /// A creator's own "test my twin" conversation (user `preview:…`): not counted in stats.
    pub preview: bool,
}

/// Human control of a conversation (docs/LIVE.md, "Takeover and drafts").
#[derive(Debug, Serialize, ToSchema)]
pub struct ControlView {
    /// The account (email) holding the conversation; the twin is silent while set.
    pub held_by: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub held_since: Option<i64>,
    /// Whether the twin's replies wait for approval here (the override, else the creator's default).
    pub drafts: bool,
    /// This conversation's own setting; `null` follows the creator's `replies.drafts`.
    pub drafts_override: Option<bool>,
    /// The twin's reply waiting for approval.
    pub draft: Option<DraftView>,
    /// A program `handoff` step waits for a human.
    pub handoff: Option<HandoffView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DraftView {
    /// Pass it back to approve, edit or reject this draft.
    pub stream: String,
    pub text: String,
    pub consistency: Option<f64>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HandoffView {
    pub step: String,
    /// Milliseconds since the Unix epoch: when the handoff began.
    pub since: i64,
    /// When the program goes on without a human (the step's `timeout`; held while a human holds
    /// the conversation), if a timer is pending.
    pub timeout_at: Option<i64>,
}

/// Where an enrolled user is in a program.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramPosition {
    pub program: String,
    /// The version the user started on.
    pub version: u32,
    pub step: String,
    /// What the step waits for: `answer`, `clock`, `check_in`, `chat` or `handoff`.
    pub phase: String,
    /// Milliseconds since the Unix epoch.
    pub enrolled_at: i64,
}

/// Whether the twin can reach the user, and where.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reachability {
    /// The user sent STOP: no nudges until START.
    pub opted_out: bool,
    /// A channel said the user blocked the twin.
    pub unreachable: bool,
    /// Provider channels the user wrote from, most recent first.
    pub channels: Vec<ChannelContact>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelContact {
    /// `telegram` or `whatsapp`.
    pub channel: String,
    pub reachable: bool,
    /// Milliseconds since the Unix epoch of the user's last message there.
    pub last_inbound: i64,
}

/// A stored message.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub seq: u64,
    /// `user`, `twin`, `program`, `nudge` or `human`.
    pub origin: String,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The client's id of a user message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Choices offered with the message (`value`, `label`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub choices: Vec<serde_json::Value>,
    /// A twin reply's consistency with the persona, 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<f64>,
}

/// `?after=<seq>&limit=<n>`: messages after a seq, oldest first.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessagePage {
    /// Messages after this seq (0 or absent: from the first).
    pub after: Option<u64>,
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// The view of a stored conversation; `creator_drafts` is the creator's `replies.drafts`.
pub(crate) fn view(summary: &ConversationSummary, creator_drafts: bool) -> ConversationView {
    let state = &summary.state;
    ConversationView {
        id: summary.id.0.to_string(),
        user: summary.user.to_string(),
        created_at: summary.created_at.millis(),
        last_activity: summary.last_activity.map(|t| t.millis()),
        last_seq: summary.last_seq.0,
        mode: mode(state).to_owned(),
        program: position(state),
        reachability: reachability(state),
        pending_nudges: state.nudges.len(),
        control: control(state, creator_drafts),
        preview: crate::preview::is_preview(&summary.user),
    }
}

fn control(state: &ConversationState, creator_drafts: bool) -> ControlView {
    let control = &state.control;
    let handoff = state.enrolment.as_ref().filter(|e| e.phase == twin_engine::program::Phase::Handoff).map(|e| {
        let timer = NudgeKind::Step { step: e.step.clone(), entry: e.entry };
        HandoffView {
            step: e.step.to_string(),
            since: e.entered_at.millis(),
            timeout_at: state.nudges.iter().find(|n| n.kind == timer).map(|n| n.due_at.millis()),
        }
    });
    ControlView {
        held_by: control.held_by.clone(),
        held_since: control.held_since.map(|t| t.millis()),
        drafts: control.drafting(creator_drafts),
        drafts_override: control.drafts,
        draft: control.draft.as_ref().map(|d| DraftView {
            stream: d.stream.to_string(),
            text: d.text.clone(),
            consistency: d.consistency.map(score),
            created_at: d.created_at.millis(),
        }),
        handoff,
    }
}

/// A persona consistency score as the API shows it, 0 to 1.
fn score(score: twin_engine::message::Score) -> f64 {
    f64::from(score.thousandths()) / 1000.0
}

/// The creator's default for draft approval (`replies.drafts`); off when the twin cannot load.
pub(crate) async fn creator_drafts(state: &AppState, creator: CreatorId) -> bool {
    state.engine.twin(creator).await.is_ok_and(|twin| twin.profile.replies.drafts)
}

fn mode(state: &ConversationState) -> &'static str {
    if state.control.held_by.is_some() {
        return "human";
    }
    match &state.enrolment {
        Some(e) if e.phase == twin_engine::program::Phase::Handoff => "handoff",
        Some(_) => "program",
        None => "free_chat",
    }
}

pub(super) fn position(state: &ConversationState) -> Option<ProgramPosition> {
    state.enrolment.as_ref().map(|e| ProgramPosition {
        program: e.program.to_string(),
        version: e.version,
        step: e.step.to_string(),
        phase: to_json(&e.phase).as_str().unwrap_or_default().to_owned(),
        enrolled_at: e.enrolled_at.millis(),
    })
}

fn reachability(state: &ConversationState) -> Reachability {
    Reachability {
        opted_out: state.audience.opted_out,
        unreachable: state.audience.unreachable,
        channels: state
            .reach
            .contacts
            .iter()
            .map(|c| ChannelContact {
                channel: c.address.kind.as_str().to_owned(),
                reachable: c.reachable,
                last_inbound: c.last_inbound.millis(),
            })
            .collect(),
    }
}

/// The nudge kind as the API names it: `inactivity` or `step:<step id>`.
pub(super) fn nudge_kind(kind: &NudgeKind) -> String {
    match kind {
        NudgeKind::Inactivity => "inactivity".to_owned(),
        NudgeKind::Step { step, .. } => format!("step:{step}"),
    }
}

/// The 404 of a conversation that does not exist, or is another tenant's, or is no id at all.
fn no_conversation(id: &str) -> ApiError {
    ApiError::not_found(format!("no conversation {id:?}"))
}

fn conversation_id(raw: &str) -> Result<ConversationId, ApiError> {
    Uuid::parse_str(raw).map(ConversationId).map_err(|_| no_conversation(raw))
}

/// The conversation, if it is this tenant's.
pub(super) async fn find(state: &AppState, creator: CreatorId, raw: &str) -> Result<ConversationSummary, ApiError> {
    let id = conversation_id(raw)?;
    let mut found =
        state.store.conversations_page(creator, &ConversationFilter::Id(id), 1).await.map_err(store_error)?;
    found.pop().ok_or_else(|| no_conversation(raw))
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/conversations",
    tag = "conversations",
    summary = "A creator's conversations, by id",
    params(("slug" = String, Path, description = "The creator"), Page),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of conversations", body = Paged<ConversationView>),
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
) -> Result<Json<Paged<ConversationView>>, ApiError> {
    let creator = caller.scope(&slug)?;
    let Query(page) = query.map_err(|r| query_rejection(&r))?;
    let limit = page.limit()?;
    let after = match page.after.as_deref() {
        None => None,
        Some(raw) => Some(Uuid::parse_str(raw).map(ConversationId).map_err(|_| page.bad_cursor())?),
    };
    super::existing(&state, creator, &slug).await?;
    let rows = state
        .store
        .conversations_page(creator, &ConversationFilter::ById { after }, limit + 1)
        .await
        .map_err(store_error)?;
    let drafts = creator_drafts(&state, creator).await;
    let items = rows.iter().map(|row| view(row, drafts)).collect();
    Ok(Json(Paged::of(items, limit, |c: &ConversationView| c.id.clone())))
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/conversations/{id}",
    tag = "conversations",
    summary = "A conversation's state: program position, mode, reachability",
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The conversation id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or conversation (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<ConversationView>, ApiError> {
    let creator = caller.scope(&slug)?;
    super::existing(&state, creator, &slug).await?;
    let found = find(&state, creator, &id).await?;
    Ok(Json(view(&found, creator_drafts(&state, creator).await)))
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/conversations/{id}/messages",
    tag = "conversations",
    summary = "A conversation's messages, oldest first, after a seq",
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The conversation id"), MessagePage),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of messages; `next` is the seq to pass as `after`", body = Paged<MessageView>),
        (status = 400, description = "Bad cursor or limit", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or conversation (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    query: Result<Query<MessagePage>, QueryRejection>,
) -> Result<Json<Paged<MessageView>>, ApiError> {
    let creator = caller.scope(&slug)?;
    let Query(page) = query.map_err(|r| query_rejection(&r))?;
    let limit = Page { after: None, limit: page.limit }.limit()?;
    super::existing(&state, creator, &slug).await?;
    let conversation = find(&state, creator, &id).await?;
    let after = Seq(page.after.unwrap_or(0));
    let messages = state.store.history(creator, conversation.id, after, limit + 1).await.map_err(store_error)?;
    let items = messages.iter().map(message_view).collect();
    Ok(Json(Paged::of(items, limit, |m: &MessageView| m.seq.to_string())))
}

fn message_view(message: &Message) -> MessageView {
    MessageView {
        seq: message.seq.0,
        origin: message.origin.as_str().to_owned(),
        text: message.text.clone(),
        created_at: message.created_at.millis(),
        client_id: message.client_id.as_ref().map(ToString::to_string),
        choices: message.choices.iter().map(to_json).collect(),
        consistency: message.consistency.map(score),
    }
}
