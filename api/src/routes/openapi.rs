//! `GET /v1/openapi.json`: the OpenAPI document of the HTTP surface, written by hand and kept next
//! to the routes it describes.

use axum::Json;
use serde_json::{Value, json};

pub async fn document() -> Json<Value> {
    Json(spec())
}

pub fn spec() -> Value {
    let problem = json!({"$ref": "#/components/schemas/Problem"});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Twin",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Realtime conversation engine for creator digital twins. The chat protocol over the \
                            WebSocket at /v1/chat is described in CONTRACT.md and docs/PROTOCOL.md."
        },
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "The process is up"}}}},
            "/readyz": {"get": {"summary": "Readiness: the store answers and migrations are applied",
                "responses": {"200": {"description": "Ready"},
                              "503": {"description": "Not ready", "content": {"application/problem+json": {"schema": problem}}}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text exposition format"}}}},
            "/v1/chat": {"get": {
                "summary": "End-user chat (WebSocket upgrade)",
                "security": [{"bearer": []}, {"queryToken": []}],
                "responses": {
                    "101": {"description": "Switching protocols; JSON text frames follow"},
                    "401": {"description": "Missing, expired or invalid token", "content": {"application/problem+json": {"schema": problem}}},
                    "403": {"description": "Unknown creator or origin not allowed", "content": {"application/problem+json": {"schema": problem}}}
                }
            }}
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "token"}
            },
            "schemas": {
                "Problem": {"type": "object", "description": "RFC 9457 problem details",
                    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                   "status": {"type": "integer"}, "detail": {"type": "string"}}}
            }
        }
    })
}
