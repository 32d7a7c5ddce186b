//! The live view (`/v1/live`) through the whole server: a creator watches a user's conversation as
//! it happens, the snapshot lists active conversations, one conversation can be watched alone, and
//! a watcher sees only its own tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, Kind, TestApp, spawn_app_with};
use tokio_tungstenite::tungstenite::http::StatusCode;
use twin_api::auth::Role;
use twin_engine::{ConversationId, Slug, UserId};

fn bundle(slug: &str) -> twin_api::bundle::Bundle {
    let mut bundle = twin_api::bundle::demo();
    bundle.programs.clear();
    bundle.profile.default_program = None;
    bundle.profile.slug = Slug::parse(slug).unwrap();
    bundle
}

fn staff_token(app: &TestApp, slug: &str, role: Role) -> String {
    let creator = Slug::parse(slug).unwrap().creator_id();
    app.keys.mint(creator, &UserId::parse("acct-1").unwrap(), role, Duration::from_secs(600)).unwrap()
}

fn conversation(slug: &str, user: &str) -> String {
    ConversationId::of(Slug::parse(slug).unwrap().creator_id(), &UserId::parse(user).unwrap()).0.to_string()
}

/// The next frame of a type other than `pong`.
async fn next(watcher: &mut Client) -> Value {
    loop {
        let frame = watcher.next_json().await;
        if frame["type"] != "pong" {
            return frame;
        }
    }
}

/// Events until a twin message arrives (the end of one exchange), in order.
async fn until_twin_message(watcher: &mut Client) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = next(watcher).await;
        let done = frame["event"]["kind"] == "message" && frame["event"]["message"]["origin"] == "twin";
        seen.push(frame);
        if done {
            return seen;
        }
    }
}

async fn chat(app: &TestApp, slug: &str, user: &str, text: &str) {
    let token = app.token_for(slug, user, Duration::from_secs(600));
    let mut client = app.connect_with_token(&token).await.unwrap();
    // A fresh client id per message: a repeated id is a resend, acknowledged and not answered again.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = format!("c{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    client.say(&id, text).await;
    client.until("ack").await;
    client.reply().await;
}

async fn a_creator_watches_a_conversation_as_it_happens(kind: Kind) {
    let app = spawn_app_with(kind, &[bundle("demo")]).await;
    let mut watcher = app.connect_live(&staff_token(&app, "demo", Role::Creator), "").await.unwrap();
    let snapshot = next(&mut watcher).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["conversations"], json!([]));

    chat(&app, "demo", "maria", "How do I protect my mornings?").await;
    let seen = until_twin_message(&mut watcher).await;
    assert!(seen.iter().all(|f| f["type"] == "event" && f["conversation"] == conversation("demo", "maria")));
    let kinds: Vec<&str> = seen.iter().filter_map(|f| f["event"]["kind"].as_str()).collect();
    let user_message = seen.iter().position(|f| f["event"]["message"]["origin"] == "user").unwrap();
    let started = kinds.iter().position(|k| *k == "reply_started").unwrap();
    assert!(user_message < started && started < kinds.len() - 1, "{kinds:?}");
    assert_eq!(seen[user_message]["event"]["message"]["text"], "How do I protect my mornings?");
    assert_eq!(seen[user_message]["event"]["message"]["seq"], 1);

    // A watcher that comes in now is told about the active conversation first.
    let mut late = app.connect_live(&staff_token(&app, "demo", Role::Agent), "").await.unwrap();
    let snapshot = next(&mut late).await;
    let listed = snapshot["conversations"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{snapshot}");
    assert_eq!(listed[0]["id"], conversation("demo", "maria"));
    assert_eq!(listed[0]["user"], "maria");
}

#[tokio::test]
async fn a_creator_watches_a_conversation_as_it_happens_on_sqlite() {
    a_creator_watches_a_conversation_as_it_happens(Kind::Sqlite).await;
}

#[tokio::test]
async fn a_creator_watches_a_conversation_as_it_happens_on_postgres() {
    a_creator_watches_a_conversation_as_it_happens(Kind::Postgres).await;
}

