//! NudgeScheduler: the one actor that knows when nudges fall due. It holds a hierarchical timing
//! wheel of the nudges due within the next horizon, loaded from the durable nudge table (never one
//! tokio timer per nudge); conversations tell it about rows they just committed. When a nudge falls
//! due the scheduler claims its row with a lease (PostgreSQL: `FOR UPDATE SKIP LOCKED`) and routes
//! `Event::NudgeDue` into the conversation's own mailbox, so a nudge can never race a user message.
//! The conversation settles the row in the same commit as the state the nudge produced.
//!
//! Failure rules: a claim that fails (store down) is retried a second later; a claimed nudge whose
//! conversation never settles it (a crash between claim and commit) is claimable again when its
//! lease expires and the next reload finds it; the conversation recognises a nudge it already
//! settled, so it takes effect once.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinHandle;
use twin_engine::ids::NudgeId;
use twin_engine::nudge::TimingWheel;
use twin_engine::ports::ScheduledNudge;
use twin_engine::{Event, Timestamp};

use crate::conversation::ConversationMsg;
use crate::handle::{ConversationKey, Engine};
use crate::metrics as m;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How often the wheel is advanced (the lateness floor of a nudge).
    pub tick: Duration,
    /// Nudges due within this much time are held in the wheel.
    pub horizon: Duration,
    /// At most this many rows in the wheel; a larger backlog is loaded as the wheel drains.
    pub max_loaded: u32,
    /// How long a claim holds a row before another claim may take it.
    pub lease: Duration,
    /// The table is read again this often (new horizon, expired leases).
    pub reload_every: Duration,
    /// Drop all claims at start: right for a single node, where no other node can hold one.
    pub release_claims_at_start: bool,
    /// Fault injection for crash drills: claim due nudges but never deliver them, as if the process
    /// died right after the claim committed. Logs `fault injection: holding claimed nudges`.
    #[doc(hidden)]
    pub hold_after_claim: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(10),
            horizon: Duration::from_secs(600),
            max_loaded: 200_000,
            // Longer than a commit may take (30 s) plus a conversation load, so a slow backlog after
            // downtime is not claimed twice.
            lease: Duration::from_secs(120),
            reload_every: Duration::from_secs(10),
            release_claims_at_start: true,
            hold_after_claim: false,
        }
    }
}

/// Nudges claimed per store round trip at most.
const CLAIM_BATCH: usize = 1_000;

pub(crate) enum NudgeSchedulerMsg {
    /// Rows a conversation just committed.
    Scheduled(Vec<ScheduledNudge>),
    Tick,
    Stats(RpcReplyPort<SchedulerStats>),
}

/// What the scheduler holds and has done, for tests, metrics and the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedulerStats {
    pub loaded: usize,
    pub claimed: u64,
    pub claim_failures: u64,
}

pub(crate) struct NudgeSchedulerArgs {
    pub(crate) engine: Arc<Engine>,
    pub(crate) config: SchedulerConfig,
}

pub(crate) struct NudgeSchedulerState {
    engine: Arc<Engine>,
    config: SchedulerConfig,
    /// The nudges due within the horizon; the claim returns where each one goes.
    wheel: TimingWheel<NudgeId>,
    /// Rows due before this are all in the wheel (or in flight).
    horizon_end: Timestamp,
    next_reload: Timestamp,
    ticker: Option<JoinHandle<Result<(), ractor::MessagingErr<NudgeSchedulerMsg>>>>,
    stats: SchedulerStats,
}

pub(crate) struct NudgeScheduler;

