//! Counts per creator for the dashboard (`GET /v1/creators/{slug}/stats`): active users, messages
//! per day, reply latency, how many conversations reached each program step, and how often users
//! answer a nudge, over whole UTC days.
//!
//! One read-only transaction as the tenant (twin_app with the tenant set on PostgreSQL, so
//! row-level security holds; a read transaction on SQLite), every statement naming the tenant.
//! Conversations of preview users (user ids starting with [`PREVIEW_PREFIX`]) count nowhere.
//! Percentiles are computed here from the samples, the same way on both backends.

use std::collections::BTreeMap;
use std::fmt;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{FromRow, PgConnection, SqliteConnection};
use twin_engine::ports::StoreError;
use twin_engine::{CreatorId, Timestamp};

use crate::error::from_sqlx;
use crate::postgres::READ_TX;
use crate::{Backend, Store};

pub const DAY_MS: i64 = 86_400_000;
/// Users whose id starts with this are the creator's own preview ("test my twin") users.
pub const PREVIEW_PREFIX: &str = "preview:";
/// The most reply-latency samples read per day: a day with more uses its latest ones. A safety
/// bound (90 days of samples stay a few megabytes), far above what a creator's day usually holds.
pub const MAX_LATENCY_SAMPLES_PER_DAY: u32 = 5_000;
/// A fired nudge counts as answered when the user writes within this long after it fell due.
pub const RESPONSE_WINDOW_MS: i64 = DAY_MS;

/// A UTC calendar day, as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Day(pub i64);

impl Day {
    pub fn of(at: Timestamp) -> Self {
        Day(at.millis().div_euclid(DAY_MS))
    }

    /// Its first millisecond.
    pub fn start(self) -> Timestamp {
        Timestamp::from_millis(self.0.saturating_mul(DAY_MS))
    }
}

/// `YYYY-MM-DD`.
impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match chrono::DateTime::from_timestamp_millis(self.start().millis()) {
            Some(at) => write!(f, "{}", at.date_naive().format("%Y-%m-%d")),
            None => write!(f, "day {}", self.0),
        }
    }
}

/// What a stats read covers: `days` whole UTC days, the last one the day of `now`; "active today"
/// and "this week" are the 24 hours and 7 days before `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsPeriod {
    days: u32,
    now: Timestamp,
}

impl StatsPeriod {
    /// At least one day.
    pub fn new(days: u32, now: Timestamp) -> Self {
        Self { days: days.max(1), now }
    }

    pub fn days(&self) -> u32 {
        self.days
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn first_day(&self) -> Day {
        Day(self.last_day().0 - i64::from(self.days) + 1)
    }

    pub fn last_day(&self) -> Day {
        Day::of(self.now)
    }

    /// Every day of the period, oldest first.
    pub fn each_day(&self) -> impl Iterator<Item = Day> {
        (self.first_day().0..=self.last_day().0).map(Day)
    }

    fn start(&self) -> i64 {
        self.first_day().start().millis()
    }

    /// The first millisecond after the period.
    fn end(&self) -> i64 {
        Day(self.last_day().0 + 1).start().millis()
    }
}

/// A creator's counts over a period.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatorStats {
    pub period: StatsPeriod,
    pub active_users: ActiveUsers,
    /// Every day of the period, oldest first, zeros included.
    pub messages_per_day: Vec<DayMessages>,
    pub reply_latency: ReplyLatency,
    /// Distinct conversations that entered each program step in the period, by program then step
    /// id (the caller orders steps as its programs do).
    pub steps_reached: Vec<StepReached>,
    pub nudges: NudgeResponses,
}

/// Distinct users who wrote (an inbound message) in the last 24 hours, the last 7 days, the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveUsers {
    pub day: u64,
    pub week: u64,
    pub period: u64,
}

/// Messages stored on one day: `inbound` from users, `outbound` every other origin (twin, program,
/// nudge, human).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayMessages {
    pub day: Day,
    pub inbound: u64,
    pub outbound: u64,
}

