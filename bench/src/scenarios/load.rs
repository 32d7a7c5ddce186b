//! `echo-baseline` and `chat`: the same client driving the bare echo server or Twin.

use serde_json::json;

use super::{EchoUnderTest, LoadArgs, TwinArgs, TwinUnderTest, progress_bar};
use crate::client::{self, Outcome, Protocol};
use crate::report::{Report, percentiles};

pub async fn echo_baseline(args: &LoadArgs, report: &mut Report, quiet: bool) -> anyhow::Result<Outcome> {
    let echo = EchoUnderTest::start().await?;
    let bar = progress_bar("echo-baseline", quiet);
    let outcome = client::run(echo.addr, |i| echo.url(i), Protocol::Echo, &args.plan(), &bar).await;
    bar.finish_and_clear();
    let rss = echo.server.rss().unwrap_or(0);
    echo.server.stop().await;
    let outcome = outcome?;
    let figures = report.section("echo-baseline");
    describe(figures, args, &outcome, "echo");
    figures.insert("echo_server_rss_bytes".into(), json!(rss));
    Ok(outcome)
}

pub async fn chat(
    args: &LoadArgs,
    twin: &TwinArgs,
    streaming: bool,
    report: &mut Report,
    quiet: bool,
) -> anyhow::Result<Outcome> {
    let server = TwinUnderTest::start(twin, streaming).await?;
    let bar = progress_bar("chat", quiet);
    let outcome = client::run(server.addr, |i| server.url(i), Protocol::Chat, &args.plan(), &bar).await;
    bar.finish_and_clear();
    let rss = server.server.rss().unwrap_or(0);
    server.server.stop().await;
    let outcome = outcome?;
    let figures = report.section(if streaming { "chat" } else { "chat (streaming off)" });
    describe(figures, args, &outcome, "engine");
    figures.insert("store".into(), json!(if twin.database_url.is_some() { "postgres" } else { "sqlite" }));
    figures.insert("streaming".into(), json!(streaming));
    percentiles(figures, "engine_ack", &outcome.ack);
    percentiles(figures, "engine_first_delta", &outcome.first_delta);
    figures.insert("twin_server_rss_bytes".into(), json!(rss));
    Ok(outcome)
}

fn describe(
    figures: &mut std::collections::BTreeMap<String, serde_json::Value>,
    args: &LoadArgs,
    outcome: &Outcome,
    who: &str,
) {
    figures.insert("connections".into(), json!(args.connections));
    figures.insert("offered_rate_per_connection".into(), json!(args.rate));
    figures.insert("measured_seconds".into(), json!(args.duration.as_secs_f64()));
    figures.insert(format!("{who}_msgs_per_sec"), json!(outcome.per_second()));
    figures.insert(format!("{who}_errors"), json!(outcome.errors));
    percentiles(figures, who, &outcome.round_trip);
}
