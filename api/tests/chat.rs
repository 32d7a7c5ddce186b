//! End-to-end chat over a real socket, against SQLite and against PostgreSQL (connected as in
//! production, so row-level security is in force).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{Frame, Kind, spawn_app};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::StatusCode;

/// Runs each scenario once per backend.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Postgres).await })*
        }
    };
}

on_both_backends!(
    a_message_is_acked_then_streamed_then_final,
    a_retry_with_the_same_id_is_stored_and_answered_once,
    after_a_restart_resume_returns_the_whole_history_in_batches,
    bad_frames_get_error_frames_and_the_connection_survives,
    a_frame_over_the_transport_limit_closes_with_1009,
    missing_expired_and_forged_tokens_get_401_before_the_upgrade,
);

async fn a_message_is_acked_then_streamed_then_final(kind: Kind) {
    let app = spawn_app(kind).await;
    let mut client = app.connect_ws("alice").await;
    client.say("c1", "How do I protect my focus?").await;

    let ack = client.next_json().await;
    assert_eq!(ack, json!({"type": "ack", "id": "c1", "seq": 1}));
    let (message, previews) = client.reply().await;
    assert_eq!(message["seq"], 2);
    assert_eq!(message["origin"], "twin");
    assert!(!previews.is_empty(), "the reply streamed as deltas first");
    assert_eq!(message["text"].as_str().unwrap(), previews, "the final message carries the whole streamed text");
    assert!(message["stream"].is_string());
    assert!(message["text"].as_str().unwrap().len() > 40, "a real answer from the demo knowledge");

    client.send(json!({"type": "ping"})).await;
    assert_eq!(client.next_json().await, json!({"type": "pong"}));
}

async fn a_retry_with_the_same_id_is_stored_and_answered_once(kind: Kind) {
    let app = spawn_app(kind).await;
    let mut client = app.connect_ws("bob").await;
    client.say("same", "hello").await;
    assert_eq!(client.next_json().await["seq"], 1);
    client.reply().await;

    // The client did not see the ack (say) and resends on a new connection.
    let mut again = app.connect_ws("bob").await;
    again.say("same", "hello").await;
    assert_eq!(again.next_json().await, json!({"type": "ack", "id": "same", "seq": 1}));
    // Had the retry been stored or answered again, this would not be seq 3.
    again.say("next", "and sleep?").await;
    let (ack, _) = again.until("ack").await;
    assert_eq!(ack["seq"], 3);
    let (reply, _) = again.reply().await;
    assert_eq!(reply["seq"], 4);
    let history = again.resume_all(0, 100).await;
    assert_eq!(history.len(), 4);
}

async fn after_a_restart_resume_returns_the_whole_history_in_batches(kind: Kind) {
    let mut app = spawn_app(kind).await;
    let mut client = app.connect_ws("carol").await;
    for i in 0..3 {
        client.say(&format!("c{i}"), "tell me about habits").await;
        client.until("ack").await;
        client.reply().await;
    }
    drop(client);
    app.restart().await;

    let mut client = app.connect_ws("carol").await;
    let history = client.resume_all(0, 4).await;
    let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(history[0]["origin"], "user");
    assert_eq!(history[0]["id"], "c0", "user messages come back with their client id");
    assert_eq!(history[1]["origin"], "twin");

    client.send(json!({"type": "resume", "after": 4, "limit": 1})).await;
    let (resumed, batch) = client.until("resumed").await;
    assert_eq!(batch.len(), 1);
    assert_eq!(resumed, json!({"type": "resumed", "up_to": 5, "more": true}));

    // The conversation goes on where it was: the next seq follows the stored ones.
    client.say("c9", "and focus?").await;
    let (ack, _) = client.until("ack").await;
    assert_eq!(ack["seq"], 7);
}

async fn bad_frames_get_error_frames_and_the_connection_survives(kind: Kind) {
    let app = spawn_app(kind).await;
    let mut client = app.connect_ws("dave").await;
    let cases = [
        (Message::text("{not json"), "bad_json"),
        (Message::text(r#"{"type":"shout"}"#), "unknown_type"),
        (Message::text(r#"{"type":"message","text":"no id"}"#), "missing_field"),
        (Message::text(format!(r#"{{"type":"message","id":"big","text":"{}"}}"#, "x".repeat(70 * 1024))), "too_large"),
        (Message::binary(vec![1u8, 2, 3]), "binary_not_supported"),
        (Message::text(r#"{"type":"message","id":"e","text":"   "}"#), "invalid_field"),
    ];
    for (frame, code) in cases {
        client.send_raw(frame).await;
        let error = client.next_json().await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["code"], code, "{error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Still alive, and the conversation too.
    client.say("ok", "hi").await;
    assert_eq!(client.next_json().await, json!({"type": "ack", "id": "ok", "seq": 1}));
}

async fn a_frame_over_the_transport_limit_closes_with_1009(kind: Kind) {
    let app = spawn_app(kind).await;
    let mut client = app.connect_ws("erin").await;
    client.send_raw(Message::text("x".repeat(2 * 1024 * 1024))).await;
    match client.next().await {
        Frame::Closed(code) => assert_eq!(code, Some(1009)),
        other => panic!("expected a close with 1009, got {other:?}"),
    }
}

async fn missing_expired_and_forged_tokens_get_401_before_the_upgrade(kind: Kind) {
    let app = spawn_app(kind).await;
    // Expired long beyond the 30 s leeway, signed with the server's own key.
    let old = {
        let claims = json!({"sub": "u", "tenant": twin_engine::Slug::parse("demo").unwrap().creator_id().to_string(),
            "role": "user", "iat": 1_000, "exp": 2_000, "aud": "twin", "iss": "twin", "jti": "j"});
        app.keys.sign(&claims).unwrap()
    };
    let forged = twin_api::auth::TokenKeys::from_secret(&[7; 32], "twin", "twin")
        .mint(
            twin_engine::Slug::parse("demo").unwrap().creator_id(),
            &twin_engine::UserId::parse("u").unwrap(),
            twin_api::auth::Role::User,
            Duration::from_secs(60),
        )
        .unwrap();
    let unsigned = {
        let real = app.token("u");
        let payload = real.split('.').nth(1).unwrap().to_owned();
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
    };
    for token in ["", "garbage", old.as_str(), forged.as_str(), unsigned.as_str()] {
        assert_eq!(app.connect_with_token(token).await.err(), Some(StatusCode::UNAUTHORIZED), "token {token:?}");
    }
    assert_eq!(app.connect_with_header(("x-nothing", "1")).await.err(), Some(StatusCode::UNAUTHORIZED));
    let bearer = format!("Bearer {}", app.token("u"));
    assert!(app.connect_with_header(("authorization", &bearer)).await.is_ok(), "a header token works too");

    let creator = app
        .keys
        .mint(
            twin_engine::Slug::parse("demo").unwrap().creator_id(),
            &twin_engine::UserId::parse("demo").unwrap(),
            twin_api::auth::Role::Creator,
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(app.connect_with_token(&creator).await.err(), Some(StatusCode::FORBIDDEN), "chat is for end users");

    let unknown = app.token_for("nobody", "u", Duration::from_secs(60));
    assert_eq!(app.connect_with_token(&unknown).await.err(), Some(StatusCode::FORBIDDEN));

    // Plain HTTP without a token: a problem+json 401, not an upgrade error.
    let response = reqwest::get(app.url("/v1/chat")).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 401);
}