/// Time from a user message to the next message of the conversation that is not the user's,
/// when that is a reply (twin, program or human; a nudge is not an answer, and a message that got
/// none yet has no sample). Dated by the user's message.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyLatency {
    pub overall: Percentiles,
    /// Every day of the period, oldest first, days without samples included.
    pub per_day: Vec<(Day, Percentiles)>,
}

/// Nearest-rank percentiles in milliseconds; `None` without samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub samples: u64,
}

impl Percentiles {
    /// Of these samples (sorted here).
    pub fn of(mut samples: Vec<i64>) -> Self {
        samples.sort_unstable();
        Self { p50: nearest_rank(&samples, 50), p95: nearest_rank(&samples, 95), samples: samples.len() as u64 }
    }
}

/// The smallest sample with at least `percent`% of the samples at or below it.
fn nearest_rank(sorted: &[i64], percent: usize) -> Option<i64> {
    let rank = (sorted.len() * percent).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReached {
    pub program: String,
    pub step: String,
    pub conversations: u64,
}

/// Nudges that fired (fell due) in the period, and how many of them the user answered: wrote in
/// the same conversation within [`RESPONSE_WINDOW_MS`] after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NudgeResponses {
    pub fired: u64,
    pub responded: u64,
}

/// Joined as `c`, the conversation of the row: leaves out the preview users.
const NOT_PREVIEW: &str = "substr(c.user_id, 1, 8) <> 'preview:'";

/// `$1` creator, `$2`/`$3` the period, `$4` 24 hours ago, `$5` 7 days ago, `$6` the earlier of
/// `$2` and `$5`.
fn active_users_sql() -> String {
    format!(
        "SELECT count(DISTINCT CASE WHEN m.created_at >= $4 THEN m.conversation_id END), \
                count(DISTINCT CASE WHEN m.created_at >= $5 THEN m.conversation_id END), \
                count(DISTINCT CASE WHEN m.created_at >= $2 AND m.created_at < $3 THEN m.conversation_id END) \
         FROM messages m JOIN conversations c ON c.id = m.conversation_id AND c.creator_id = m.creator_id \
         WHERE m.creator_id = $1 AND m.origin = 'user' AND m.created_at >= $6 AND {NOT_PREVIEW}"
    )
}

/// `$1` creator, `$2`/`$3` the period.
fn messages_per_day_sql() -> String {
    format!(
        "SELECT m.created_at / {DAY_MS}, sum(CASE WHEN m.origin = 'user' THEN 1 ELSE 0 END), \
                sum(CASE WHEN m.origin = 'user' THEN 0 ELSE 1 END) \
         FROM messages m JOIN conversations c ON c.id = m.conversation_id AND c.creator_id = m.creator_id \
         WHERE m.creator_id = $1 AND m.created_at >= $2 AND m.created_at < $3 AND {NOT_PREVIEW} \
         GROUP BY m.created_at / {DAY_MS}"
    )
}

/// `$1` creator, `$2`/`$3` the period, `$4` samples per day. Window functions only, no self-join
/// (one SQLite would run as a nested loop): counting non-user messages from each conversation's
/// end backwards (`g`) puts every user message in one group with the next non-user message after
/// it, the group's only one. Kept when that message exists and is a reply (not a nudge); the
/// latest of each day up to the cap.
fn latency_sql() -> String {
    format!(
        "WITH counted AS (\
            SELECT m.conversation_id, m.origin, m.created_at, \
                   sum(CASE WHEN m.origin = 'user' THEN 0 ELSE 1 END) \
                       OVER (PARTITION BY m.conversation_id ORDER BY m.seq DESC) AS g \
            FROM messages m JOIN conversations c ON c.id = m.conversation_id AND c.creator_id = m.creator_id \
            WHERE m.creator_id = $1 AND m.created_at >= $2 AND {NOT_PREVIEW}\
         ), paired AS (\
            SELECT origin, created_at AS at, \
                   max(CASE WHEN origin <> 'user' THEN created_at END) OVER (PARTITION BY conversation_id, g) \
                       AS replied_at, \
                   max(CASE WHEN origin = 'nudge' THEN 1 ELSE 0 END) OVER (PARTITION BY conversation_id, g) \
                       AS by_nudge \
            FROM counted\
         ), answered AS (\
            SELECT at, replied_at - at AS latency, \
                   row_number() OVER (PARTITION BY at / {DAY_MS} ORDER BY at DESC) AS n \
            FROM paired WHERE origin = 'user' AND at < $3 AND replied_at IS NOT NULL AND by_nudge = 0\
         ) \
         SELECT at, latency FROM answered WHERE n <= $4"
    )
}

