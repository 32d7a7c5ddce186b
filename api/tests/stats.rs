//! `GET /v1/creators/{slug}/stats` through the server: a real chat (a program with a one-second
//! wait, the fake LLM for anything else) moves every count, and the route is tenant-scoped and
//! checks its `days`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "rest/common.rs"]
mod common;
mod support;

use std::time::Duration;

use common::{call, get, staff};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Kind, TestApp, spawn_app_with};
use twin_api::auth::Role;
use twin_api::bundle::Bundle;
use twin_engine::ids::{ProgramId, Slug};
use twin_engine::nudge::NudgePolicy;
use twin_engine::ports::ProgramSource;
use twin_engine::twin::NudgeSettings;

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Postgres).await } )*
        }
    };
}

both!(a_chat_moves_every_count, the_stats_are_tenant_scoped_and_days_is_checked);

/// Welcomes, waits a second (a program timer: a nudge row that fires), asks, and notes the answer.
const PROGRAM: &str = r#"
triggers:
  first_contact: true
steps:
  - id: hello
    message: "Welcome!"
  - id: pause
    wait: 1s
  - id: goal
    question: "What do you want to work on?"
    choices:
      - { value: sleep, label: "Better sleep" }
      - { value: focus, label: "Deep focus" }
    save_as: goal
  - id: done
    message: "Noted: {{ goal }}."
"#;

/// A creator `slug` whose first-contact program `intro` is [`PROGRAM`], nudges at any hour.
fn coach(slug: &str) -> Bundle {
    let mut bundle = twin_api::bundle::demo();
    bundle.profile.slug = Slug::parse(slug).unwrap();
    bundle.profile.default_program = Some(ProgramId::parse("intro").unwrap());
    bundle.profile.nudges = NudgeSettings {
        policy: NudgePolicy { quiet_hours: None, ..NudgePolicy::default() },
        ..NudgeSettings::default()
    };
    bundle.programs = vec![ProgramSource { id: ProgramId::parse("intro").unwrap(), source: PROGRAM.to_owned() }];
    bundle
}

async fn stats(app: &TestApp, slug: &str, token: &str, query: &str) -> Value {
    let answer = get(app, &format!("/v1/creators/{slug}/stats{query}"), token).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body
}

/// The next program message the user sees.
async fn program_message(client: &mut support::Client) -> String {
    loop {
        let frame = client.next_json().await;
        if frame["type"] == "message" && frame["origin"] == "program" {
            return frame["text"].as_str().unwrap().to_owned();
        }
    }
}

fn funnel_of(body: &Value) -> Vec<(String, u64)> {
    let funnel = body["funnel"].as_array().unwrap();
    assert_eq!(funnel.len(), 1, "one program: {funnel:?}");
    assert_eq!(funnel[0]["program"], "intro");
    funnel[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_owned(), s["users"].as_u64().unwrap()))
        .collect()
}

fn steps(counts: [u64; 4]) -> Vec<(String, u64)> {
    ["hello", "pause", "goal", "done"].iter().map(|s| (*s).to_owned()).zip(counts).collect()
}

