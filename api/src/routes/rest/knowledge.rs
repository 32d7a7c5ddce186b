//! `/v1/creators/{slug}/knowledge`: the creator's knowledge documents and their ingestion.
//!
//! A document path may contain `/`; in the URL it is one segment, percent-encoded
//! (`guides/sleep.md` is `guides%2Fsleep.md`). An upload is stored at once (through the import
//! path: the creator's document set changes, then the twin reloads) and embedded in the
//! background by the reloaded twin; `GET …/knowledge` shows how far each document got.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use twin_engine::CreatorId;
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::ports::{CreatorStore, DocumentStatus, KnowledgeStore, StoredCreator};
use utoipa::ToSchema;

use super::creators::{reload, unprocessable};
use super::{bytes_rejection, no_creator, problem, store_error, to_json, writer};
use crate::auth::Caller;
use crate::bundle::MAX_KNOWLEDGE_FILE_BYTES;
use crate::problem::ApiError;
use crate::routes::AppState;
use crate::routes::openapi::Problem;

/// The longest document path accepted.
const MAX_PATH_CHARS: usize = 256;

/// A knowledge document and where its embedding stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub path: String,
    /// Bytes of text stored (a PDF's extracted text).
    pub bytes: usize,
    /// `pending` (not picked up yet), `embedding`, `ready` or `failed`.
    pub status: String,
    pub chunks_done: u32,
    pub chunks_total: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A document with its text.
#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentBody {
    #[serde(flatten)]
    pub document: DocumentView,
    pub body: String,
}

fn view(document: &KnowledgeDocument, statuses: &[DocumentStatus]) -> DocumentView {
    let hash = twin_store_hash(&document.body);
    let status = statuses.iter().find(|s| s.document == document.path && s.content_hash == hash);
    DocumentView {
        path: document.path.clone(),
        bytes: document.body.len(),
        status: status.map_or_else(|| "pending".to_owned(), |s| to_json(&s.state).as_str().unwrap_or("").to_owned()),
        chunks_done: status.map_or(0, |s| s.chunks_done),
        chunks_total: status.map_or(0, |s| s.chunks_total),
        error: status.and_then(|s| s.error.clone()),
    }
}

/// The content hash ingestion statuses are about (hex sha-256 of the body).
fn twin_store_hash(body: &str) -> String {
    twin_engine::knowledge::content_hash(body)
}

async fn stored(state: &AppState, creator: CreatorId, slug: &str) -> Result<StoredCreator, ApiError> {
    state.store.creator(creator).await.map_err(store_error)?.ok_or_else(|| no_creator(slug))
}

fn no_document(path: &str) -> ApiError {
    ApiError::not_found(format!("no document {path:?}"))
}

