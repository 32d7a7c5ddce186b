//! `nudges`: N scheduled nudges held in the store, the first `rate × seconds` of them falling due at
//! `rate` per second while the real engine in this process fires them, with a deploy-style restart
//! part way. Measures how late each one fires (its due time → its `NudgeFired` live event, which a
//! conversation publishes after the commit that settles the row), then counts from the tables the
//! nudges lost (due in the window, not settled as fired) and sent twice (two nudge messages in one
//! conversation). The store ports are wrapped in probes that time the scheduler's claims and
//! reloads, the conversation loads and the group commits, so lateness can be split into stages.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, SqliteConnection};
use twin_actors::{EngineConfig, EngineHandle, Ports, SchedulerConfig, SchedulerStats};
use twin_engine::conversation::{ConversationState, NudgeKind, PendingNudge};
use twin_engine::nudge::{DurationSpec, NudgePolicy};
use twin_engine::ports::{
    Clock, ConversationHeader, ConversationStore, Delivery, LiveEvent, LiveEventKind, LivePublisher, LoadLimits,
    NudgeStore, Outbound, Recipient, Record, ScheduledNudge, StoreError, StoredConversation, SystemClock,
};
use twin_engine::twin::NudgeSettings;
use twin_engine::{ConversationId, CreatorId, Message, NudgeId, Seq, Slug, Timestamp, UserId};
use twin_store::Store;

use super::TwinArgs;
use crate::process::own_rss;
use crate::report::Report;

pub struct NudgeArgs {
    /// Nudge rows (one conversation each) in the table.
    pub scheduled: usize,
    /// Nudges falling due per second during the window.
    pub rate: u32,
    /// Length of the firing window.
    pub seconds: u32,
    /// Where in the window the engine is restarted (a fraction); outside (0, 1): no restart.
    pub restart_at: f64,
}

/// The goal the issue states: p99 lateness at most this, nothing lost, nothing sent twice.
const GOAL_P99_MS: f64 = 100.0;
const CREATOR: &str = "bench";
const DAY_MS: i64 = 24 * 3_600_000;
/// Conversations (two records each) per seeding commit.
const SEED_BATCH: usize = 2_000;
/// Seeding speed assumed for the window's rows when too few held rows were seeded to measure it.
const FALLBACK_SEED_PER_SEC: f64 = 1_000.0;
/// After the window, how long the last nudges may take before the run stops waiting for them (a
/// backlog when the engine fires slower than the rate); what is still unsent then counts as lost.
const DRAIN_DEADLINE: Duration = Duration::from_secs(300);
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

pub async fn run(args: &NudgeArgs, twin: &TwinArgs, report: &mut Report) -> anyhow::Result<()> {
    anyhow::ensure!(args.scheduled > 0 && args.rate > 0 && args.seconds > 0, "scheduled, rate and seconds must be > 0");
    let data = tempfile::tempdir()?;
    let database = Database::fresh(twin.database_url.as_deref(), data.path()).await?;
    let measured = measure(args, &database.url, report).await;
    let removed = database.remove().await;
    measured?;
    removed
}

/// Where the nudges live: a SQLite file in a temporary folder, or a fresh uuid-named database on
/// the PostgreSQL server the URL names (dropped at the end), so a run never sees an earlier one's rows.
pub(super) struct Database {
    pub(super) url: String,
    /// The server's URL as given and the database created on it.
    created: Option<(String, String)>,
}

impl Database {
    pub(super) async fn fresh(url: Option<&str>, dir: &Path) -> anyhow::Result<Self> {
        Self::fresh_for("nudges", url, dir).await
    }

