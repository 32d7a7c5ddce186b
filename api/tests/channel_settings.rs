//! Channel settings through the REST API: secrets sealed at rest and never returned, the sealed
//! secrets working for real webhooks and sends, roles and tenants enforced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::providers::{FakeProviders, TELEGRAM_TOKEN, fixture};
use support::{Kind, TestApp, spawn_app_with_providers};
use twin_api::auth::Role;
use twin_engine::ports::CreatorStore;
use twin_engine::{Slug, UserId};

const WEBHOOK_SECRET: &str = "tg-webhook-secret_api_0123456789";
const WAIT: Duration = Duration::from_secs(15);

fn bundle(slug: &str) -> twin_api::bundle::Bundle {
    let mut bundle = twin_api::bundle::demo();
    bundle.profile.slug = Slug::parse(slug).unwrap();
    bundle
}

fn token(app: &TestApp, slug: &str, role: Role) -> String {
    let creator = Slug::parse(slug).unwrap().creator_id();
    app.keys.mint(creator, &UserId::parse("acct-1").unwrap(), role, Duration::from_secs(600)).unwrap()
}

async fn call(app: &TestApp, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn start(kind: Kind) -> (TestApp, FakeProviders) {
    let fake = FakeProviders::start().await;
    let app = spawn_app_with_providers(kind, &[bundle("demo"), bundle("other")], Some(&fake)).await;
    (app, fake)
}

async fn telegram_webhook(app: &TestApp, secret: &str) -> u16 {
    let mut update = fixture("telegram/01_private_text_message.json");
    update["update_id"] = json!(777_001);
    reqwest::Client::new()
        .post(app.url("/v1/channels/telegram/demo/webhook"))
        .header("X-Telegram-Bot-Api-Secret-Token", secret)
        .json(&update)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn secrets_are_sealed_never_returned_and_work(kind: Kind) {
    let (app, fake) = start(kind).await;
    let creator = token(&app, "demo", Role::Creator);
    let input = json!({"bot_token": TELEGRAM_TOKEN, "webhook_secret": WEBHOOK_SECRET, "bot_username": "@acme_bot"});
    let (status, body) =
        call(&app, reqwest::Method::PUT, "/v1/creators/demo/channels/telegram", &creator, Some(input)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["telegram"]["bot_token"], "sealed", "{body}");
    assert_eq!(body["telegram"]["bot_username"], "acme_bot");

    // Reading never shows a secret.
    let (status, body) = call(&app, reqwest::Method::GET, "/v1/creators/demo/channels", &creator, None).await;
    assert_eq!(status, 200);
    let text = body.to_string();
    assert!(!text.contains(TELEGRAM_TOKEN) && !text.contains(WEBHOOK_SECRET), "{text}");

    // At rest: sealed, not the secret.
    let stored = app.db.store.creator(Slug::parse("demo").unwrap().creator_id()).await.unwrap().unwrap();
    let telegram = stored.profile.channels.telegram.clone().unwrap();
    assert!(telegram.bot_token.sealed().is_some());
    let profile_json = serde_json::to_string(&stored.profile).unwrap();
    assert!(!profile_json.contains(TELEGRAM_TOKEN) && !profile_json.contains(WEBHOOK_SECRET));

    // And they work: the webhook is verified with the sealed secret, the reply sent with the token.
    assert_eq!(telegram_webhook(&app, "wrong-secret").await, 401);
    assert_eq!(telegram_webhook(&app, WEBHOOK_SECRET).await, 200);
    let sent = fake.wait_for("sendMessage", 1, WAIT).await;
    assert!(!sent.is_empty());

    // Removing the channel: its webhook is refused from then on.
    let (status, _) = call(&app, reqwest::Method::DELETE, "/v1/creators/demo/channels/telegram", &creator, None).await;
    assert_eq!(status, 204);
    assert_eq!(telegram_webhook(&app, WEBHOOK_SECRET).await, 404);
    let (status, _) = call(&app, reqwest::Method::DELETE, "/v1/creators/demo/channels/telegram", &creator, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn secrets_are_sealed_never_returned_and_work_sqlite() {
    secrets_are_sealed_never_returned_and_work(Kind::Sqlite).await;
}

#[tokio::test]
async fn secrets_are_sealed_never_returned_and_work_postgres() {
    secrets_are_sealed_never_returned_and_work(Kind::Postgres).await;
}

#[tokio::test]
async fn roles_tenants_and_bad_values_are_refused() {
    let (app, _fake) = start(Kind::Postgres).await;
    let input = json!({"bot_token": TELEGRAM_TOKEN});
    let put = |token: String, slug: &'static str, body: Value| {
        let app = &app;
        async move {
            call(app, reqwest::Method::PUT, &format!("/v1/creators/{slug}/channels/telegram"), &token, Some(body)).await
        }
    };
    // Another tenant's creator: the same 404 as a creator that does not exist.
    let (status, other_tenant) = put(token(&app, "other", Role::Creator), "demo", input.clone()).await;
    assert_eq!(status, 404);
    let (_, missing) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/creators/nobody/channels/telegram",
        &token(&app, "nobody", Role::Admin),
        Some(input.clone()),
    )
    .await;
    assert_eq!(
        other_tenant["detail"].as_str().unwrap().replace("demo", "X"),
        missing["detail"].as_str().unwrap().replace("nobody", "X")
    );
    let (status, _) =
        call(&app, reqwest::Method::GET, "/v1/creators/demo/channels", &token(&app, "other", Role::Agent), None).await;
    assert_eq!(status, 404);

    // Agents read but do not change channels; end users do neither.
    assert_eq!(put(token(&app, "demo", Role::Agent), "demo", input.clone()).await.0, 403);
    assert_eq!(put(token(&app, "demo", Role::User), "demo", input.clone()).await.0, 403);
    let (status, _) =
        call(&app, reqwest::Method::GET, "/v1/creators/demo/channels", &token(&app, "demo", Role::Agent), None).await;
    assert_eq!(status, 200);

    // Values: env references, empty secrets, unknown fields, malformed JSON.
    let creator = token(&app, "demo", Role::Creator);
    let (status, body) = put(creator.clone(), "demo", json!({"bot_token": "env:TWIN_DATABASE_URL"})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("bot_token"));
    assert_eq!(put(creator.clone(), "demo", json!({"bot_token": " "})).await.0, 422);
    assert_eq!(put(creator.clone(), "demo", json!({"bot_token": "x", "admin": true})).await.0, 422);
    let malformed = reqwest::Client::new()
        .put(app.url("/v1/creators/demo/channels/telegram"))
        .bearer_auth(&creator)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    // Nothing was stored by any of these.
    let stored = app.db.store.creator(Slug::parse("demo").unwrap().creator_id()).await.unwrap().unwrap();
    assert!(stored.profile.channels.telegram.is_none());

    // One WhatsApp number belongs to one creator.
    let whatsapp =
        json!({"phone_number_id": "110293847561029", "access_token": "t", "app_secret": "a", "verify_token": "v"});
    let (status, body) =
        call(&app, reqwest::Method::PUT, "/v1/creators/demo/channels/whatsapp", &creator, Some(whatsapp.clone())).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(
        &app,
        reqwest::Method::PUT,
        "/v1/creators/other/channels/whatsapp",
        &token(&app, "other", Role::Creator),
        Some(whatsapp),
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn every_error_is_a_problem_even_the_frameworks() {
    let (app, _fake) = start(Kind::Sqlite).await;
    let creator = token(&app, "demo", Role::Creator);
    let client = reqwest::Client::new();
    let cases = [
        // Malformed JSON, an unknown field, a wrong content type, a body over the limit.
        client
            .put(app.url("/v1/creators/demo/channels/telegram"))
            .bearer_auth(&creator)
            .header("content-type", "application/json")
            .body("{not json"),
        client
            .put(app.url("/v1/creators/demo/channels/telegram"))
            .bearer_auth(&creator)
            .json(&json!({"bot_token": "x", "extra": 1})),
        client
            .put(app.url("/v1/creators/demo/channels/telegram"))
            .bearer_auth(&creator)
            .header("content-type", "text/plain")
            .body("bot_token=x"),
        client
            .put(app.url("/v1/creators/demo/channels/telegram"))
            .bearer_auth(&creator)
            .header("content-type", "application/json")
            .body(vec![b' '; 200 * 1024]),
        // An unknown path, a wrong method.
        client.get(app.url("/v1/nothing-here")),
        client.post(app.url("/v1/creators/demo/channels")).bearer_auth(&creator),
    ];
    let mut statuses = Vec::new();
    for request in cases {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{status}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], status);
        assert!(!body["detail"].as_str().unwrap().is_empty());
        statuses.push(status);
    }
    assert_eq!(statuses, [400, 422, 415, 413, 404, 405]);
}
