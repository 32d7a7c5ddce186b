//! The channel crash drills (ARCHITECTURE §5): the real `twin` binary is SIGKILLed between a
//! webhook's 200 and its turn, before an outbound call, and during one; after a restart the user
//! is answered, nothing is lost, and only the send that was in flight may repeat, once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use support::Kind;
use support::process::ServerProcess;
use support::providers::{FakeProviders, Scripted, TELEGRAM_TOKEN, fixture};
use twin_engine::channel::{ChannelsConfig, SecretRef, TelegramSettings};
use twin_store::testing::TestDb;

const WEBHOOK_SECRET: &str = "crash-drill-secret";
const WAIT: Duration = Duration::from_secs(30);

/// A creators folder with the demo bundle and its Telegram bot.
fn creators() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = twin_api::bundle::demo();
    demo.profile.channels = ChannelsConfig {
        telegram: Some(TelegramSettings {
            bot_token: SecretRef::new(TELEGRAM_TOKEN),
            webhook_secret: SecretRef::new(WEBHOOK_SECRET),
            bot_username: None,
        }),
        whatsapp: None,
    };
    twin_api::bundle::write_dir(&demo, &dir.path().join("demo")).unwrap();
    dir
}

async fn serve(data: &Path, db: &TestDb, creators: &Path, fake: &FakeProviders, fault: Option<&str>) -> ServerProcess {
    let base = fake.telegram_base();
    let mut env = vec![("TWIN_TELEGRAM_API_BASE", base.as_str())];
    if let Some(fault) = fault {
        env.push((fault, "1"));
    }
    ServerProcess::start(data, &db.url, &["--creators", creators.to_str().unwrap()], &env).await
}

async fn post_update(server: &ServerProcess, update: &Value) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{}/v1/channels/telegram/demo/webhook", server.addr))
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .json(update)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_acknowledged_but_not_yet_processed_is_answered_after_sigkill() {
    let (fake, db, data, creators) =
        (FakeProviders::start().await, TestDb::new(Kind::Sqlite).await, tempfile::tempdir().unwrap(), creators());
    let mut server = serve(data.path(), &db, creators.path(), &fake, Some("TWIN_FAULT_INBOX_HOLD_AFTER_STORE")).await;
    assert_eq!(post_update(&server, &fixture("telegram/01_private_text_message.json")).await, 200);
    server.wait_for_log("holding webhook deliveries unfed", WAIT).await;
    server.kill().await;
    assert!(fake.calls_of("sendMessage").is_empty());

    let server = serve(data.path(), &db, creators.path(), &fake, None).await;
    let sent = fake.wait_for("sendMessage", 2, WAIT).await;
    assert_eq!(sent[1].body["text"], "First, what should I call you?");
    // Telegram delivers the same update again (it never saw our 200 in its own view): once only.
    assert_eq!(post_update(&server, &fixture("telegram/01_private_text_message.json")).await, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.calls_of("sendMessage").len(), 2);
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_committed_but_not_yet_sent_is_sent_once_after_sigkill() {
    let (fake, db, data, creators) =
        (FakeProviders::start().await, TestDb::new(Kind::Postgres).await, tempfile::tempdir().unwrap(), creators());
    let mut server = serve(data.path(), &db, creators.path(), &fake, Some("TWIN_FAULT_OUTBOX_HOLD_BEFORE_SEND")).await;
    assert_eq!(post_update(&server, &fixture("telegram/01_private_text_message.json")).await, 200);
    server.wait_for_log("holding outbox entries unsent", WAIT).await;
    server.kill().await;
    assert!(fake.calls_of("sendMessage").is_empty(), "killed before the HTTP call");

    let server = serve(data.path(), &db, creators.path(), &fake, None).await;
    fake.wait_for("sendMessage", 2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts: Vec<_> = fake.calls_of("sendMessage").iter().map(|c| c.body["text"].clone()).collect();
    assert_eq!(texts.len(), 2, "each message exactly once: {texts:?}");
    assert_ne!(texts[0], texts[1]);
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_in_flight_at_sigkill_is_repeated_at_most_once() {
    let (fake, db, data, creators) =
        (FakeProviders::start().await, TestDb::new(Kind::Sqlite).await, tempfile::tempdir().unwrap(), creators());
    // The provider takes the first message and never answers: the server dies mid-call.
    fake.script([Scripted::Hang]);
    let server = serve(data.path(), &db, creators.path(), &fake, None).await;
    assert_eq!(post_update(&server, &fixture("telegram/01_private_text_message.json")).await, 200);
    fake.wait_for("sendMessage", 1, WAIT).await;
    server.kill().await;

    let server = serve(data.path(), &db, creators.path(), &fake, None).await;
    let sent = fake.wait_for("sendMessage", 3, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let texts: Vec<Value> = fake.calls_of("sendMessage").iter().map(|c| c.body["text"].clone()).collect();
    // The documented window: the message in flight is sent again (the user may see it twice);
    // the one after it goes out once.
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[0], texts[1]);
    assert_eq!(sent[2].body["text"], json!("First, what should I call you?"));
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_register_points_the_bot_at_the_public_url_with_the_configured_secret() {
    let (fake, db, data, creators) =
        (FakeProviders::start().await, TestDb::new(Kind::Sqlite).await, tempfile::tempdir().unwrap(), creators());
    let twin = |args: &[&str]| {
        let mut command = std::process::Command::new(support::twin_binary());
        command
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .args(["--database-url", &db.url])
            .env("TWIN_TELEGRAM_API_BASE", fake.telegram_base())
            .env("TWIN_PUBLIC_URL", "https://twin.example.com/");
        command
    };
    let import = twin(&["creator", "import", "--no-embed"]).arg(creators.path().join("demo")).output().unwrap();
    assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
    // Blocking here is fine: the fake Bot API runs on the runtime's other worker.
    let register = twin(&["channels", "telegram-register", "--creator", "demo"]).output().unwrap();
    assert!(register.status.success(), "{}", String::from_utf8_lossy(&register.stderr));
    let calls = fake.calls_of("setWebhook");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body["url"], "https://twin.example.com/v1/channels/telegram/demo/webhook");
    assert_eq!(calls[0].body["secret_token"], WEBHOOK_SECRET);

    let missing = std::process::Command::new(support::twin_binary())
        .args(["channels", "telegram-register", "--creator", "nobody", "--data-dir"])
        .arg(data.path())
        .args(["--database-url", &db.url])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("import its bundle first"));
}
