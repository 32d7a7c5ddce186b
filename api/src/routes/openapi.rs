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
            }},
            "/v1/channels/link-code": {"post": {
                "summary": "A one-time code that links a Telegram or WhatsApp chat to the calling end user",
                "description": "Send `LINK <code>` on Telegram or WhatsApp, or open `telegram_url`. Single use; expires after 15 minutes.",
                "security": [{"bearer": []}],
                "responses": {
                    "201": {"description": "The code", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LinkCode"}}}},
                    "401": {"description": "Missing, expired or invalid token", "content": {"application/problem+json": {"schema": problem}}},
                    "403": {"description": "Not an end-user token", "content": {"application/problem+json": {"schema": problem}}}
                }
            }},
            "/v1/channels/telegram/{slug}/webhook": {"post": {
                "summary": "Telegram Bot API updates for one creator's bot",
                "parameters": [slug_parameter(), {"name": "X-Telegram-Bot-Api-Secret-Token", "in": "header", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "description": "A Telegram Update"}}}},
                "responses": webhook_responses(&problem, "401")
            }},
            "/v1/channels/whatsapp/{slug}/webhook": {
                "get": {
                    "summary": "WhatsApp subscription handshake for one creator's number",
                    "parameters": [slug_parameter(), query("hub.mode"), query("hub.verify_token"), query("hub.challenge")],
                    "responses": handshake_responses(&problem)
                },
                "post": {
                    "summary": "WhatsApp Cloud API notifications for one creator's number",
                    "parameters": [slug_parameter(), signature_header()],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "description": "A WhatsApp notification"}}}},
                    "responses": webhook_responses(&problem, "403")
                }
            },
            "/v1/channels/whatsapp/webhook": {
                "get": {
                    "summary": "WhatsApp subscription handshake of the shared endpoint (TWIN_WHATSAPP_VERIFY_TOKEN)",
                    "parameters": [query("hub.mode"), query("hub.verify_token"), query("hub.challenge")],
                    "responses": handshake_responses(&problem)
                },
                "post": {
                    "summary": "WhatsApp notifications for every creator on one Meta app, routed by metadata.phone_number_id",
                    "parameters": [signature_header()],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "description": "A WhatsApp notification"}}}},
                    "responses": webhook_responses(&problem, "403")
                }
            }
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "queryToken": {"type": "apiKey", "in": "query", "name": "token"}
            },
            "schemas": {
                "LinkCode": {"type": "object", "required": ["code", "expires_at"],
                    "properties": {"code": {"type": "string"}, "expires_at": {"type": "integer", "description": "milliseconds since the Unix epoch"},
                                   "telegram_url": {"type": "string"}}},
                "Problem": {"type": "object", "description": "RFC 9457 problem details",
                    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                                   "status": {"type": "integer"}, "detail": {"type": "string"}}}
            }
        }
    })
}

fn slug_parameter() -> Value {
    json!({"name": "slug", "in": "path", "required": true, "schema": {"type": "string"}})
}

fn query(name: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}})
}

fn signature_header() -> Value {
    json!({"name": "X-Hub-Signature-256", "in": "header", "required": true,
           "description": "sha256=<hex HMAC-SHA256 of the raw body with the app secret>", "schema": {"type": "string"}})
}

fn webhook_responses(problem: &Value, unauthenticated: &str) -> Value {
    let body = json!({"application/problem+json": {"schema": problem}});
    json!({
        "200": {"description": "Stored in the inbox (or acknowledged and ignored); processed after the answer"},
        "400": {"description": "Malformed body", "content": body},
        unauthenticated: {"description": "Missing or wrong secret / signature; nothing stored", "content": body},
        "404": {"description": "No such creator or channel", "content": body},
        "413": {"description": "Body over 1 MiB"},
        "503": {"description": "The channel is misconfigured or the store is unavailable; the provider retries", "content": body}
    })
}

fn handshake_responses(problem: &Value) -> Value {
    let body = json!({"application/problem+json": {"schema": problem}});
    json!({
        "200": {"description": "The challenge, echoed", "content": {"text/plain": {"schema": {"type": "string"}}}},
        "400": {"description": "Missing parameters", "content": body},
        "403": {"description": "Wrong verify token", "content": body},
        "404": {"description": "No such creator or channel", "content": body}
    })
}
