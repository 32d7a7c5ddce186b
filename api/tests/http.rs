//! The plain HTTP surface: health, readiness, metrics, the OpenAPI document, and the origin check
//! of the chat socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Kind, spawn_app};
use tokio_tungstenite::tungstenite::http::StatusCode;
use twin_api::bundle::Bundle;
use twin_engine::Slug;
use twin_engine::persona::Persona;
use twin_engine::twin::CreatorProfile;

#[tokio::test]
async fn health_readiness_metrics_and_openapi_answer() {
    let app = spawn_app(Kind::Sqlite).await;
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    // Some traffic, so the engine's metrics exist.
    let mut client = app.connect_ws("m").await;
    client.say("c1", "hello").await;
    client.until("ack").await;
    client.reply().await;
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    for name in ["twin_ws_frames_in_total", "twin_conversation_spawns_total", "twin_writer_commit_seconds"] {
        assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
    }

    let spec: serde_json::Value = reqwest::get(app.url("/v1/openapi.json")).await.unwrap().json().await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/v1/chat"].is_object());
}

#[tokio::test]
async fn a_browser_from_an_origin_the_creator_did_not_allow_is_refused() {
    let app = spawn_app(Kind::Sqlite).await;
    let profile = CreatorProfile {
        slug: Slug::parse("strict").unwrap(),
        persona: Persona { name: "Strict".into(), ..Persona::default() },
        replies: Default::default(),
        allowed_origins: vec!["https://coach.example".into()],
        default_program: None,
        nudges: Default::default(),
        model: Default::default(),
        channels: Default::default(),
        user_tokens: None,
    };
    twin_api::startup::import(&app.db.store, &Bundle { profile, documents: vec![], programs: vec![] }).await.unwrap();
    let token = app.token_for("strict", "u1", std::time::Duration::from_secs(60));

    let url = |_: ()| format!("ws://{}/v1/chat?token={token}", app.addr);
    let connect = |origin: &'static str| {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url(())).unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(request)
    };
    match connect("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::FORBIDDEN)
        }
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    assert!(connect("https://coach.example").await.is_ok());
}
