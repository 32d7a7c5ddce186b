//! What the REST tests share: creators with a program that leaves a nudge pending, staff tokens,
//! a user chatting once, and a small HTTP client that returns status, content type and JSON.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use twin_api::auth::Role;
use twin_api::bundle::Bundle;
use twin_engine::ids::{ProgramId, Slug, UserId};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::nudge::NudgePolicy;
use twin_engine::ports::ProgramSource;
use twin_engine::twin::NudgeSettings;

use crate::support::TestApp;

/// Says hello, then waits an hour: every user who writes once has a pending nudge.
pub const PROGRAM: &str = r#"
triggers:
  first_contact: true
steps:
  - id: hello
    message: "Welcome! Back in an hour."
  - id: pause
    wait: 1h
  - id: after
    message: "An hour later."
"#;

/// A creator `slug` whose first-contact program is [`PROGRAM`], with one knowledge document.
pub fn creator(slug: &str) -> Bundle {
    let mut bundle = twin_api::bundle::demo();
    bundle.profile.slug = Slug::parse(slug).unwrap();
    bundle.profile.default_program = Some(ProgramId::parse("intro").unwrap());
    bundle.profile.nudges = NudgeSettings {
        policy: NudgePolicy { quiet_hours: None, ..NudgePolicy::default() },
        ..NudgeSettings::default()
    };
    bundle.programs = vec![ProgramSource { id: ProgramId::parse("intro").unwrap(), source: PROGRAM.to_owned() }];
    bundle.documents =
        vec![KnowledgeDocument { path: format!("{slug}/notes.md"), body: format!("# Notes of {slug}\n\nSleep well.") }];
    bundle
}

/// A token of `role` for creator `slug`.
pub fn staff(app: &TestApp, slug: &str, role: Role) -> String {
    let creator = Slug::parse(slug).unwrap().creator_id();
    app.keys.mint(creator, &UserId::parse("staff").unwrap(), role, Duration::from_secs(600)).unwrap()
}

/// An end user of `slug` writes once and gets the program's first message.
pub async fn chat_once(app: &TestApp, slug: &str, user: &str) {
    let token = app.token_for(slug, user, Duration::from_secs(600));
    let mut client = app.connect_with_token(&token).await.expect("the socket opens");
    client.say("c1", "hello").await;
    loop {
        let frame = client.next_json().await;
        if frame["type"] == "message" && frame["origin"] == "program" {
            return;
        }
    }
}

/// An answer: status, whether it is problem+json, and the body (JSON, or the text as a string).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub problem: bool,
    pub body: Value,
}

pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Answer {
    let mut request = reqwest::Client::new().request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer { status, problem: content_type.starts_with("application/problem+json"), body }
}

pub async fn get(app: &TestApp, path: &str, token: &str) -> Answer {
    call(app, Method::GET, path, Some(token), None).await
}

pub fn json(value: &Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", value.to_string().into_bytes()))
}

/// The pending nudges of `slug` once there are `at_least` (the program schedules them right after
/// its first message, in the conversation's next commit).
pub async fn pending_nudges(app: &TestApp, slug: &str, token: &str, at_least: usize) -> Vec<Value> {
    for _ in 0..200 {
        let answer = get(app, &format!("/v1/creators/{slug}/nudges?status=pending"), token).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let items = answer.body["items"].as_array().unwrap().clone();
        if items.len() >= at_least {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{slug} never had {at_least} pending nudges");
}

/// A path segment for a document path (`a/b.md` is `a%2Fb.md`).
pub fn encode(path: &str) -> String {
    path.replace('%', "%25").replace('/', "%2F").replace(' ', "%20")
}
