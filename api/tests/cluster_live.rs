//! Two nodes of one cluster in one test process: two `Application`s on one PostgreSQL database
//! and the Redis server on this machine (`TWIN_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).
//! A creator watching through node B sees a conversation node A runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use support::{Kind, spawn_app_configured};
use twin_api::auth::Role;
use twin_api::settings::{Overrides, Secret};
use twin_api::startup::ServeOptions;
use twin_api::{Application, Settings};
use twin_engine::{ConversationId, Slug, UserId};

/// Both nodes: cluster mode, and one signing secret so a token minted for one is good on both.
fn cluster(settings: &mut Settings) {
    let redis = std::env::var("TWIN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    settings.redis_url = Some(Secret::new(redis));
    settings.jwt.secret = Some(Secret::new("a-test-secret-shared-by-both-nodes-0123456789"));
}

#[tokio::test]
async fn a_watcher_on_one_node_sees_a_conversation_another_node_runs() {
    let a = spawn_app_configured(Kind::Postgres, cluster).await;

    // Node B: another server on the same database.
    let b_data = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(b_data.path().to_path_buf()),
        database_url: Some(a.db.url.clone()),
    };
    let mut settings = Settings::defaults(&overrides).unwrap();
    cluster(&mut settings);
    let b = Application::build(settings, ServeOptions { demo: false, creators: None }).await.expect("node B starts");
    let b_addr = b.local_addr();
    let b_running = tokio::spawn(b.run_until(std::future::pending()));

    let creator = Slug::parse("demo").unwrap().creator_id();
    let token =
        a.keys.mint(creator, &UserId::parse("acct-1").unwrap(), Role::Creator, Duration::from_secs(600)).unwrap();
    let (mut watcher, _) = tokio_tungstenite::connect_async(format!("ws://{b_addr}/v1/live?token={token}"))
        .await
        .expect("node B opens the live view");
    let snapshot = next_json(&mut watcher).await;
    assert_eq!(snapshot["type"], "snapshot");

    // The user talks to node A.
    let mut user = a.connect_ws("maria").await;
    user.say("m1", "How do I protect my mornings?").await;
    assert_eq!(user.next_json().await["type"], "ack");
    let (reply, _) = user.reply().await;

    let conversation = ConversationId::of(creator, &UserId::parse("maria").unwrap()).0.to_string();
    let mut kinds = Vec::new();
    loop {
        let frame = next_json(&mut watcher).await;
        assert_eq!(frame["type"], "event", "{frame}");
        assert_eq!(frame["conversation"], conversation.as_str());
        let event = &frame["event"];
        kinds.push(event["kind"].as_str().unwrap_or_default().to_owned());
        if event["kind"] == "message" && event["message"]["origin"] == "twin" {
            assert_eq!(event["message"]["text"], reply["text"]);
            break;
        }
    }
    let user_message = kinds.iter().position(|k| k == "message").expect("the user's message first");
    let started = kinds.iter().position(|k| k == "reply_started").expect("then the reply");
    assert!(user_message < started, "in order: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "reply_started").count(), 1, "once: {kinds:?}");
    b_running.abort();
}

async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    loop {
        let message = tokio::time::timeout(support::FRAME_TIMEOUT, socket.next())
            .await
            .expect("a frame within the timeout")
            .expect("the socket is open")
            .expect("a frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}
