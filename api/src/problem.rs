//! `ApiError`: every REST error as `application/problem+json` (RFC 9457). Server errors get a
//! generic body; their cause is logged once, here.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub title: &'static str,
    pub detail: String,
    /// `Retry-After` (429 and 503 answers that know when to come back).
    pub retry_after: Option<std::time::Duration>,
}

/// The body of every REST error (RFC 9457 problem details).
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status and title say what happened.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    /// One sentence for a person; for server errors a generic one (the cause is in the log).
    pub detail: String,
}

impl ApiError {
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, title: "Unauthorized", detail: detail.into(), retry_after: None }
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, title: "Forbidden", detail: detail.into(), retry_after: None }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, title: "Not Found", detail: detail.into(), retry_after: None }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, title: "Bad Request", detail: detail.into(), retry_after: None }
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title: "Service Unavailable",
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, title: "Conflict", detail: detail.into(), retry_after: None }
    }

    /// 422: well-formed, but the values cannot be used (the detail names the field).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            title: "Unprocessable Content",
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 429: over a rate limit; come back after `retry_after`.
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            title: "Too Many Requests",
            detail: "too many requests; retry after the time in `Retry-After`".to_owned(),
            retry_after: Some(retry_after),
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Internal Server Error",
            detail: cause.to_string(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), cause = %self.detail, "request failed");
            "the server could not handle this request; it has been logged"
        } else {
            self.detail.as_str()
        };
        let body =
            Problem { kind: "about:blank", title: self.title, status: self.status.as_u16(), detail: detail.to_owned() };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: a client that waits exactly this long gets through.
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The largest error body of a handler or an extractor that is turned into a problem's detail.
const MAX_PLAIN_ERROR_BYTES: usize = 4 * 1024;

/// Middleware: every error answer is `application/problem+json`, also those written by axum
/// itself (a malformed JSON body, an unknown field, a wrong content type, a body over the limit,
/// an unknown path or method). Their plain-text message becomes the problem's detail.
pub async fn normalize(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    // Upgrades and successes pass; so do errors that already are problems.
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_PLAIN_ERROR_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let detail = match (status, text.is_empty()) {
        (StatusCode::NOT_FOUND, true) => format!("no endpoint at {path}"),
        (StatusCode::METHOD_NOT_ALLOWED, true) => format!("{path} does not take {method}"),
        (StatusCode::PAYLOAD_TOO_LARGE, true) => "the request body is larger than this endpoint accepts".to_owned(),
        (_, true) => status.canonical_reason().unwrap_or("error").to_owned(),
        (_, false) => text,
    };
    let title: &'static str = status.canonical_reason().unwrap_or("Error");
    let mut problem = ApiError { status, title, detail, retry_after: None }.into_response();
    // Keep what the original answer told the client besides its body (`Allow`, `Retry-After`, …).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}
