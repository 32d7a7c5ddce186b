//! `cluster`: several `twin serve` nodes over one PostgreSQL database and one Redis (cluster mode,
//! docs/CLUSTER.md), on this machine.
//!
//! 1. **Scaling.** The same client load (closed loop, one user per connection) against 1, 2 and 3
//!    nodes, connections spread over the nodes round-robin as a load balancer would: messages per
//!    second, message → ack and message → reply latencies, the share of messages forwarded to their
//!    conversation's owner on another node (`twin_cluster_forwards_total` over messages sent), and
//!    what a forward adds (connections whose socket is on the owner against the others; the owner
//!    is computed here with `twin_engine::placement::owner` over the live node ids).
//! 2. **Failover.** Three nodes under steady paced load; one is killed (SIGKILL). Probe users whose
//!    conversations the dead node owned (warmed there before the kill) write through the survivors:
//!    the time until each is answered again, with the lease stated; half of them wait on a message
//!    sent at the kill (in flight: it sits in the dead node's stream until a survivor drains it),
//!    half send a new message every 250 ms until one is answered (new messages served again). The load clients reconnect to a
//!    survivor and resend what was not answered (same client id), as a web client behind a load
//!    balancer does; the run counts the messages that needed a retry and checks the tables (nothing
//!    stored twice, nothing answered twice, nothing left unanswered).
//!
//! Needs PostgreSQL and Redis; without them it says so and skips itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use twin_api::auth::{Role, TokenKeys};
use twin_engine::{ConversationId, CreatorId, Slug, UserId};

use super::nudges::{Database, Tables};
use super::{JWT_SECRET, progress_bar};
use crate::client::{self, Outcome, Plan, Protocol, Socket, histogram};
use crate::process::{self, Log, Server};
use crate::report::Report;

const CREATOR: &str = "bench";
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";
const FORWARDS: &str = "twin_cluster_forwards_total";
const SPAWNS: &str = "twin_conversation_spawns_total";
/// How long a failover message may take, retries included, before it counts as failed.
const MESSAGE_DEADLINE: Duration = Duration::from_secs(60);
/// Linux's clock tick for /proc CPU times (USER_HZ, 100 on every mainstream architecture).
const TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone)]
pub struct ClusterArgs {
    /// Node counts to measure, in order (the cluster grows from one to the next).
    pub nodes: Vec<usize>,
    /// Client connections (one user each), the same for every node count.
    pub connections: usize,
    /// Messages per second per connection; `None`: closed loop (each sent when the last is answered).
    pub rate: Option<f64>,
    pub duration: Duration,
    pub warmup: Duration,
    pub sources: u8,
    /// A failover run (3 nodes, one killed) per lease, in milliseconds; none to skip.
    pub leases_ms: Vec<u64>,
    /// Paced load clients during the failover runs.
    pub failover_clients: usize,
    /// Messages per second per load client.
    pub failover_rate: f64,
    /// Users of the killed node that probe for the failover.
    pub probes: usize,
    /// Load before the kill, and again after every probe was answered.
    pub steady: Duration,
    pub redis_url: String,
}