async fn a_chat_moves_every_count(kind: Kind) {
    let app = spawn_app_with(kind, &[coach("alice")]).await;
    let creator = staff(&app, "alice", Role::Creator);

    let before = stats(&app, "alice", &creator, "").await;
    assert_eq!(before["days"], 14, "the default period");
    let days = before["messages_per_day"].as_array().unwrap();
    assert_eq!(days.len(), 14, "every day, zeros included");
    assert_eq!(days[0]["date"], before["from"]);
    assert_eq!(days[13]["date"], before["to"]);
    assert!(days.iter().all(|d| d["inbound"] == 0 && d["outbound"] == 0), "{days:?}");
    assert_eq!(before["active_users"], json!({"day": 0, "week": 0, "period": 0}));
    assert_eq!(before["reply_latency_ms"]["samples"], 0);
    assert_eq!(before["reply_latency_ms"]["p50"], Value::Null);
    assert_eq!(before["reply_latency_ms"]["per_day"].as_array().unwrap().len(), 14);
    assert_eq!(funnel_of(&before), steps([0, 0, 0, 0]), "the program's steps in order, at zero");
    assert_eq!(before["nudges"], json!({"fired": 0, "responded": 0, "response_rate": null}));

    // A user walks the program: the welcome, the one-second wait fired by the scheduler, the
    // question answered with a choice, the note.
    let token = app.token_for("alice", "ana", Duration::from_secs(600));
    let mut client = app.connect_with_token(&token).await.expect("the socket opens");
    client.say("m1", "hello").await;
    assert_eq!(program_message(&mut client).await, "Welcome!");
    assert_eq!(program_message(&mut client).await, "What do you want to work on?");
    client.send(json!({"type": "choice", "id": "m2", "value": "sleep"})).await;
    assert_eq!(program_message(&mut client).await, "Noted: sleep.");

    // Each frame went out after its commit: the counts are there.
    let after = stats(&app, "alice", &creator, "?days=2").await;
    assert_eq!(after["days"], 2);
    assert_eq!(after["active_users"], json!({"day": 1, "week": 1, "period": 1}));
    let today = &after["messages_per_day"][1];
    assert_eq!(today["date"], after["to"]);
    assert_eq!((&today["inbound"], &today["outbound"]), (&json!(2), &json!(3)), "hello + choice; 3 program messages");
    // hello → Welcome!, the choice → Noted (the question came from the timer, not as a reply).
    let latency = &after["reply_latency_ms"];
    assert_eq!(latency["samples"], 2, "{latency}");
    assert!(
        latency["p50"].as_i64().unwrap() >= 0 && latency["p95"].as_i64().unwrap() >= latency["p50"].as_i64().unwrap()
    );
    assert_eq!(latency["per_day"][1]["samples"], 2);
    assert_eq!(funnel_of(&after), steps([1, 1, 1, 1]));
    assert_eq!(after["nudges"], json!({"fired": 1, "responded": 1, "response_rate": 1.0}));

    // Agents and admins read them too.
    for role in [Role::Agent, Role::Admin] {
        let body = stats(&app, "alice", &staff(&app, "alice", role), "?days=2").await;
        assert_eq!(body["active_users"]["period"], 1, "{role:?}");
    }
}

async fn the_stats_are_tenant_scoped_and_days_is_checked(kind: Kind) {
    let app = spawn_app_with(kind, &[coach("alice"), coach("bob")]).await;
    let alice = staff(&app, "alice", Role::Creator);
    let bob = staff(&app, "bob", Role::Creator);

    // Bob's user chats; Alice's counts do not move, and Alice cannot read Bob's.
    let token = app.token_for("bob", "ben", Duration::from_secs(600));
    let mut client = app.connect_with_token(&token).await.expect("the socket opens");
    client.say("m1", "hello").await;
    assert_eq!(program_message(&mut client).await, "Welcome!");
    assert_eq!(stats(&app, "bob", &bob, "?days=1").await["active_users"]["period"], 1);
    assert_eq!(stats(&app, "alice", &alice, "?days=1").await["active_users"]["period"], 0);

    let theirs = get(&app, "/v1/creators/bob/stats", &alice).await;
    assert_eq!((theirs.status, theirs.problem), (404, true), "{theirs:?}");
    let unknown = get(&app, "/v1/creators/nobody/stats", &staff(&app, "alice", Role::Admin)).await;
    assert_eq!((unknown.status, unknown.problem), (404, true), "{unknown:?}");
    let user = get(&app, "/v1/creators/alice/stats", &app.token_for("alice", "ana", Duration::from_secs(60))).await;
    assert_eq!((user.status, user.problem), (403, true), "{user:?}");
    let anonymous = call(&app, Method::GET, "/v1/creators/alice/stats", None, None).await;
    assert_eq!(anonymous.status, 401);

    for bad in ["0", "91", "-1", "abc", "1.5", "99999999999999999999"] {
        let answer = get(&app, &format!("/v1/creators/alice/stats?days={bad}"), &alice).await;
        assert_eq!((answer.status, answer.problem), (422, true), "days={bad}: {answer:?}");
        assert!(answer.body["detail"].as_str().unwrap().contains("days"), "days={bad}: {answer:?}");
    }
    let unknown_parameter = get(&app, "/v1/creators/alice/stats?weeks=2", &alice).await;
    assert_eq!((unknown_parameter.status, unknown_parameter.problem), (422, true), "{unknown_parameter:?}");
    let longest = stats(&app, "alice", &alice, "?days=90").await;
    assert_eq!(longest["messages_per_day"].as_array().unwrap().len(), 90);
    assert_eq!(longest["reply_latency_ms"]["per_day"].as_array().unwrap().len(), 90);
}
