//! The creator dashboard (api/web/dashboard/): plain ES modules and one stylesheet, embedded in the
//! binary and served at `/dashboard/`, with `/` redirecting there. The files are a fixed table
//! built at compile time: no part of a request path ever reaches the filesystem.
//!
//! Answers carry a strong ETag (a hash of the file) and `Cache-Control: no-cache`, so a browser
//! revalidates every file and gets a bodiless 304 while it is unchanged: a new binary's dashboard
//! is picked up at once, without hashed file names.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::problem::ApiError;

/// Where the dashboard lives.
pub const DASHBOARD: &str = "/dashboard/";

/// The page's policy: its own scripts, styles and images only; API calls and sockets to this
/// server; never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("../../web/dashboard/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard. A file added to api/web/dashboard/ is served once it is listed here.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("live.js", JS),
    asset!("charts.js", JS),
    asset!("signin.js", JS),
    asset!("conversations.js", JS),
    asset!("conversation.js", JS),
    asset!("preview.js", JS),
    asset!("chat.js", JS),
    asset!("stats.js", JS),
    asset!("embed.js", JS),
];

/// Each asset's ETag, in the order of [`ASSETS`]: the first 16 bytes of its SHA-256, quoted.
static ETAGS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| format!("\"{}\"", hex::encode(&Sha256::digest(a.body)[..16]))).collect());

/// `/`, `/dashboard` and `/dashboard/{file}`; no state, no OpenAPI entry (they are not the API).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(to_dashboard))
        .route("/dashboard", get(to_dashboard))
        .route("/dashboard/", get(index))
        .route("/dashboard/{*file}", get(file))
}

async fn to_dashboard() -> Redirect {
    Redirect::to(DASHBOARD)
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return ApiError::not_found(format!("the dashboard has no file {name:?}")).into_response();
    };
    let asset = &ASSETS[index];
    let etag = &ETAGS[index];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    out.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if asset.name == "index.html" {
        out.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        out.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_named_once_and_has_a_distinct_etag() {
        let mut names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        let mut tags = ETAGS.clone();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
    }

    #[test]
    fn the_page_preloads_every_module() {
        let index = ASSETS.iter().find(|a| a.name == "index.html").map(|a| a.body).unwrap_or_default();
        let index = std::str::from_utf8(index).unwrap_or_default();
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js") && a.name != "app.js") {
            let link = format!(r#"<link rel="modulepreload" href="{}">"#, asset.name);
            assert!(index.contains(&link), "index.html does not preload {}", asset.name);
        }
    }

    #[test]
    fn every_module_the_page_imports_is_served() {
        // The `import … from './x.js'` lines of every script name a file of the table, so a module
        // added to the folder but not to the table fails here rather than in a browser.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.body).unwrap_or_default();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let Some(start) = line.find("'./") else { continue };
                let rest = &line[start + 3..];
                let name = &rest[..rest.find('\'').unwrap_or(rest.len())];
                assert!(ASSETS.iter().any(|a| a.name == name), "{} imports {name}, which is not served", asset.name);
            }
        }
    }
}
