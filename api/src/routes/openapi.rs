//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the HTTP surface, generated from the code.
//!
//! Every path item comes from its handler's `#[utoipa::path]` annotation, collected by the
//! `OpenApiRouter` in [`super::api`] (so a route cannot be served without being described); this
//! module adds what no handler owns: the title, the security schemes and the `Problem` schema.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The parts of the document no handler owns.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Twin",
        description = "Realtime conversation engine for creator digital twins. The chat protocol over the \
                       WebSocket at /v1/chat is described in CONTRACT.md and docs/PROTOCOL.md. Errors are \
                       `application/problem+json` (RFC 9457). Creator paths (`/v1/creators/{slug}/...`) answer \
                       404 to a token of another tenant, exactly as for a creator that does not exist."
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

pub use crate::problem::Problem;

/// `bearer`: `Authorization: Bearer <JWT>`; `queryToken`: `?token=<JWT>`, for browsers opening the
/// chat socket (they cannot set headers on a WebSocket).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme("queryToken", SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("token"))));
    }
}

/// The document, generated once per process (the routes do not change while it runs).
pub fn spec() -> &'static utoipa::openapi::OpenApi {
    static SPEC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    SPEC.get_or_init(|| with_unique_operation_ids(super::api().into_openapi()))
}

/// utoipa names an operation after its handler function, and handlers in different modules share
/// names (`list`, `get`, …); operation ids must be unique in a document (client generators name
/// methods after them). Each becomes `<tag>_<function>` (`conversations_list`).
fn with_unique_operation_ids(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let tag = operation.tags.as_ref().and_then(|tags| tags.first()).cloned();
            if let (Some(tag), Some(id)) = (tag, operation.operation_id.as_mut())
                && !id.starts_with(&format!("{tag}_"))
            {
                *id = format!("{tag}_{id}");
            }
        }
    }
    document
}

fn spec_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    // Serializing a document of strings and maps cannot fail; an empty object is a safe fallback.
    JSON.get_or_init(|| spec().to_json().unwrap_or_else(|_| "{}".to_owned()))
}

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], spec_json())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_operation_has_a_unique_id() {
        let json: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
        let mut ids = Vec::new();
        for item in json["paths"].as_object().unwrap().values() {
            for (method, operation) in item.as_object().unwrap() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    ids.push(operation["operationId"].as_str().unwrap().to_owned());
                }
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate operation ids");
        assert!(ids.contains(&"conversations_list".to_owned()) && ids.contains(&"creators_list".to_owned()));
    }

    #[test]
    fn the_document_names_every_schema_it_refers_to_and_keeps_the_hand_written_parameters() {
        let json: serde_json::Value = serde_json::from_str(spec_json()).unwrap();
        let schemas = json["components"]["schemas"].as_object().unwrap();
        let text = spec_json();
        let handshake = &json["paths"]["/v1/channels/whatsapp/webhook"]["get"]["parameters"];
        let names: Vec<&str> = handshake.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["hub.mode", "hub.verify_token", "hub.challenge"]);
        let chat = &json["paths"]["/v1/chat"]["get"];
        assert_eq!(chat["parameters"][0]["name"], "token");
        assert_eq!(chat["security"], serde_json::json!([{"bearer": []}, {"queryToken": []}]));
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "{name} is referred to but not defined");
        }
    }
}
