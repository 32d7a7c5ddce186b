//! The web widget over HTTP (docs/WIDGET.md): the script at `/widget.js`, the ticket endpoint a
//! page on one of the creator's allowed origins calls (with its CORS preflight), and the embed
//! snippet the dashboard shows. Tickets are redeemed by the chat socket (`routes/chat.rs`).
//!
//! The ticket endpoint needs no token: the page's `Origin` is the credential, and the answer is
//! readable only by that origin (CORS, no credentials). An unknown creator and an origin not on
//! the creator's list get the same 403, so the endpoint does not tell which creators exist.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use twin_actors::EngineError;
use twin_engine::ports::CreatorStore;
use twin_engine::{CreatorId, Slug};
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::openapi::Problem;
use super::rest::{JsonBody, no_creator, store_error};
use crate::auth::Caller;
use crate::limits::ClientAddress;
use crate::origin;
use crate::problem::ApiError;
use crate::widget::{Ticket, TicketError, visitor};

/// The largest ticket request body (it holds one visitor token).
pub const MAX_BODY_BYTES: usize = 4 * 1024;
/// How long browsers keep the script before asking again (then revalidated by its `ETag`).
const SCRIPT_MAX_AGE: &str = "public, max-age=300";
/// How long browsers keep a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "600";

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketRequest {
    /// The `visitor` of an earlier answer, to continue as the same end user; absent (or not
    /// recognised) for a new visitor.
    pub visitor: Option<String>,
}

/// A ticket for one chat socket (`GET /v1/chat?ticket=…`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    /// Opens one chat socket, once, from the origin that asked for it.
    pub ticket: String,
    /// Seconds the ticket stays valid.
    pub expires_in: u64,
    /// Keep it (the widget uses `localStorage`) and send it with the next request to stay the same
    /// end user.
    pub visitor: String,
    /// The end user the ticket is for: `web:<uuid>`.
    pub user: String,
}

/// What the dashboard's embed page shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbedView {
    /// The tag to paste into the creator's pages.
    pub snippet: String,
    /// The origins whose pages may use the widget; empty means none may yet.
    pub allowed_origins: Vec<String>,
    /// Where the script is served.
    pub script_url: String,
}

#[utoipa::path(
    get,
    path = "/widget.js",
    tag = "widget",
    summary = "The embeddable chat widget",
    description = "Plain JavaScript, no dependencies. Embed with \
                   `<script src=\".../widget.js\" data-creator=\"<slug>\" async></script>`; see docs/WIDGET.md.",
    responses(
        (status = 200, description = "The script", content_type = "text/javascript", body = String),
        (status = 304, description = "Not modified (`If-None-Match` named the current `ETag`)"),
    )
)]
pub async fn script(headers: HeaderMap) -> Response {
    let etag = script_etag();
    let mut response = if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], crate::widget::SCRIPT).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(SCRIPT_MAX_AGE));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// The script's `ETag`: a hash of its text, so a new build's script is fetched at once.
fn script_etag() -> &'static str {
    static ETAG: OnceLock<String> = OnceLock::new();
    ETAG.get_or_init(|| {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, crate::widget::SCRIPT.as_bytes());
        format!("\"{}\"", hex::encode(&hash.as_ref()[..12]))
    })
}

#[utoipa::path(
    post,
    path = "/v1/creators/{slug}/widget/ticket",
    tag = "widget",
    summary = "A chat ticket for a web page on one of the creator's allowed origins",
    description = "No token: the request's `Origin` must be one of the creator's `allowed_origins` (an empty \
                   list allows no site). The ticket opens one chat socket (`GET /v1/chat?ticket=…`) from the \
                   same origin, once, within `expires_in` seconds. Rate-limited per client address \
                   (`TWIN_RATE_LIMIT_TICKETS`). Answers carry `Access-Control-Allow-Origin` for the allowed \
                   origin, never credentials.",
    params(
        ("slug" = String, Path, description = "The creator"),
        ("Origin" = String, Header, description = "The page's origin, as browsers send it"),
    ),
    request_body = TicketRequest,
    responses(
        (status = 200, description = "A ticket, and the visitor token to keep", body = TicketView),
        (status = 400, description = "The body is not JSON", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "No `Origin`, or the origin may not get tickets for this slug (also when there is no such creator)", content_type = "application/problem+json", body = Problem),
        (status = 413, description = "Body over 4 KiB", content_type = "application/problem+json", body = Problem),
        (status = 415, description = "Not `Content-Type: application/json`", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "A field is not what it should be (unknown fields included)", content_type = "application/problem+json", body = Problem),
        (status = 429, description = "Over the ticket budget of this address; see `Retry-After`", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The ticket store (Redis) or the engine is unavailable", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn ticket(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    address: ClientAddress,
    headers: HeaderMap,
    body: Result<JsonBody<TicketRequest>, ApiError>,
) -> Response {
    let (creator, origin) = match allowed_origin(&state, &slug, &headers).await {
        Ok(allowed) => allowed,
        Err(error) => {
            metrics::counter!(TICKETS_REFUSED).increment(1);
            return error.into_response();
        }
    };
    // From here on the origin is allowed: every answer, errors too, is readable by the page.
    let answer = issue(&state, creator, address, body, &origin).await;
    let mut response = match answer {
        Ok(view) => {
            metrics::counter!(TICKETS_ISSUED).increment(1);
            let mut response = Json(view).into_response();
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => error.into_response(),
    };
    allow(&mut response, &origin);
    // The widget waits as long as a 429 says: it may read the header.
    response.headers_mut().insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("retry-after"));
    response
}

/// The ticket for an allowed origin: the address's budget, the visitor, the ticket.
async fn issue(
    state: &AppState,
    creator: CreatorId,
    address: ClientAddress,
    body: Result<JsonBody<TicketRequest>, ApiError>,
    origin: &str,
) -> Result<TicketView, ApiError> {
    // Without connection info (a router called directly in a test): the unspecified address.
    state.limits.tickets(address.0.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))).await?;
    let JsonBody(request) = body?;
    let widget = &state.widget;
    let known = request.visitor.as_deref().and_then(|token| widget.visitors.verify(creator, token));
    if request.visitor.is_some() && known.is_none() {
        // Forged, damaged, another creator's or signed with another key: a new visitor, no error.
        tracing::debug!(%creator, "a visitor token was not recognised; a new visitor starts");
    }
    let visitor = known.unwrap_or_else(Uuid::new_v4);
    let user = visitor::user_of(visitor);
    let ticket = Ticket { creator, user: user.clone(), origin: origin.to_owned() };
    let text = widget.tickets.issue(&ticket).await.map_err(ticket_error)?;
    Ok(TicketView {
        ticket: text,
        expires_in: widget.ticket_seconds(),
        visitor: widget.visitors.sign(creator, visitor),
        user: user.to_string(),
    })
}

