//! `/v1/creators/{slug}/programs`: the creator's coaching programs, validating a draft, and
//! publishing a new version.
//!
//! Sources are YAML (or JSON) as in a bundle's `programs/`. Publishing goes through the import
//! path: the store adds a version when the source changed, the twin reloads, and new enrolments
//! start on it (running ones stay on the version they started on).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use twin_engine::ProgramId;
use twin_engine::ports::{CreatorStore, ProgramSource};
use twin_engine::program::{self, Problems};
use utoipa::{IntoParams, ToSchema};

use super::creators::unprocessable;
use super::{bytes_rejection, no_creator, problem, query_rejection, store_error, writer};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::routes::AppState;
use crate::routes::openapi::Problem;

/// A program in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramItem {
    pub id: String,
    pub latest_version: u32,
    pub versions: usize,
}

/// A program with every stored version's source, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramView {
    pub id: String,
    pub latest_version: u32,
    pub versions: Vec<ProgramVersion>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramVersion {
    pub version: u32,
    pub source: String,
}

/// What validation found; `problems` is empty when `valid`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    pub valid: bool,
    pub problems: Vec<ProgramProblem>,
}

/// One problem: the step it is about (absent for the program as a whole) and what is wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgramProblem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub message: String,
}

/// `?id=`: the id the draft is checked as (its `id`, if it names one, must match).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ValidateQuery {
    pub id: Option<String>,
}

/// A published version.
#[derive(Debug, Serialize, ToSchema)]
pub struct Published {
    pub id: String,
    pub version: u32,
    /// False when the source equals the latest version (nothing new was stored).
    pub changed: bool,
}

fn problems_of(problems: Problems) -> Vec<ProgramProblem> {
    problems.0.into_iter().map(|p| ProgramProblem { step: p.step, message: p.message }).collect()
}

fn no_program(id: &str) -> ApiError {
    ApiError::not_found(format!("no program {id:?}"))
}

/// The body as UTF-8 source text.
fn source_text(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body = body.map_err(|r| bytes_rejection(&r))?;
    if body.len() > program::MAX_SOURCE_BYTES {
        let detail = format!("a program source may be at most {} KiB", program::MAX_SOURCE_BYTES / 1024);
        return Err(problem(StatusCode::PAYLOAD_TOO_LARGE, detail));
    }
    String::from_utf8(body.to_vec()).map_err(|_| unprocessable("body: not valid UTF-8 text"))
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/programs",
    tag = "programs",
    summary = "The creator's programs with their latest version",
    params(("slug" = String, Path, description = "The creator")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every program, by id", body = Vec<ProgramItem>),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Vec<ProgramItem>>, ApiError> {
    let creator = caller.scope(&slug)?;
    let stored = state.store.creator(creator).await.map_err(store_error)?.ok_or_else(|| no_creator(&slug))?;
    let mut programs: BTreeMap<String, ProgramItem> = BTreeMap::new();
    for p in &stored.programs {
        let item = programs.entry(p.id.to_string()).or_insert_with(|| ProgramItem {
            id: p.id.to_string(),
            latest_version: 0,
            versions: 0,
        });
        item.latest_version = item.latest_version.max(p.version);
        item.versions += 1;
    }
    Ok(Json(programs.into_values().collect()))
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/programs/{id}",
    tag = "programs",
    summary = "A program's source, every version",
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The program id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The program", body = ProgramView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or program (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<ProgramView>, ApiError> {
    let creator = caller.scope(&slug)?;
    let stored = state.store.creator(creator).await.map_err(store_error)?.ok_or_else(|| no_creator(&slug))?;
    let mut versions: Vec<ProgramVersion> = stored
        .programs
        .iter()
        .filter(|p| p.id.as_str() == id)
        .map(|p| ProgramVersion { version: p.version, source: p.source.clone() })
        .collect();
    versions.sort_by_key(|v| v.version);
    let latest_version = versions.last().map(|v| v.version).ok_or_else(|| no_program(&id))?;
    Ok(Json(ProgramView { id, latest_version, versions }))
}

#[utoipa::path(
    post,
    path = "/v1/creators/{slug}/programs/validate",
    tag = "programs",
    summary = "Check a program source without publishing it (as `twin program validate`)",
    params(("slug" = String, Path, description = "The creator"), ValidateQuery),
    request_body(content = String, content_type = "application/yaml", description = "The program source (YAML or JSON)"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The verdict, with every problem", body = Validation),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 413, description = "Too large", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "Not UTF-8, or a bad id", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<ValidateQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Validation>, ApiError> {
    let creator = caller.scope(&slug)?;
    let Query(query) = query.map_err(|r| query_rejection(&r))?;
    super::existing(&state, creator, &slug).await?;
    let source = source_text(body)?;
    let id = query.id.as_deref().unwrap_or("draft");
    let id = ProgramId::parse(id).map_err(|e| unprocessable(format!("id: {e}")))?;
    let verdict = match program::compile(&id, 1, &source) {
        Ok(_) => Validation { valid: true, problems: Vec::new() },
        Err(problems) => Validation { valid: false, problems: problems_of(problems) },
    };
    Ok(Json(verdict))
}

#[utoipa::path(
    put,
    path = "/v1/creators/{slug}/programs/{id}",
    tag = "programs",
    summary = "Publish a program: validated, then stored as its next version",
    params(("slug" = String, Path, description = "The creator"), ("id" = String, Path, description = "The program id")),
    request_body(content = String, content_type = "application/yaml", description = "The program source (YAML or JSON)"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Published (or unchanged)", body = Published),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not a creator or admin token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 413, description = "Too large", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "The program has problems", body = Validation),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, id)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let creator = writer(&caller, &slug)?;
    let source = source_text(body)?;
    let valid_name =
        !id.is_empty() && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    let program_id = ProgramId::parse(&id)
        .ok()
        .filter(|_| valid_name)
        .ok_or_else(|| unprocessable("id: a program id may only use lowercase letters, digits, `-` and `_`"))?;
    if let Err(problems) = program::compile(&program_id, 1, &source) {
        // A problem (RFC 9457) whose extension members are the validation verdict.
        let verdict = Validation { valid: false, problems: problems_of(problems) };
        let body = serde_json::json!({
            "type": "about:blank",
            "title": "Unprocessable Content",
            "status": 422,
            "detail": format!("the program has {} problem(s); see `problems`", verdict.problems.len()),
            "valid": false,
            "problems": verdict.problems,
        });
        let mut response = (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response();
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/problem+json"));
        return Ok(response);
    }
    let _writing = super::creator_write_lock().await;
    let current = state.store.creator(creator).await.map_err(store_error)?.ok_or_else(|| no_creator(&slug))?;
    let before = latest(&current.programs, &program_id);
    let sources = [ProgramSource { id: program_id.clone(), source }];
    state.store.put_creator(&current.profile, &current.documents, &sources).await.map_err(store_error)?;
    let after = state.store.creator(creator).await.map_err(store_error)?.ok_or_else(|| no_creator(&slug))?;
    let version = latest(&after.programs, &program_id).unwrap_or(0);
    super::creators::reload(&state, &slug).await?;
    let published = Published { id: program_id.to_string(), version, changed: Some(version) != before };
    Ok((StatusCode::OK, Json(published)).into_response())
}

fn latest(programs: &[twin_engine::ports::StoredProgram], id: &ProgramId) -> Option<u32> {
    programs.iter().filter(|p| p.id == *id).map(|p| p.version).max()
}
