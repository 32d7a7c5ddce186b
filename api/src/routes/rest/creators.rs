//! `/v1/creators` and `/v1/creators/{slug}`: list, create, read and change creator profiles.
//!
//! A change goes the way an import goes: a new profile version in the store
//! (`CreatorStore::put_creator`), then `EngineHandle::reload_twin`, so the running twin uses it at
//! once. Channel settings are summarised (which channels are configured), never returned.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use twin_engine::ids::{ProgramId, Slug};
use twin_engine::persona::Persona;
use twin_engine::ports::{CreatorStore, StoredCreator};
use twin_engine::twin::{CreatorProfile, ModelSettings, NudgeSettings, ReplySettings};
use utoipa::ToSchema;

use super::{JsonBody, Page, Paged, engine_error, no_creator, problem, query_rejection, store_error, to_json, writer};
use crate::auth::{Caller, Role};
use crate::problem::ApiError;
use crate::routes::AppState;
use crate::routes::openapi::Problem;

/// A creator as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatorView {
    pub slug: String,
    /// Incremented by every change of the profile, a document or a program.
    pub version: u64,
    /// The persona (`name`, `role`, `traits`, `voice`, `methodology`, `values`, `boundaries`,
    /// `examples`), as docs/PERSONA.md describes it.
    #[schema(value_type = Object)]
    pub persona: serde_json::Value,
    /// `stream_previews`, `history_window`, `passages`.
    #[schema(value_type = Object)]
    pub replies: serde_json::Value,
    /// `timezone`, `inactivity_text` and the nudge policy.
    #[schema(value_type = Object)]
    pub nudges: serde_json::Value,
    /// `model`, `temperature`, `max_reply_tokens`, `context_tokens`; unset fields use the server's.
    #[schema(value_type = Object)]
    pub model: serde_json::Value,
    pub allowed_origins: Vec<String>,
    pub default_program: Option<String>,
    pub programs: Vec<ProgramListing>,
    /// Knowledge documents stored.
    pub documents: usize,
    pub channels: ChannelSummary,
}

/// A program of the creator: its id and latest version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramListing {
    pub id: String,
    pub latest_version: u32,
    /// Versions stored (enrolments stay pinned to the one they started on).
    pub versions: usize,
}

/// Which provider channels are configured; their secrets are never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelSummary {
    pub telegram: bool,
    pub whatsapp: bool,
}

/// A creator in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatorItem {
    pub slug: String,
    pub version: u64,
}

/// `POST /v1/creators`: a new creator. Only `slug` and `persona` are required; the rest take the
/// defaults of a `creator.toml` that leaves them out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCreator {
    pub slug: String,
    #[schema(value_type = Object)]
    pub persona: serde_json::Value,
    #[schema(value_type = Option<Object>)]
    pub replies: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub nudges: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub model: Option<serde_json::Value>,
    pub allowed_origins: Option<Vec<String>>,
}