/// `$1` creator, `$2`/`$3` the period.
fn steps_reached_sql() -> String {
    format!(
        "SELECT s.program, s.step, count(DISTINCT s.conversation_id) \
         FROM step_entries s JOIN conversations c ON c.id = s.conversation_id AND c.creator_id = s.creator_id \
         WHERE s.creator_id = $1 AND s.entered_at >= $2 AND s.entered_at < $3 AND {NOT_PREVIEW} \
         GROUP BY s.program, s.step"
    )
}

/// `$1` creator, `$2`/`$3` the period, `$4` the response window.
fn nudges_sql() -> String {
    "SELECT count(*), coalesce(sum(CASE WHEN EXISTS (\
                SELECT 1 FROM messages m WHERE m.conversation_id = n.conversation_id AND m.origin = 'user' \
                AND m.created_at > n.due_at AND m.created_at <= n.due_at + $4) THEN 1 ELSE 0 END), 0) \
     FROM nudges n \
     WHERE n.creator_id = $1 AND n.status = 'fired' AND n.due_at >= $2 AND n.due_at < $3 \
       AND substr(n.user_id, 1, 8) <> 'preview:'"
        .to_owned()
}

impl Store {
    /// The creator's counts over `period`, read in one snapshot as the tenant.
    pub async fn creator_stats(&self, creator: CreatorId, period: StatsPeriod) -> Result<CreatorStats, StoreError> {
        match &self.backend {
            Backend::Postgres(s) => {
                let mut tx = s.tenant_tx(creator, READ_TX).await?;
                let stats = read(&mut Conn::Pg(&mut tx), creator, period).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(stats)
            }
            Backend::Sqlite(s) => {
                let mut tx = s.pool.begin().await.map_err(from_sqlx)?;
                let stats = read(&mut Conn::Lite(&mut tx), creator, period).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(stats)
            }
        }
    }
}

async fn read(conn: &mut Conn<'_>, creator: CreatorId, period: StatsPeriod) -> Result<CreatorStats, StoreError> {
    let (start, end) = (period.start(), period.end());
    let day_ago = period.now.millis().saturating_sub(DAY_MS);
    let week_ago = period.now.millis().saturating_sub(7 * DAY_MS);

    let active: Vec<(i64, i64, i64)> =
        conn.fetch(&active_users_sql(), creator, &[start, end, day_ago, week_ago, start.min(week_ago)]).await?;
    let (day, week, in_period) = active.into_iter().next().unwrap_or_default();
    let active_users = ActiveUsers { day: count(day), week: count(week), period: count(in_period) };

    let per_day: Vec<(i64, i64, i64)> = conn.fetch(&messages_per_day_sql(), creator, &[start, end]).await?;
    let per_day: BTreeMap<i64, (i64, i64)> = per_day.into_iter().map(|(day, i, o)| (day, (i, o))).collect();
    let messages_per_day = period
        .each_day()
        .map(|day| {
            let (inbound, outbound) = per_day.get(&day.0).copied().unwrap_or_default();
            DayMessages { day, inbound: count(inbound), outbound: count(outbound) }
        })
        .collect();

    let cap = i64::from(MAX_LATENCY_SAMPLES_PER_DAY);
    let samples: Vec<(i64, i64)> = conn.fetch(&latency_sql(), creator, &[start, end, cap]).await?;
    let mut by_day: BTreeMap<Day, Vec<i64>> = BTreeMap::new();
    for (asked_at, latency) in samples {
        // Both times are the engine's clock; a reply is never stored before its question.
        by_day.entry(Day::of(Timestamp::from_millis(asked_at))).or_default().push(latency.max(0));
    }
    let overall = Percentiles::of(by_day.values().flatten().copied().collect());
    let per_day =
        period.each_day().map(|day| (day, Percentiles::of(by_day.remove(&day).unwrap_or_default()))).collect();
    let reply_latency = ReplyLatency { overall, per_day };

    let steps: Vec<(String, String, i64)> = conn.fetch(&steps_reached_sql(), creator, &[start, end]).await?;
    let mut steps_reached: Vec<StepReached> = steps
        .into_iter()
        .map(|(program, step, conversations)| StepReached { program, step, conversations: count(conversations) })
        .collect();
    steps_reached.sort_by(|a, b| (&a.program, &a.step).cmp(&(&b.program, &b.step)));

    let nudges: Vec<(i64, i64)> = conn.fetch(&nudges_sql(), creator, &[start, end, RESPONSE_WINDOW_MS]).await?;
    let (fired, responded) = nudges.into_iter().next().unwrap_or_default();
    let nudges = NudgeResponses { fired: count(fired), responded: count(responded) };

    Ok(CreatorStats { period, active_users, messages_per_day, reply_latency, steps_reached, nudges })
}