#[utoipa::path(
    options,
    path = "/v1/creators/{slug}/widget/ticket",
    tag = "widget",
    summary = "CORS preflight of the ticket request",
    description = "Answered with `Access-Control-Allow-Origin: <origin>` (methods `POST`, header `Content-Type`, \
                   no credentials) only for the creator's allowed origins; anything else gets the ticket \
                   endpoint's 403.",
    params(
        ("slug" = String, Path, description = "The creator"),
        ("Origin" = String, Header, description = "The page's origin"),
    ),
    responses(
        (status = 204, description = "The origin may ask for tickets"),
        (status = 403, description = "No `Origin`, or the origin may not get tickets for this slug (also when there is no such creator)", content_type = "application/problem+json", body = Problem),
        (status = 503, description = "The engine is unavailable", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn preflight(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (_, origin) = allowed_origin(&state, &slug, &headers).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    allow(&mut response, &origin);
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST"));
    headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(PREFLIGHT_MAX_AGE));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/widget",
    tag = "widget",
    summary = "The widget's embed snippet and the origins it may be used from",
    params(("slug" = String, Path, description = "The creator")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The snippet to paste into the creator's pages", body = EmbedView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn embed(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
) -> Result<Json<EmbedView>, ApiError> {
    let creator = caller.scope(&slug)?;
    let stored = state.store.creator(creator).await.map_err(store_error)?.ok_or_else(|| no_creator(&slug))?;
    Ok(Json(EmbedView {
        snippet: state.widget.snippet(stored.profile.slug.as_str()),
        allowed_origins: stored.profile.allowed_origins.clone(),
        script_url: state.widget.script_url(),
    }))
}

const TICKETS_ISSUED: &str = "twin_widget_tickets_issued_total";
const TICKETS_REFUSED: &str = "twin_widget_tickets_refused_total";

/// The creator and the request's origin, when the origin may get tickets for the slug's creator.
/// No `Origin`, an unknown creator and an origin not on its list are refused alike (403).
async fn allowed_origin(state: &AppState, slug: &str, headers: &HeaderMap) -> Result<(CreatorId, String), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Err(ApiError::forbidden(
            "a widget ticket needs the `Origin` header a browser sends: ask from a page on one of the creator's \
             allowed origins",
        ));
    };
    let origin = origin.to_str().unwrap_or_default().to_owned();
    let refused = || {
        ApiError::forbidden(format!(
            "origin {origin:?} may not get widget tickets for {slug:?}: there is no such creator, or its \
             allowed_origins does not list this origin (an empty list allows no site)"
        ))
    };
    let Ok(slug) = Slug::parse(slug) else {
        return Err(refused());
    };
    let twin = match state.engine.twin(slug.creator_id()).await {
        Ok(twin) => twin,
        Err(EngineError::UnknownCreator(_)) => return Err(refused()),
        Err(EngineError::Unavailable(cause)) => return Err(ApiError::unavailable(cause)),
    };
    if !origin::is_allowed(&twin.profile.allowed_origins, &origin) {
        return Err(refused());
    }
    Ok((slug.creator_id(), origin))
}

/// Lets `origin` read the answer (no credentials: the widget sends none).
fn allow(response: &mut Response, origin: &str) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
}

fn ticket_error(error: TicketError) -> ApiError {
    match error {
        TicketError::Unavailable(cause) => ApiError::unavailable(cause.to_string()),
    }
}