    /// [`Database::fresh`], the PostgreSQL database named after the scenario `label`.
    pub(super) async fn fresh_for(label: &str, url: Option<&str>, dir: &Path) -> anyhow::Result<Self> {
        match url {
            None => Ok(Self { url: format!("sqlite://{}", dir.join("twin.db").display()), created: None }),
            Some(url) if url.starts_with("postgres:") || url.starts_with("postgresql:") => {
                let name = format!("twin_bench_{label}_{}", uuid::Uuid::new_v4().simple());
                let mut admin = PgConnection::connect(url).await.context("cannot reach the PostgreSQL server")?;
                admin.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).await?;
                admin.close().await?;
                Ok(Self { url: with_database(url, &name), created: Some((url.to_owned(), name)) })
            }
            // A SQLite file the caller chose; it should be new.
            Some(url) => Ok(Self { url: url.to_owned(), created: None }),
        }
    }

    pub(super) async fn remove(self) -> anyhow::Result<()> {
        let Some((server, name)) = self.created else { return Ok(()) };
        let mut admin = PgConnection::connect(&server).await?;
        admin.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))).await?;
        admin.close().await?;
        Ok(())
    }
}

/// `url` with its database name replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(base, query)| (base, Some(query)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = base[authority..].find('/').map_or(base, |slash| &base[..authority + slash]);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// The rows to seed and when the window's rows fall due.
struct Plan {
    /// Users `0..window` fall due in the window; `window..scheduled` are held far in the future.
    window: usize,
    scheduled: usize,
    rate: u32,
    seconds: u32,
}

impl Plan {
    fn new(args: &NudgeArgs) -> Self {
        let window = (args.rate as usize).saturating_mul(args.seconds as usize).min(args.scheduled);
        Self { window, scheduled: args.scheduled, rate: args.rate, seconds: args.seconds }
    }

    /// Evenly spread: `rate` per second from `start`.
    fn due(&self, start: Timestamp, i: usize) -> Timestamp {
        start.plus_millis(i as i64 * 1_000 / i64::from(self.rate))
    }
}

fn user(i: usize) -> anyhow::Result<UserId> {
    Ok(UserId::parse(&format!("nudge-{i}"))?)
}

async fn measure(args: &NudgeArgs, url: &str, report: &mut Report) -> anyhow::Result<()> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let creator = import_creator(&store).await?;
    let plan = Plan::new(args);
    let seeded = seed_all(&store, creator, &plan).await?;
    let run = fire(&store, creator, &plan, args.restart_at, seeded.start).await?;
    store.close().await;

    let end = seeded.start.plus_millis(i64::from(plan.seconds) * 1_000);
    let tally = Tally::read(url, end).await?;
    anyhow::ensure!(
        tally.rows == plan.scheduled as i64,
        "the tally sees {} of {} nudge rows: connect as a user that row-level security does not filter (the schema owner's superuser)",
        tally.rows,
        plan.scheduled
    );

    let figures = report.section("nudges");
    figures.insert("store".into(), json!(store.backend()));
    figures.insert("scheduled".into(), json!(plan.scheduled));
    figures.insert("held_beyond_horizon".into(), json!(plan.scheduled - plan.window));
    figures.insert("due_in_window".into(), json!(plan.window));
    figures.insert("rate_goal_per_sec".into(), json!(plan.rate));
    figures.insert("window_secs".into(), json!(plan.seconds));
    figures.insert("seed_secs".into(), json!(seeded.took.as_secs_f64()));
    figures.insert(
        "seed_conversations_per_sec".into(),
        json!(plan.scheduled as f64 / seeded.took.as_secs_f64().max(1e-9)),
    );
    run.write(figures);
    let fired = run.recorder.fired();
    let timeline = Timeline::new(&fired, &seeded.due, seeded.start, &plan, &run.probe.stats(), run.restart.as_ref());
    timeline.write(figures);
    run.probe.stats().write(figures);
    figures.insert("fired".into(), json!(tally.fired));
    figures.insert("lost".into(), json!(tally.lost));
    figures.insert("duplicated".into(), json!(tally.duplicated));
    figures.insert("nudge_messages".into(), json!(tally.nudge_messages));
    figures.insert("duplicated_live_events".into(), json!(fired.repeats));
    let p99 = figures.get("lateness_p99_ms").and_then(Value::as_f64).unwrap_or(f64::INFINITY);
    let met = p99 <= GOAL_P99_MS && tally.lost == 0 && tally.duplicated == 0;
    figures.insert(
        "goal".into(),
        json!(format!("p99 <= {GOAL_P99_MS} ms, 0 lost, 0 duplicated: {}", if met { "met" } else { "missed" })),
    );
    Ok(())
}

