//! Rate limits of the REST API, through the running server: per client address before
//! authentication, answered with 429 problem+json and `Retry-After`; shared by two nodes through
//! Redis; `X-Forwarded-For` believed only from a trusted proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use support::{Kind, spawn_app_configured};

/// A documentation-range IPv6 address unique to this run, so Redis keys of earlier runs do not count.
fn unique_address() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let bits = (nanos ^ u128::from(std::process::id()) << 64) as u64;
    format!("2001:db8::{:x}:{:x}:{:x}:{:x}", bits >> 48, (bits >> 32) & 0xffff, (bits >> 16) & 0xffff, bits & 0xffff)
}

async fn link_code(app: &support::TestApp, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(app.url("/v1/channels/link-code"));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn an_address_over_its_budget_gets_429_with_retry_after() {
    let app = spawn_app_configured(Kind::Sqlite, |s| {
        s.limits.address = "1/min burst 3".parse().unwrap();
    })
    .await;
    for _ in 0..3 {
        // No token: refused, but counted (the budget holds before authentication).
        assert_eq!(link_code(&app, None).await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = link_code(&app, None).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["status"], 429);

    // Health and the chat socket are not REST calls and keep answering.
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app_configured(Kind::Sqlite, |s| {
        s.limits.address = "1/min burst 1".parse().unwrap();
    })
    .await;
    assert_eq!(link_code(&app, Some("198.51.100.1")).await.status(), StatusCode::UNAUTHORIZED);
    // A made-up header does not buy a fresh budget.
    assert_eq!(link_code(&app, Some("198.51.100.2")).await.status(), StatusCode::TOO_MANY_REQUESTS);

    let behind_proxy = spawn_app_configured(Kind::Sqlite, |s| {
        s.limits.address = "1/min burst 1".parse().unwrap();
        s.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    assert_eq!(link_code(&behind_proxy, Some("198.51.100.1")).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(link_code(&behind_proxy, Some("198.51.100.2")).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(link_code(&behind_proxy, Some("198.51.100.1")).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn two_nodes_share_one_budget_through_redis() {
    fn configure(s: &mut twin_api::Settings) {
        s.limits.address = "1/min burst 2".parse().unwrap();
        s.limits.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        let url = std::env::var("TWIN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        s.redis_url = Some(twin_api::settings::Secret::new(&url));
    }
    let node_a = spawn_app_configured(Kind::Sqlite, configure).await;
    let node_b = spawn_app_configured(Kind::Sqlite, configure).await;
    let client = unique_address();
    assert_eq!(link_code(&node_a, Some(&client)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(link_code(&node_b, Some(&client)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(link_code(&node_a, Some(&client)).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(link_code(&node_b, Some(&client)).await.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_tenant_over_its_budget_gets_429_and_other_tenants_do_not() {
    let app = spawn_app_configured(Kind::Sqlite, |s| {
        s.limits.tenant = "1/min burst 2".parse().unwrap();
    })
    .await;
    let token = |slug: &str| {
        let creator = twin_engine::Slug::parse(slug).unwrap().creator_id();
        let subject = twin_engine::UserId::parse("acct").unwrap();
        app.keys.mint(creator, &subject, twin_api::auth::Role::Creator, std::time::Duration::from_secs(60)).unwrap()
    };
    let get = |path: &'static str, token: String| {
        let url = app.url(path);
        async move { reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(get("/v1/creators/demo", token("demo")).await, StatusCode::OK);
    assert_eq!(get("/v1/creators/demo/conversations", token("demo")).await, StatusCode::OK);
    assert_eq!(get("/v1/creators/demo", token("demo")).await, StatusCode::TOO_MANY_REQUESTS);
    // Another tenant has its own budget (its creator does not exist here: 404, not 429).
    assert_eq!(get("/v1/creators/other", token("other")).await, StatusCode::NOT_FOUND);
}
