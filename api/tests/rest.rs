//! The creator REST API: the generated OpenAPI document against the routes the server answers,
//! and the happy paths of every endpoint on SQLite (the embedded default) and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "rest/common.rs"]
mod common;
mod support;

use std::collections::BTreeSet;

use common::{call, chat_once, creator, encode, get, json, pending_nudges, staff};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Kind, spawn_app_with};
use twin_api::auth::Role;

/// Every operation the server has, as `METHOD path`. A new route is added here and in its
/// handler's `#[utoipa::path]`; the test fails until both agree.
const ROUTES: &[&str] = &[
    "GET /healthz",
    "GET /healthz/cluster",
    "GET /readyz",
    "GET /metrics",
    "GET /v1/openapi.json",
    "GET /v1/chat",
    "GET /v1/live",
    "GET /widget.js",
    "POST /v1/creators/{slug}/widget/ticket",
    "OPTIONS /v1/creators/{slug}/widget/ticket",
    "GET /v1/creators/{slug}/widget",
    "POST /v1/channels/link-code",
    "GET /v1/auth/jwks.json",
    "POST /v1/auth/login",
    "POST /v1/auth/refresh",
    "POST /v1/auth/logout",
    "GET /v1/auth/me",
    "POST /v1/accounts",
    "POST /v1/creators/{slug}/agents",
    "GET /v1/creators/{slug}/agents",
    "DELETE /v1/creators/{slug}/agents/{id}",
    "GET /v1/creators/{slug}/audit",
    "GET /.well-known/jwks.json",
    "GET /v1/creators/{slug}/channels",
    "PUT /v1/creators/{slug}/channels/telegram",
    "DELETE /v1/creators/{slug}/channels/telegram",
    "PUT /v1/creators/{slug}/channels/whatsapp",
    "DELETE /v1/creators/{slug}/channels/whatsapp",
    "POST /v1/channels/telegram/{slug}/webhook",
    "GET /v1/channels/whatsapp/webhook",
    "POST /v1/channels/whatsapp/webhook",
    "GET /v1/channels/whatsapp/{slug}/webhook",
    "POST /v1/channels/whatsapp/{slug}/webhook",
    "GET /v1/creators",
    "POST /v1/creators",
    "GET /v1/creators/{slug}",
    "PATCH /v1/creators/{slug}",
    "DELETE /v1/creators/{slug}",
    "GET /v1/creators/{slug}/export",
    "DELETE /v1/creators/{slug}/users/{user}",
    "GET /v1/creators/{slug}/users/{user}/export",
    "GET /v1/creators/{slug}/knowledge",
    "GET /v1/creators/{slug}/knowledge/{path}",
    "PUT /v1/creators/{slug}/knowledge/{path}",
    "DELETE /v1/creators/{slug}/knowledge/{path}",
    "GET /v1/creators/{slug}/programs",
    "POST /v1/creators/{slug}/programs/validate",
    "GET /v1/creators/{slug}/programs/{id}",
    "PUT /v1/creators/{slug}/programs/{id}",
    "GET /v1/creators/{slug}/users",
    "GET /v1/creators/{slug}/users/{user}",
    "POST /v1/creators/{slug}/users/{user}/enrolments",
    "GET /v1/creators/{slug}/conversations",
    "GET /v1/creators/{slug}/conversations/{id}",
    "GET /v1/creators/{slug}/conversations/{id}/messages",
    "POST /v1/creators/{slug}/conversations/{id}/messages",
    "POST /v1/creators/{slug}/conversations/{id}/takeover",
    "POST /v1/creators/{slug}/conversations/{id}/release",
    "PUT /v1/creators/{slug}/conversations/{id}/drafts",
    "POST /v1/creators/{slug}/conversations/{id}/draft",
    "POST /v1/creators/{slug}/preview",
    "POST /v1/creators/{slug}/preview/fast-forward",
    "GET /v1/creators/{slug}/nudges",
    "DELETE /v1/creators/{slug}/nudges/{id}",
    "GET /v1/creators/{slug}/stats",
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "options", "trace"];

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    _ => refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_is_generated_valid_and_matches_the_served_routes() {
    let app = spawn_app_with(Kind::Sqlite, &[creator("alpha")]).await;
    let text = reqwest::get(app.url("/v1/openapi.json")).await.unwrap().text().await.unwrap();
    // It is an OpenAPI document as utoipa models it, version 3.1.
    let _typed: utoipa::openapi::OpenApi = serde_json::from_str(&text).expect("the document parses as OpenAPI");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["components"]["securitySchemes"]["queryToken"]["in"], "query");
    assert!(doc["components"]["schemas"]["Problem"].is_object());

    // Every reference points at something in the document.
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    assert!(!targets.is_empty());
    for target in &targets {
        let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("external reference {target}"));
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }

    // Documented operations are exactly the routes listed above...
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(*method).is_some() {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let expected: BTreeSet<String> = ROUTES.iter().map(|r| (*r).to_owned()).collect();
    assert_eq!(documented, expected);

    // ... and the server answers each of them (not axum's 404 or 405), and no other method on
    // those paths (HEAD is answered wherever GET is, by axum).
    let paths: BTreeSet<&str> = ROUTES.iter().map(|r| r.split_once(' ').unwrap().1).collect();
    for path in paths {
        let concrete = path
            .replace("{slug}", "alpha")
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{user}", "nobody")
            .replace("{path}", "missing.md");
        for method in METHODS {
            let operation = format!("{} {path}", method.to_uppercase());
            let answer =
                call(&app, Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &concrete, None, None).await;
            if expected.contains(&operation) {
                assert_ne!(answer.status, 405, "{operation} is documented but not served");
                assert!(answer.status != 404 || answer.problem, "{operation}: the router has no such route");
            } else {
                assert_eq!(answer.status, 405, "{operation} is served but not documented: {answer:?}");
            }
        }
    }
}