/// The seeded table: when the window starts and when each of its nudges is due.
struct Seeded {
    start: Timestamp,
    took: Duration,
    due: HashMap<NudgeId, Timestamp>,
}

/// Held rows first (the bulk), far beyond the scheduler's horizon; their pace predicts how long
/// the window's rows take, which must all be written, and loaded by the engine, before the first
/// of them falls due, so seeding never counts as lateness.
async fn seed_all(store: &Store, creator: CreatorId, plan: &Plan) -> anyhow::Result<Seeded> {
    let seeding = Instant::now();
    let far = SystemClock.now().plus_millis(DAY_MS);
    seed(store, creator, plan.window..plan.scheduled, |i| far.plus_millis(i as i64)).await?;
    let held = plan.scheduled - plan.window;
    let per_sec = if held >= 2 * SEED_BATCH {
        held as f64 / seeding.elapsed().as_secs_f64().max(1e-3)
    } else {
        FALLBACK_SEED_PER_SEC
    };
    // The engine's first reload reads the whole window into the wheel before it starts.
    let lead = Duration::from_secs(2) + Duration::from_secs_f64(plan.window as f64 / 50_000.0);
    let window_seeding = Duration::from_secs_f64(plan.window as f64 / per_sec * 1.5);
    let start = SystemClock.now().plus_millis(millis(window_seeding + lead));
    seed(store, creator, 0..plan.window, |i| plan.due(start, i)).await?;
    let took = seeding.elapsed();
    let mut due = HashMap::with_capacity(plan.window);
    for i in 0..plan.window {
        let id = NudgeId::of(ConversationId::of(creator, &user(i)?), 1);
        due.insert(id, plan.due(start, i));
    }
    Ok(Seeded { start, took, due })
}

/// What the engine did during the window, as seen by the ports and the engine's own stats.
struct Run {
    recorder: Arc<Recorder>,
    probe: Arc<Probe>,
    scheduler: SchedulerConfig,
    first_load: Duration,
    restart: Option<Restart>,
    /// Scheduler stats of each engine, the first one's taken just before the restart.
    stats: Vec<SchedulerStats>,
    drained: Duration,
    rss: Option<u64>,
}

