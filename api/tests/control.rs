//! Humans steering conversations through the whole server: a creator watching live takes a
//! conversation over, writes to the user (who sees it on their socket), releases it, and decides
//! on the twin's drafts; "test my twin" previews; and every refusal (other tenants, end users,
//! stale drafts, bad bodies).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "rest/common.rs"]
mod common;
mod support;

use std::time::Duration;

use common::{call, get, json, staff};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Client, Kind, TestApp, spawn_app_with};
use twin_api::auth::Role;
use twin_engine::{ConversationId, Slug, UserId};

fn free_chat(slug: &str) -> twin_api::bundle::Bundle {
    let mut bundle = twin_api::bundle::demo();
    bundle.programs.clear();
    bundle.profile.default_program = None;
    bundle.profile.slug = Slug::parse(slug).unwrap();
    bundle
}

fn conversation(slug: &str, user: &str) -> String {
    ConversationId::of(Slug::parse(slug).unwrap().creator_id(), &UserId::parse(user).unwrap()).0.to_string()
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> common::Answer {
    call(app, Method::POST, path, Some(token), json(&body)).await
}

/// The next live event of `kind` (skipping others).
async fn live_event(watcher: &mut Client, kind: &str) -> Value {
    loop {
        let frame = watcher.next_json().await;
        if frame["type"] == "event" && frame["event"]["kind"] == kind {
            return frame["event"].clone();
        }
    }
}

/// The next durable message frame on a user's socket (skipping acks and previews).
async fn next_message(user: &mut Client) -> Value {
    loop {
        let frame = user.next_json().await;
        if frame["type"] == "message" {
            return frame;
        }
    }
}

async fn origins(app: &TestApp, slug: &str, id: &str, token: &str) -> Vec<String> {
    let page = get(app, &format!("/v1/creators/{slug}/conversations/{id}/messages?limit=200"), token).await;
    assert_eq!(page.status, 200, "{page:?}");
    page.body["items"].as_array().unwrap().iter().map(|m| m["origin"].as_str().unwrap().to_owned()).collect()
}

async fn a_human_takes_over_writes_and_releases(kind: Kind) {
    let app = spawn_app_with(kind, &[free_chat("demo")]).await;
    let creator = staff(&app, "demo", Role::Creator);
    let mut watcher = app.connect_live(&creator, "").await.unwrap();
    let mut user = app.connect_with_token(&app.token_for("demo", "maria", Duration::from_secs(600))).await.unwrap();

    user.say("m1", "How do I protect my mornings?").await;
    user.until("ack").await;
    let (reply, _) = user.reply().await;
    assert_eq!(reply["origin"], "twin");
    let started = live_event(&mut watcher, "conversation_started").await;
    assert_eq!(started["kind"], "conversation_started");

    let id = conversation("demo", "maria");
    let base = format!("/v1/creators/demo/conversations/{id}");
    let taken = post(&app, &format!("{base}/takeover"), &creator, json!({})).await;
    assert_eq!(taken.status, 200, "{taken:?}");
    assert_eq!(taken.body["mode"], "human");
    assert_eq!(taken.body["control"]["held_by"], "staff", "a token without an account is named by its subject");
    assert_eq!(live_event(&mut watcher, "taken_over").await["by"], "staff");

    // The user writes while a human holds the conversation: acknowledged, shown live, no reply.
    user.say("m2", "Is someone there?").await;
    user.until("ack").await;
    let shown = live_event(&mut watcher, "message").await;
    assert_eq!((shown["message"]["origin"].as_str(), shown["message"]["seq"].as_u64()), (Some("user"), Some(3)));

    let sent =
        post(&app, &format!("{base}/messages"), &creator, json!({"text": "Yes, Maya here.", "client_id": "h1"})).await;
    assert_eq!((sent.status, sent.body["seq"].as_u64()), (201, Some(4)), "{sent:?}");
    let seen = next_message(&mut user).await;
    assert_eq!((seen["origin"].as_str(), seen["text"].as_str()), (Some("human"), Some("Yes, Maya here.")));
    // A retry with the same client id stores nothing new.
    let again =
        post(&app, &format!("{base}/messages"), &creator, json!({"text": "Yes, Maya here.", "client_id": "h1"})).await;
    assert_eq!((again.status, again.body["seq"].as_u64()), (201, Some(4)));

    let released = post(&app, &format!("{base}/release"), &creator, json!({})).await;
    assert_eq!(released.status, 200, "{released:?}");
    assert_eq!(released.body["control"]["held_by"], Value::Null);
    assert_eq!(live_event(&mut watcher, "released").await["by"], "staff");

    // Back with the twin: the next message gets its reply.
    user.say("m3", "Thanks! One more question.").await;
    user.until("ack").await;
    let (reply, _) = user.reply().await;
    assert_eq!(reply["seq"], 6);
    assert_eq!(origins(&app, "demo", &id, &creator).await, ["user", "twin", "user", "human", "user", "twin"]);
}

#[tokio::test]
async fn a_human_takes_over_writes_and_releases_on_sqlite() {
    a_human_takes_over_writes_and_releases(Kind::Sqlite).await;
}

#[tokio::test]
async fn a_human_takes_over_writes_and_releases_on_postgres() {
    a_human_takes_over_writes_and_releases(Kind::Postgres).await;
}

#[tokio::test]
async fn drafts_wait_for_approval_and_the_user_sees_only_what_was_approved() {
    let app = spawn_app_with(Kind::Sqlite, &[free_chat("demo")]).await;
    let agent = staff(&app, "demo", Role::Agent);
    let mut watcher = app.connect_live(&agent, "").await.unwrap();
    let mut user = app.connect_with_token(&app.token_for("demo", "maria", Duration::from_secs(600))).await.unwrap();
    user.say("m1", "hello").await;
    user.until("ack").await;
    user.reply().await;

    let id = conversation("demo", "maria");
    let base = format!("/v1/creators/demo/conversations/{id}");
    let on = call(&app, Method::PUT, &format!("{base}/drafts"), Some(&agent), json(&json!({"drafts": true}))).await;
    assert_eq!((on.status, &on.body["control"]["drafts"]), (200, &json!(true)), "{on:?}");

    user.say("m2", "What should I do first?").await;
    user.until("ack").await;
    let proposed = live_event(&mut watcher, "draft_proposed").await;
    let stream = proposed["stream"].as_str().unwrap().to_owned();
    let pending = get(&app, &base, &agent).await;
    assert_eq!(pending.body["control"]["draft"]["stream"], stream.as_str());

    // Refusals leave the draft pending.
    let bad = post(&app, &format!("{base}/draft"), &agent, json!({"stream": stream, "action": "publish"})).await;
    assert_eq!((bad.status, bad.problem), (422, true), "{bad:?}");
    let no_text = post(&app, &format!("{base}/draft"), &agent, json!({"stream": stream, "action": "edit"})).await;
    assert_eq!(no_text.status, 422);
    let stale = post(&app, &format!("{base}/draft"), &agent, json!({"stream": "r999", "action": "approve"})).await;
    assert_eq!((stale.status, stale.problem), (409, true), "{stale:?}");

    let edited = post(
        &app,
        &format!("{base}/draft"),
        &agent,
        json!({"stream": stream, "action": "edit", "text": "Start with one small step."}),
    )
    .await;
    assert_eq!(edited.status, 200, "{edited:?}");
    assert_eq!(edited.body["control"]["draft"], Value::Null);
    let seen = next_message(&mut user).await;
    assert_eq!((seen["origin"].as_str(), seen["text"].as_str()), (Some("human"), Some("Start with one small step.")));
    let twice = post(&app, &format!("{base}/draft"), &agent, json!({"stream": stream, "action": "approve"})).await;
    assert_eq!(twice.status, 409, "a decided draft cannot be decided again");

    user.say("m3", "And then?").await;
    user.until("ack").await;
    let stream = live_event(&mut watcher, "draft_proposed").await["stream"].as_str().unwrap().to_owned();
    let approved = post(&app, &format!("{base}/draft"), &agent, json!({"stream": stream, "action": "approve"})).await;
    assert_eq!(approved.status, 200);
    let seen = next_message(&mut user).await;
    assert_eq!(seen["origin"], "twin");
    assert_eq!(origins(&app, "demo", &id, &agent).await, ["user", "twin", "user", "human", "user", "twin"]);
}

#[tokio::test]
async fn other_tenants_and_end_users_cannot_steer_a_conversation() {
    let app = spawn_app_with(Kind::Postgres, &[free_chat("demo"), free_chat("other")]).await;
    let mut maria = app.connect_with_token(&app.token_for("demo", "maria", Duration::from_secs(600))).await.unwrap();
    maria.say("m1", "hello").await;
    maria.until("ack").await;
    maria.reply().await;
    let id = conversation("demo", "maria");
    let other = staff(&app, "other", Role::Creator);
    let user = app.token_for("demo", "maria", Duration::from_secs(600));
    let demo = staff(&app, "demo", Role::Creator);
    for (path, body) in [
        ("takeover", json!({})),
        ("release", json!({})),
        ("messages", json!({"text": "hi"})),
        ("draft", json!({"stream": "r1", "action": "reject"})),
    ] {
        let by_slug = post(&app, &format!("/v1/creators/demo/conversations/{id}/{path}"), &other, body.clone()).await;
        assert_eq!(by_slug.status, 404, "{path}: {by_slug:?}");
        let own_slug = post(&app, &format!("/v1/creators/other/conversations/{id}/{path}"), &other, body.clone()).await;
        assert_eq!(own_slug.status, 404, "{path} with another tenant's id: {own_slug:?}");
        let as_user = post(&app, &format!("/v1/creators/demo/conversations/{id}/{path}"), &user, body).await;
        assert_eq!(as_user.status, 403, "{path}: {as_user:?}");
    }
    let view = get(&app, &format!("/v1/creators/demo/conversations/{id}"), &demo).await;
    assert_eq!(view.body["control"]["held_by"], Value::Null, "nothing changed: {view:?}");
    let empty =
        post(&app, &format!("/v1/creators/demo/conversations/{id}/messages"), &demo, json!({"text": " "})).await;
    assert_eq!((empty.status, empty.problem), (422, true));
    let unknown =
        post(&app, &format!("/v1/creators/demo/conversations/{}/takeover", uuid::Uuid::nil()), &demo, json!({})).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn test_my_twin_previews_a_program_and_fast_forwards_its_timers() {
    let app = spawn_app_with(Kind::Sqlite, &[common::creator("demo")]).await;
    let creator = staff(&app, "demo", Role::Creator);
    let started = post(&app, "/v1/creators/demo/preview", &creator, json!({"program": "intro"})).await;
    assert_eq!(started.status, 200, "{started:?}");
    assert_eq!(started.body["user"], "preview:staff");
    let token = started.body["token"].as_str().unwrap().to_owned();
    let mut chat = app.connect_with_token(&token).await.unwrap();
    let history = chat.resume_all(0, 50).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["text"], "Welcome! Back in an hour.", "the program started before the chat opened");

    let id = started.body["conversation"].as_str().unwrap().to_owned();
    let view = get(&app, &format!("/v1/creators/demo/conversations/{id}"), &creator).await;
    assert_eq!((view.body["preview"].as_bool(), view.body["pending_nudges"].as_u64()), (Some(true), Some(1)));

    let forward = post(&app, "/v1/creators/demo/preview/fast-forward", &creator, json!({})).await;
    assert_eq!(forward.status, 200, "{forward:?}");
    assert!(forward.body["fired"].is_string());
    let later = next_message(&mut chat).await;
    assert_eq!(later["text"], "An hour later.", "the hour passed in a click");
    let nothing = post(&app, "/v1/creators/demo/preview/fast-forward", &creator, json!({})).await;
    assert_eq!(nothing.body["fired"], Value::Null);

    // A reset starts from an empty conversation; an unknown program is refused.
    let again = post(&app, "/v1/creators/demo/preview", &creator, json!({"reset": true})).await;
    assert_eq!(again.status, 200);
    let page = get(&app, &format!("/v1/creators/demo/conversations/{id}/messages"), &creator).await;
    assert_eq!(page.status, 404, "the previous preview is erased: {page:?}");
    let unknown = post(&app, "/v1/creators/demo/preview", &creator, json!({"program": "nope"})).await;
    assert_eq!(unknown.status, 422);
    let user = app.token_for("demo", "maria", Duration::from_secs(600));
    assert_eq!(post(&app, "/v1/creators/demo/preview", &user, json!({})).await.status, 403);
}

#[tokio::test]
async fn the_dashboards_own_origin_may_open_a_preview_socket_when_the_creator_lists_origins() {
    let mut bundle = common::creator("demo");
    bundle.profile.allowed_origins = vec!["https://maya.example".to_owned()];
    let app = spawn_app_with(Kind::Sqlite, &[bundle]).await;
    let creator = staff(&app, "demo", Role::Creator);
    let preview = post(&app, "/v1/creators/demo/preview", &creator, json!({})).await;
    let token = preview.body["token"].as_str().unwrap().to_owned();
    let open = |origin: String| {
        let url = format!("ws://{}/v1/chat?token={token}", app.addr);
        async move {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest;
            let mut request = url.into_client_request().unwrap();
            request.headers_mut().insert("origin", origin.parse().unwrap());
            tokio_tungstenite::connect_async(request).await.map(|_| ()).map_err(|e| e.to_string())
        }
    };
    assert!(open(format!("http://{}", app.addr)).await.is_ok(), "the server's own page");
    assert!(open("https://maya.example".to_owned()).await.is_ok(), "a listed origin");
    let refused = open("https://elsewhere.example".to_owned()).await.unwrap_err();
    assert!(refused.contains("403"), "{refused}");
    let other_port = open(format!("http://127.0.0.1:{}", app.addr.port().wrapping_add(1))).await.unwrap_err();
    assert!(other_port.contains("403"), "another port on the same host is another origin: {other_port}");
}