/// The status of a chat socket opened by an end user of `alpha` from a browser at `origin`.
async fn open_chat(app: &support::TestApp, origin: &str) -> u16 {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let token = app.token_for("alpha", "browser", std::time::Duration::from_secs(60));
    let mut request = format!("ws://{}/v1/chat?token={token}", app.addr).into_client_request().unwrap();
    request.headers_mut().insert("origin", origin.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("the socket failed: {other}"),
    }
}

async fn creators_are_listed_read_created_and_changed_and_the_twin_uses_the_change(kind: Kind) {
    let app = spawn_app_with(kind, &[creator("alpha")]).await;
    let owner = staff(&app, "alpha", Role::Creator);
    let admin = staff(&app, "alpha", Role::Admin);

    let listed = get(&app, "/v1/creators", &owner).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"], json!([{"slug": "alpha", "version": 1}]));

    let profile = get(&app, "/v1/creators/alpha", &owner).await;
    assert_eq!(profile.status, 200, "{profile:?}");
    assert_eq!(profile.body["default_program"], "intro");
    assert_eq!(profile.body["programs"], json!([{"id": "intro", "latest_version": 1, "versions": 1}]));
    assert_eq!(profile.body["channels"], json!({"telegram": false, "whatsapp": false}));
    assert_eq!(profile.body["documents"], 1);

    // A change is a new version, and the running twin has it at once.
    let patch = json!({"allowed_origins": ["https://alpha.example"], "default_program": null});
    let changed = call(&app, Method::PATCH, "/v1/creators/alpha", Some(&owner), json(&patch)).await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(changed.body["version"], 2);
    assert_eq!(changed.body["allowed_origins"], json!(["https://alpha.example"]));
    assert_eq!(changed.body["default_program"], Value::Null);
    assert_eq!(open_chat(&app, "https://elsewhere.example").await, 403, "the running twin has the new origins");
    assert_eq!(open_chat(&app, "https://alpha.example").await, 101);

    // Invalid input names the field.
    let bad = call(&app, Method::PATCH, "/v1/creators/alpha", Some(&owner), json(&json!({"colour": "red"}))).await;
    assert_eq!(bad.status, 422);
    assert!(bad.problem && bad.body["detail"].as_str().unwrap().contains("colour"), "{bad:?}");
    let bad =
        call(&app, Method::PATCH, "/v1/creators/alpha", Some(&owner), json(&json!({"default_program": "nope"}))).await;
    assert_eq!(bad.status, 422);
    assert!(bad.body["detail"].as_str().unwrap().starts_with("default_program"), "{bad:?}");
    let bad =
        call(&app, Method::PATCH, "/v1/creators/alpha", Some(&owner), json(&json!({"persona": {"name": ""}}))).await;
    assert_eq!(bad.status, 422, "{bad:?}");

    let huge = json!({"allowed_origins": [format!("https://{}.example", "x".repeat(300 * 1024))]});
    let too_large = call(&app, Method::PATCH, "/v1/creators/alpha", Some(&owner), json(&huge)).await;
    assert_eq!((too_large.status, too_large.problem), (413, true), "{:?}", too_large.status);
    let not_json =
        call(&app, Method::PATCH, "/v1/creators/alpha", Some(&owner), Some(("application/json", b"{".to_vec()))).await;
    assert_eq!((not_json.status, not_json.problem), (400, true));

    // Agents read, but do not change the twin.
    let agent = staff(&app, "alpha", Role::Agent);
    assert_eq!(get(&app, "/v1/creators/alpha", &agent).await.status, 200);
    let denied = call(&app, Method::PATCH, "/v1/creators/alpha", Some(&agent), json(&json!({}))).await;
    assert_eq!(denied.status, 403);

    // The operator creates creators; a creator cannot.
    let new = json!({"slug": "gamma", "persona": {"name": "Gamma", "role": "sleep coach"}});
    assert_eq!(call(&app, Method::POST, "/v1/creators", Some(&owner), json(&new)).await.status, 403);
    let created = call(&app, Method::POST, "/v1/creators", Some(&admin), json(&new)).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["slug"], "gamma");
    assert_eq!(call(&app, Method::POST, "/v1/creators", Some(&admin), json(&new)).await.status, 409);
    let all = get(&app, "/v1/creators?limit=1", &admin).await;
    assert_eq!(all.body["items"][0]["slug"], "alpha");
    let next = all.body["next"].as_str().unwrap().to_owned();
    let rest = get(&app, &format!("/v1/creators?after={next}"), &admin).await;
    assert_eq!(rest.body["items"], json!([{"slug": "gamma", "version": 1}]));
    assert!(rest.body.get("next").is_none());
}

