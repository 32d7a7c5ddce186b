//! `GET /v1/creators/{slug}/stats?days=N`: the dashboard's counts for a creator over the last `N`
//! whole UTC days (today included): active users, messages per day, reply latency, the program
//! funnel and the nudge response rate. The store counts ([`twin_store::stats`]); this handler
//! orders each program's funnel as the program's latest version orders its steps, and shapes the
//! JSON. The rules are in docs/STATS.md.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use twin_store::stats::{CreatorStats, Percentiles, StatsPeriod, StepReached};
use utoipa::{IntoParams, ToSchema};

use super::{engine_error, store_error};
use crate::auth::Caller;
use crate::problem::ApiError;
use crate::routes::AppState;
use crate::routes::openapi::Problem;

/// The period when `days` is not given.
pub const DEFAULT_DAYS: i64 = 14;
/// The longest period a client may ask for.
pub const MAX_DAYS: i64 = 90;

/// `?days=<n>`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Whole UTC days ending today, 1 to 90 (default 14).
    pub days: Option<i64>,
}

/// A creator's counts over a period. Preview users (`preview:…`) count nowhere.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsView {
    pub days: u32,
    /// The first day of the period (UTC), `YYYY-MM-DD`.
    pub from: String,
    /// The last day of the period (UTC, today), `YYYY-MM-DD`.
    pub to: String,
    pub active_users: StatsActiveUsers,
    /// Every day of the period, oldest first, zeros included.
    pub messages_per_day: Vec<StatsDayMessages>,
    pub reply_latency_ms: StatsLatency,
    /// One funnel per program: the programs the twin has (by id), then any others entered in the
    /// period.
    pub funnel: Vec<StatsProgramFunnel>,
    pub nudges: StatsNudges,
}

/// Distinct users who wrote: in the last 24 hours, the last 7 days, and in the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsActiveUsers {
    pub day: u64,
    pub week: u64,
    pub period: u64,
}

/// Messages of one day: `inbound` from users, `outbound` every other origin (twin, program, nudge,
/// human).
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsDayMessages {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub inbound: u64,
    pub outbound: u64,
}

/// Time from a user's message to the reply that followed it (the next twin, program or human
/// message), in milliseconds: nearest-rank percentiles, `null` without samples.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsLatency {
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub samples: u64,
    /// Every day of the period, oldest first, by the day of the user's message.
    pub per_day: Vec<StatsDayLatency>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsDayLatency {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    pub p50: Option<i64>,
    pub p95: Option<i64>,
    pub samples: u64,
}

/// How many users entered each step of a program in the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsProgramFunnel {
    pub program: String,
    /// The steps of the program's latest version in its order (zeros included), then steps only
    /// older versions have that someone entered, by id.
    pub steps: Vec<StatsStepCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsStepCount {
    pub step: String,
    /// Distinct users (conversations) who entered the step in the period.
    pub users: u64,
}

/// Nudges that fired (fell due) in the period, and how many the user answered within 24 hours.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsNudges {
    pub fired: u64,
    pub responded: u64,
    /// `responded / fired`; `null` when none fired.
    pub response_rate: Option<f64>,
}

#[utoipa::path(
    get,
    path = "/v1/creators/{slug}/stats",
    tag = "stats",
    summary = "The creator's counts over the last days: active users, messages per day, reply latency, program funnel, nudge responses",
    params(("slug" = String, Path, description = "The creator"), StatsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The counts", body = StatsView),
        (status = 401, description = "Missing, expired or invalid token", content_type = "application/problem+json", body = Problem),
        (status = 403, description = "An end-user token", content_type = "application/problem+json", body = Problem),
        (status = 404, description = "No such creator (or another tenant's)", content_type = "application/problem+json", body = Problem),
        (status = 422, description = "`days` is not a whole number from 1 to 90", content_type = "application/problem+json", body = Problem),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(slug): Path<String>,
    query: Result<Query<StatsQuery>, QueryRejection>,
) -> Result<Json<StatsView>, ApiError> {
    let creator = caller.scope(&slug)?;
    let Query(query) = query.map_err(|r| {
        ApiError::unprocessable(format!("{}; the one parameter is days, 1 to {MAX_DAYS}", r.body_text()))
    })?;
    let days = match query.days.unwrap_or(DEFAULT_DAYS) {
        // In range, so the conversion cannot fail.
        n if (1..=MAX_DAYS).contains(&n) => u32::try_from(n).unwrap_or(1),
        n => return Err(ApiError::unprocessable(format!("days: {n} is out of range (1 to {MAX_DAYS})"))),
    };
    let twin = state.engine.twin(creator).await.map_err(engine_error(&slug))?;
    let period = StatsPeriod::new(days, state.clock.now());
    let stats = state.store.creator_stats(creator, period).await.map_err(store_error)?;
    let order: Vec<(String, Vec<String>)> = twin
        .programs
        .latest_versions()
        .map(|p| (p.id.to_string(), p.steps.iter().map(|s| s.id.to_string()).collect()))
        .collect();
    Ok(Json(view(&stats, &order)))
}