/// Starts the engine over the seeded store, restarts it part way as a deploy would, and waits for
/// the window's last nudges.
async fn fire(
    store: &Store,
    creator: CreatorId,
    plan: &Plan,
    restart_at: f64,
    start: Timestamp,
) -> anyhow::Result<Run> {
    let probe = Arc::new(Probe::new(store.clone()));
    let recorder = Arc::new(Recorder::default());
    let ports = Ports {
        conversations: probe.clone(),
        creators: Arc::new(store.clone()),
        nudges: probe.clone(),
        llm: Arc::new(twin_llm::BuiltinResponder::new()),
        knowledge: twin_actors::KnowledgePorts {
            embedder: Arc::new(twin_engine::knowledge::HashedEmbedder::default()),
            index: Arc::new(twin_store::EmbeddedIndex::new(Arc::new(store.clone()))),
            store: Arc::new(store.clone()),
        },
        delivery: Arc::new(NoClients),
        outbox: Arc::new(twin_engine::ports::NoOutbox),
        live: recorder.clone(),
        clock: Arc::new(SystemClock),
        cluster: None,
    };
    let scheduler = SchedulerConfig::default();
    let config = EngineConfig { scheduler: Some(scheduler.clone()), ..EngineConfig::default() };
    let started = Instant::now();
    let mut engine = EngineHandle::start(ports.clone(), config.clone()).await?;
    engine.twin(creator).await?;
    let expected = plan.window.min(scheduler.max_loaded as usize);
    while engine.scheduler_stats().await.is_some_and(|s| s.loaded < expected) && SystemClock.now() < start {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first_load = started.elapsed();
    let early = start.0 - SystemClock.now().0;
    anyhow::ensure!(
        early > 0,
        "seeding and the first load overran the plan by {} ms: the first nudges fell due before the engine was ready",
        -early
    );
    sleep_until(start).await;

    let mut stats = Vec::new();
    let mut restart = None;
    if restart_at > 0.0 && restart_at < 1.0 {
        sleep_until(start.plus_millis((restart_at * f64::from(plan.seconds) * 1_000.0) as i64)).await;
        stats.extend(engine.scheduler_stats().await);
        let began_us = wall_us();
        let stopping = Instant::now();
        engine.shutdown(SHUTDOWN_DEADLINE).await;
        let shutdown = stopping.elapsed();
        let starting = Instant::now();
        engine = EngineHandle::start(ports.clone(), config.clone()).await?;
        restart = Some(Restart { began_us, ended_us: wall_us(), shutdown, start: starting.elapsed() });
    }

    sleep_until(start.plus_millis(i64::from(plan.seconds) * 1_000)).await;
    // A nudge whose claim was orphaned comes back once its lease expired and a reload found it:
    // late, not lost. Only a longer silence means nothing more is coming.
    let stall = scheduler.lease + scheduler.reload_every + Duration::from_secs(5);
    let drained = drain(&recorder, plan.window, stall).await;
    stats.extend(engine.scheduler_stats().await);
    let rss = own_rss().ok();
    engine.shutdown(SHUTDOWN_DEADLINE).await;
    Ok(Run { recorder, probe, scheduler, first_load, restart, stats, drained, rss })
}

impl Run {
    fn write(&self, figures: &mut BTreeMap<String, Value>) {
        figures.insert("first_load_ms".into(), json!(self.first_load.as_secs_f64() * 1_000.0));
        figures.insert("scheduler_tick_ms".into(), json!(self.scheduler.tick.as_millis() as u64));
        figures.insert("scheduler_max_loaded".into(), json!(self.scheduler.max_loaded));
        if let Some(rss) = self.rss {
            figures.insert("rss_bytes".into(), json!(rss));
        }
        figures.insert("drain_ms_after_window".into(), json!(self.drained.as_secs_f64() * 1_000.0));
        if let Some(restart) = &self.restart {
            figures.insert("restart_shutdown_ms".into(), json!(restart.shutdown.as_secs_f64() * 1_000.0));
            figures.insert("restart_start_ms".into(), json!(restart.start.as_secs_f64() * 1_000.0));
        }
        let claimed: u64 = self.stats.iter().map(|s| s.claimed).sum();
        let failures: u64 = self.stats.iter().map(|s| s.claim_failures).sum();
        figures.insert("scheduler_claimed".into(), json!(claimed));
        figures.insert("scheduler_claim_failures".into(), json!(failures));
        figures.insert("skipped_live_events".into(), json!(self.recorder.skipped.load(Ordering::Relaxed)));
        figures.insert("deferred_live_events".into(), json!(self.recorder.deferred.load(Ordering::Relaxed)));
    }
}

/// Waits after the window until every window nudge fired, nothing fired for a while, or the deadline.
async fn drain(recorder: &Recorder, window: usize, stall: Duration) -> Duration {
    let began = Instant::now();
    let mut last = (recorder.unique(), Instant::now());
    while last.0 < window && began.elapsed() < DRAIN_DEADLINE && last.1.elapsed() < stall {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = recorder.unique();
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    began.elapsed()
}

async fn import_creator(store: &Store) -> anyhow::Result<CreatorId> {
    let mut bundle = twin_api::bundle::demo();
    bundle.profile.slug = Slug::parse(CREATOR)?;
    // Nothing but the inactivity nudge: no program, and a policy that lets every nudge out (no
    // quiet hours, no cap in reach, none stale), so each one is sent and stored as a message.
    bundle.programs.clear();
    bundle.profile.default_program = None;
    bundle.profile.nudges = NudgeSettings {
        inactivity_text: Some("Still with me? One small step today counts.".to_owned()),
        policy: NudgePolicy {
            quiet_hours: None,
            daily_cap: 1_000_000,
            inactivity_after: Some(DurationSpec::from_millis(DAY_MS)),
            stale_after: DurationSpec::from_millis(365 * DAY_MS),
        },
        ..bundle.profile.nudges.clone()
    };
    twin_api::startup::import(store, &bundle).await?;
    Ok(bundle.profile.slug.creator_id())
}

/// One conversation per user of `users`, each with one pending inactivity nudge (its state and its
/// row), committed straight through the store in large batches, as many at once as it allows.
async fn seed(
    store: &Store,
    creator: CreatorId,
    users: Range<usize>,
    due: impl Fn(usize) -> Timestamp + Copy,
) -> anyhow::Result<()> {
    let now = SystemClock.now();
    let chunks = users.clone().step_by(SEED_BATCH).map(|first| first..(first + SEED_BATCH).min(users.end));
    let mut commits = futures::stream::iter(chunks)
        .map(|chunk| async move {
            let mut records = Vec::with_capacity(2 * chunk.len());
            for i in chunk {
                let user = user(i)?;
                let conversation = ConversationId::of(creator, &user);
                let id = NudgeId::of(conversation, 1);
                let due_at = due(i);
                let state = ConversationState {
                    nudges: vec![PendingNudge { id, due_at, kind: NudgeKind::Inactivity }],
                    nudge_counter: 1,
                    ..ConversationState::default()
                };
                records.push(Record::Conversation(ConversationHeader {
                    id: conversation,
                    creator,
                    user: user.clone(),
                    version: 1,
                    created_at: now,
                    state,
                }));
                records.push(Record::NudgeScheduled(ScheduledNudge { id, creator, conversation, user, due_at }));
            }
            store.commit(&records).await.context("a seeding commit failed")
        })
        .buffer_unordered(store.concurrent_commits().max(1));
    while let Some(done) = commits.next().await {
        done?;
    }
    Ok(())
}

/// What the tables say after the run.
struct Tally {
    rows: i64,
    fired: i64,
    lost: i64,
    duplicated: i64,
    nudge_messages: i64,
}

impl Tally {
    /// Read as the URL's user, straight from the tables (the same SQL on both databases).
    async fn read(url: &str, end: Timestamp) -> anyhow::Result<Self> {
        let mut conn = Tables::connect(url).await?;
        let tally = Self {
            rows: conn.count("SELECT count(*) FROM nudges".to_owned()).await?,
            fired: conn.count("SELECT count(*) FROM nudges WHERE status = 'fired'".to_owned()).await?,
            lost: conn
                .count(format!("SELECT count(*) FROM nudges WHERE due_at < {} AND status <> 'fired'", end.millis()))
                .await?,
            duplicated: conn
                .count(
                    "SELECT count(*) FROM (SELECT conversation_id FROM messages WHERE origin = 'nudge' \
                     GROUP BY conversation_id HAVING count(*) > 1) AS twice"
                        .to_owned(),
                )
                .await?,
            nudge_messages: conn.count("SELECT count(*) FROM messages WHERE origin = 'nudge'".to_owned()).await?,
        };
        conn.close().await;
        Ok(tally)
    }
}

pub(super) enum Tables {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl Tables {
    pub(super) async fn connect(url: &str) -> anyhow::Result<Self> {
        Ok(if url.starts_with("sqlite:") {
            Tables::Sqlite(SqliteConnection::connect(url).await?)
        } else {
            Tables::Postgres(PgConnection::connect(url).await?)
        })
    }

    pub(super) async fn count(&mut self, sql: String) -> anyhow::Result<i64> {
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(match self {
            Tables::Postgres(conn) => sqlx::query_scalar(sql).fetch_one(conn).await?,
            Tables::Sqlite(conn) => sqlx::query_scalar(sql).fetch_one(conn).await?,
        })
    }

    pub(super) async fn close(self) {
        // Best effort: the tally is read already.
        let _ = match self {
            Tables::Postgres(conn) => conn.close().await,
            Tables::Sqlite(conn) => conn.close().await,
        };
    }
}

struct Restart {
    /// When the old engine began to shut down and the new one was up (µs since the epoch).
    began_us: i64,
    ended_us: i64,
    shutdown: Duration,
    start: Duration,
}

/// Lateness of every fired window nudge, overall, per second of the window and per stage.
struct Timeline {
    lateness: Histogram<u64>,
    /// By the second of the window the nudge was due in.
    per_second: Vec<Histogram<u64>>,
    /// With a restart: nudges due before it began, while it ran, and after the new engine was up.
    before_restart: Histogram<u64>,
    during_restart: Histogram<u64>,
    after_restart: Histogram<u64>,
    due_to_claimed: Histogram<u64>,
    claimed_to_loaded: Histogram<u64>,
    loaded_to_published: Histogram<u64>,
    first_us: i64,
    last_us: i64,
    fired: usize,
    /// The longest time without a single fire, between the first and the last.
    longest_pause_us: i64,
    /// From the start of the restart to the new engine's first fire.
    restart_pause_us: Option<i64>,
}

impl Timeline {
    fn new(
        fired: &Fired,
        due: &HashMap<NudgeId, Timestamp>,
        start: Timestamp,
        plan: &Plan,
        probe: &ProbeStats,
        restart: Option<&Restart>,
    ) -> Self {
        let mut timeline = Self {
            lateness: histogram(),
            per_second: (0..plan.seconds).map(|_| histogram()).collect(),
            before_restart: histogram(),
            during_restart: histogram(),
            after_restart: histogram(),
            due_to_claimed: histogram(),
            claimed_to_loaded: histogram(),
            loaded_to_published: histogram(),
            first_us: i64::MAX,
            last_us: i64::MIN,
            fired: 0,
            longest_pause_us: 0,
            restart_pause_us: None,
        };
        let mut times = Vec::with_capacity(fired.at.len());
        for (id, &published) in &fired.at {
            let Some(due_at) = due.get(id) else { continue };
            let due_us = due_at.millis() * 1_000;
            let late = u64::try_from(published - due_us).unwrap_or(0);
            timeline.lateness.saturating_record(late);
            let second = usize::try_from(due_at.millis_since(start) / 1_000).unwrap_or(0);
            if let Some(histogram) = timeline.per_second.get_mut(second) {
                histogram.saturating_record(late);
            }
            if let Some(restart) = restart {
                let phase = if due_us < restart.began_us {
                    &mut timeline.before_restart
                } else if due_us < restart.ended_us {
                    &mut timeline.during_restart
                } else {
                    &mut timeline.after_restart
                };
                phase.saturating_record(late);
            }
            let claimed = probe.claimed_at.get(id).copied().unwrap_or(due_us).clamp(due_us, published);
            let conversation = probe.conversation_of.get(id);
            let loaded =
                conversation.and_then(|c| probe.loaded_at.get(c)).copied().unwrap_or(claimed).clamp(claimed, published);
            timeline.due_to_claimed.saturating_record(u64::try_from(claimed - due_us).unwrap_or(0));
            timeline.claimed_to_loaded.saturating_record(u64::try_from(loaded - claimed).unwrap_or(0));
            timeline.loaded_to_published.saturating_record(u64::try_from(published - loaded).unwrap_or(0));
            timeline.first_us = timeline.first_us.min(published);
            timeline.last_us = timeline.last_us.max(published);
            timeline.fired += 1;
            times.push(published);
        }
        times.sort_unstable();
        timeline.longest_pause_us = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        if let Some(restart) = restart {
            let first = times.partition_point(|&t| t < restart.ended_us);
            timeline.restart_pause_us = times.get(first).map(|t| t - restart.began_us);
        }
        timeline
    }

    fn write(&self, figures: &mut BTreeMap<String, Value>) {
        figures.insert("fired_live_events".into(), json!(self.fired));
        if self.fired > 1 {
            let span = (self.last_us - self.first_us) as f64 / 1e6;
            figures.insert("fire_rate_per_sec".into(), json!(self.fired as f64 / span.max(1e-9)));
        }
        figures.insert("longest_pause_between_fires_ms".into(), json!(self.longest_pause_us as f64 / 1_000.0));
        if let Some(pause) = self.restart_pause_us {
            figures.insert("restart_to_first_new_fire_ms".into(), json!(pause as f64 / 1_000.0));
        }
        milliseconds(figures, "lateness", &self.lateness);
        milliseconds(figures, "lateness_due_before_restart", &self.before_restart);
        milliseconds(figures, "lateness_due_during_restart", &self.during_restart);
        milliseconds(figures, "lateness_due_after_restart", &self.after_restart);
        milliseconds(figures, "stage_due_to_claimed", &self.due_to_claimed);
        milliseconds(figures, "stage_claimed_to_loaded", &self.claimed_to_loaded);
        milliseconds(figures, "stage_loaded_to_published", &self.loaded_to_published);
        let p99: Vec<Value> = self.per_second.iter().map(|h| json!(quantile_ms(h, 0.99))).collect();
        let count: Vec<u64> = self.per_second.iter().map(Histogram::len).collect();
        figures.insert("lateness_p99_ms_by_second".into(), Value::Array(p99));
        figures.insert("fired_by_second".into(), json!(count));
    }
}

/// p50/p90/p99/p99.9/max of a µs histogram, in milliseconds, under `prefix`.
fn milliseconds(figures: &mut BTreeMap<String, Value>, prefix: &str, histogram: &Histogram<u64>) {
    if histogram.is_empty() {
        return;
    }
    for (name, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999)] {
        figures.insert(format!("{prefix}_{name}_ms"), json!(quantile_ms(histogram, q)));
    }
    figures.insert(format!("{prefix}_max_ms"), json!(histogram.max() as f64 / 1_000.0));
}

/// 1 µs to one hour, 3 significant digits: an overloaded run is minutes late, beyond the client's
/// 100 s histogram.
fn histogram() -> Histogram<u64> {
    // The bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn quantile_ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    histogram.value_at_quantile(q) as f64 / 1_000.0
}

/// Frames go nowhere: no client is connected in this scenario.
struct NoClients;

impl Delivery for NoClients {
    fn deliver(&self, _conversation: ConversationId, _to: Recipient, _out: Outbound) {}
}

/// The live port: when each nudge's `NudgeFired` was published (wall clock), and how many nudges
/// the policy skipped or deferred (none should be).
#[derive(Default)]
struct Recorder {
    fired: Mutex<Fired>,
    skipped: AtomicU64,
    deferred: AtomicU64,
}

#[derive(Default, Clone)]
struct Fired {
    /// The first publication of each nudge, µs since the epoch.
    at: HashMap<NudgeId, i64>,
    /// Publications of a nudge already published.
    repeats: u64,
}

impl Recorder {
    fn fired(&self) -> Fired {
        lock(&self.fired).clone()
    }

    fn unique(&self) -> usize {
        lock(&self.fired).at.len()
    }
}

impl LivePublisher for Recorder {
    fn publish(&self, event: LiveEvent) {
        match event.kind {
            LiveEventKind::NudgeFired { id } => {
                let now = wall_us();
                let mut fired = lock(&self.fired);
                if fired.at.insert(id, now).is_some() {
                    fired.repeats += 1;
                }
            }
            LiveEventKind::NudgeSkipped { .. } => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
            }
            LiveEventKind::NudgeDeferred { .. } => {
                self.deferred.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// The real store behind the engine's conversation and nudge ports, timing what passes through.
struct Probe {
    store: Store,
    stats: Mutex<ProbeStats>,
}

struct ProbeStats {
    claim_round_trips: u64,
    claim_ids: u64,
    claim: Histogram<u64>,
    /// (duration, rows) of each horizon read.
    reloads: Vec<(Duration, usize)>,
    load: Histogram<u64>,
    commit: Histogram<u64>,
    commit_records: Histogram<u64>,
    /// When the last claim that took each nudge returned (µs since the epoch).
    claimed_at: HashMap<NudgeId, i64>,
    conversation_of: HashMap<NudgeId, ConversationId>,
    /// When each conversation's last load returned.
    loaded_at: HashMap<ConversationId, i64>,
}

impl Probe {
    fn new(store: Store) -> Self {
        let stats = ProbeStats {
            claim_round_trips: 0,
            claim_ids: 0,
            claim: histogram(),
            reloads: Vec::new(),
            load: histogram(),
            commit: histogram(),
            commit_records: histogram(),
            claimed_at: HashMap::new(),
            conversation_of: HashMap::new(),
            loaded_at: HashMap::new(),
        };
        Self { store, stats: Mutex::new(stats) }
    }

    fn stats(&self) -> MutexGuard<'_, ProbeStats> {
        lock(&self.stats)
    }
}

impl ProbeStats {
    fn write(&self, figures: &mut BTreeMap<String, Value>) {
        figures.insert("claim_round_trips".into(), json!(self.claim_round_trips));
        figures.insert(
            "claim_ids_per_round_trip".into(),
            json!(self.claim_ids as f64 / self.claim_round_trips.max(1) as f64),
        );
        milliseconds(figures, "claim_round_trip", &self.claim);
        figures.insert("reloads".into(), json!(self.reloads.len()));
        let total: Duration = self.reloads.iter().map(|(took, _)| *took).sum();
        figures.insert("reload_total_ms".into(), json!(total.as_secs_f64() * 1_000.0));
        let longest = self.reloads.iter().max_by_key(|(took, _)| *took);
        if let Some((took, rows)) = longest {
            figures.insert("reload_max_ms".into(), json!(took.as_secs_f64() * 1_000.0));
            figures.insert("reload_max_rows".into(), json!(rows));
        }
        figures.insert("loads".into(), json!(self.load.len()));
        milliseconds(figures, "load", &self.load);
        figures.insert("commits".into(), json!(self.commit.len()));
        figures.insert("commit_records_mean".into(), json!(self.commit_records.mean()));
        milliseconds(figures, "commit", &self.commit);
    }
}

#[async_trait::async_trait]
impl ConversationStore for Probe {
    async fn load(
        &self,
        creator: CreatorId,
        id: ConversationId,
        limits: LoadLimits,
    ) -> Result<Option<StoredConversation>, StoreError> {
        let started = Instant::now();
        let loaded = self.store.load(creator, id, limits).await;
        let took = started.elapsed();
        let mut stats = self.stats();
        stats.load.saturating_record(micros(took));
        stats.loaded_at.insert(id, wall_us());
        loaded
    }

    async fn commit(&self, records: &[Record]) -> Result<(), StoreError> {
        let started = Instant::now();
        let committed = self.store.commit(records).await;
        let took = started.elapsed();
        let mut stats = self.stats();
        stats.commit.saturating_record(micros(took));
        stats.commit_records.saturating_record(records.len() as u64);
        committed
    }

    fn concurrent_commits(&self) -> usize {
        self.store.concurrent_commits()
    }

    async fn history(
        &self,
        creator: CreatorId,
        id: ConversationId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.store.history(creator, id, after, limit).await
    }

    async fn claim_owner(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        node: &str,
        live: &[String],
        force: bool,
    ) -> Result<Option<u64>, StoreError> {
        self.store.claim_owner(creator, conversation, node, live, force).await
    }

    async fn release_owner(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
        epoch: u64,
    ) -> Result<(), StoreError> {
        self.store.release_owner(creator, conversation, epoch).await
    }
}

#[async_trait::async_trait]
impl NudgeStore for Probe {
    async fn pending_before(
        &self,
        horizon: Timestamp,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        let started = Instant::now();
        let rows = self.store.pending_before(horizon, now, limit).await;
        let took = started.elapsed();
        self.stats().reloads.push((took, rows.as_ref().map_or(0, Vec::len)));
        rows
    }

    async fn claim(
        &self,
        ids: &[NudgeId],
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        let started = Instant::now();
        let claimed = self.store.claim(ids, now, lease_until).await;
        let took = started.elapsed();
        let at = wall_us();
        let mut stats = self.stats();
        stats.claim_round_trips += 1;
        stats.claim_ids += ids.len() as u64;
        stats.claim.saturating_record(micros(took));
        for nudge in claimed.iter().flatten() {
            stats.claimed_at.insert(nudge.id, at);
            stats.conversation_of.insert(nudge.id, nudge.conversation);
        }
        claimed
    }

    async fn release_claims(&self) -> Result<u64, StoreError> {
        self.store.release_claims().await
    }

    async fn pending_of(
        &self,
        creator: CreatorId,
        conversation: ConversationId,
    ) -> Result<Vec<ScheduledNudge>, StoreError> {
        self.store.pending_of(creator, conversation).await
    }
}

/// A poisoned lock only means another thread panicked while counting; the counts stay usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wall_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

async fn sleep_until(at: Timestamp) {
    let wait = at.0 - SystemClock.now().0;
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    }
}