async fn conversations_users_messages_and_nudges_are_read_and_a_cancelled_nudge_is_gone(kind: Kind) {
    let app = spawn_app_with(kind, &[creator("alpha")]).await;
    let owner = staff(&app, "alpha", Role::Creator);
    for user in ["u1", "u2", "u3"] {
        chat_once(&app, "alpha", user).await;
    }
    let nudges = pending_nudges(&app, "alpha", &owner, 3).await;
    assert!(nudges.iter().all(|n| n["kind"] == "step:pause"), "{nudges:?}");

    // Conversations: pages by id, each with its state.
    let first = get(&app, "/v1/creators/alpha/conversations?limit=2", &owner).await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let after = first.body["next"].as_str().unwrap();
    let second = get(&app, &format!("/v1/creators/alpha/conversations?limit=2&after={after}"), &owner).await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 1);
    assert!(second.body.get("next").is_none());
    let conversation = &first.body["items"][0];
    assert_eq!(conversation["mode"], "program");
    assert_eq!(conversation["program"]["step"], "pause");
    assert_eq!(conversation["program"]["phase"], "clock");
    assert_eq!(conversation["pending_nudges"], 1);
    let id = conversation["id"].as_str().unwrap();
    let one = get(&app, &format!("/v1/creators/alpha/conversations/{id}"), &owner).await;
    assert_eq!(one.body, *conversation);

    // Messages by seq.
    let messages = get(&app, &format!("/v1/creators/alpha/conversations/{id}/messages?limit=1"), &owner).await;
    assert_eq!(messages.status, 200);
    assert_eq!(messages.body["items"][0]["origin"], "user");
    assert_eq!(messages.body["items"][0]["text"], "hello");
    let next = messages.body["next"].as_str().unwrap();
    let rest = get(&app, &format!("/v1/creators/alpha/conversations/{id}/messages?after={next}"), &owner).await;
    assert_eq!(rest.body["items"][0]["origin"], "program");

    // Users by id.
    let users = get(&app, "/v1/creators/alpha/users", &owner).await;
    let ids: Vec<&str> = users.body["items"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["u1", "u2", "u3"]);
    let user = get(&app, "/v1/creators/alpha/users/u2", &owner).await;
    assert_eq!(user.status, 200);
    assert_eq!(user.body["program"]["program"], "intro");
    assert_eq!(get(&app, "/v1/creators/alpha/users/nobody", &owner).await.status, 404);
    let enrol = call(
        &app,
        Method::POST,
        "/v1/creators/alpha/users/u2/enrolments",
        Some(&owner),
        json(&json!({"program": "intro"})),
    )
    .await;
    assert_eq!(enrol.status, 202, "{enrol:?}");
    let unknown = call(
        &app,
        Method::POST,
        "/v1/creators/alpha/users/u2/enrolments",
        Some(&owner),
        json(&json!({"program": "x"})),
    )
    .await;
    assert_eq!(unknown.status, 422);

    // Cancel one nudge: it leaves the pending list, shows as cancelled, and cannot be cancelled again.
    let nudges = pending_nudges(&app, "alpha", &owner, 3).await;
    let victim = nudges.iter().find(|n| n["user"] == "u1").unwrap()["id"].as_str().unwrap().to_owned();
    let cancel = call(&app, Method::DELETE, &format!("/v1/creators/alpha/nudges/{victim}"), Some(&owner), None).await;
    assert_eq!(cancel.status, 204, "{cancel:?}");
    let pending = get(&app, "/v1/creators/alpha/nudges", &owner).await;
    assert!(pending.body["items"].as_array().unwrap().iter().all(|n| n["id"] != victim.as_str()));
    let cancelled = get(&app, "/v1/creators/alpha/nudges?status=cancelled", &owner).await;
    assert!(cancelled.body["items"].as_array().unwrap().iter().any(|n| n["id"] == victim.as_str()), "{cancelled:?}");
    // The conversation forgets it too (its program timer is held until the user writes again).
    let u1 = get(&app, "/v1/creators/alpha/users/u1", &owner).await.body["conversation"].as_str().unwrap().to_owned();
    let mut forgotten = false;
    for _ in 0..200 {
        let conversation = get(&app, &format!("/v1/creators/alpha/conversations/{u1}"), &owner).await;
        if conversation.body["pending_nudges"] == 0 {
            forgotten = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(forgotten, "the conversation still lists the cancelled nudge");
    let again = call(&app, Method::DELETE, &format!("/v1/creators/alpha/nudges/{victim}"), Some(&owner), None).await;
    assert_eq!(again.status, 404);
    let bad = get(&app, "/v1/creators/alpha/nudges?status=sent", &owner).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["detail"].as_str().unwrap().starts_with("status"));
}

