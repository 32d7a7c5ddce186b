//! GDPR through the whole server, on SQLite and PostgreSQL: a user chats over the WebSocket, the
//! creator exports their data as an archive and erases it, and the user comes back to a fresh,
//! empty conversation; a whole creator is erased with its vectors; only the creator or an admin
//! may do any of it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;
use support::*;
use twin_api::auth::Role;
use twin_engine::ports::{IngestState, KnowledgeStore};
use twin_engine::{CreatorId, Slug, UserId};

macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Postgres).await } )*
        }
    };
}

both_backends!(
    a_user_exports_their_data_is_erased_and_starts_afresh,
    only_the_creator_or_an_admin_may_export_or_erase_and_others_learn_nothing,
    erasing_a_creator_removes_its_rows_and_vectors_and_needs_a_confirmation,
);

fn creator_of(slug: &str) -> CreatorId {
    Slug::parse(slug).unwrap().creator_id()
}

fn token(app: &TestApp, slug: &str, subject: &str, role: Role) -> String {
    app.keys.mint(creator_of(slug), &UserId::parse(subject).unwrap(), role, Duration::from_secs(600)).unwrap()
}

async fn call(app: &TestApp, method: reqwest::Method, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new().request(method, app.url(path)).bearer_auth(token).send().await.unwrap()
}

/// The files of a zip archive by name.
fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a zip archive");
    let mut files = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        files.insert(file.name().unwrap().to_string(), text);
    }
    files
}

/// Rows of `table` for the creator, counted directly (as the superuser on PostgreSQL).
async fn rows(app: &TestApp, table: &str, creator: CreatorId) -> i64 {
    let column = if table == "creators" { "id" } else { "creator_id" };
    match app.db.kind() {
        Kind::Postgres => {
            let mut conn = app.db.superuser().await;
            let sql = format!("SELECT count(*) FROM {table} WHERE {column} = $1");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(creator.0).fetch_one(&mut conn).await.unwrap()
        }
        Kind::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            let sql = format!("SELECT count(*) FROM {table} WHERE {column} = ?");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(creator.0.hyphenated().to_string())
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
    }
}

async fn a_user_exports_their_data_is_erased_and_starts_afresh(kind: Kind) {
    let app = spawn_app(kind).await;
    let owner = token(&app, "demo", "owner", Role::Creator);
    let mut client = app.connect_ws("alice").await;
    client.say("c1", "How do I protect my focus?").await;
    client.until("ack").await;
    let (reply, _) = client.reply().await;
    let answer = reply["text"].as_str().unwrap().to_owned();
    // Someone else of the same creator, who must survive alice's erasure.
    let mut bob = app.connect_ws("bob").await;
    bob.say("b1", "hello").await;
    bob.until("ack").await;
    bob.reply().await;

    let response = call(&app, reqwest::Method::GET, "/v1/creators/demo/users/alice/export", &owner).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let files = unzip(&response.bytes().await.unwrap());
    let manifest: Value = serde_json::from_str(&files["export.json"]).unwrap();
    assert_eq!(manifest["format"], "twin-user-export/1");
    assert_eq!(manifest["user"], "alice");
    assert_eq!(manifest["counts"]["messages"], 2);
    for name in manifest["files"].as_array().unwrap() {
        assert!(files.contains_key(name.as_str().unwrap()), "the manifest names {name}");
    }
    let messages: Vec<Value> = files["messages.jsonl"].lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["body"], "How do I protect my focus?");
    assert_eq!(messages[1]["body"].as_str().unwrap(), answer);
    let conversation: Value = serde_json::from_str(&files["conversation.json"]).unwrap();
    assert_eq!(conversation["user"], "alice");
    assert!(conversation["state"].is_object(), "the conversation's state");
    let knowledge: Value = serde_json::from_str(&files["knowledge.json"]).unwrap();
    assert_eq!(knowledge["uploaded"], serde_json::json!([]), "end users upload no knowledge");
    assert!(!files["messages.jsonl"].contains("hello"), "nothing of bob");

    let response = call(&app, reqwest::Method::DELETE, "/v1/creators/demo/users/alice", &owner).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["rows"]["messages"], 2);
    assert_eq!(report["rows"]["conversations"], 1);
    assert!(!report.to_string().contains("alice"), "the report names no one: {report}");

    let demo = creator_of("demo");
    let alice = twin_engine::ConversationId::of(demo, &UserId::parse("alice").unwrap());
    let bobs = twin_engine::ConversationId::of(demo, &UserId::parse("bob").unwrap());
    let history = |id| {
        let store = app.db.store.clone();
        async move { twin_engine::ports::ConversationStore::history(&store, demo, id, twin_engine::Seq(0), 100).await }
    };
    assert!(history(alice).await.unwrap().is_empty(), "alice's messages are gone from the store");
    assert_eq!(history(bobs).await.unwrap().len(), 2, "bob's are intact");
    let gone = call(&app, reqwest::Method::GET, "/v1/creators/demo/users/alice/export", &owner).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let again = call(&app, reqwest::Method::DELETE, "/v1/creators/demo/users/alice", &owner).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND, "nothing left to erase");

    // The export and the erasure are in the creator's audit log, without naming alice.
    let audit: Value = call(&app, reqwest::Method::GET, "/v1/creators/demo/audit", &owner).await.json().await.unwrap();
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(actions.contains(&"gdpr.user_erasure") && actions.contains(&"gdpr.user_export"), "{audit}");
    assert!(!audit.to_string().contains("alice"), "the audit log names no end user: {audit}");

    // Back again: the engine held her conversation in memory; it must not come back.
    let mut returning = app.connect_ws("alice").await;
    assert!(returning.resume_all(0, 100).await.is_empty(), "a fresh, empty history");
    returning.say("c2", "Hi again").await;
    let (ack, _) = returning.until("ack").await;
    assert_eq!(ack["seq"], 1, "a fresh conversation starts at seq 1");
    let (reply, _) = returning.reply().await;
    assert_eq!(reply["seq"], 2);
    let stored = history(alice).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].text, "Hi again", "nothing of the erased history was written back");
}

