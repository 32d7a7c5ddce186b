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
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl ApiError {
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::UNAUTHORIZED, title: "Unauthorized", detail: detail.into() }
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, title: "Forbidden", detail: detail.into() }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, title: "Not Found", detail: detail.into() }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, title: "Bad Request", detail: detail.into() }
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, title: "Service Unavailable", detail: detail.into() }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, title: "Internal Server Error", detail: cause.to_string() }
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
        let body = Problem { kind: "about:blank", title: self.title, status: self.status.as_u16(), detail };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