/// A count as SQL returns it (never negative).
fn count(raw: i64) -> u64 {
    u64::try_from(raw).unwrap_or(0)
}

/// The read transaction, on either backend.
enum Conn<'c> {
    Pg(&'c mut PgConnection),
    Lite(&'c mut SqliteConnection),
}

impl Conn<'_> {
    /// Runs `sql` (written with `$n` placeholders) with `$1` = the creator and `$2…` = `values`.
    async fn fetch<T>(&mut self, sql: &str, creator: CreatorId, values: &[i64]) -> Result<Vec<T>, StoreError>
    where
        T: Send + Unpin + for<'r> FromRow<'r, PgRow> + for<'r> FromRow<'r, SqliteRow>,
    {
        match self {
            Conn::Pg(conn) => {
                let mut query = sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql.to_owned())).bind(creator.0);
                for value in values {
                    query = query.bind(*value);
                }
                query.fetch_all(&mut **conn).await.map_err(from_sqlx)
            }
            Conn::Lite(conn) => {
                // SQLite numbers its parameters `?n`; the statements hold no other `$`.
                let sql = sql.replace('$', "?");
                let mut query =
                    sqlx::query_as::<_, T>(sqlx::AssertSqlSafe(sql)).bind(creator.0.hyphenated().to_string());
                for value in values {
                    query = query.bind(*value);
                }
                query.fetch_all(&mut **conn).await.map_err(from_sqlx)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(Percentiles::of(Vec::new()), Percentiles { p50: None, p95: None, samples: 0 });
        assert_eq!(Percentiles::of(vec![7]), Percentiles { p50: Some(7), p95: Some(7), samples: 1 });
        // 1..=20 shuffled: the 10th and the 19th smallest.
        let samples: Vec<i64> = (1..=20).map(|i| (i * 7) % 20 + 1).collect();
        assert_eq!(Percentiles::of(samples), Percentiles { p50: Some(10), p95: Some(19), samples: 20 });
        assert_eq!(
            Percentiles::of(vec![100, 300, 200, 400]),
            Percentiles { p50: Some(200), p95: Some(400), samples: 4 }
        );
    }

    #[test]
    fn a_period_is_whole_utc_days_ending_today() {
        // 2026-12-05T13:00:00Z
        let now = Timestamp::from_millis(1_796_475_600_000);
        let period = StatsPeriod::new(14, now);
        assert_eq!(period.last_day().to_string(), "2026-12-05");
        assert_eq!(period.first_day().to_string(), "2026-11-22");
        assert_eq!(period.each_day().count(), 14);
        assert_eq!(period.start(), 1_795_305_600_000, "2026-11-22T00:00:00Z");
        assert_eq!(period.end(), 1_796_515_200_000, "2026-12-06T00:00:00Z");
        assert_eq!(StatsPeriod::new(0, now).days(), 1);
        assert_eq!(Day::of(Timestamp::from_millis(-1)).to_string(), "1969-12-31");
    }
}
