//! The twin itself through the whole server: the demo twin answers from its knowledge files, in
//! its voice and citing them, says so when its material has nothing, and the CLI imports with
//! embedding and analyzes a persona.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Kind, spawn_app, twin_binary};
use twin_engine::ports::{IngestState, KnowledgeStore};

macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Postgres).await } )*
        }
    };
}

both_backends!(the_demo_twin_answers_from_its_material_and_admits_what_it_does_not_know);

async fn the_demo_twin_answers_from_its_material_and_admits_what_it_does_not_know(kind: Kind) {
    let app = spawn_app(kind).await;
    let mut client = app.connect_ws("reader").await;
    // The twin loaded with the first connection and embeds its knowledge in the background; the
    // server records each document's status as it goes.
    let demo = twin_engine::Slug::parse("demo").unwrap().creator_id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let statuses = app.db.store.ingestion(demo).await.unwrap();
        if statuses.len() == 5 && statuses.iter().all(|s| s.state == IngestState::Ready) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the knowledge was not ingested: {statuses:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    client.say("q1", "How long should one focus block be when I am just starting out?").await;
    client.until("ack").await;
    let (answer, _) = client.reply().await;
    let text = answer["text"].as_str().unwrap().to_owned();
    assert!(text.contains("25 minutes"), "the answer comes from focus-blocks.md: {text}");
    assert!(text.contains("(from focus-blocks.md)"), "the answer cites its source: {text}");
    for avoided in ["hustle", "grind", "crush it", "lazy", "failure"] {
        assert!(!text.to_lowercase().contains(avoided), "the twin never says {avoided:?}: {text}");
    }

    client.say("q2", "What's the best way to file my quarterly taxes as a freelancer?").await;
    client.until("ack").await;
    let (answer, _) = client.reply().await;
    let text = answer["text"].as_str().unwrap();
    assert!(text.contains("not something my material covers"), "the twin says its material has nothing: {text}");
    assert!(!text.contains("(from "), "nothing is cited for an off-topic question: {text}");
}

fn run(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(twin_binary())
        .args(args)
        .env("TWIN_DATA_DIR", data_dir)
        .env_remove("TWIN_DATABASE_URL")
        .env_remove("TWIN_EMBED_MODEL_PATH")
        .env_remove("TWIN_EMBED_BASE_URL")
        .env_remove("TWIN_QDRANT_URL")
        .output()
        .unwrap()
}

#[test]
fn creator_import_embeds_the_knowledge_once() {
    let data = tempfile::tempdir().unwrap();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../creators/demo");
    let first = run(&["creator", "import", demo], data.path());
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(first.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout.contains("created demo"), "{stdout}");
    assert!(stdout.contains("knowledge: 5 documents embedded"), "{stdout}");

    let again = run(&["creator", "import", demo], data.path());
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success());
    assert!(stdout.contains("demo is unchanged"), "{stdout}");
    assert!(stdout.contains("0 documents embedded (0 chunks), 5 unchanged, 0 failed"), "{stdout}");
}

#[test]
fn persona_analyze_proposes_only_what_the_creator_left_unset() {
    let data = tempfile::tempdir().unwrap();
    let out = data.path().join("draft.toml");
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/../creators/demo");
    let output = run(&["persona", "analyze", demo, "--out", out.to_str().unwrap()], data.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("persona draft for demo from 5 knowledge documents"), "{stdout}");
    // The demo sets its own warmth: the draft shows it kept, never replaced.
    assert!(stdout.contains("voice.warmth = 0.8 (yours, kept"), "{stdout}");
    let draft = std::fs::read_to_string(&out).unwrap();
    assert!(draft.contains("formality") && draft.contains("signature_phrases"), "{draft}");
    // The bundle itself is untouched.
    let toml = std::fs::read_to_string(format!("{demo}/creator.toml")).unwrap();
    assert!(!toml.contains("characteristic_words"));
}