async fn only_the_creator_or_an_admin_may_export_or_erase_and_others_learn_nothing(kind: Kind) {
    let mut other = twin_api::bundle::demo();
    other.programs.clear();
    other.profile.default_program = None;
    let mut demo = other.clone();
    other.profile.slug = Slug::parse("other").unwrap();
    demo.profile.slug = Slug::parse("demo").unwrap();
    let app = support::spawn_app_with(kind, &[demo, other]).await;
    let mut client = app.connect_ws("alice").await;
    client.say("c1", "hello").await;
    client.until("ack").await;
    client.reply().await;

    let export = "/v1/creators/demo/users/alice/export";
    let erase = "/v1/creators/demo/users/alice";
    for (who, token) in [
        ("an agent", token(&app, "demo", "helper", Role::Agent)),
        ("the user themself", token(&app, "demo", "alice", Role::User)),
    ] {
        for (method, path) in [
            (reqwest::Method::GET, export),
            (reqwest::Method::DELETE, erase),
            (reqwest::Method::GET, "/v1/creators/demo/export"),
            (reqwest::Method::DELETE, "/v1/creators/demo?confirm=demo"),
        ] {
            let response = call(&app, method.clone(), path, &token).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{who}: {method} {path}");
        }
    }
    let anonymous = reqwest::Client::new().get(app.url(export)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Another creator: the same 404 as for a creator that does not exist.
    let intruder = token(&app, "other", "owner", Role::Creator);
    let foreign = call(&app, reqwest::Method::GET, export, &intruder).await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let foreign_body: Value = foreign.json().await.unwrap();
    let missing = call(
        &app,
        reqwest::Method::GET,
        "/v1/creators/demo/users/alice/export",
        &token(&app, "ghost", "o", Role::Creator),
    )
    .await;
    let missing_body: Value = missing.json().await.unwrap();
    assert_eq!(foreign_body, missing_body, "no difference between another tenant's creator and no creator");
    let foreign_erase = call(&app, reqwest::Method::DELETE, erase, &intruder).await;
    assert_eq!(foreign_erase.status(), StatusCode::NOT_FOUND);
    // Under its own path, the other creator has no alice: the same body as for any unknown user.
    let theirs = call(&app, reqwest::Method::GET, "/v1/creators/other/users/alice/export", &intruder).await;
    assert_eq!(theirs.status(), StatusCode::NOT_FOUND);
    let theirs: Value = theirs.json().await.unwrap();
    let owner = token(&app, "demo", "owner", Role::Creator);
    let unknown: Value =
        call(&app, reqwest::Method::GET, "/v1/creators/demo/users/ghost/export", &owner).await.json().await.unwrap();
    assert_eq!(theirs, unknown);

    // Nothing was touched: the creator and an admin can still export alice.
    let admin = token(&app, "other", "operator", Role::Admin);
    for token in [&owner, &admin] {
        assert_eq!(call(&app, reqwest::Method::GET, export, token).await.status(), StatusCode::OK);
    }
    let erased = call(&app, reqwest::Method::DELETE, erase, &admin).await;
    assert_eq!(erased.status(), StatusCode::OK, "an admin may erase");
}

async fn erasing_a_creator_removes_its_rows_and_vectors_and_needs_a_confirmation(kind: Kind) {
    let app = spawn_app(kind).await;
    let demo = creator_of("demo");
    let mut client = app.connect_ws("alice").await;
    client.say("c1", "How long is a focus block?").await;
    client.until("ack").await;
    client.reply().await;
    // The twin embeds its knowledge in the background after it loads.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let statuses = app.db.store.ingestion(demo).await.unwrap();
        if !statuses.is_empty() && statuses.iter().all(|s| s.state == IngestState::Ready) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the knowledge was not ingested: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rows(&app, "knowledge_vectors", demo).await > 0, "the embedded index holds the demo's vectors");

    let owner = token(&app, "demo", "owner", Role::Creator);
    let response = call(&app, reqwest::Method::GET, "/v1/creators/demo/export", &owner).await;
    assert_eq!(response.status(), StatusCode::OK);
    let files = unzip(&response.bytes().await.unwrap());
    assert!(files.contains_key("bundle/demo/creator.toml"), "the creator bundle: {:?}", files.keys());
    assert!(files.keys().any(|f| f.starts_with("bundle/demo/knowledge/")));
    let manifest: Value = serde_json::from_str(&files["export.json"]).unwrap();
    assert_eq!(manifest["counts"]["messages"], 2);
    assert!(manifest["counts"]["knowledge_vectors"].as_u64().unwrap() > 0);
    assert!(files["messages.jsonl"].contains("How long is a focus block?"));

    let unconfirmed = call(&app, reqwest::Method::DELETE, "/v1/creators/demo", &owner).await;
    assert_eq!(unconfirmed.status(), StatusCode::BAD_REQUEST);
    let mistyped = call(&app, reqwest::Method::DELETE, "/v1/creators/demo?confirm=dem", &owner).await;
    assert_eq!(mistyped.status(), StatusCode::BAD_REQUEST);
    assert!(rows(&app, "messages", demo).await > 0, "nothing erased without the confirmation");

    // The creator's team goes with it.
    let agent = reqwest::Client::new()
        .post(app.url("/v1/creators/demo/agents"))
        .bearer_auth(&owner)
        .json(&serde_json::json!({"email": "helper@demo.example", "password": "a long enough password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(agent.status(), StatusCode::CREATED);
    assert_eq!(rows(&app, "accounts", demo).await, 1);

    let response = call(&app, reqwest::Method::DELETE, "/v1/creators/demo?confirm=demo", &owner).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["rows"]["creators"], 1);
    assert_eq!(report["rows"]["accounts"], 1);
    assert_eq!(report["rows"]["messages"], 2);
    for table in twin_store::gdpr::CREATOR_TABLES.iter().chain(&["creators"]) {
        assert_eq!(rows(&app, table, demo).await, 0, "{table} still holds rows of the erased creator");
    }
    assert!(app.db.store.vectors(demo, "any").await.unwrap().is_empty());
    let gone = call(&app, reqwest::Method::GET, "/v1/creators/demo/export", &owner).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let again = call(&app, reqwest::Method::DELETE, "/v1/creators/demo?confirm=demo", &owner).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}
