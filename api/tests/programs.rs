//! Programs and nudges end to end: a walk over the chat socket with choices, the offline CLI tools,
//! and a SIGKILL between claiming a due nudge and recording it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::process::ServerProcess;
use support::{Kind, spawn_app_with, twin_binary};
use tokio_tungstenite::tungstenite::Message;
use twin_api::bundle::Bundle;
use twin_engine::ids::{ProgramId, Slug, UserId};
use twin_engine::nudge::NudgePolicy;
use twin_engine::ports::{NudgeStore, ProgramSource};
use twin_engine::twin::NudgeSettings;
use twin_store::testing::TestDb;

const PROGRAM: &str = r#"
triggers:
  first_contact: true
steps:
  - id: goal
    question: "What do you want to work on?"
    choices:
      - { value: sleep, label: "Better sleep" }
      - { value: focus, label: "Deep focus" }
    save_as: goal
  - id: pause
    wait: 1s
  - id: after
    message: "Back after the wait: let's work on {{ goal }}."
"#;

/// A creator `coach` whose first-contact program is [`PROGRAM`], nudges at any hour.
fn coach() -> Bundle {
    let mut bundle = twin_api::bundle::demo();
    bundle.profile.slug = Slug::parse("coach").unwrap();
    bundle.profile.default_program = Some(ProgramId::parse("intro").unwrap());
    bundle.profile.nudges = NudgeSettings {
        policy: NudgePolicy { quiet_hours: None, ..NudgePolicy::default() },
        ..NudgeSettings::default()
    };
    bundle.programs = vec![ProgramSource { id: ProgramId::parse("intro").unwrap(), source: PROGRAM.to_owned() }];
    bundle
}

async fn next_message(client: &mut support::Client) -> Value {
    loop {
        let frame = client.next_json().await;
        if frame["type"] == "message" {
            return frame;
        }
    }
}