pub async fn run(
    args: &ClusterArgs,
    database_url: Option<&str>,
    report: &mut Report,
    quiet: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(args.connections > 0, "connections must be > 0");
    let postgres = match database_url {
        None => DEFAULT_POSTGRES,
        Some(url) if url.starts_with("postgres:") || url.starts_with("postgresql:") => url,
        Some(url) => bail!("a cluster needs PostgreSQL, not {url}"),
    };
    if let Err(why) = reachable(postgres, &args.redis_url).await {
        eprintln!("twin-bench cluster: skipped: {why}");
        report.section("cluster").insert("cluster_skipped".into(), json!(why));
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    write_creator(&dir.path().join("creators"))?;

    // Scaling: one cluster that grows from one node count to the next.
    let mut leases = args.leases_ms.clone();
    let mut counts = args.nodes.clone();
    counts.sort_unstable();
    counts.dedup();
    if !counts.is_empty() {
        let lease = leases.first().copied().unwrap_or(3000);
        let mut nodes = Nodes::new(postgres, &args.redis_url, lease, dir.path()).await?;
        let measured = async {
            for &n in &counts {
                while nodes.servers.len() < n {
                    let id = format!("node{}", nodes.servers.len() + 1);
                    nodes.add(&id).await?;
                }
                nodes.wait_formed().await?;
                // Let the hand-over of the last join settle before measuring.
                tokio::time::sleep(Duration::from_millis(300)).await;
                scaling_round(&nodes, n, args, report, quiet).await?;
            }
            // The same three nodes serve the first failover run.
            if nodes.servers.len() == 3 && !leases.is_empty() {
                leases.remove(0);
                failover(&mut nodes, args, report).await?;
            }
            anyhow::Ok(())
        }
        .await;
        let closed = nodes.close().await;
        measured?;
        closed?;
    }
    for lease in leases {
        let mut nodes = Nodes::new(postgres, &args.redis_url, lease, dir.path()).await?;
        let measured = async {
            for i in 1..=3 {
                nodes.add(&format!("node{i}")).await?;
            }
            nodes.wait_formed().await?;
            failover(&mut nodes, args, report).await
        }
        .await;
        let closed = nodes.close().await;
        measured?;
        closed?;
    }
    Ok(())
}

/// One node count: the client load spread over the nodes round-robin.
async fn scaling_round(
    nodes: &Nodes,
    n: usize,
    args: &ClusterArgs,
    report: &mut Report,
    quiet: bool,
) -> anyhow::Result<()> {
    let ids = nodes.ids();
    let users: Vec<String> = (0..args.connections).map(|i| format!("n{n}-user-{i}")).collect();
    let homes: Vec<&String> = (0..args.connections).map(|i| &ids[i % ids.len()]).collect();
    let owners: Vec<String> = users.iter().map(|u| owner(u, &ids)).collect::<anyhow::Result<_>>()?;
    let targets: Vec<(SocketAddr, String)> =
        users.iter().zip(&homes).map(|(user, home)| (nodes.addr(home), chat_url(nodes.addr(home), user))).collect();

    let forwards_before = nodes.metric_sum(FORWARDS).await;
    let spawns_before = nodes.metric_sum(SPAWNS).await;
    let cpu_before = CpuSample::take(&nodes.pids());
    let plan = Plan {
        connections: args.connections,
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
        sources: args.sources,
    };
    let bar = progress_bar(&format!("cluster x{n}"), quiet);
    let each = client::run_each(|i| targets[i].clone(), Protocol::Chat, &plan, &bar).await;
    bar.finish_and_clear();
    let each = each?;
    let cpu = CpuSample::take(&nodes.pids()).since(&cpu_before);
    let forwards = nodes.metric_sum(FORWARDS).await - forwards_before;
    let spawns = nodes.metric_sum(SPAWNS).await - spawns_before;

    let all = Outcome::merged(args.duration, &each)?;
    let on_owner = Outcome::merged(
        args.duration,
        each.iter().enumerate().filter(|(i, _)| *homes[*i] == owners[*i]).map(|(_, o)| o),
    )?;
    let elsewhere = Outcome::merged(
        args.duration,
        each.iter().enumerate().filter(|(i, _)| *homes[*i] != owners[*i]).map(|(_, o)| o),
    )?;
    let on_owner_connections = (0..args.connections).filter(|&i| *homes[i] == owners[i]).count();

    let p = format!("n{n}_");
    let figures = report.section(&format!("cluster ({n} node{})", if n == 1 { "" } else { "s" }));
    figures.insert(format!("{p}nodes"), json!(n));
    figures.insert(format!("{p}connections"), json!(args.connections));
    figures.insert(format!("{p}connections_on_owner"), json!(on_owner_connections));
    figures.insert(format!("{p}offered_rate_per_connection"), json!(args.rate));
    figures.insert(format!("{p}measured_seconds"), json!(args.duration.as_secs_f64()));
    figures.insert(format!("{p}msgs_per_sec"), json!(all.per_second()));
    figures.insert(format!("{p}errors"), json!(all.errors));
    latencies(figures, &format!("{p}ack"), &all.ack);
    latencies(figures, &format!("{p}reply"), &all.round_trip);
    figures.insert(format!("{p}messages_sent"), json!(all.sent));
    figures.insert(format!("{p}forwards"), json!(forwards));
    figures.insert(format!("{p}forwarded_share"), json!(forwards / (all.sent.max(1) as f64)));
    // What the placement predicts: the messages sent on sockets away from their owner (it differs
    // from (n - 1) / n with few users, and because forwarded connections run slower).
    figures.insert(format!("{p}forwarded_share_expected"), json!(elsewhere.sent as f64 / all.sent.max(1) as f64));
    figures.insert(format!("{p}forwarded_share_uniform"), json!((n as f64 - 1.0) / n as f64));
    figures.insert(format!("{p}conversation_spawns"), json!(spawns));
    if !on_owner.round_trip.is_empty() {
        latencies(figures, &format!("{p}on_owner_ack"), &on_owner.ack);
        latencies(figures, &format!("{p}on_owner_reply"), &on_owner.round_trip);
        figures.insert(
            format!("{p}on_owner_msgs_per_sec_per_connection"),
            json!(per_connection(&on_owner, on_owner_connections)),
        );
    }
    if !elsewhere.round_trip.is_empty() {
        let count = args.connections - on_owner_connections;
        latencies(figures, &format!("{p}forwarded_ack"), &elsewhere.ack);
        latencies(figures, &format!("{p}forwarded_reply"), &elsewhere.round_trip);
        figures.insert(format!("{p}forwarded_msgs_per_sec_per_connection"), json!(per_connection(&elsewhere, count)));
    }
    if !on_owner.round_trip.is_empty() && !elsewhere.round_trip.is_empty() {
        for (what, on, off) in
            [("ack", &on_owner.ack, &elsewhere.ack), ("reply", &on_owner.round_trip, &elsewhere.round_trip)]
        {
            for (name, q) in [("p50", 0.50), ("p99", 0.99)] {
                let added = off.value_at_quantile(q) as i64 - on.value_at_quantile(q) as i64;
                figures.insert(format!("{p}forward_adds_{what}_{name}_us"), json!(added));
            }
        }
    }
    figures.insert(format!("{p}nodes_cpu_cores"), json!(cpu.processes_cores));
    figures.insert(format!("{p}machine_busy_cores"), json!(cpu.machine_busy_cores));
    Ok(())
}

fn per_connection(outcome: &Outcome, connections: usize) -> f64 {
    outcome.per_second() / connections.max(1) as f64
}

/// One failover run on three formed nodes: steady load, SIGKILL of one, probes through the others.
async fn failover(nodes: &mut Nodes, args: &ClusterArgs, report: &mut Report) -> anyhow::Result<()> {
    let ids = nodes.ids();
    anyhow::ensure!(ids.len() >= 2, "a failover needs at least two nodes");
    let lease = nodes.lease_ms;
    let victim = ids[1].clone();
    let survivors: Vec<String> = ids.iter().filter(|id| **id != victim).cloned().collect();
    let survivor_addrs: Vec<SocketAddr> = survivors.iter().map(|id| nodes.addr(id)).collect();
    let tag = format!("l{lease}");

    // Probe users the victim owns, their conversations loaded there before the kill.
    let mut probes = Vec::new();
    for k in 0.. {
        // Half wait on one message, half keep sending new ones (see `probe`).
        if probes.len() >= 2 * args.probes {
            break;
        }
        let user = format!("{tag}-probe-{k}");
        if owner(&user, &ids)? == victim {
            probes.push(user);
        }
    }
    for user in &probes {
        let mut socket = client::connect(nodes.addr(&victim), &chat_url(nodes.addr(&victim), user), 1).await?;
        exchange(&mut socket, &format!("{user}-warm"), "hello", Duration::from_secs(10), false)
            .await
            .map_err(|failure| anyhow::anyhow!("warming probe {user} failed: {failure}"))?;
        let _ = socket.close(None).await;
    }

    // Steady load through every node; the pool is what a load balancer would send to.
    let pool = Arc::new(Mutex::new(ids.iter().map(|id| nodes.addr(id)).collect::<Vec<_>>()));
    let stop = Arc::new(AtomicBool::new(false));
    let period = Duration::from_secs_f64(1.0 / args.failover_rate.max(0.01));
    let clients: Vec<_> = (0..args.failover_clients)
        .map(|i| {
            let user = format!("{tag}-load-{i}");
            let victim_owned = owner(&user, &ids).is_ok_and(|o| o == victim);
            let offset = period.mul_f64(i as f64 / args.failover_clients.max(1) as f64);
            let (pool, stop) = (pool.clone(), stop.clone());
            let task = tokio::spawn(load_client(i, user, pool, period, offset, stop));
            (victim_owned, task)
        })
        .collect();
    tokio::time::sleep(args.steady).await;

    let spawns_before = nodes.metric_sum_of(&survivors, SPAWNS).await;
    let victim_addr = nodes.addr(&victim);
    pool.lock().unwrap_or_else(PoisonError::into_inner).retain(|a| *a != victim_addr);
    let killed_at = nodes.kill(&victim).await;

    let watcher = tokio::spawn(view_dropped(survivor_addrs.clone(), survivors.clone(), killed_at));
    let attempt_within = Duration::from_millis(2 * lease) + Duration::from_secs(3);
    let probe_tasks: Vec<_> = probes
        .iter()
        .enumerate()
        .map(|(k, user)| {
            let fresh = k >= args.probes;
            let within = if fresh { FRESH_ATTEMPT } else { attempt_within };
            (fresh, tokio::spawn(probe(user.clone(), k, survivor_addrs.clone(), killed_at, within, fresh)))
        })
        .collect();
    let mut waiting = Probes::default();
    let mut fresh = Probes::default();
    for (is_fresh, task) in probe_tasks {
        let result = task.await.context("a probe panicked")?;
        if is_fresh { &mut fresh } else { &mut waiting }.add(result);
    }
    let all_answered_after = killed_at.elapsed();
    let view_dropped = watcher.await.context("the view watcher panicked")?;
    tokio::time::sleep(args.steady).await;
    stop.store(true, Ordering::SeqCst);

    let mut load = Tally::default();
    let mut victim_load = Tally::default();
    for (victim_owned, task) in clients {
        let tally = task.await.context("a load client panicked")?;
        if victim_owned {
            victim_load.add(&tally);
        }
        load.add(&tally);
    }
    // Replies of the last messages are committed by now; count from the tables.
    let store = StoreCheck::read(&nodes.db_url).await?;
    let spawns_after_kill = nodes.metric_sum(SPAWNS).await - spawns_before;
    let mut cluster_metrics = BTreeMap::new();
    for name in [
        "twin_cluster_handovers_total",
        "twin_cluster_fenced_commits_total",
        "twin_cluster_send_failures_total",
        "twin_cluster_send_dropped_total",
        "twin_cluster_duplicates_total",
        FORWARDS,
        "twin_conversation_restarts_total",
        "twin_writer_commit_failures_total",
        "twin_reply_failures_total",
    ] {
        cluster_metrics.insert(name.trim_start_matches("twin_").to_owned(), json!(nodes.metric_sum(name).await));
    }

    let p = format!("failover_l{lease}_");
    let figures = report.section(&format!("cluster failover (lease {lease} ms)"));
    figures.insert(format!("{p}lease_ms"), json!(lease));
    figures.insert(format!("{p}nodes"), json!(ids.len()));
    figures.insert(format!("{p}killed"), json!(victim));
    waiting.describe(figures, &format!("{p}probe"));
    fresh.describe(figures, &format!("{p}fresh_probe"));
    figures.insert(format!("{p}probes_done_ms"), json!(all_answered_after.as_millis() as u64));
    figures.insert(format!("{p}view_dropped_ms"), json!(view_dropped.map(|d| d.as_millis() as u64)));
    figures.insert(format!("{p}load_clients"), json!(args.failover_clients));
    figures.insert(format!("{p}load_rate_per_client"), json!(args.failover_rate));
    load.describe(figures, &format!("{p}load"));
    victim_load.describe(figures, &format!("{p}victim_users"));
    figures.insert(format!("{p}spawns_after_kill"), json!(spawns_after_kill));
    figures.insert(format!("{p}survivor_metrics"), json!(cluster_metrics));
    store.describe(figures, &p);
    figures.insert(format!("{p}node_logs"), nodes.log_summary());
    Ok(())
}

/// A paced user behind a load balancer: a message every `period`, each until acknowledged and
/// answered; a failure drops the socket and resends (same client id) through the next node.
async fn load_client(
    index: usize,
    user: String,
    pool: Arc<Mutex<Vec<SocketAddr>>>,
    period: Duration,
    offset: Duration,
    stop: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::default();
    let mut socket: Option<Socket> = None;
    let mut target = index;
    let mut due = Instant::now() + offset;
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep_until(due).await;
        n += 1;
        let id = format!("{user}-m{n}");
        let text = client::QUESTIONS[(n as usize + index) % client::QUESTIONS.len()];
        let mut attempts = 0u64;
        let answered = loop {
            attempts += 1;
            if due.elapsed() > MESSAGE_DEADLINE {
                break false;
            }
            if socket.is_none() {
                let addr = {
                    let pool = pool.lock().unwrap_or_else(PoisonError::into_inner);
                    pool[target % pool.len().max(1)]
                };
                match client::connect(addr, &chat_url(addr, &user), 1).await {
                    Ok(s) => socket = Some(s),
                    Err(error) => {
                        *tally.failures.entry(format!("connect: {error:#}")).or_default() += 1;
                        target += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            let Some(live) = socket.as_mut() else { continue };
            match exchange(live, &id, text, Duration::from_secs(10), attempts > 1).await {
                Ok(()) => break true,
                Err(failure) => {
                    *tally.failures.entry(failure.to_string()).or_default() += 1;
                    socket = None;
                    target += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        tally.messages += 1;
        if answered {
            tally.latency.saturating_record(micros(due.elapsed()));
        } else {
            tally.failed += 1;
        }
        if attempts > 1 {
            tally.retried += 1;
            tally.retries += attempts - 1;
        }
        due += period;
    }
    if let Some(mut socket) = socket {
        let _ = socket.close(None).await;
    }
    tally
}

/// What the load clients of a failover run saw.
struct Tally {
    messages: u64,
    /// Messages that needed more than one attempt, and the extra attempts.
    retried: u64,
    retries: u64,
    /// Messages not answered within [`MESSAGE_DEADLINE`].
    failed: u64,
    /// Due → answered, retries included (µs).
    latency: Histogram<u64>,
    /// Why attempts failed.
    failures: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self { messages: 0, retried: 0, retries: 0, failed: 0, latency: histogram(), failures: BTreeMap::new() }
    }
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.messages += other.messages;
        self.retried += other.retried;
        self.retries += other.retries;
        self.failed += other.failed;
        let _ = self.latency.add(&other.latency);
        for (failure, count) in &other.failures {
            *self.failures.entry(failure.clone()).or_default() += count;
        }
    }

    fn describe(&self, figures: &mut BTreeMap<String, Value>, prefix: &str) {
        figures.insert(format!("{prefix}_messages"), json!(self.messages));
        figures.insert(format!("{prefix}_messages_retried"), json!(self.retried));
        figures.insert(format!("{prefix}_retries"), json!(self.retries));
        figures.insert(format!("{prefix}_messages_failed"), json!(self.failed));
        if !self.latency.is_empty() {
            latencies(figures, &format!("{prefix}_reply"), &self.latency);
            figures.insert(format!("{prefix}_reply_max_us"), json!(self.latency.max()));
            let slow = self.latency.count_between(1_000_000, u64::MAX);
            figures.insert(format!("{prefix}_messages_over_1s"), json!(slow));
        }
        if !self.failures.is_empty() {
            figures.insert(format!("{prefix}_failures"), json!(self.failures));
        }
    }
}

struct ProbeResult {
    answered_after: Option<Duration>,
    attempts: u64,
    failures: Vec<String>,
}

/// The probes of one kind, together.
#[derive(Default)]
struct Probes {
    count: u64,
    answered: Option<Histogram<u64>>,
    unanswered: u64,
    retries: u64,
    failures: BTreeMap<String, u64>,
}

impl Probes {
    fn add(&mut self, result: ProbeResult) {
        self.count += 1;
        self.retries += result.attempts.saturating_sub(1);
        for failure in result.failures {
            *self.failures.entry(failure).or_default() += 1;
        }
        match result.answered_after {
            Some(after) => self.answered.get_or_insert_with(histogram).saturating_record(micros(after)),
            None => self.unanswered += 1,
        }
    }

    fn describe(&self, figures: &mut BTreeMap<String, Value>, prefix: &str) {
        figures.insert(format!("{prefix}s"), json!(self.count));
        if let Some(answered) = &self.answered {
            figures.insert(format!("{prefix}_first_answered_ms"), json!(answered.min() as f64 / 1000.0));
            figures.insert(format!("{prefix}_p50_answered_ms"), json!(answered.value_at_quantile(0.5) as f64 / 1000.0));
            figures.insert(format!("{prefix}_all_answered_ms"), json!(answered.max() as f64 / 1000.0));
        }
        figures.insert(format!("{prefix}s_unanswered"), json!(self.unanswered));
        figures.insert(format!("{prefix}_attempts_beyond_first"), json!(self.retries));
        figures.insert(format!("{prefix}_failures"), json!(self.failures));
    }
}

/// How long a fresh probe waits for each new message before it sends another.
const FRESH_ATTEMPT: Duration = Duration::from_millis(250);

/// One of the dead node's users writing through the survivors (alternately) until it is answered.
/// Waiting (`fresh` false): one message, sent at the kill and waited for (a message in flight:
/// it may sit in the dead node's stream until a survivor drains it), resent with the same client
/// id only after an error. Fresh: a new message (new client id) on a new socket every
/// [`FRESH_ATTEMPT`] until one is answered, which shows when new messages are served again.
async fn probe(
    user: String,
    k: usize,
    survivors: Vec<SocketAddr>,
    killed_at: Instant,
    within: Duration,
    fresh: bool,
) -> ProbeResult {
    let mut result = ProbeResult { answered_after: None, attempts: 0, failures: Vec::new() };
    while killed_at.elapsed() < MESSAGE_DEADLINE {
        let addr = survivors[(k + result.attempts as usize) % survivors.len()];
        result.attempts += 1;
        let id = if fresh { format!("{user}-fresh-{}", result.attempts) } else { format!("{user}-after-kill") };
        let resent = !fresh && result.attempts > 1;
        let outcome = match client::connect(addr, &chat_url(addr, &user), 2).await {
            Ok(mut socket) => {
                let outcome = exchange(&mut socket, &id, "are you there?", within, resent).await;
                let _ = socket.close(None).await;
                outcome
            }
            Err(error) => Err(Failure::Connection(format!("{error:#}"))),
        };
        match outcome {
            Ok(()) => {
                result.answered_after = Some(killed_at.elapsed());
                break;
            }
            // A fresh probe's timeouts are its polling, not failures.
            Err(Failure::Timeout) if fresh => {}
            Err(failure) => {
                result.failures.push(failure.to_string());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    result
}

/// When every survivor's `/healthz/cluster` stopped listing the dead node (None: not within 60 s).
async fn view_dropped(addrs: Vec<SocketAddr>, survivors: Vec<String>, killed_at: Instant) -> Option<Duration> {
    let mut expected = survivors;
    expected.sort();
    while killed_at.elapsed() < MESSAGE_DEADLINE {
        let mut all = true;
        for addr in &addrs {
            if view_of(*addr).await != expected {
                all = false;
                break;
            }
        }
        if all {
            return Some(killed_at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[derive(Debug)]
enum Failure {
    Connection(String),
    /// An error frame for the message (e.g. `unavailable` while the cluster changes).
    Refused(String),
    Timeout,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Connection(why) => write!(f, "connection: {why}"),
            Failure::Refused(why) => write!(f, "refused: {why}"),
            Failure::Timeout => write!(f, "timeout"),
        }
    }
}

/// Sends message `id` and waits for its ack and the twin's reply to it. `resent`: the message may
/// have been taken before (a retry), so its reply may be stored already; ask for what follows it.
async fn exchange(socket: &mut Socket, id: &str, text: &str, within: Duration, resent: bool) -> Result<(), Failure> {
    let frame = json!({"type": "message", "id": id, "text": text});
    socket.send(Message::text(frame.to_string())).await.map_err(|e| Failure::Connection(e.to_string()))?;
    let waited = tokio::time::timeout(within, async {
        let mut ack: Option<u64> = None;
        loop {
            let message = match socket.next().await {
                Some(Ok(message)) => message,
                Some(Err(error)) => return Err(Failure::Connection(error.to_string())),
                None => return Err(Failure::Connection("closed by the server".to_owned())),
            };
            let Message::Text(text) = message else { continue };
            let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
            match frame["type"].as_str() {
                Some("ack") if frame["id"] == id => {
                    ack = frame["seq"].as_u64();
                    if resent {
                        let resume = json!({"type": "resume", "after": ack});
                        socket
                            .send(Message::text(resume.to_string()))
                            .await
                            .map_err(|e| Failure::Connection(e.to_string()))?;
                    }
                }
                Some("error") if frame["id"] == id || frame["id"].is_null() => {
                    let why = frame["code"].as_str().or(frame["message"].as_str()).unwrap_or("error");
                    return Err(Failure::Refused(why.to_owned()));
                }
                Some("message") if frame["origin"] == "twin" => {
                    if let Some(ack) = ack {
                        let stream = frame["stream"].as_str();
                        if stream.is_none_or(|s| s == format!("r{ack}")) {
                            return Ok(());
                        }
                    }
                }
                _ => {}
            }
        }
    })
    .await;
    waited.unwrap_or(Err(Failure::Timeout))
}

/// The tables after a failover run: exactly-once, from the store's side.
struct StoreCheck {
    user_messages: i64,
    stored_twice: i64,
    answered_twice: i64,
    /// Conversations whose last user message has no twin message after it.
    unanswered: i64,
}

impl StoreCheck {
    async fn read(url: &str) -> anyhow::Result<Self> {
        let mut tables = Tables::connect(url).await?;
        // The last replies may still be on their way to the store.
        let deadline = Instant::now() + Duration::from_secs(10);
        // A conversation left waiting: no twin message after its last user message. (Not "every user
        // message has its own reply": a burst of messages from one user is answered once.)
        let unanswered_sql = "SELECT count(*) FROM (SELECT conversation_id, \
             max(seq) FILTER (WHERE origin = 'user') AS last_user, \
             max(seq) FILTER (WHERE origin = 'twin') AS last_twin FROM messages GROUP BY conversation_id) AS c \
             WHERE c.last_user IS NOT NULL AND (c.last_twin IS NULL OR c.last_twin < c.last_user)";
        let unanswered = loop {
            let unanswered = tables.count(unanswered_sql.to_owned()).await?;
            if unanswered == 0 || Instant::now() > deadline {
                break unanswered;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let check = Self {
            user_messages: tables.count("SELECT count(*) FROM messages WHERE origin = 'user'".to_owned()).await?,
            stored_twice: tables
                .count(
                    "SELECT count(*) FROM (SELECT conversation_id, client_id FROM messages WHERE origin = 'user' \
                     AND client_id IS NOT NULL GROUP BY conversation_id, client_id HAVING count(*) > 1) AS twice"
                        .to_owned(),
                )
                .await?,
            answered_twice: tables
                .count(
                    "SELECT count(*) FROM (SELECT conversation_id, stream FROM messages WHERE origin = 'twin' \
                     AND stream IS NOT NULL GROUP BY conversation_id, stream HAVING count(*) > 1) AS twice"
                        .to_owned(),
                )
                .await?,
            unanswered,
        };
        tables.close().await;
        Ok(check)
    }

    fn describe(&self, figures: &mut BTreeMap<String, Value>, prefix: &str) {
        figures.insert(format!("{prefix}store_user_messages"), json!(self.user_messages));
        figures.insert(format!("{prefix}store_user_messages_twice"), json!(self.stored_twice));
        figures.insert(format!("{prefix}store_replies_twice"), json!(self.answered_twice));
        figures.insert(format!("{prefix}store_conversations_unanswered"), json!(self.unanswered));
        figures.insert(
            format!("{prefix}exactly_once"),
            json!(self.stored_twice == 0 && self.answered_twice == 0 && self.unanswered == 0),
        );
    }
}

/// The nodes of one cluster: one fresh database, one cluster name on the shared Redis.
struct Nodes {
    database: Option<Database>,
    db_url: String,
    name: String,
    redis: String,
    lease_ms: u64,
    creators: PathBuf,
    data: PathBuf,
    servers: BTreeMap<String, Server>,
    /// Every node's log, killed ones included.
    logs: Vec<(String, Arc<Mutex<Log>>)>,
}

impl Nodes {
    async fn new(postgres: &str, redis: &str, lease_ms: u64, dir: &Path) -> anyhow::Result<Self> {
        let database = Database::fresh_for("cluster", Some(postgres), dir).await?;
        let name = format!("twin-bench-{}", uuid::Uuid::new_v4().simple());
        let data = dir.join(&name);
        std::fs::create_dir_all(&data)?;
        Ok(Self {
            db_url: database.url.clone(),
            database: Some(database),
            name,
            redis: redis.to_owned(),
            lease_ms,
            creators: dir.join("creators"),
            data,
            servers: BTreeMap::new(),
            logs: Vec::new(),
        })
    }

    async fn add(&mut self, id: &str) -> anyhow::Result<()> {
        let lease = self.lease_ms.to_string();
        let env = [
            ("TWIN_REDIS_URL", self.redis.as_str()),
            ("TWIN_NODE_ID", id),
            ("TWIN_CLUSTER_LEASE_MS", lease.as_str()),
            ("TWIN_CLUSTER", self.name.as_str()),
        ];
        let server = process::start_twin_with(&self.data, &self.creators, Some(&self.db_url), JWT_SECRET, &env).await?;
        self.logs.push((id.to_owned(), server.log.clone()));
        self.servers.insert(id.to_owned(), server);
        Ok(())
    }

    fn ids(&self) -> Vec<String> {
        self.servers.keys().cloned().collect()
    }

    fn pids(&self) -> Vec<u32> {
        self.servers.values().map(Server::pid).collect()
    }

    fn addr(&self, id: &str) -> SocketAddr {
        self.servers.get(id).and_then(|s| s.addr.parse().ok()).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Waits until every node sees exactly the running nodes.
    async fn wait_formed(&self) -> anyhow::Result<()> {
        let expected = self.ids();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut formed = true;
            for id in &expected {
                if view_of(self.addr(id)).await != expected {
                    formed = false;
                    break;
                }
            }
            if formed {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the cluster did not form within 30 s: expected {expected:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL; the moment it was sent.
    async fn kill(&mut self, id: &str) -> Instant {
        let at = Instant::now();
        if let Some(server) = self.servers.remove(id) {
            server.stop().await;
        }
        at
    }

    async fn metric_sum(&self, name: &str) -> f64 {
        self.metric_sum_of(&self.ids(), name).await
    }

    /// A metric summed over these nodes (those still running).
    async fn metric_sum_of(&self, ids: &[String], name: &str) -> f64 {
        let mut sum = 0.0;
        for server in ids.iter().filter_map(|id| self.servers.get(id)) {
            sum += metric(&server.addr, name).await;
        }
        sum
    }

    /// WARN and ERROR lines per node, with the first distinct ones.
    fn log_summary(&self) -> Value {
        let mut nodes = serde_json::Map::new();
        for (id, log) in &self.logs {
            let log = log.lock().unwrap_or_else(PoisonError::into_inner);
            nodes.insert(
                id.clone(),
                json!({"warnings": log.warnings, "errors": log.errors, "samples": log.samples.iter().take(6).collect::<Vec<_>>()}),
            );
        }
        Value::Object(nodes)
    }

    /// Stops the nodes, drops the database and the cluster's keys in Redis.
    async fn close(mut self) -> anyhow::Result<()> {
        for (_, server) in std::mem::take(&mut self.servers) {
            server.stop().await;
        }
        let pattern = format!("twin:c:{}:*", self.name);
        let script = "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('DEL', k) n = n + 1 end return n";
        let _ = redis_command(&self.redis, &["EVAL", script, "0", &pattern]).await;
        match self.database.take() {
            Some(database) => database.remove().await,
            None => Ok(()),
        }
    }
}

/// The demo creator as `bench`, without programs (every message gets one twin reply), previews off.
fn write_creator(dir: &Path) -> anyhow::Result<()> {
    let mut bundle = twin_api::bundle::demo();
    bundle.profile.slug = Slug::parse(CREATOR)?;
    bundle.programs.clear();
    bundle.profile.default_program = None;
    bundle.profile.replies.stream_previews = false;
    twin_api::bundle::write_dir(&bundle, &dir.join(CREATOR))?;
    Ok(())
}

fn creator() -> CreatorId {
    Slug::parse(CREATOR).map(|s| s.creator_id()).expect("the bench creator's slug is valid")
}

/// The node that owns `user`'s conversation among `live`, as every node computes it.
fn owner(user: &str, live: &[String]) -> anyhow::Result<String> {
    let conversation = ConversationId::of(creator(), &UserId::parse(user)?);
    twin_engine::placement::owner(conversation, live).cloned().context("no live node")
}

fn chat_url(addr: SocketAddr, user: &str) -> String {
    let keys = TokenKeys::from_secret(JWT_SECRET.as_bytes(), "twin", "twin");
    let token = UserId::parse(user)
        .ok()
        .and_then(|user| keys.mint(creator(), &user, Role::User, Duration::from_secs(24 * 3600)).ok())
        .unwrap_or_default();
    format!("ws://{addr}/v1/chat?token={token}")
}

/// The live set a node reports on `/healthz/cluster`, sorted (empty when it does not answer).
async fn view_of(addr: SocketAddr) -> Vec<String> {
    let Ok(response) = reqwest::get(format!("http://{addr}/healthz/cluster")).await else { return Vec::new() };
    let Ok(body) = response.json::<Value>().await else { return Vec::new() };
    let mut nodes: Vec<String> = body["nodes"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    nodes.sort();
    nodes
}

/// A counter from a node's `/metrics`, summed over its label sets (0 when absent).
async fn metric(addr: &str, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await else { return 0.0 };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// p50/p95/p99 of a latency histogram (µs), under `prefix`.
fn latencies(figures: &mut BTreeMap<String, Value>, prefix: &str, histogram: &Histogram<u64>) {
    if histogram.is_empty() {
        return;
    }
    for (name, q) in [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)] {
        figures.insert(format!("{prefix}_{name}_us"), json!(histogram.value_at_quantile(q)));
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().clamp(1, u128::from(u64::MAX)) as u64
}

/// Whether PostgreSQL and Redis answer; why not otherwise.
async fn reachable(postgres: &str, redis: &str) -> Result<(), String> {
    let server = postgres.split('@').next_back().unwrap_or(postgres);
    match tokio::time::timeout(Duration::from_secs(3), PgConnection::connect(postgres)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
        }
        Ok(Err(error)) => return Err(format!("PostgreSQL at {server} is not reachable ({error})")),
        Err(_) => return Err(format!("PostgreSQL at {server} did not answer within 3 s")),
    }
    match redis_command(redis, &["PING"]).await {
        Ok(reply) if reply.starts_with("+PONG") => Ok(()),
        Ok(reply) => Err(format!("Redis at {redis} answered PING with {:?}", reply.trim())),
        Err(error) => Err(format!("Redis at {redis} is not reachable ({error:#})")),
    }
}

/// One command to Redis over RESP; the first reply line (enough for PING and an integer reply).
/// Only `redis://host:port[/db]` without credentials: the bench's own local server.
async fn redis_command(url: &str, args: &[&str]) -> anyhow::Result<String> {
    let rest = url.strip_prefix("redis://").context("only redis:// URLs")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let address = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:6379") };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        let mut command = format!("*{}\r\n", args.len());
        for arg in args {
            command.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(command.as_bytes()).await?;
        let mut reply = Vec::new();
        let mut buffer = [0u8; 512];
        while !reply.ends_with(b"\r\n") {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            reply.extend_from_slice(&buffer[..read]);
        }
        anyhow::Ok(String::from_utf8_lossy(&reply).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(3), exchange).await.context("no answer within 3 s")?
}

/// CPU time of the node processes and of the whole machine, to show what the round used.
struct CpuSample {
    at: std::time::Instant,
    processes_ticks: u64,
    machine_busy: u64,
    machine_total: u64,
}

struct CpuUse {
    /// Cores' worth of CPU the node processes used.
    processes_cores: f64,
    /// Cores' worth the whole machine was busy (nodes, PostgreSQL, Redis, the client, the rest).
    machine_busy_cores: f64,
}

impl CpuSample {
    fn take(pids: &[u32]) -> Self {
        let processes_ticks = pids
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .filter_map(|stat| {
                // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
                let after = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = after.split_whitespace().collect();
                Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
            })
            .sum();
        let (machine_busy, machine_total) = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| {
                let line = stat.lines().next()?.strip_prefix("cpu ")?.to_owned();
                let values: Vec<u64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
                let total: u64 = values.iter().take(8).sum();
                let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
                Some((total - idle, total))
            })
            .unwrap_or((0, 0));
        Self { at: std::time::Instant::now(), processes_ticks, machine_busy, machine_total }
    }

    fn since(&self, before: &CpuSample) -> CpuUse {
        let seconds = self.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
        let total = self.machine_total.saturating_sub(before.machine_total).max(1) as f64;
        CpuUse {
            processes_cores: self.processes_ticks.saturating_sub(before.processes_ticks) as f64
                / TICKS_PER_SEC
                / seconds,
            machine_busy_cores: self.machine_busy.saturating_sub(before.machine_busy) as f64 / total * cores,
        }
    }
}
