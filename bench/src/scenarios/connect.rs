//! `connect`: a connection storm against Twin, then the sessions held idle: how many, how fast
//! they opened, and what each costs the server in resident memory.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;

use super::{TwinArgs, TwinUnderTest, progress_bar};
use crate::client;
use crate::report::{Report, percentiles};

pub struct ConnectArgs {
    pub sessions: usize,
    pub concurrency: usize,
    pub sources: u8,
}

pub async fn run(args: &ConnectArgs, twin: &TwinArgs, report: &mut Report, quiet: bool) -> anyhow::Result<()> {
    let server = TwinUnderTest::start(twin, true).await?;
    // One session first, so the baseline includes everything a first connection initialises.
    let first = client::connect(server.addr, &server.url(usize::MAX), 1).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.server.rss()?;

    let bar = progress_bar("connect", quiet);
    let started = Instant::now();
    let mut latency = client::histogram();
    let mut held = Vec::with_capacity(args.sessions);
    let mut errors = 0u64;
    let mut first_error = None;
    let mut attempts = futures::stream::iter(0..args.sessions)
        .map(|i| {
            let url = server.url(i);
            let source = 1 + (i % args.sources.max(1) as usize) as u8;
            let addr = server.addr;
            async move {
                let t = Instant::now();
                (client::connect(addr, &url, source).await, t.elapsed())
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .boxed();
    while let Some((socket, took)) = attempts.next().await {
        match socket {
            Ok(socket) => {
                let _ = latency.record(took.as_micros().max(1) as u64);
                held.push(socket);
                bar.set_position(held.len() as u64);
            }
            Err(error) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
    drop(attempts);
    let storm = started.elapsed();
    bar.finish_and_clear();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.server.rss()?;
    let sessions_held = held.len();

    let figures = report.section("connect");
    figures.insert("sessions_requested".into(), json!(args.sessions));
    figures.insert("sessions_held".into(), json!(sessions_held));
    figures.insert("connect_errors".into(), json!(errors));
    if let Some(error) = first_error {
        figures.insert("first_connect_error".into(), json!(error));
    }
    figures.insert("connects_per_sec".into(), json!(sessions_held as f64 / storm.as_secs_f64().max(1e-9)));
    percentiles(figures, "connect", &latency);
    figures.insert("server_rss_before_bytes".into(), json!(before));
    figures.insert("server_rss_after_bytes".into(), json!(after));
    figures.insert(
        "rss_bytes_per_session".into(),
        json!((after.saturating_sub(before)) as f64 / sessions_held.max(1) as f64),
    );
    drop(held);
    drop(first);
    server.server.stop().await;
    Ok(())
}