/// `PATCH /v1/creators/{slug}`: each field given replaces that part of the profile whole (keys left
/// out of a given `persona`, `replies`, `nudges` or `model` take their defaults, as in a
/// `creator.toml`); fields left out stay. `default_program: null` clears it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatorPatch {
    #[schema(value_type = Option<Object>)]
    pub persona: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub replies: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub nudges: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub model: Option<serde_json::Value>,
    pub allowed_origins: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub default_program: Option<Option<String>>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[utoipa::path(
    get,
    path = "/v1/creators",
    tag = "creators",
    summary = "Creators: every one for an admin (by slug), the caller's own for a creator or agent",
    params(Page),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of creators", body = Paged<CreatorItem>),
        (status = 400, description = "Bad cursor or limit", content_type = "application/problem+json", body = Problem),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Paged<CreatorItem>>, ApiError> {
    let Query(page) = query.map_err(|r| query_rejection(&r))?;
    let identity = caller.require(&[Role::Admin, Role::Creator, Role::Agent])?;
    let limit = page.limit()?;
    if identity.role == Role::Admin {
        let rows = state.store.creators_page(page.after.as_deref(), limit + 1).await.map_err(store_error)?;
        let items = rows.into_iter().map(|(slug, version)| CreatorItem { slug, version }).collect();
        return Ok(Json(Paged::of(items, limit, |c| c.slug.clone())));
    }
    let own = state.store.creator(identity.creator).await.map_err(store_error)?;
    let items = own
        .filter(|_| page.after.is_none())
        .map(|c| CreatorItem { slug: c.profile.slug.to_string(), version: c.version })
        .into_iter()
        .collect();
    Ok(Json(Paged { items, next: None }))
}

#[utoipa::path(
    post,
    path = "/v1/creators",
    tag = "creators",
    summary = "Create a creator (admin)",
    request_body = NewCreator,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CreatorView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not an admin token", content_type = "application/problem+json", body = Problem),
        (status = 409, description = "A creator with this slug exists", content_type = "application/problem+json", body = Problem),
        (status = 413, description = "Body over 256 KiB", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "Invalid field (named in `detail`)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<JsonBody<NewCreator>, ApiError>,
) -> Result<(StatusCode, Json<CreatorView>), ApiError> {
    caller.require(&[Role::Admin])?;
    let JsonBody(body) = body?;
    let slug = Slug::parse(&body.slug).map_err(|e| unprocessable(format!("slug: {e}")))?;
    let profile = CreatorProfile {
        slug: slug.clone(),
        persona: section("persona", Some(body.persona))?.unwrap_or_default(),
        replies: section::<ReplySettings>("replies", body.replies)?.unwrap_or_default(),
        allowed_origins: body.allowed_origins.unwrap_or_default(),
        default_program: None,
        nudges: section::<NudgeSettings>("nudges", body.nudges)?.unwrap_or_default(),
        model: section::<ModelSettings>("model", body.model)?.unwrap_or_default(),
        channels: Default::default(),
        user_tokens: None,
    };
    check_profile(&profile)?;
    let _writing = super::creator_write_lock().await;
    let id = slug.creator_id();
    if state.store.creator(id).await.map_err(store_error)?.is_some() {
        return Err(problem(StatusCode::CONFLICT, format!("slug: a creator {:?} exists", slug.as_str())));
    }
    state.store.put_creator(&profile, &[], &[]).await.map_err(store_error)?;
    let stored = state.store.creator(id).await.map_err(store_error)?.ok_or_else(|| no_creator(slug.as_str()))?;
    Ok((StatusCode::CREATED, Json(view(&stored))))
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}",
    tag = "creators",
    summary = "A creator's profile: persona, settings, programs, and which channels are configured",
    params(("slug" = String, Path, description = "The creator")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = CreatorView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<CreatorView>, ApiError> {
    let creator = caller.scope(&slug)?;
    let stored = state.store.creator(creator).await.map_err(store_error)?.ok_or_else(|| no_creator(&slug))?;
    Ok(Json(view(&stored)))
}

#[utoipa::path(
    patch,
    path = "/v1/creators/{slug}",
    tag = "creators",
    summary = "Change a creator's persona, replies, nudges, model, allowed origins or default program",
    description = "Stored as a new profile version; the running twin uses it at once.",
    params(("slug" = String, Path, description = "The creator")),
    request_body = CreatorPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The changed profile", body = CreatorView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not a creator or admin token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 413, description = "Body over 256 KiB", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "Invalid field (named in `detail`)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    body: Result<JsonBody<CreatorPatch>, ApiError>,
) -> Result<Json<CreatorView>, ApiError> {
    let creator = writer(&caller, &slug)?;
    let JsonBody(body) = body?;
    let _writing = super::creator_write_lock().await;
    let stored = state.store.creator(creator).await.map_err(store_error)?.ok_or_else(|| no_creator(&slug))?;
    let mut profile = stored.profile.clone();
    if let Some(persona) = section::<Persona>("persona", body.persona)? {
        profile.persona = persona;
    }
    if let Some(replies) = section("replies", body.replies)? {
        profile.replies = replies;
    }
    if let Some(nudges) = section("nudges", body.nudges)? {
        profile.nudges = nudges;
    }
    if let Some(model) = section("model", body.model)? {
        profile.model = model;
    }
    if let Some(origins) = body.allowed_origins {
        profile.allowed_origins = origins;
    }
    if let Some(default) = body.default_program {
        profile.default_program = match default {
            None => None,
            Some(id) => {
                let id = ProgramId::parse(&id).map_err(|e| unprocessable(format!("default_program: {e}")))?;
                if !stored.programs.iter().any(|p| p.id == id) {
                    return Err(unprocessable(format!("default_program: the creator has no program {id:?}")));
                }
                Some(id)
            }
        };
    }
    check_profile(&profile)?;
    let stored = store_profile(&state, &slug, &profile, &stored).await?;
    Ok(Json(view(&stored)))
}

/// Stores a changed profile with the creator's documents (programs are untouched), has the running
/// twin reload, and returns what is stored now.
pub(crate) async fn store_profile(
    state: &AppState,
    slug: &str,
    profile: &CreatorProfile,
    stored: &StoredCreator,
) -> Result<StoredCreator, ApiError> {
    let creator = profile.slug.creator_id();
    state.store.put_creator(profile, &stored.documents, &[]).await.map_err(store_error)?;
    reload(state, slug).await?;
    state.store.creator(creator).await.map_err(store_error)?.ok_or_else(|| no_creator(slug))
}

/// Has the running twin re-read the creator; `reload_twin` answers once the new snapshot is in
/// place, so a client that writes and then chats talks to a twin that has the change.
pub(super) async fn reload(state: &AppState, slug: &str) -> Result<(), ApiError> {
    let creator = Slug::parse(slug).map_err(|_| no_creator(slug))?.creator_id();
    state.engine.reload_twin(creator).await.map_err(engine_error(slug))
}

/// One section of a profile from its JSON, refused with the section's name in front of serde's
/// words (which name the key inside it).
fn section<T: serde::de::DeserializeOwned>(
    name: &str,
    value: Option<serde_json::Value>,
) -> Result<Option<T>, ApiError> {
    value.map(|v| serde_json::from_value(v).map_err(|e| unprocessable(format!("{name}: {e}")))).transpose()
}

fn check_profile(profile: &CreatorProfile) -> Result<(), ApiError> {
    if profile.persona.name.trim().is_empty() {
        return Err(unprocessable("persona.name: must not be empty"));
    }
    profile.persona.validate().map_err(|e| unprocessable(format!("persona: {}", e.problems.join("; "))))?;
    for origin in &profile.allowed_origins {
        if !(origin.starts_with("http://") || origin.starts_with("https://")) || origin.ends_with('/') {
            return Err(unprocessable(format!(
                "allowed_origins: {origin:?} is not an origin like \"https://example.com\""
            )));
        }
    }
    Ok(())
}

pub(super) fn unprocessable(detail: impl Into<String>) -> ApiError {
    problem(StatusCode::UNPROCESSABLE_ENTITY, detail)
}

pub(super) fn view(stored: &StoredCreator) -> CreatorView {
    let profile = &stored.profile;
    let mut programs: BTreeMap<&str, ProgramListing> = BTreeMap::new();
    for program in &stored.programs {
        let entry = programs.entry(program.id.as_str()).or_insert_with(|| ProgramListing {
            id: program.id.to_string(),
            latest_version: 0,
            versions: 0,
        });
        entry.latest_version = entry.latest_version.max(program.version);
        entry.versions += 1;
    }
    CreatorView {
        slug: profile.slug.to_string(),
        version: stored.version,
        persona: to_json(&profile.persona),
        replies: to_json(&profile.replies),
        nudges: to_json(&profile.nudges),
        model: to_json(&profile.model),
        allowed_origins: profile.allowed_origins.clone(),
        default_program: profile.default_program.as_ref().map(ToString::to_string),
        programs: programs.into_values().collect(),
        documents: stored.documents.len(),
        channels: ChannelSummary {
            telegram: profile.channels.telegram.is_some(),
            whatsapp: profile.channels.whatsapp.is_some(),
        },
    }
}