#[tokio::test]
async fn a_watcher_sees_only_its_tenant_and_only_the_conversation_it_follows() {
    let app = spawn_app_with(Kind::Postgres, &[bundle("demo"), bundle("other")]).await;
    chat(&app, "demo", "maria", "hello").await;
    let demo_conversation = conversation("demo", "maria");

    // Refused: end users, another tenant's creator by name, another tenant's conversation.
    let user = app.token_for("demo", "maria", Duration::from_secs(600));
    assert_eq!(app.connect_live(&user, "").await.err(), Some(StatusCode::FORBIDDEN));
    let other = staff_token(&app, "other", Role::Creator);
    assert_eq!(app.connect_live(&other, "&creator=demo").await.err(), Some(StatusCode::NOT_FOUND));
    let foreign = format!("&conversation={demo_conversation}");
    assert_eq!(app.connect_live(&other, &foreign).await.err(), Some(StatusCode::NOT_FOUND));
    let admin = staff_token(&app, "other", Role::Admin);
    assert_eq!(app.connect_live(&admin, "").await.err(), Some(StatusCode::BAD_REQUEST));

    // The other creator's watcher: demo's conversation is neither in its snapshot nor its stream.
    let mut watcher = app.connect_live(&other, "").await.unwrap();
    assert_eq!(next(&mut watcher).await["conversations"], json!([]));
    chat(&app, "demo", "maria", "second message").await;
    chat(&app, "other", "olga", "hi").await;
    let seen = until_twin_message(&mut watcher).await;
    assert!(seen.iter().all(|f| f["conversation"] == conversation("other", "olga")), "{seen:#?}");

    // Following one conversation: the others' events do not arrive.
    let mut follower = app
        .connect_live(&staff_token(&app, "demo", Role::Agent), &format!("&conversation={demo_conversation}"))
        .await
        .unwrap();
    let snapshot = next(&mut follower).await;
    assert_eq!(snapshot["conversations"][0]["id"], demo_conversation);
    chat(&app, "demo", "someone-else", "not for the follower").await;
    chat(&app, "demo", "maria", "for the follower").await;
    let seen = until_twin_message(&mut follower).await;
    assert!(seen.iter().all(|f| f["conversation"] == demo_conversation), "{seen:#?}");
    assert!(seen.iter().any(|f| f["event"]["message"]["text"] == "for the follower"));

    // Subscribing to all again answers with a fresh snapshot of every active conversation.
    follower.send(json!({"type": "subscribe", "conversation": null})).await;
    let snapshot = next(&mut follower).await;
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["conversations"].as_array().unwrap().len(), 2, "{snapshot}");
    follower.send(json!({"type": "subscribe", "conversation": conversation("other", "olga")})).await;
    let refused = next(&mut follower).await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "not_found");
    follower.send(json!({"type": "ping"})).await;
    assert_eq!(follower.next_json().await["type"], "pong");
}

#[tokio::test]
async fn a_watcher_that_falls_behind_is_told_and_gets_a_fresh_snapshot() {
    // A watcher may fall behind by one event: a step publishes several at once (the message, the
    // reply starting, its previews), so the watcher's queue overflows while the chat goes on.
    let app = support::spawn_app_configured(Kind::Sqlite, |s| s.live_buffer = 1).await;
    let mut watcher = app.connect_live(&staff_token(&app, "demo", Role::Creator), "").await.unwrap();
    assert_eq!(next(&mut watcher).await["type"], "snapshot");
    let token = app.token_for("demo", "maria", Duration::from_secs(600));
    let mut user = app.connect_with_token(&token).await.unwrap();
    for n in 0..20 {
        user.say(&format!("m{n}"), "Tell me about focus and mornings, at length please.").await;
        user.until("ack").await;
        loop {
            let frame = user.next_json().await;
            if frame["type"] == "message" && frame["origin"] != "user" {
                break;
            }
        }
        // Whatever the watcher was sent so far: a `lagged` must be followed by a snapshot.
        while let Ok(frame) = tokio::time::timeout(Duration::from_millis(200), next(&mut watcher)).await {
            if frame["type"] == "lagged" {
                assert!(frame["missed"].as_u64().unwrap() >= 1, "{frame}");
                let fresh = next(&mut watcher).await;
                assert_eq!(fresh["type"], "snapshot", "{fresh}");
                let listed = fresh["conversations"].as_array().unwrap();
                assert!(listed.iter().any(|c| c["user"] == "maria"), "{fresh}");
                return;
            }
        }
    }
    panic!("the watcher never lagged with a one-event queue");
}