async fn knowledge_and_programs_are_written_through_the_import_path(kind: Kind) {
    let app = spawn_app_with(kind, &[creator("alpha")]).await;
    let owner = staff(&app, "alpha", Role::Creator);

    let listed = get(&app, "/v1/creators/alpha/knowledge", &owner).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body[0]["path"], "alpha/notes.md");

    let path = encode("guides/focus.md");
    let body = Some(("text/markdown", b"# Focus\n\nOne thing at a time.".to_vec()));
    let put =
        call(&app, Method::PUT, &format!("/v1/creators/alpha/knowledge/{path}"), Some(&owner), body.clone()).await;
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(put.body["path"], "guides/focus.md");
    let again = call(&app, Method::PUT, &format!("/v1/creators/alpha/knowledge/{path}"), Some(&owner), body).await;
    assert_eq!(again.status, 200);
    let read = get(&app, &format!("/v1/creators/alpha/knowledge/{path}"), &owner).await;
    assert_eq!(read.body["body"], "# Focus\n\nOne thing at a time.");
    // The reloaded twin embeds it in the background; the list shows when it is done.
    let mut status = Value::Null;
    for _ in 0..400 {
        let listed = get(&app, "/v1/creators/alpha/knowledge", &owner).await;
        let document = listed.body.as_array().unwrap().iter().find(|d| d["path"] == "guides/focus.md").unwrap().clone();
        status = document["status"].clone();
        if status == "ready" {
            assert!(document["chunks_total"].as_u64().unwrap() >= 1, "{document}");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, "ready");
    let wrong = Some(("image/png", vec![1, 2, 3]));
    let refused = call(&app, Method::PUT, "/v1/creators/alpha/knowledge/x.md", Some(&owner), wrong).await;
    assert_eq!(refused.status, 415);
    let outside = Some(("text/plain", b"x".to_vec()));
    let refused =
        call(&app, Method::PUT, &format!("/v1/creators/alpha/knowledge/{}", encode("../x.md")), Some(&owner), outside)
            .await;
    assert_eq!(refused.status, 422);
    let deleted = call(&app, Method::DELETE, &format!("/v1/creators/alpha/knowledge/{path}"), Some(&owner), None).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(get(&app, &format!("/v1/creators/alpha/knowledge/{path}"), &owner).await.status, 404);

    // Programs: validate, publish a new version, refuse one with problems.
    let yaml = |text: &str| Some(("application/yaml", text.as_bytes().to_vec()));
    let valid =
        call(&app, Method::POST, "/v1/creators/alpha/programs/validate", Some(&owner), yaml(common::PROGRAM)).await;
    assert_eq!(valid.body, json!({"valid": true, "problems": []}));
    let broken = "steps:\n  - id: a\n    goto: nowhere\n";
    let invalid = call(&app, Method::POST, "/v1/creators/alpha/programs/validate", Some(&owner), yaml(broken)).await;
    assert_eq!(invalid.status, 200);
    assert_eq!(invalid.body["valid"], false);
    assert!(!invalid.body["problems"].as_array().unwrap().is_empty(), "{invalid:?}");
    let changed = common::PROGRAM.replace("Welcome!", "Hello there!");
    let published = call(&app, Method::PUT, "/v1/creators/alpha/programs/intro", Some(&owner), yaml(&changed)).await;
    assert_eq!(published.body, json!({"id": "intro", "version": 2, "changed": true}), "{published:?}");
    let program = get(&app, "/v1/creators/alpha/programs/intro", &owner).await;
    assert_eq!(program.body["latest_version"], 2);
    assert_eq!(program.body["versions"][1]["source"], changed.as_str());
    let refused = call(&app, Method::PUT, "/v1/creators/alpha/programs/intro", Some(&owner), yaml(broken)).await;
    assert_eq!(refused.status, 422);
    assert_eq!(refused.body["valid"], false);
    let listed = get(&app, "/v1/creators/alpha/programs", &owner).await;
    assert_eq!(listed.body, json!([{"id": "intro", "latest_version": 2, "versions": 2}]));

    // A new user now starts on version 2.
    chat_once(&app, "alpha", "fresh").await;
    let user = get(&app, "/v1/creators/alpha/users/fresh", &owner).await;
    assert_eq!(user.body["program"]["version"], 2, "{user:?}");
}