#[tokio::test]
async fn a_program_walks_a_user_over_the_socket_with_choices_a_retry_and_a_wait() {
    let app = spawn_app_with(Kind::Sqlite, &[coach()]).await;
    let token = app.token_for("coach", "ana", Duration::from_secs(600));
    let mut client = app.connect_with_token(&token).await.unwrap();

    client.send(json!({"type": "message", "id": "m1", "text": "hello"})).await;
    let question = next_message(&mut client).await;
    assert_eq!(question["origin"], "program");
    assert_eq!(question["text"], "What do you want to work on?");
    assert_eq!(
        question["choices"],
        json!([{"value": "sleep", "label": "Better sleep"}, {"value": "focus", "label": "Deep focus"}])
    );

    // Not one of the choices: asked again, with the choices.
    client.send(json!({"type": "message", "id": "m2", "text": "chocolate"})).await;
    let again = next_message(&mut client).await;
    assert!(again["text"].as_str().unwrap().contains("What do you want to work on?"), "{again}");
    assert_eq!(again["choices"].as_array().unwrap().len(), 2);

    client.send(json!({"type": "choice", "id": "m3", "value": "focus"})).await;
    // The wait of one second passes on the real clock; the scheduler fires it.
    let after = tokio::time::timeout(Duration::from_secs(10), next_message(&mut client)).await.unwrap();
    assert_eq!(after["text"], "Back after the wait: let's work on focus.");
    assert_eq!(after["origin"], "program");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fires_a_nudge_claimed_before_a_sigkill_once_after_restart() {
    a_claimed_nudge_fires_once_after_sigkill(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_fires_a_nudge_claimed_before_a_sigkill_once_after_restart() {
    a_claimed_nudge_fires_once_after_sigkill(Kind::Postgres).await;
}

/// The process claims the due nudge (its row holds the claim) and is killed before the
/// conversation records it. After a restart the nudge fires exactly once.
async fn a_claimed_nudge_fires_once_after_sigkill(kind: Kind) {
    let db = TestDb::unmigrated(kind).await;
    let data_dir = tempfile::tempdir().unwrap();
    let creators = tempfile::tempdir().unwrap();
    twin_api::bundle::write_dir(&coach(), &creators.path().join("coach")).unwrap();
    let creators_arg = creators.path().to_str().unwrap().to_owned();
    let args = ["--creators", creators_arg.as_str()];

    let mut server =
        ServerProcess::start(data_dir.path(), &db.url, &args, &[("TWIN_FAULT_HOLD_AFTER_NUDGE_CLAIM", "1")]).await;
    let token = token(data_dir.path());
    let mut socket = connect(&server.addr, &token).await;
    send(&mut socket, json!({"type": "message", "id": "m1", "text": "hello"})).await;
    until_message(&mut socket, "What do you want to work on?").await;
    send(&mut socket, json!({"type": "choice", "id": "m2", "value": "sleep"})).await;
    server.wait_for_log("fault injection: holding claimed nudges", Duration::from_secs(20)).await;
    drop(socket);
    server.kill().await;

    let server = ServerProcess::start(data_dir.path(), &db.url, &args, &[]).await;
    let mut socket = connect(&server.addr, &token).await;
    let expected = "Back after the wait: let's work on sleep.";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let history = loop {
        let history = resume_all(&mut socket).await;
        if history.iter().any(|m| m["text"] == expected) {
            break history;
        }
        assert!(tokio::time::Instant::now() < deadline, "the claimed nudge never fired: {history:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Fired once, and settled in the same commit: nothing is left that could fire it again. The
    // answer the program took is not mistaken for an unanswered message after the restart.
    assert_eq!(history.iter().filter(|m| m["text"] == expected).count(), 1, "{history:?}");
    assert!(history.iter().all(|m| m["origin"] != "twin"), "no twin reply to a program answer: {history:?}");
    let creator = Slug::parse("coach").unwrap().creator_id();
    let conversation = twin_engine::ConversationId::of(creator, &UserId::parse("ana").unwrap());
    let store = twin_store::Store::connect(&db.url).await.unwrap();
    assert!(store.pending_of(creator, conversation).await.unwrap().is_empty());
    store.close().await;
    server.kill().await;
}

fn token(data_dir: &std::path::Path) -> String {
    // The development key ring the server keeps in its data dir.
    let keys = twin_api::auth::TokenKeys::from_settings(
        &twin_api::Settings::defaults(&twin_api::settings::Overrides {
            data_dir: Some(data_dir.to_path_buf()),
            ..Default::default()
        })
        .unwrap(),
    )
    .unwrap();
    let creator = Slug::parse("coach").unwrap().creator_id();
    keys.mint(creator, &UserId::parse("ana").unwrap(), twin_api::auth::Role::User, Duration::from_secs(600)).unwrap()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: &str, token: &str) -> Socket {
    tokio_tungstenite::connect_async(format!("ws://{addr}/v1/chat?token={token}")).await.unwrap().0
}

async fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

async fn until_message(socket: &mut Socket, text: &str) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let Some(Ok(Message::Text(raw))) = socket.next().await else { panic!("socket closed") };
            let frame: Value = serde_json::from_str(&raw).unwrap();
            if frame["type"] == "message" && frame["text"] == text {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no message {text:?}"));
}

/// Every stored message by seq (frames pushed live while resuming are the same messages).
async fn resume_all(socket: &mut Socket) -> Vec<Value> {
    send(socket, json!({"type": "resume", "after": 0, "limit": 500})).await;
    let mut messages = std::collections::BTreeMap::new();
    loop {
        let Some(Ok(Message::Text(raw))) = socket.next().await else { panic!("socket closed during resume") };
        let frame: Value = serde_json::from_str(&raw).unwrap();
        match frame["type"].as_str() {
            Some("message") => {
                messages.insert(frame["seq"].as_u64().unwrap(), frame);
            }
            Some("resumed") => return messages.into_values().collect(),
            _ => {}
        }
    }
}

#[test]
fn program_validate_exits_zero_for_a_valid_file_and_lists_every_problem_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("intro.yaml");
    std::fs::write(&good, PROGRAM).unwrap();
    let out = std::process::Command::new(twin_binary()).args(["program", "validate"]).arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let bad = dir.path().join("broken.yaml");
    let source = "steps:\n  - id: a\n    message: hi\n    next: nowhere\n  - id: b\n    branch:\n      - if: 'score >'\n        goto: a\n    else: a\n";
    std::fs::write(&bad, source).unwrap();
    let out = std::process::Command::new(twin_binary()).args(["program", "validate"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr.lines().filter(|l| l.contains("step `")).collect();
    assert!(problems.iter().any(|l| l.contains("step `a`") && l.contains("nowhere")), "{stderr}");
    assert!(problems.iter().any(|l| l.contains("step `b`") && l.contains("column")), "{stderr}");
}

#[test]
fn condition_eval_prints_json_and_exits_two_with_the_column_on_a_syntax_error() {
    let run = |args: &[&str]| std::process::Command::new(twin_binary()).args(args).output().unwrap();
    let out = run(&[
        "condition",
        "eval",
        r#"goal == "sleep" and hours * 2 >= 10"#,
        "--vars",
        r#"{"goal":"sleep","hours":5}"#,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true");

    let out = run(&["condition", "eval", "1 + (2 * 3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("column"), "{}", String::from_utf8_lossy(&out.stderr));

    let out = run(&["condition", "eval", "missing > 3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}

#[tokio::test]
async fn a_new_program_version_leaves_running_enrolments_on_theirs_and_an_unchanged_import_creates_nothing() {
    let mut app = spawn_app_with(Kind::Sqlite, &[coach()]).await;
    let mut ana = app.connect_with_token(&app.token_for("coach", "ana", Duration::from_secs(600))).await.unwrap();
    ana.send(json!({"type": "message", "id": "m1", "text": "hello"})).await;
    assert_eq!(next_message(&mut ana).await["text"], "What do you want to work on?");
    drop(ana);

    // The same bundle again: nothing new.
    app.restart().await;
    let creator = Slug::parse("coach").unwrap().creator_id();
    let versions =
        |stored: twin_engine::ports::StoredCreator| stored.programs.iter().map(|p| p.version).collect::<Vec<_>>();
    let stored = twin_engine::ports::CreatorStore::creator(&app.db.store, creator).await.unwrap().unwrap();
    assert_eq!(versions(stored), [1]);

    // Version 2 changes the texts.
    let v2 = PROGRAM
        .replace("What do you want to work on?", "Which one first?")
        .replace("Back after the wait", "Version two");
    std::fs::write(app.creators.path().join("coach/programs/intro.yaml"), &v2).unwrap();
    app.restart().await;
    let stored = twin_engine::ports::CreatorStore::creator(&app.db.store, creator).await.unwrap().unwrap();
    assert_eq!(versions(stored), [1, 2]);

    // Ana is pinned to version 1; Bob starts on version 2.
    let mut ana = app.connect_with_token(&app.token_for("coach", "ana", Duration::from_secs(600))).await.unwrap();
    ana.send(json!({"type": "choice", "id": "m2", "value": "sleep"})).await;
    let after = tokio::time::timeout(Duration::from_secs(10), next_message(&mut ana)).await.unwrap();
    assert_eq!(after["text"], "Back after the wait: let's work on sleep.");
    let mut bob = app.connect_with_token(&app.token_for("coach", "bob", Duration::from_secs(600))).await.unwrap();
    bob.send(json!({"type": "message", "id": "b1", "text": "hello"})).await;
    assert_eq!(next_message(&mut bob).await["text"], "Which one first?");
}
