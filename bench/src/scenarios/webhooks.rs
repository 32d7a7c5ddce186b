//! `webhooks`: a flood of Telegram updates at Twin's webhook, a share of them delivered twice (as
//! Telegram does when it did not see a 200 in time), from many users at once. Measures the webhook's
//! throughput and the latency of its 200 (verify, store in the inbox, answer), then how long the
//! engine takes to turn every distinct update into a stored turn, and checks exactly-once from the
//! tables: one user message per distinct update, none twice, no inbox row left unprocessed.
//!
//! The bot's replies go to a fake Bot API in this process that accepts everything, so the outbox
//! runs as in production without leaving the machine.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use twin_engine::Slug;
use twin_engine::channel::{ChannelsConfig, SecretRef, TelegramSettings};

use super::TwinArgs;
use super::nudges::{Database, Tables};
use crate::process;
use crate::report::{Report, percentiles};

const CREATOR: &str = "bench";
const BOT_TOKEN: &str = "1000:bench-bot-token";
const SECRET: &str = "bench-webhook-secret";
/// How long the engine may take to process the flood after the last 200.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct WebhookArgs {
    /// Distinct updates.
    pub deliveries: usize,
    /// Users they come from (round robin).
    pub users: usize,
    /// Share of updates delivered a second time.
    pub duplicates: f64,
    /// Requests in flight at once.
    pub concurrency: usize,
}

pub async fn run(args: &WebhookArgs, twin: &TwinArgs, report: &mut Report) -> anyhow::Result<()> {
    anyhow::ensure!(args.deliveries > 0 && args.users > 0 && args.concurrency > 0, "sizes must be > 0");
    let data = tempfile::tempdir()?;
    let database = Database::fresh_for("webhooks", twin.database_url.as_deref(), data.path()).await?;
    let measured = measure(args, &database.url, data.path(), report).await;
    let removed = database.remove().await;
    measured?;
    removed
}

