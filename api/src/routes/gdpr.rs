//! GDPR routes: export and erase one end user of a creator, or the whole creator. Creators act on
//! their own tenant, admins on any; agents get 403 (they may watch conversations, not take data
//! out or destroy it). An unknown user or creator, and one of another tenant, get the same 404.
//! Every export and erasure leaves an audit record without personal data (`crate::gdpr`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use twin_actors::{ConversationKey, EngineError};
use twin_engine::ports::StoreError;
use twin_engine::{CreatorId, UserId};
use twin_store::gdpr::ErasureReport;

use crate::auth::{Caller, Identity, Role};
use crate::bundle::Bundle;
use crate::gdpr::{self, AuditAction, AuditRecord};
use crate::problem::ApiError;
use crate::routes::AppState;

/// What an erasure removed. Counts only: it names no one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasureResponse {
    /// Rows removed per table.
    pub rows: BTreeMap<String, u64>,
    /// All rows removed.
    pub total: u64,
}

impl From<&ErasureReport> for ErasureResponse {
    fn from(report: &ErasureReport) -> Self {
        Self { rows: report.rows.clone(), total: report.total() }
    }
}

/// The confirmation a creator erasure needs: the creator's slug again.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Confirm {
    /// Must equal the slug in the path.
    pub confirm: Option<String>,
}

/// Export everything Twin holds about one end user as a zip archive: `export.json` (manifest and
/// counts), `conversation.json` (with program position, variables, mode and reachability),
/// `messages.jsonl`, `nudges.json`, `outbox.json`, `inbox.jsonl`, `identities.json`,
/// `link_codes.json`, `knowledge.json`.
#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/users/{user}/export",
    tag = "gdpr",
    params(
        ("slug" = String, Path, description = "The creator's slug"),
        ("user" = String, Path, description = "The end user's id"),
    ),
    responses(
        (status = 200, description = "The user's archive", content_type = "application/zip", body = Vec<u8>),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not a creator or admin token"),
        (status = 404, description = "No such user of this creator"),
    ),
    security(("bearer" = []))
)]
pub async fn export_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (creator, identity) = scope(&caller, &slug)?;
    let user = user_id(&user)?;
    let export = state.store.export_user(creator, &user).await.map_err(store_error)?;
    if export.is_empty() {
        return Err(unknown_user());
    }
    let now = state.clock.now().millis();
    let archive = tokio::task::spawn_blocking(move || gdpr::user_archive(&export, now).map(|a| (a, export)))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let (archive, export) = archive;
    audit(&state, AuditAction::UserExport, creator, identity, Some(&user), gdpr::user_counts(&export)).await;
    Ok(attachment(archive, "twin-user-export.zip"))
}

/// Erase everything Twin holds about one end user (conversation, messages, program state, nudges,
/// outbox, inbox, channel identities, link codes) in one transaction, serialised with the
/// conversation's own events. A new message from the user afterwards starts a fresh conversation.
#[utoipa::path(
    delete,
    path = "/v1/creators/{slug}/users/{user}",
    tag = "gdpr",
    params(
        ("slug" = String, Path, description = "The creator's slug"),
        ("user" = String, Path, description = "The end user's id"),
    ),
    responses(
        (status = 200, description = "Rows removed per table", body = ErasureResponse),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not a creator or admin token"),
        (status = 404, description = "No such user of this creator"),
        (status = 503, description = "The engine or the database is unavailable; retry"),
    ),
    security(("bearer" = []))
)]
pub async fn erase_user(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, user)): Path<(String, String)>,
) -> Result<Json<ErasureResponse>, ApiError> {
    let (creator, identity) = scope(&caller, &slug)?;
    let user = user_id(&user)?;
    let key = ConversationKey { creator, user: user.clone() };
    let erased = state.engine.erase_user(&key, state.store.erase_user(creator, &user)).await.map_err(engine_error)?;
    let report = erased.map_err(store_error)?;
    // Redis: no keys per user yet (gdpr::USER_KEY_PATTERNS).
    if report.total() == 0 {
        return Err(unknown_user());
    }
    audit(&state, AuditAction::UserErasure, creator, identity, Some(&user), report.rows.clone()).await;
    Ok(Json(ErasureResponse::from(&report)))
}