/// A path that names a file under `knowledge/` (as a bundle folder would hold it).
fn check_path(path: &str) -> Result<(), ApiError> {
    let safe = !path.is_empty()
        && path.chars().count() <= MAX_PATH_CHARS
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && path.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
    if !safe {
        return Err(unprocessable(format!(
            "path: {path:?} must be a relative path of at most {MAX_PATH_CHARS} characters, without `.` or `..` parts"
        )));
    }
    let extension = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    if !["md", "txt", "pdf"].contains(&extension.as_str()) {
        return Err(unprocessable(format!("path: {path:?} must end in .md, .txt or .pdf")));
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/knowledge",
    tag = "knowledge",
    summary = "The creator's knowledge documents with their ingestion status",
    params(("slug" = String, Path, description = "The creator")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every document, by path", body = Vec<DocumentView>),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<Vec<DocumentView>>, ApiError> {
    let creator = caller.scope(&slug)?;
    let stored = stored(&state, creator, &slug).await?;
    let statuses = state.store.ingestion(creator).await.map_err(store_error)?;
    Ok(Json(stored.documents.iter().map(|d| view(d, &statuses)).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/knowledge/{path}",
    tag = "knowledge",
    summary = "A knowledge document with its text",
    params(("slug" = String, Path, description = "The creator"), ("path" = String, Path, description = "The document path, percent-encoded")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The document", body = DocumentBody),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or document (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, path)): Path<(String, String)>,
) -> Result<Json<DocumentBody>, ApiError> {
    let creator = caller.scope(&slug)?;
    let stored = stored(&state, creator, &slug).await?;
    let document = stored.documents.iter().find(|d| d.path == path).ok_or_else(|| no_document(&path))?;
    let statuses = state.store.ingestion(creator).await.map_err(store_error)?;
    Ok(Json(DocumentBody { document: view(document, &statuses), body: document.body.clone() }))
}

#[utoipa::path(
    put,
    path = "/v1/creators/{slug}/knowledge/{path}",
    tag = "knowledge",
    summary = "Store (or replace) a knowledge document; it is embedded in the background",
    params(("slug" = String, Path, description = "The creator"), ("path" = String, Path, description = "The document path (.md, .txt or .pdf), percent-encoded")),
    request_body(
        description = "The document: UTF-8 Markdown or text (at most 1 MiB), or a PDF (at most 20 MiB; its text layer is stored)",
        content(
            (String = "text/markdown"),
            (String = "text/plain"),
            (Vec<u8> = "application/pdf"),
        )
    ),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored as a new document", body = DocumentView),
        (status = 200, description = "Replaced", body = DocumentView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not a creator or admin token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 413, description = "Too large", content_type = "application/problem+json", body = Problem),
        (status = 415, description = "Not text/markdown, text/plain or application/pdf", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "Bad path, not UTF-8, or a PDF without text", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, path)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<DocumentView>), ApiError> {
    let creator = writer(&caller, &slug)?;
    check_path(&path)?;
    let body = body.map_err(|r| bytes_rejection(&r))?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    let text = match media.as_str() {
        "text/markdown" | "text/plain" => {
            if body.len() as u64 > MAX_KNOWLEDGE_FILE_BYTES {
                return Err(problem(StatusCode::PAYLOAD_TOO_LARGE, "a text document may be at most 1 MiB"));
            }
            String::from_utf8(body.to_vec()).map_err(|_| unprocessable("body: not valid UTF-8 text"))?
        }
        "application/pdf" => crate::extract::pdf_text(&body).map_err(|e| unprocessable(format!("body: {e}")))?,
        other => {
            return Err(problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type {other:?}: send text/markdown, text/plain or application/pdf"),
            ));
        }
    };
    let _writing = super::creator_write_lock().await;
    let current = stored(&state, creator, &slug).await?;
    let mut documents = current.documents.clone();
    let document = KnowledgeDocument { path: path.clone(), body: text };
    let status = match documents.iter_mut().find(|d| d.path == path) {
        Some(existing) => {
            *existing = document.clone();
            StatusCode::OK
        }
        None => {
            documents.push(document.clone());
            StatusCode::CREATED
        }
    };
    documents.sort_by(|a, b| a.path.cmp(&b.path));
    store_documents(&state, &slug, &current, &documents).await?;
    let statuses = state.store.ingestion(creator).await.map_err(store_error)?;
    Ok((status, Json(view(&document, &statuses))))
}

#[utoipa::path(
    delete,
    path = "/v1/creators/{slug}/knowledge/{path}",
    tag = "knowledge",
    summary = "Remove a knowledge document (and its vectors)",
    params(("slug" = String, Path, description = "The creator"), ("path" = String, Path, description = "The document path, percent-encoded")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "Not a creator or admin token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator or document (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((slug, path)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let creator = writer(&caller, &slug)?;
    let _writing = super::creator_write_lock().await;
    let current = stored(&state, creator, &slug).await?;
    if !current.documents.iter().any(|d| d.path == path) {
        return Err(no_document(&path));
    }
    let documents: Vec<KnowledgeDocument> = current.documents.iter().filter(|d| d.path != path).cloned().collect();
    store_documents(&state, &slug, &current, &documents).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The import path with a changed document set: the store replaces the documents (their vectors
/// and statuses go with removed ones), and the reloaded twin searches them at once (lexically) and
/// embeds what changed in the background.
async fn store_documents(
    state: &AppState,
    slug: &str,
    current: &StoredCreator,
    documents: &[KnowledgeDocument],
) -> Result<(), ApiError> {
    state.store.put_creator(&current.profile, documents, &[]).await.map_err(store_error)?;
    reload(state, slug).await
}
