//! The web widget through the running server (docs/WIDGET.md): tickets from allowed origins only,
//! one socket per ticket, within its lifetime, from its origin; visitors that come back continue
//! their conversation, forged visitors start a new one; the ticket budget per address; the CORS
//! preflight; the script itself; the embed snippet; tickets shared by two nodes through Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Client, Kind, TestApp, spawn_app, spawn_app_configured};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, http};
use twin_api::auth::Role;
use twin_engine::{Slug, UserId};

const SITE: &str = "https://maya.example";
const ELSEWHERE: &str = "https://elsewhere.example";

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
    a_ticket_from_an_allowed_origin_opens_a_chat_and_the_twin_replies,
    a_returning_visitor_continues_the_conversation,
);

fn creator_token(app: &TestApp, slug: &str, role: Role) -> String {
    let creator = Slug::parse(slug).unwrap().creator_id();
    app.keys.mint(creator, &UserId::parse("owner").unwrap(), role, Duration::from_secs(600)).unwrap()
}

/// Sets the demo creator's allowed origins through the REST API, as a creator would.
async fn allow_origins(app: &TestApp, origins: &[&str]) {
    let response = reqwest::Client::new()
        .patch(app.url("/v1/creators/demo"))
        .bearer_auth(creator_token(app, "demo", Role::Creator))
        .json(&json!({"allowed_origins": origins}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// `POST /v1/creators/{slug}/widget/ticket` from a page at `origin` (none: not a browser).
async fn ask_ticket(app: &TestApp, slug: &str, origin: Option<&str>, body: Value) -> Answer {
    let mut request = reqwest::Client::new().post(app.url(&format!("/v1/creators/{slug}/widget/ticket"))).json(&body);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
    Answer { status, headers, body }
}

/// A ticket for the demo creator from `SITE`; the whole answer.
async fn ticket(app: &TestApp, body: Value) -> Value {
    let answer = ask_ticket(app, "demo", Some(SITE), body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

/// The chat socket with a ticket, opened by a page at `origin`.
async fn connect_ticket(app: &TestApp, ticket: &str, origin: Option<&str>) -> Result<Client, http::StatusCode> {
    let mut request = format!("ws://{}/v1/chat?ticket={ticket}", app.addr).into_client_request().unwrap();
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(Client { socket }),
        Err(WsError::Http(response)) => Err(response.status()),
        Err(other) => panic!("unexpected connection error: {other}"),
    }
}

/// Server settings for tests that share Redis: tickets there, and a ticket budget that never bites
/// (the budget's key is the address, the same for every test on this machine).
fn with_redis(settings: &mut twin_api::Settings) {
    let url = std::env::var("TWIN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    settings.redis_url = Some(twin_api::settings::Secret::new(&url));
    settings.limits.tickets = "100000/s".parse().unwrap();
}

async fn a_ticket_from_an_allowed_origin_opens_a_chat_and_the_twin_replies(kind: Kind) {
    let app = spawn_app(kind).await;
    allow_origins(&app, &[SITE]).await;
    let answer = ask_ticket(&app, "demo", Some(SITE), json!({})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.header("access-control-allow-origin"), Some(SITE));
    assert_eq!(answer.header("access-control-allow-credentials"), None, "no credentials, ever");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.body["expires_in"], 60);
    let user = answer.body["user"].as_str().unwrap();
    assert!(user.starts_with("web:") && user.len() == 40, "{user}");
    assert!(answer.body["visitor"].as_str().unwrap().starts_with("v1."));

    let mut chat = connect_ticket(&app, answer.body["ticket"].as_str().unwrap(), Some(SITE)).await.unwrap();
    chat.say("w1", "How do I protect my focus?").await;
    assert_eq!(chat.next_json().await, json!({"type": "ack", "id": "w1", "seq": 1}));
    let (reply, previews) = chat.reply().await;
    assert!(!previews.is_empty(), "the reply streamed");
    assert!(reply["text"].as_str().unwrap().len() > 40, "a real answer: {reply}");

    // The conversation is the visitor's, as the creator sees it.
    let conversations: Value = reqwest::Client::new()
        .get(app.url("/v1/creators/demo/users"))
        .bearer_auth(creator_token(&app, "demo", Role::Creator))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users: Vec<&str> = conversations["items"].as_array().unwrap().iter().filter_map(|u| u["id"].as_str()).collect();
    assert!(users.contains(&user), "{conversations}");
}

async fn a_returning_visitor_continues_the_conversation(kind: Kind) {
    let app = spawn_app(kind).await;
    allow_origins(&app, &[SITE]).await;
    let first = ticket(&app, json!({})).await;
    let mut chat = connect_ticket(&app, first["ticket"].as_str().unwrap(), Some(SITE)).await.unwrap();
    chat.say("w1", "Remember me: I am the visitor with the blue hat.").await;
    assert_eq!(chat.next_json().await["seq"], 1);
    let (reply, _) = chat.reply().await;
    drop(chat);

    // The page comes back later with the visitor token it kept.
    let second = ticket(&app, json!({"visitor": first["visitor"]})).await;
    assert_eq!(second["user"], first["user"], "the same end user");
    assert_eq!(second["visitor"], first["visitor"]);
    assert_ne!(second["ticket"], first["ticket"]);
    let mut chat = connect_ticket(&app, second["ticket"].as_str().unwrap(), Some(SITE)).await.unwrap();
    let history = chat.resume_all(0, 100).await;
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["text"], "Remember me: I am the visitor with the blue hat.");
    assert_eq!(history[0]["id"], "w1");
    assert_eq!(history[1]["text"], reply["text"]);
}

#[tokio::test]
async fn a_ticket_opens_one_socket_only() {
    let app = spawn_app(Kind::Sqlite).await;
    allow_origins(&app, &[SITE]).await;
    let answer = ticket(&app, json!({})).await;
    let text = answer["ticket"].as_str().unwrap();
    let mut chat = connect_ticket(&app, text, Some(SITE)).await.unwrap();
    assert_eq!(connect_ticket(&app, text, Some(SITE)).await.err(), Some(http::StatusCode::UNAUTHORIZED));
    // The first socket is not disturbed by the refused second one.
    chat.send(json!({"type": "ping"})).await;
    assert_eq!(chat.next_json().await, json!({"type": "pong"}));
    // Unknown and malformed tickets: the same 401, as problem+json.
    for bad in ["t1.00000000000000000000000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "nonsense"] {
        assert_eq!(connect_ticket(&app, bad, Some(SITE)).await.err(), Some(http::StatusCode::UNAUTHORIZED), "{bad}");
    }
    let refused = reqwest::get(app.url("/v1/chat?ticket=nonsense")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "not an upgrade: refused before the ticket is looked at");
}

#[tokio::test]
async fn a_ticket_is_refused_after_its_lifetime() {
    let app = spawn_app_configured(Kind::Sqlite, |s| s.widget_ticket_ttl = Duration::from_millis(800)).await;
    allow_origins(&app, &[SITE]).await;
    let answer = ticket(&app, json!({})).await;
    assert_eq!(answer["expires_in"], 1, "whole seconds, rounded up");
    let fresh = ticket(&app, json!({})).await;
    // Waiting out the lifetime is the point of this test (not synchronisation).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let late = connect_ticket(&app, answer["ticket"].as_str().unwrap(), Some(SITE)).await;
    assert_eq!(late.err(), Some(http::StatusCode::UNAUTHORIZED));
    let also_late = connect_ticket(&app, fresh["ticket"].as_str().unwrap(), Some(SITE)).await;
    assert_eq!(also_late.err(), Some(http::StatusCode::UNAUTHORIZED));
    // A ticket used within its lifetime works with the same settings.
    let on_time = ticket(&app, json!({})).await;
    assert!(connect_ticket(&app, on_time["ticket"].as_str().unwrap(), Some(SITE)).await.is_ok());
}

#[tokio::test]
async fn tickets_need_an_origin_the_creator_allows() {
    let app = spawn_app(Kind::Sqlite).await;
    // The demo bundle lists no origin: no site may get tickets, and the refusal says why.
    let empty = ask_ticket(&app, "demo", Some(SITE), json!({})).await;
    assert_eq!(empty.status, StatusCode::FORBIDDEN);
    assert_eq!(empty.header("content-type"), Some("application/problem+json"));
    assert!(empty.body["detail"].as_str().unwrap().contains("an empty list allows no site"), "{}", empty.body);
    assert_eq!(empty.header("access-control-allow-origin"), None);

    allow_origins(&app, &[SITE, "http://localhost:8000"]).await;
    let no_origin = ask_ticket(&app, "demo", None, json!({})).await;
    assert_eq!(no_origin.status, StatusCode::FORBIDDEN);
    assert!(no_origin.body["detail"].as_str().unwrap().contains("Origin"), "{}", no_origin.body);

    let elsewhere = ask_ticket(&app, "demo", Some(ELSEWHERE), json!({})).await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    assert_eq!(elsewhere.header("access-control-allow-origin"), None);
    for origin in ["null", "http://maya.example", "https://maya.example.evil.example", "https://maya.example/"] {
        assert_eq!(ask_ticket(&app, "demo", Some(origin), json!({})).await.status, StatusCode::FORBIDDEN, "{origin}");
    }
    // An unknown creator answers exactly like a creator that does not allow the origin.
    let unknown = ask_ticket(&app, "nobody", Some(ELSEWHERE), json!({})).await;
    assert_eq!(unknown.status, elsewhere.status);
    assert_eq!(
        unknown.body["detail"].as_str().unwrap().replace("\"nobody\"", "\"demo\""),
        elsewhere.body["detail"].as_str().unwrap()
    );
    let unknown_allowed_origin = ask_ticket(&app, "nobody", Some(SITE), json!({})).await;
    assert_eq!(unknown_allowed_origin.status, StatusCode::FORBIDDEN);
    assert_eq!(ask_ticket(&app, "Not A Slug", Some(SITE), json!({})).await.status, StatusCode::FORBIDDEN);

    // The default port and letter case do not matter; another port does.
    assert_eq!(ask_ticket(&app, "demo", Some("https://maya.example:443"), json!({})).await.status, StatusCode::OK);
    assert_eq!(ask_ticket(&app, "demo", Some("http://localhost:8000"), json!({})).await.status, StatusCode::OK);
    assert_eq!(ask_ticket(&app, "demo", Some("http://localhost:8001"), json!({})).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_ticket_opens_a_socket_only_from_its_own_origin() {
    let app = spawn_app(Kind::Sqlite).await;
    allow_origins(&app, &[SITE, ELSEWHERE]).await;
    // Issued to one allowed origin, used from another (also allowed): refused, and spent.
    let stolen = ticket(&app, json!({})).await;
    let text = stolen["ticket"].as_str().unwrap();
    assert_eq!(connect_ticket(&app, text, Some(ELSEWHERE)).await.err(), Some(http::StatusCode::FORBIDDEN));
    assert_eq!(connect_ticket(&app, text, Some(SITE)).await.err(), Some(http::StatusCode::UNAUTHORIZED), "spent");
    // Without an Origin (not a browser): refused too.
    let other = ticket(&app, json!({})).await;
    assert_eq!(
        connect_ticket(&app, other["ticket"].as_str().unwrap(), None).await.err(),
        Some(http::StatusCode::FORBIDDEN)
    );
    // A ticket and a token at once: one or the other.
    let both = ticket(&app, json!({})).await;
    let url = format!("ws://{}/v1/chat?ticket={}&token={}", app.addr, both["ticket"].as_str().unwrap(), app.token("x"));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("origin", SITE.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), http::StatusCode::BAD_REQUEST),
        other => panic!("expected 400, got {:?}", other.map(|_| ())),
    }
    // The creator takes the origin off its list: tickets issued before are refused.
    let before = ticket(&app, json!({})).await;
    allow_origins(&app, &[ELSEWHERE]).await;
    assert_eq!(
        connect_ticket(&app, before["ticket"].as_str().unwrap(), Some(SITE)).await.err(),
        Some(http::StatusCode::FORBIDDEN)
    );
}

#[tokio::test]
async fn a_token_socket_keeps_its_origin_check() {
    let app = spawn_app(Kind::Sqlite).await;
    allow_origins(&app, &[SITE]).await;
    let token = app.token("site-user");
    let open = |origin: &'static str| {
        let url = format!("ws://{}/v1/chat?token={token}", app.addr);
        async move {
            let mut request = url.into_client_request().unwrap();
            request.headers_mut().insert("origin", origin.parse().unwrap());
            match tokio_tungstenite::connect_async(request).await {
                Ok(_) => http::StatusCode::SWITCHING_PROTOCOLS,
                Err(WsError::Http(response)) => response.status(),
                Err(other) => panic!("{other}"),
            }
        }
    };
    assert_eq!(open(SITE).await, http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(open(ELSEWHERE).await, http::StatusCode::FORBIDDEN);
}

/// The visitor key of a running test server, as the server derives it from its secret key.
fn server_visitor_key(app: &TestApp) -> twin_api::widget::VisitorKey {
    let overrides = twin_api::settings::Overrides {
        data_dir: Some(app.data_dir.path().to_path_buf()),
        ..twin_api::settings::Overrides::default()
    };
    let settings = twin_api::Settings::defaults(&overrides).unwrap();
    let secrets = twin_api::secrets::SecretBox::from_settings(&settings).unwrap();
    twin_api::widget::VisitorKey::new(&secrets.subkey(twin_api::widget::visitor::KEY_PURPOSE))
}

#[tokio::test]
async fn a_forged_or_foreign_visitor_becomes_a_new_visitor() {
    let app = spawn_app(Kind::Sqlite).await;
    allow_origins(&app, &[SITE]).await;
    let first = ticket(&app, json!({})).await;
    let visitor = first["visitor"].as_str().unwrap();

    // The test can sign as the server does: the key is right, so the creator binding is what counts.
    let key = server_visitor_key(&app);
    let demo = Slug::parse("demo").unwrap().creator_id();
    let uuid = uuid::Uuid::parse_str(first["user"].as_str().unwrap().trim_start_matches("web:")).unwrap();
    assert_eq!(key.sign(demo, uuid), visitor, "the test derives the server's key");
    let foreign = key.sign(Slug::parse("someone-else").unwrap().creator_id(), uuid);

    let mut tampered = visitor.to_owned().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_id = twin_api::widget::VisitorKey::new(&[9; 32]).sign(demo, uuid);

    for forged in [foreign.as_str(), tampered.as_str(), other_id.as_str(), "v1.x.y", "garbage", &"x".repeat(200)] {
        let answer = ticket(&app, json!({"visitor": forged})).await;
        assert_ne!(answer["user"], first["user"], "{forged:?} kept the visitor");
        assert_ne!(answer["visitor"].as_str().unwrap(), forged);
        assert!(answer["user"].as_str().unwrap().starts_with("web:"));
    }
    // And the genuine one still works.
    assert_eq!(ticket(&app, json!({"visitor": visitor})).await["user"], first["user"]);
}

#[tokio::test]
async fn bad_ticket_requests_are_refused_readably() {
    let app = spawn_app(Kind::Sqlite).await;
    allow_origins(&app, &[SITE]).await;
    let unknown_field = ask_ticket(&app, "demo", Some(SITE), json!({"visitor": null, "admin": true})).await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown_field.body["detail"].as_str().unwrap().contains("admin"), "{}", unknown_field.body);
    assert_eq!(unknown_field.header("access-control-allow-origin"), Some(SITE), "the page can read why");
    let wrong_type = ask_ticket(&app, "demo", Some(SITE), json!({"visitor": 5})).await;
    assert_eq!(wrong_type.status, StatusCode::UNPROCESSABLE_ENTITY);

    let not_json = reqwest::Client::new()
        .post(app.url("/v1/creators/demo/widget/ticket"))
        .header("origin", SITE)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(not_json.headers()["content-type"], "application/problem+json");
    let too_big = ask_ticket(&app, "demo", Some(SITE), json!({"visitor": "x".repeat(10_000)})).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn tickets_are_rate_limited_per_address() {
    let app = spawn_app_configured(Kind::Sqlite, |s| s.limits.tickets = "1/min burst 2".parse().unwrap()).await;
    allow_origins(&app, &[SITE]).await;
    for _ in 0..2 {
        assert_eq!(ask_ticket(&app, "demo", Some(SITE), json!({})).await.status, StatusCode::OK);
    }
    let limited = ask_ticket(&app, "demo", Some(SITE), json!({})).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.header("content-type"), Some("application/problem+json"));
    // The page may read the answer and its Retry-After.
    assert_eq!(limited.header("access-control-allow-origin"), Some(SITE));
    assert_eq!(limited.header("access-control-expose-headers"), Some("retry-after"));
    // The ticket budget is its own: the rest of the API still answers this address.
    let other = reqwest::Client::new()
        .get(app.url("/v1/creators/demo/widget"))
        .bearer_auth(creator_token(&app, "demo", Role::Creator))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}

async fn preflight(app: &TestApp, slug: &str, origin: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, app.url(&format!("/v1/creators/{slug}/widget/ticket")))
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type");
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
    Answer { status, headers, body }
}

#[tokio::test]
async fn the_preflight_is_answered_for_allowed_origins_only() {
    let app = spawn_app(Kind::Sqlite).await;
    allow_origins(&app, &[SITE]).await;
    let allowed = preflight(&app, "demo", Some(SITE)).await;
    assert_eq!(allowed.status, StatusCode::NO_CONTENT);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(SITE));
    assert_eq!(allowed.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(allowed.header("access-control-allow-headers"), Some("content-type"));
    assert_eq!(allowed.header("access-control-allow-credentials"), None);
    assert!(allowed.header("access-control-max-age").is_some());
    assert_eq!(allowed.header("vary"), Some("origin"));

    for (slug, origin) in [("demo", Some(ELSEWHERE)), ("demo", None), ("nobody", Some(SITE)), ("demo", Some("null"))] {
        let refused = preflight(&app, slug, origin).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{slug} {origin:?}");
        assert_eq!(refused.header("access-control-allow-origin"), None, "{slug} {origin:?}");
        assert_eq!(refused.header("access-control-allow-methods"), None);
    }
}

#[tokio::test]
async fn the_script_is_served_as_javascript() {
    let app = spawn_app(Kind::Sqlite).await;
    let response = reqwest::get(app.url("/widget.js")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/javascript; charset=utf-8");
    let cache = response.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache.contains("max-age=") && !cache.contains("immutable"), "a short cache: {cache}");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let body = response.text().await.unwrap();
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/web/widget.js")).unwrap();
    assert_eq!(body, file, "the binary serves the file in the repository");
    assert!(body.contains("window.TwinWidget"));

    let again = reqwest::Client::new().get(app.url("/widget.js")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let stale =
        reqwest::Client::new().get(app.url("/widget.js")).header("if-none-match", "\"old\"").send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_embed_snippet_is_for_the_creator_and_their_team() {
    let app = spawn_app_configured(Kind::Sqlite, |s| s.public_url = "https://twin.example/".to_owned()).await;
    allow_origins(&app, &[SITE]).await;
    let get = |token: Option<String>| {
        let mut request = reqwest::Client::new().get(app.url("/v1/creators/demo/widget"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap() }
    };
    for role in [Role::Creator, Role::Agent, Role::Admin] {
        let answer = get(Some(creator_token(&app, "demo", role))).await;
        assert_eq!(answer.status(), StatusCode::OK, "{role:?}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["script_url"], "https://twin.example/widget.js");
        assert_eq!(
            body["snippet"],
            r#"<script src="https://twin.example/widget.js" data-creator="demo" async></script>"#
        );
        assert_eq!(body["allowed_origins"], json!([SITE]));
    }
    assert_eq!(get(None).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get(Some(app.token("visitor"))).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(get(Some(creator_token(&app, "someone-else", Role::Creator))).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_issued_on_one_node_is_redeemed_on_another_through_redis() {
    let node_a = spawn_app_configured(Kind::Sqlite, with_redis).await;
    let node_b = spawn_app_configured(Kind::Sqlite, with_redis).await;
    allow_origins(&node_a, &[SITE]).await;
    allow_origins(&node_b, &[SITE]).await;
    let answer = ticket(&node_a, json!({})).await;
    let text = answer["ticket"].as_str().unwrap();

    let mut chat = connect_ticket(&node_b, text, Some(SITE)).await.expect("node B redeems node A's ticket");
    chat.say("w1", "hello from another node").await;
    assert_eq!(chat.next_json().await, json!({"type": "ack", "id": "w1", "seq": 1}));
    let (reply, _) = chat.reply().await;
    assert!(!reply["text"].as_str().unwrap().is_empty());
    // Spent everywhere.
    assert_eq!(connect_ticket(&node_a, text, Some(SITE)).await.err(), Some(http::StatusCode::UNAUTHORIZED));
    assert_eq!(connect_ticket(&node_b, text, Some(SITE)).await.err(), Some(http::StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn redis_tickets_expire_and_are_single_use() {
    let app = spawn_app_configured(Kind::Sqlite, |s| {
        with_redis(s);
        s.widget_ticket_ttl = Duration::from_millis(800);
    })
    .await;
    allow_origins(&app, &[SITE]).await;
    let used = ticket(&app, json!({})).await;
    let expiring = ticket(&app, json!({})).await;
    assert!(connect_ticket(&app, used["ticket"].as_str().unwrap(), Some(SITE)).await.is_ok());
    assert_eq!(
        connect_ticket(&app, used["ticket"].as_str().unwrap(), Some(SITE)).await.err(),
        Some(http::StatusCode::UNAUTHORIZED)
    );
    // Waiting out the lifetime is the point here (Redis expires the key).
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        connect_ticket(&app, expiring["ticket"].as_str().unwrap(), Some(SITE)).await.err(),
        Some(http::StatusCode::UNAUTHORIZED)
    );
}

/// The widget is plain JavaScript served as is: a syntax error would only show in a browser. CI
/// sets TWIN_REQUIRE_BROWSER=1, where a missing `node` fails instead of skipping.
#[test]
fn the_widget_script_is_valid_javascript() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/web/widget.js");
    let required = std::env::var("TWIN_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    match std::process::Command::new("node").arg("--check").arg(path).output() {
        Ok(output) => {
            assert!(output.status.success(), "node --check {path} failed:\n{}", String::from_utf8_lossy(&output.stderr))
        }
        Err(error) if !required => {
            println!("skipped: `node` cannot run ({error}); set TWIN_REQUIRE_BROWSER=1 to make this a failure");
        }
        Err(error) => panic!("TWIN_REQUIRE_BROWSER=1 but `node` cannot run: {error}"),
    }
}