fn view(stats: &CreatorStats, order: &[(String, Vec<String>)]) -> StatsView {
    let period = stats.period;
    let latency = |date: String, p: &Percentiles| StatsDayLatency { date, p50: p.p50, p95: p.p95, samples: p.samples };
    let nudges = stats.nudges;
    StatsView {
        days: period.days(),
        from: period.first_day().to_string(),
        to: period.last_day().to_string(),
        active_users: StatsActiveUsers {
            day: stats.active_users.day,
            week: stats.active_users.week,
            period: stats.active_users.period,
        },
        messages_per_day: stats
            .messages_per_day
            .iter()
            .map(|d| StatsDayMessages { date: d.day.to_string(), inbound: d.inbound, outbound: d.outbound })
            .collect(),
        reply_latency_ms: StatsLatency {
            p50: stats.reply_latency.overall.p50,
            p95: stats.reply_latency.overall.p95,
            samples: stats.reply_latency.overall.samples,
            per_day: stats.reply_latency.per_day.iter().map(|(day, p)| latency(day.to_string(), p)).collect(),
        },
        funnel: funnel(order, &stats.steps_reached),
        nudges: StatsNudges {
            fired: nudges.fired,
            responded: nudges.responded,
            response_rate: (nudges.fired > 0).then(|| nudges.responded as f64 / nudges.fired as f64),
        },
    }
}

/// Each program of `order` with its steps in order (zeros for steps nobody entered), then the steps
/// entered that its latest version no longer has; then programs entered that the twin no longer
/// has, by id, their steps by id.
fn funnel(order: &[(String, Vec<String>)], reached: &[StepReached]) -> Vec<StatsProgramFunnel> {
    let mut counts: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for r in reached {
        *counts.entry(r.program.as_str()).or_default().entry(r.step.as_str()).or_default() += r.conversations;
    }
    let mut out = Vec::new();
    for (program, steps) in order {
        let mut left = counts.remove(program.as_str()).unwrap_or_default();
        let mut funnel: Vec<StatsStepCount> = steps
            .iter()
            .map(|step| StatsStepCount { step: step.clone(), users: left.remove(step.as_str()).unwrap_or(0) })
            .collect();
        funnel.extend(left.into_iter().map(|(step, users)| StatsStepCount { step: step.to_owned(), users }));
        out.push(StatsProgramFunnel { program: program.clone(), steps: funnel });
    }
    out.extend(counts.into_iter().map(|(program, steps)| StatsProgramFunnel {
        program: program.to_owned(),
        steps: steps.into_iter().map(|(step, users)| StatsStepCount { step: step.to_owned(), users }).collect(),
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached(program: &str, step: &str, conversations: u64) -> StepReached {
        StepReached { program: program.to_owned(), step: step.to_owned(), conversations }
    }

    fn steps(funnel: &StatsProgramFunnel) -> Vec<(&str, u64)> {
        funnel.steps.iter().map(|s| (s.step.as_str(), s.users)).collect()
    }

    #[test]
    fn a_funnel_follows_the_latest_versions_step_order_and_keeps_every_count() {
        let order = vec![
            ("onboarding".to_owned(), vec!["welcome".to_owned(), "goal".to_owned(), "done".to_owned()]),
            ("quiet".to_owned(), vec!["only".to_owned()]),
        ];
        // As the store returns them: by program, then step id.
        let rows = [
            reached("gone", "a", 1),
            reached("onboarding", "goal", 9),
            reached("onboarding", "old-step", 2),
            reached("onboarding", "welcome", 12),
        ];
        let funnel = funnel(&order, &rows);
        let programs: Vec<&str> = funnel.iter().map(|f| f.program.as_str()).collect();
        assert_eq!(programs, ["onboarding", "quiet", "gone"]);
        assert_eq!(steps(&funnel[0]), [("welcome", 12), ("goal", 9), ("done", 0), ("old-step", 2)]);
        assert_eq!(steps(&funnel[1]), [("only", 0)], "a program nobody entered shows its steps at zero");
        assert_eq!(steps(&funnel[2]), [("a", 1)], "a program the twin no longer has keeps its counts");
    }
}