/// Export everything of a creator as a zip archive: the creator bundle under `bundle/<slug>/` (as
/// `twin import` reads it), every program version, ingestion state and vector metadata, and every
/// user's rows table by table.
#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/export",
    tag = "gdpr",
    params(("slug" = String, Path, description = "The creator's slug")),
    responses(
        (status = 200, description = "The creator's archive", content_type = "application/zip", body = Vec<u8>),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not a creator or admin token"),
        (status = 404, description = "No such creator"),
    ),
    security(("bearer" = []))
)]
pub async fn export_creator(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Response, ApiError> {
    let (creator, identity) = scope(&caller, &slug)?;
    let export = state.store.export_creator(creator).await.map_err(store_error)?;
    let stored = twin_engine::ports::CreatorStore::creator(&state.store, creator).await.map_err(store_error)?;
    let (Some(export), Some(stored)) = (export, stored) else {
        return Err(unknown_creator(&slug));
    };
    let bundle = Bundle {
        profile: stored.profile,
        documents: stored.documents,
        // The bundle carries each program's latest version; programs.json has them all.
        programs: latest_programs(stored.programs),
    };
    let now = state.clock.now().millis();
    let archive =
        tokio::task::spawn_blocking(move || gdpr::creator_archive(&export, &bundle, now).map(|a| (a, export)))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    let (archive, export) = archive;
    audit(&state, AuditAction::CreatorExport, creator, identity, None, gdpr::creator_counts(&export)).await;
    Ok(attachment(archive, &format!("twin-creator-export-{slug}.zip")))
}

/// Erase a whole creator: its twin and conversations are stopped, every row of the tenant is
/// deleted in one transaction, then its vectors are removed from the vector index. Needs
/// `?confirm=<slug>`. The creator's bundle folder, if the server imports one at start, is the
/// operator's to remove.
#[utoipa::path(
    delete,
    path = "/v1/creators/{slug}",
    tag = "gdpr",
    params(("slug" = String, Path, description = "The creator's slug"), Confirm),
    responses(
        (status = 200, description = "Rows removed per table", body = ErasureResponse),
        (status = 400, description = "`confirm` does not repeat the slug"),
        (status = 401, description = "No valid token"),
        (status = 403, description = "Not a creator or admin token"),
        (status = 404, description = "No such creator"),
        (status = 503, description = "The engine, the database or the vector index is unavailable; retry"),
    ),
    security(("bearer" = []))
)]
pub async fn erase_creator(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    Query(confirm): Query<Confirm>,
) -> Result<Json<ErasureResponse>, ApiError> {
    let (creator, identity) = scope(&caller, &slug)?;
    if confirm.confirm.as_deref() != Some(slug.as_str()) {
        return Err(ApiError::bad_request(format!("erasing a creator needs ?confirm={slug}")));
    }
    let erased = state.engine.erase_creator(creator, state.store.erase_creator(creator)).await.map_err(engine_error)?;
    let report = erased.map_err(store_error)?;
    // Also after a retry that finds the rows gone: the vectors may be what failed last time.
    state.engine.remove_creator_vectors(creator).await.map_err(|e| {
        ApiError::unavailable(format!("the creator's rows are erased but its vectors could not be removed; retry: {e}"))
    })?;
    // Redis: no keys per creator yet (gdpr::CREATOR_KEY_PATTERNS).
    // INTEGRATION (issue 7, accounts): the creator's accounts go with the rows (twin_store::gdpr::CREATOR_TABLES).
    if report.removed("creators") == 0 {
        return Err(unknown_creator(&slug));
    }
    audit(&state, AuditAction::CreatorErasure, creator, identity, None, report.rows.clone()).await;
    Ok(Json(ErasureResponse::from(&report)))
}

