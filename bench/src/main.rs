//! `twin-bench`: Twin's load harness. Each scenario is a subcommand; every run ends with a table
//! and can write every figure as JSON (`--json FILE`). Servers under test run as child processes on
//! loopback; the client never targets anything else.

mod client;
mod echo_server;
mod fsync;
mod process;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use scenarios::{LoadArgs, TwinArgs};

#[derive(Debug, Parser)]
#[command(
    name = "twin-bench",
    version,
    about = "Load harness for Twin: echo baseline, chat, connect, actors, nudges, webhooks, compare, cluster"
)]
struct Cli {
    /// Write every figure of the run to FILE as JSON.
    #[arg(long, global = true, value_name = "FILE")]
    json: Option<PathBuf>,
    /// No progress bars (CI logs).
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A bare axum WebSocket echo server, driven by the same client: the stack's physical limit.
    EchoBaseline {
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Simulated users chatting with Twin's built-in responder over WebSocket, real persistence.
    Chat {
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        twin: TwinArgs,
        /// Turn off `delta` previews (one message in, one final reply out).
        #[arg(long)]
        no_streaming: bool,
    },
    /// A connection storm, then the sessions held idle: count, rate, memory per session.
    Connect {
        /// Sessions to open (this machine's open-file limit is 20 000 per process).
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// Connections opened at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 4)]
        sources: u8,
        #[command(flatten)]
        twin: TwinArgs,
    },
    /// K idle conversation actors in-process: memory per actor, spawn, passivation, re-hydration.
    Actors {
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Stored messages loaded into each actor.
        #[arg(long, default_value_t = 2)]
        history: usize,
        #[command(flatten)]
        twin: TwinArgs,
    },
    /// N nudges held in the store, R per second falling due for S seconds, fired by the engine in
    /// this process across a restart: lateness (p50/p99), nudges lost and sent twice.
    Nudges {
        /// Nudge rows (one conversation each); those beyond R×S are due far in the future.
        #[arg(long, default_value_t = 1_000_000)]
        scheduled: usize,
        /// Nudges falling due per second.
        #[arg(long, default_value_t = 10_000)]
        rate: u32,
        /// Seconds of firing.
        #[arg(long, default_value_t = 20)]
        seconds: u32,
        /// Restart the engine at this fraction of the window; 0 (or 1) for none.
        #[arg(long, default_value_t = 0.5)]
        restart_at: f64,
        #[command(flatten)]
        twin: TwinArgs,
    },
    /// A flood of Telegram webhook deliveries (a share duplicated): throughput, the 200's latency,
    /// and exactly-once from the tables (one turn per distinct update).
    Webhooks {
        /// Distinct updates.
        #[arg(long, default_value_t = 20_000)]
        deliveries: usize,
        /// Users they come from.
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Share of updates delivered twice.
        #[arg(long, default_value_t = 0.10)]
        duplicates: f64,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[command(flatten)]
        twin: TwinArgs,
    },
    /// Echo baseline and chat (streaming off) back to back, their ratio, and the disk's flush latency.
    Compare {
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        twin: TwinArgs,
        /// fdatasync probes for the flush latency.
        #[arg(long, default_value_t = 200)]
        fsync_rounds: usize,
    },
    /// Several nodes in cluster mode (PostgreSQL + Redis): throughput and latency with 1, 2 and 3
    /// nodes, the share of forwarded messages and what a forward adds, then failover after a
    /// SIGKILL. Skips itself when PostgreSQL or Redis cannot be reached.
    Cluster {
        /// Node counts to measure (the cluster grows from one to the next).
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        nodes: Vec<usize>,
        /// Client connections (one user each), spread over the nodes round-robin.
        #[arg(long, default_value_t = 60)]
        connections: usize,
        /// Messages per second per connection (latency measured from when each was due); omit for
        /// a closed loop (throughput).
        #[arg(long)]
        rate: Option<f64>,
        /// Measured time per node count.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        warmup: Duration,
        #[arg(long, default_value_t = 4)]
        sources: u8,
        /// Heartbeat leases (TWIN_CLUSTER_LEASE_MS) of the failover runs, one run each; the first
        /// is also the scaling cluster's.
        #[arg(long, value_delimiter = ',', default_value = "3000,1000")]
        leases: Vec<u64>,
        /// Only the node counts, no failover run.
        #[arg(long)]
        no_failover: bool,
        /// Paced load clients during failover.
        #[arg(long, default_value_t = 30)]
        failover_clients: usize,
        /// Messages per second per failover load client.
        #[arg(long, default_value_t = 5.0)]
        failover_rate: f64,
        /// Users of the killed node probing for the failover.
        #[arg(long, default_value_t = 20)]
        probes: usize,
        /// Steady load before the kill and after the last probe was answered.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        steady: Duration,
        /// PostgreSQL server (a scratch database is created and dropped there); default
        /// postgres://postgres@127.0.0.1:5432/postgres.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value = scenarios::cluster::DEFAULT_REDIS)]
        redis_url: String,
    },
    /// Every scenario, small enough for CI with --quick (well under a minute).
    All {
        /// Tiny sizes and durations: a smoke test that the harness works, not a measurement.
        #[arg(long)]
        quick: bool,
        #[command(flatten)]
        twin: TwinArgs,
    },
    /// (internal) The bare echo server the baseline drives.
    #[command(hide = true)]
    EchoServer {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("twin-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut report = report::Report::default();
    report::machine(report.section("machine"));
    let quiet = cli.quiet;
    match cli.command {
        Command::EchoServer { listen } => return echo_server::run(&listen).await,
        Command::EchoBaseline { load } => {
            scenarios::load::echo_baseline(&load, &mut report, quiet).await?;
        }
        Command::Chat { load, twin, no_streaming } => {
            scenarios::load::chat(&load, &twin, !no_streaming, &mut report, quiet).await?;
        }
        Command::Connect { sessions, concurrency, sources, twin } => {
            let args = scenarios::connect::ConnectArgs { sessions, concurrency, sources };
            scenarios::connect::run(&args, &twin, &mut report, quiet).await?;
        }
        Command::Actors { count, history, twin } => {
            scenarios::actors::run(&scenarios::actors::ActorArgs { count, history }, &twin, &mut report).await?;
        }
        Command::Nudges { scheduled, rate, seconds, restart_at, twin } => {
            let args = scenarios::nudges::NudgeArgs { scheduled, rate, seconds, restart_at };
            scenarios::nudges::run(&args, &twin, &mut report).await?;
        }
        Command::Webhooks { deliveries, users, duplicates, concurrency, twin } => {
            let args = scenarios::webhooks::WebhookArgs { deliveries, users, duplicates, concurrency };
            scenarios::webhooks::run(&args, &twin, &mut report).await?;
        }
        Command::Compare { load, twin, fsync_rounds } => {
            scenarios::compare::run(&load, &twin, fsync_rounds, &mut report, quiet).await?;
        }
        Command::Cluster {
            nodes,
            connections,
            rate,
            duration,
            warmup,
            sources,
            leases,
            no_failover,
            failover_clients,
            failover_rate,
            probes,
            steady,
            database_url,
            redis_url,
        } => {
            let args = scenarios::cluster::ClusterArgs {
                nodes,
                connections,
                rate,
                duration,
                warmup,
                sources,
                leases_ms: if no_failover { Vec::new() } else { leases },
                failover_clients,
                failover_rate,
                probes,
                steady,
                redis_url,
            };
            scenarios::cluster::run(&args, database_url.as_deref(), &mut report, quiet).await?;
        }
        Command::All { quick, twin } => {
            let webhooks = scenarios::webhooks::WebhookArgs {
                deliveries: if quick { 1_000 } else { 20_000 },
                users: if quick { 100 } else { 1_000 },
                duplicates: 0.10,
                concurrency: 32,
            };
            let (load, sessions, actors, fsync_rounds, nudges) = if quick {
                let load = LoadArgs {
                    connections: 8,
                    rate: None,
                    duration: Duration::from_secs(2),
                    warmup: Duration::from_millis(500),
                    sources: 2,
                };
                let nudges =
                    scenarios::nudges::NudgeArgs { scheduled: 20_000, rate: 1_000, seconds: 3, restart_at: 0.5 };
                (load, 200, 1_000, 20, nudges)
            } else {
                let load = LoadArgs {
                    connections: 100,
                    rate: None,
                    duration: Duration::from_secs(10),
                    warmup: Duration::from_secs(2),
                    sources: 4,
                };
                let nudges =
                    scenarios::nudges::NudgeArgs { scheduled: 200_000, rate: 10_000, seconds: 10, restart_at: 0.5 };
                (load, 10_000, 10_000, 200, nudges)
            };
            scenarios::compare::run(&load, &twin, fsync_rounds, &mut report, quiet).await?;
            scenarios::load::chat(&load, &twin, true, &mut report, quiet).await?;
            let connect = scenarios::connect::ConnectArgs { sessions, concurrency: 64, sources: load.sources };
            scenarios::connect::run(&connect, &twin, &mut report, quiet).await?;
            let actor_args = scenarios::actors::ActorArgs { count: actors, history: 2 };
            scenarios::actors::run(&actor_args, &twin, &mut report).await?;
            scenarios::nudges::run(&nudges, &twin, &mut report).await?;
            scenarios::webhooks::run(&webhooks, &twin, &mut report).await?;
            // A cluster needs PostgreSQL: the one given, else the local default (skipped if absent).
            let cluster = scenarios::cluster::ClusterArgs {
                nodes: vec![1, 2, 3],
                connections: if quick { 12 } else { 60 },
                rate: None,
                duration: if quick { Duration::from_millis(1500) } else { Duration::from_secs(10) },
                warmup: if quick { Duration::from_millis(500) } else { Duration::from_secs(2) },
                sources: load.sources,
                leases_ms: if quick { vec![1000] } else { vec![3000, 1000] },
                failover_clients: if quick { 6 } else { 30 },
                failover_rate: 5.0,
                probes: if quick { 3 } else { 20 },
                steady: if quick { Duration::from_secs(1) } else { Duration::from_secs(3) },
                redis_url: scenarios::cluster::DEFAULT_REDIS.to_owned(),
            };
            let postgres = twin.database_url.as_deref().filter(|url| url.starts_with("postgres"));
            scenarios::cluster::run(&cluster, postgres, &mut report, quiet).await?;
        }
    }
    report.print();
    if let Some(path) = cli.json {
        report.write_json(&path)?;
        println!("\nfigures written to {}", path.display());
    }
    Ok(())
}