async fn measure(args: &WebhookArgs, url: &str, dir: &std::path::Path, report: &mut Report) -> anyhow::Result<()> {
    let (bot_api, sends) = fake_bot_api().await?;
    let creators = dir.join("creators");
    let mut bundle = twin_api::bundle::demo();
    bundle.profile.slug = Slug::parse(CREATOR)?;
    // Free chat: every message is a turn the twin answers, not a program step.
    bundle.programs.clear();
    bundle.profile.default_program = None;
    bundle.profile.channels = ChannelsConfig {
        telegram: Some(TelegramSettings {
            bot_token: SecretRef::new(BOT_TOKEN),
            webhook_secret: SecretRef::new(SECRET),
            bot_username: None,
        }),
        whatsapp: None,
    };
    twin_api::bundle::write_dir(&bundle, &creators.join(CREATOR))?;
    let base = format!("http://{bot_api}");
    let server = process::start_twin_with(
        &dir.join("data"),
        &creators,
        Some(url),
        "twin-bench-secret-twin-bench-secret-0123",
        &[("TWIN_TELEGRAM_API_BASE", base.as_str())],
    )
    .await?;
    let webhook = format!("http://{}/v1/channels/telegram/{CREATOR}/webhook", server.addr);

    // Every `1 / duplicates`-th update is delivered again, later in the flood.
    let every = if args.duplicates > 0.0 { (1.0 / args.duplicates).round().max(1.0) as usize } else { usize::MAX };
    let mut bodies: Vec<Value> = (0..args.deliveries).map(|i| update(i, args.users)).collect();
    let repeats: Vec<Value> =
        (0..args.deliveries).filter(|i| i % every == every - 1).map(|i| bodies[i].clone()).collect();
    let duplicates = repeats.len();
    for (n, repeat) in repeats.into_iter().enumerate() {
        let at = (bodies.len() * (n + 1) / (duplicates + 1)).min(bodies.len());
        bodies.insert(at, repeat);
    }

    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let started = Instant::now();
    let results: Vec<(u16, u64)> = futures::stream::iter(bodies)
        .map(|body| {
            let (http, webhook) = (http.clone(), webhook.clone());
            async move {
                let sent = Instant::now();
                let status = http
                    .post(&webhook)
                    .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
                    .json(&body)
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16());
                (status, sent.elapsed().as_micros() as u64)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let posting = started.elapsed();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).context("histogram bounds")?;
    let mut refused = 0;
    for (status, micros) in &results {
        if *status == 200 {
            latency.record((*micros).max(1)).ok();
        } else {
            refused += 1;
        }
    }

    // The engine side: every distinct update becomes exactly one stored user turn.
    let mut tables = Tables::connect(url).await?;
    let drain_started = Instant::now();
    let (turns, pending) = loop {
        let turns = tables.count("SELECT count(*) FROM messages WHERE origin = 'user'".to_owned()).await?;
        let pending = tables.count("SELECT count(*) FROM inbox WHERE processed_at IS NULL".to_owned()).await?;
        if (turns as usize >= args.deliveries && pending == 0) || drain_started.elapsed() > DRAIN_LIMIT {
            break (turns, pending);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let processed_after = started.elapsed();
    let twice = tables
        .count(
            "SELECT count(*) FROM (SELECT conversation_id, client_id FROM messages WHERE origin = 'user' \
             GROUP BY conversation_id, client_id HAVING count(*) > 1) AS twice"
                .to_owned(),
        )
        .await?;
    let inbox_rows = tables.count("SELECT count(*) FROM inbox".to_owned()).await?;
    tables.close().await;
    let rss = server.rss().unwrap_or(0);
    server.stop().await;

    let figures = report.section("webhooks");
    figures.insert("store".into(), json!(if url.starts_with("sqlite:") { "sqlite" } else { "postgres" }));
    figures.insert("distinct_updates".into(), json!(args.deliveries));
    figures.insert("duplicate_deliveries".into(), json!(duplicates));
    figures.insert("users".into(), json!(args.users));
    figures.insert("concurrency".into(), json!(args.concurrency));
    figures.insert("webhook_requests_per_sec".into(), json!(results.len() as f64 / posting.as_secs_f64()));
    figures.insert("webhook_refused".into(), json!(refused));
    percentiles(figures, "webhook_200", &latency);
    figures.insert("all_processed_after_ms".into(), json!(processed_after.as_millis() as u64));
    figures.insert("turns_per_sec".into(), json!(turns as f64 / processed_after.as_secs_f64()));
    figures.insert("user_turns_stored".into(), json!(turns));
    figures.insert("inbox_rows".into(), json!(inbox_rows));
    figures.insert("inbox_unprocessed".into(), json!(pending));
    figures.insert("turns_stored_twice".into(), json!(twice));
    figures.insert("replies_sent_to_bot_api".into(), json!(sends.load(Ordering::Relaxed)));
    figures.insert("exactly_once".into(), json!(turns as usize == args.deliveries && twice == 0 && pending == 0));
    figures.insert("twin_server_rss_bytes".into(), json!(rss));
    Ok(())
}

/// Update `i` from user `i % users`, in the shape of a private text message.
fn update(i: usize, users: usize) -> Value {
    let user = 100_000 + (i % users) as u64;
    json!({
        "update_id": 500_000_000u64 + i as u64,
        "message": {
            "message_id": i,
            "from": {"id": user, "is_bot": false, "first_name": "Bench"},
            "chat": {"id": user, "type": "private", "first_name": "Bench"},
            "date": 1_751_898_123u64,
            "text": format!("how do I keep my focus in the afternoon? ({i})"),
        }
    })
}

/// A Bot API that accepts every call; counts `sendMessage`.
async fn fake_bot_api() -> anyhow::Result<(std::net::SocketAddr, Arc<AtomicU64>)> {
    let sends = Arc::new(AtomicU64::new(0));
    let counter = sends.clone();
    let app = axum::Router::new().route(
        "/{bot}/{method}",
        axum::routing::post(move |axum::extract::Path((_bot, method)): axum::extract::Path<(String, String)>| {
            let counter = counter.clone();
            async move {
                let id = if method == "sendMessage" { counter.fetch_add(1, Ordering::Relaxed) } else { 0 };
                axum::Json(json!({"ok": true, "result": {"message_id": id, "chat": {"id": 1}, "date": 0}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, sends))
}