/// The creator of the path, for a creator (their own) or an admin (any); agents and users 403.
fn scope(caller: &Caller, slug: &str) -> Result<(CreatorId, Identity), ApiError> {
    // The tenant first: another tenant's caller gets the 404 of a missing creator whatever its role.
    let creator = caller.scope(slug)?;
    let identity = caller.require(&[Role::Admin, Role::Creator])?.clone();
    Ok((creator, identity))
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::parse(raw).map_err(|_| unknown_user())
}

/// One body for every user that is not there (unknown, malformed, or another tenant's).
fn unknown_user() -> ApiError {
    ApiError::not_found("no such user")
}

fn unknown_creator(slug: &str) -> ApiError {
    ApiError::not_found(format!("no creator {slug:?}"))
}

fn store_error(error: StoreError) -> ApiError {
    match error {
        StoreError::Unavailable(_) => ApiError::unavailable(error.to_string()),
        other => ApiError::internal(other),
    }
}

fn engine_error(error: EngineError) -> ApiError {
    ApiError::unavailable(error.to_string())
}

fn latest_programs(programs: Vec<twin_engine::ports::StoredProgram>) -> Vec<twin_engine::ports::ProgramSource> {
    let mut latest: BTreeMap<String, twin_engine::ports::StoredProgram> = BTreeMap::new();
    for program in programs {
        let key = program.id.as_str().to_owned();
        if latest.get(&key).is_none_or(|held| held.version < program.version) {
            latest.insert(key, program);
        }
    }
    latest.into_values().map(|p| twin_engine::ports::ProgramSource { id: p.id, source: p.source }).collect()
}

async fn audit(
    state: &AppState,
    action: AuditAction,
    creator: CreatorId,
    identity: Identity,
    user: Option<&UserId>,
    rows: BTreeMap<String, u64>,
) {
    let record = AuditRecord {
        action,
        creator,
        actor_role: identity.role,
        actor: identity.subject.as_str().to_owned(),
        subject: user.map(|user| gdpr::pseudonym(creator, user)),
        rows,
    };
    state.audit.record(record).await;
}

fn attachment(bytes: Vec<u8>, filename: &str) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::*;

    #[derive(OpenApi)]
    #[openapi(paths(export_user, erase_user, export_creator, erase_creator), components(schemas(ErasureResponse)))]
    struct Gdpr;

    #[test]
    fn the_annotations_describe_every_gdpr_route() {
        let doc = Gdpr::openapi();
        let paths = &doc.paths.paths;
        for path in [
            "/v1/creators/{slug}/users/{user}/export",
            "/v1/creators/{slug}/users/{user}",
            "/v1/creators/{slug}/export",
            "/v1/creators/{slug}",
        ] {
            assert!(paths.contains_key(path), "{path} is missing: {:?}", paths.keys());
        }
        let json = doc.to_json().unwrap();
        assert!(json.contains("application/zip"), "the exports are zip archives");
        assert!(json.contains("\"confirm\""), "the creator erasure's confirmation is a parameter");
    }

    #[test]
    fn each_program_is_exported_at_its_latest_version() {
        let stored = |id: &str, version: u32| twin_engine::ports::StoredProgram {
            id: twin_engine::ProgramId::parse(id).unwrap_or_else(|e| panic!("{e}")),
            version,
            source: format!("{id} v{version}"),
        };
        let latest = latest_programs(vec![stored("a", 1), stored("a", 3), stored("a", 2), stored("b", 1)]);
        let sources: Vec<&str> = latest.iter().map(|p| p.source.as_str()).collect();
        assert_eq!(sources, vec!["a v3", "b v1"]);
    }
}
