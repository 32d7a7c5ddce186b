//! `compare`: the bare echo server and Twin (streaming off: one message in, one final reply out,
//! both committed) back to back in one run, plus the disk's flush latency measured in the same run.
//!
//! First both run flat out (closed loop) for the throughput ratio; then both run at half of
//! Twin's maximum rate, where the latency Twin adds over the echo is compared with the disk's
//! flush latency (every reply waits for at least one flush).

use serde_json::json;

use super::{LoadArgs, TwinArgs, load};
use crate::fsync;
use crate::report::{Report, percentiles};

pub async fn run(
    args: &LoadArgs,
    twin: &TwinArgs,
    fsync_rounds: usize,
    report: &mut Report,
    quiet: bool,
) -> anyhow::Result<()> {
    let probe_dir = tempfile::tempdir()?;
    let flushes = fsync::measure(probe_dir.path(), fsync_rounds)?;

    let flat_out = LoadArgs { rate: None, ..args.clone() };
    let echo_max = load::echo_baseline(&flat_out, report, quiet).await?;
    let engine_max = load::chat(&flat_out, twin, false, report, quiet).await?;

    let half_rate = engine_max.per_second() / 2.0 / args.connections.max(1) as f64;
    let paced = LoadArgs { rate: Some(half_rate.max(0.1)), ..args.clone() };
    let mut scratch = Report::default();
    let echo_paced = load::echo_baseline(&paced, &mut scratch, quiet).await?;
    let engine_paced = load::chat(&paced, twin, false, &mut scratch, quiet).await?;

    let echo_p99 = echo_paced.round_trip.value_at_quantile(0.99);
    let engine_p99 = engine_paced.round_trip.value_at_quantile(0.99);
    let figures = report.section("compare");
    figures.insert("echo_msgs_per_sec".into(), json!(echo_max.per_second()));
    figures.insert("engine_msgs_per_sec".into(), json!(engine_max.per_second()));
    figures.insert("throughput_ratio".into(), json!(engine_max.per_second() / echo_max.per_second().max(1e-9)));
    figures.insert("paced_rate_total_msgs_per_sec".into(), json!(half_rate * args.connections as f64));
    figures.insert("echo_p99_us".into(), json!(echo_p99));
    figures.insert("engine_p99_us".into(), json!(engine_p99));
    figures.insert("added_p99_us".into(), json!(engine_p99 as i64 - echo_p99 as i64));
    figures.insert("engine_paced_msgs_per_sec".into(), json!(engine_paced.per_second()));
    figures.insert("engine_paced_errors".into(), json!(engine_paced.errors));
    percentiles(figures, "fsync", &flushes);
    let budget = flushes.value_at_quantile(0.99) as i64 + 1_000;
    figures.insert("added_p99_within_fsync_p99_plus_1ms".into(), json!(engine_p99 as i64 - echo_p99 as i64 <= budget));
    Ok(())
}