#[tokio::test]
async fn creators_are_listed_read_created_and_changed_and_the_twin_uses_the_change_on_sqlite() {
    creators_are_listed_read_created_and_changed_and_the_twin_uses_the_change(Kind::Sqlite).await;
}

#[tokio::test]
async fn creators_are_listed_read_created_and_changed_and_the_twin_uses_the_change_on_postgres() {
    creators_are_listed_read_created_and_changed_and_the_twin_uses_the_change(Kind::Postgres).await;
}

#[tokio::test]
async fn conversations_users_messages_and_nudges_are_read_and_a_cancelled_nudge_is_gone_on_sqlite() {
    conversations_users_messages_and_nudges_are_read_and_a_cancelled_nudge_is_gone(Kind::Sqlite).await;
}

#[tokio::test]
async fn conversations_users_messages_and_nudges_are_read_and_a_cancelled_nudge_is_gone_on_postgres() {
    conversations_users_messages_and_nudges_are_read_and_a_cancelled_nudge_is_gone(Kind::Postgres).await;
}

#[tokio::test]
async fn knowledge_and_programs_are_written_through_the_import_path_on_sqlite() {
    knowledge_and_programs_are_written_through_the_import_path(Kind::Sqlite).await;
}

#[tokio::test]
async fn knowledge_and_programs_are_written_through_the_import_path_on_postgres() {
    knowledge_and_programs_are_written_through_the_import_path(Kind::Postgres).await;
}