impl Actor for NudgeScheduler {
    type Msg = NudgeSchedulerMsg;
    type State = NudgeSchedulerState;
    type Arguments = NudgeSchedulerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<NudgeSchedulerMsg>,
        args: NudgeSchedulerArgs,
    ) -> Result<NudgeSchedulerState, ActorProcessingErr> {
        let now = args.engine.ports.clock.now();
        if args.config.release_claims_at_start {
            match args.engine.ports.nudges.release_claims().await {
                Ok(released) if released > 0 => tracing::info!(released, "released nudge claims of an earlier run"),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not release earlier nudge claims; their leases will expire")
                }
            }
        }
        // One tick at a time: the next is armed when this one is done, so slow store calls never
        // pile ticks up in the mailbox.
        let ticker = myself.send_after(args.config.tick, || NudgeSchedulerMsg::Tick);
        let tick_ms = u64::try_from(args.config.tick.as_millis()).unwrap_or(10).max(1);
        Ok(NudgeSchedulerState {
            wheel: TimingWheel::new(now, tick_ms),
            horizon_end: now,
            next_reload: now,
            ticker: Some(ticker),
            stats: SchedulerStats::default(),
            engine: args.engine,
            config: args.config,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<NudgeSchedulerMsg>,
        state: &mut NudgeSchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ticker) = state.ticker.take() {
            ticker.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<NudgeSchedulerMsg>,
        message: NudgeSchedulerMsg,
        state: &mut NudgeSchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            NudgeSchedulerMsg::Scheduled(rows) => {
                for row in rows {
                    if row.due_at >= state.horizon_end {
                        // Beyond the horizon: a later reload brings it in.
                    } else if state.wheel.len() >= state.config.max_loaded as usize {
                        // The wheel is full: shrink the horizon so the reload fetches it in order.
                        state.horizon_end = row.due_at;
                    } else {
                        state.wheel.insert(row.id, row.due_at);
                    }
                }
            }
            NudgeSchedulerMsg::Tick => {
                state.tick().await;
                state.ticker = Some(myself.send_after(state.config.tick, || NudgeSchedulerMsg::Tick));
            }
            NudgeSchedulerMsg::Stats(reply) => {
                let _ = reply.send(SchedulerStats { loaded: state.wheel.len(), ..state.stats });
            }
        }
        Ok(())
    }
}

impl NudgeSchedulerState {
    async fn tick(&mut self) {
        if self.engine.is_closed() {
            return;
        }
        let now = self.engine.ports.clock.now();
        if now >= self.next_reload {
            self.reload(now).await;
        }
        if now >= self.horizon_end && self.wheel.is_empty() {
            // The horizon shrank (a full wheel) and drained: read on from the table now.
            self.reload(now).await;
        }
        let due: Vec<NudgeId> = self.wheel.advance(now).into_iter().map(|(id, _)| id).collect();
        metrics::gauge!(m::NUDGES_LOADED).set(self.wheel.len() as f64);
        for chunk in due.chunks(CLAIM_BATCH) {
            self.claim(chunk, now).await;
        }
    }

    async fn reload(&mut self, now: Timestamp) {
        let horizon = now.plus_millis(millis(self.config.horizon));
        match self.engine.ports.nudges.pending_before(horizon, now, self.config.max_loaded).await {
            Ok(rows) => {
                let full = rows.len() >= self.config.max_loaded as usize;
                self.horizon_end = match rows.last() {
                    Some(last) if full => last.due_at,
                    _ => horizon,
                };
                for row in rows {
                    self.wheel.insert(row.id, row.due_at);
                }
                self.next_reload = now.plus_millis(millis(self.config.reload_every));
            }
            Err(error) => {
                tracing::warn!(%error, "could not load due nudges; retrying in a second");
                self.next_reload = now.plus_millis(1_000);
            }
        }
    }

    async fn claim(&mut self, ids: &[NudgeId], now: Timestamp) {
        let lease_until = now.plus_millis(millis(self.config.lease));
        match self.engine.ports.nudges.claim(ids, now, lease_until).await {
            Ok(claimed) => {
                self.stats.claimed += claimed.len() as u64;
                metrics::counter!(m::NUDGES_CLAIMED).increment(claimed.len() as u64);
                for nudge in &claimed {
                    let late = now.millis_since(nudge.due_at) as f64 / 1_000.0;
                    metrics::histogram!(m::NUDGE_CLAIM_LATENESS_SECONDS).record(late);
                }
                if self.config.hold_after_claim && !claimed.is_empty() {
                    let ids: Vec<String> = claimed.iter().map(|n| n.id.to_string()).collect();
                    tracing::warn!(nudges = %ids.join(","), "fault injection: holding claimed nudges");
                    return;
                }
                let engine = self.engine.clone();
                // Routing may start conversations (loading them from the store); the wheel keeps turning.
                tokio::spawn(async move {
                    for nudge in claimed {
                        let key = ConversationKey { creator: nudge.creator, user: nudge.user };
                        let event = ConversationMsg::Event(Event::NudgeDue { id: nudge.id });
                        if let Err(error) = engine.route(&key, event).await {
                            // The lease expires and a later reload claims it again.
                            tracing::warn!(nudge = %nudge.id, %error, "could not deliver a due nudge; it will be retried");
                        }
                    }
                });
            }
            Err(error) => {
                self.stats.claim_failures += 1;
                tracing::warn!(%error, nudges = ids.len(), "could not claim due nudges; retrying in a second");
                let retry = now.plus_millis(1_000);
                for id in ids {
                    self.wheel.insert(*id, retry);
                }
            }
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
