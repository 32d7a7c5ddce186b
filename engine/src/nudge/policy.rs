//! Whether a nudge that fell due may go out now: the creator's [`NudgePolicy`] applied to what we
//! know of the user ([`Audience`]). The conversation's step calls [`decide`] when the scheduler
//! delivers a due nudge, then sends, reschedules or settles it.
//!
//! The rules, checked in this order (the first that applies decides):
//! 1. the user opted out (`STOP`) → skip, `opted_out`;
//! 2. a channel reported the user unreachable (blocked the bot) → skip, `unreachable`;
//! 3. the nudge is overdue by more than `stale_after` (the service was down) → skip, `stale`: a
//!    "how did today go?" a day late does more harm than good;
//! 4. the daily cap is zero → skip, `daily_cap_zero`: deferring would only come back every day;
//! 5. the user's wall clock is inside quiet hours → defer until they end (DST-aware), `quiet_hours`;
//! 6. the cap for the user's current local date is reached → defer to the first moment of the
//!    next local date outside quiet hours (08:00 with quiet hours ending at 08:00, else 00:00),
//!    `daily_cap`;
//! 7. the channel's customer-service window (WhatsApp: 24 hours after the user last wrote) is
//!    closed → skip, `window_closed`; the channel turns this into a template message, which must
//!    obey quiet hours and the cap too, hence this comes after them;
//! 8. otherwise → send.
//!
//! Quiet hours are judged by the wall clock: `[start, end)` in local time, wrapping midnight when
//! `start > end` (21:00–08:00). When the clocks fall back and repeat an hour inside quiet hours, the
//! second pass is quiet too and ends when the wall clock shows `end` again.

use std::fmt;
use std::marker::PhantomData;

use chrono::NaiveDate;
use serde::de::{self, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::DurationSpec;
use super::local_time::{
    LocalTime, TimeZone, local_date, local_seconds_of_day, next_wall_clock, start_of_next_local_day,
};
use crate::time::Timestamp;

#[cfg(test)]
mod tests;

/// The creator's rules for proactive nudges, as written in config:
///
/// ```toml
/// quiet_hours = { start = "21:00", end = "08:00" }   # or "off"
/// daily_cap = 2                                      # nudges per user per local day; 0 = none
/// inactivity_after = "2d"                            # or "off"
/// stale_after = "1d"
/// ```
///
/// Every field is optional; a missing one takes the value above. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NudgePolicy {
    /// When no nudge goes out, in the user's wall-clock time; `None` ("off"): any hour.
    #[serde(with = "off_or")]
    pub quiet_hours: Option<QuietHours>,
    /// Nudges per user per local date; 0 turns nudges off.
    pub daily_cap: u32,
    /// How long a user may stay silent before an inactivity nudge; `None` ("off"): never.
    #[serde(with = "off_or")]
    pub inactivity_after: Option<DurationSpec>,
    /// A nudge overdue by more than this (after downtime) is dropped, not sent late.
    pub stale_after: DurationSpec,
}

impl Default for NudgePolicy {
    fn default() -> Self {
        Self {
            quiet_hours: Some(QuietHours::DEFAULT),
            daily_cap: 2,
            inactivity_after: Some(DurationSpec::from_millis(2 * DAY_MS)),
            stale_after: DurationSpec::from_millis(DAY_MS),
        }
    }
}

impl NudgePolicy {
    /// When an inactivity nudge falls due for a user who last wrote at `last_user_at`, if ever.
    pub fn inactivity_due(&self, last_user_at: Timestamp) -> Option<Timestamp> {
        self.inactivity_after.map(|d| last_user_at.plus_millis(d.millis()))
    }
}

const DAY_MS: i64 = 86_400_000;

/// A daily stretch of wall-clock time without nudges: from `start` (included) to `end` (excluded),
/// wrapping midnight when `start` is later than `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "QuietHoursFile")]
pub struct QuietHours {
    start: LocalTime,
    /// Never equal to `start`: such a window would be both empty and the whole day.
    end: LocalTime,
}

/// Quiet hours as written, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuietHoursFile {
    start: LocalTime,
    end: LocalTime,
}

/// Quiet hours that cannot be used; tell whoever wrote them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuietHoursError {
    #[error("quiet hours start and end at {0}: give two different times, or \"off\" for no quiet hours")]
    Empty(LocalTime),
}

impl QuietHours {
    /// 21:00–08:00.
    pub const DEFAULT: Self = Self { start: LocalTime::from_parts(21, 0), end: LocalTime::from_parts(8, 0) };

    pub fn new(start: LocalTime, end: LocalTime) -> Result<Self, QuietHoursError> {
        if start == end {
            return Err(QuietHoursError::Empty(start));
        }
        Ok(Self { start, end })
    }

    pub fn start(&self) -> LocalTime {
        self.start
    }

    pub fn end(&self) -> LocalTime {
        self.end
    }

    /// Whether the wall clock in `tz` is inside quiet hours at `t`.
    pub fn contains(&self, tz: TimeZone, t: Timestamp) -> bool {
        let now = local_seconds_of_day(tz, t);
        let (start, end) = (self.start.seconds_from_midnight(), self.end.seconds_from_midnight());
        if start < end { start <= now && now < end } else { now >= start || now < end }
    }

    /// When quiet hours that hold at `t` end: the first instant after `t` at which the wall clock
    /// shows `end` (or the end of a DST gap that swallowed it).
    pub fn ends_after(&self, tz: TimeZone, t: Timestamp) -> Timestamp {
        next_wall_clock(tz, t, self.end)
    }
}

impl TryFrom<QuietHoursFile> for QuietHours {
    type Error = QuietHoursError;
    fn try_from(file: QuietHoursFile) -> Result<Self, Self::Error> {
        Self::new(file.start, file.end)
    }
}

/// What the policy needs to know about the user a nudge is for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience {
    pub timezone: TimeZone,
    /// The user asked for no nudges ([`super::opt_command`]).
    pub opted_out: bool,
    /// A channel said the user cannot be reached (blocked the bot, number gone).
    pub unreachable: bool,
    /// How many nudges went out on that local date; see [`record_sent`].
    pub sent_on: Option<(NaiveDate, u32)>,
    /// `None`: the channel has no customer-service window (web, Telegram).
    pub window: Option<ChannelWindow>,
}

/// A channel's customer-service window: WhatsApp accepts free-form messages only within 24 hours of
/// the user's last message; outside it only approved templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelWindow {
    /// Free-form messages are accepted before this instant; `None`: the window never opened (the
    /// user has not written on this channel).
    pub open_until: Option<Timestamp>,
}

impl ChannelWindow {
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.open_until.is_some_and(|until| now < until)
    }
}

/// The policy's answer for one due nudge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    /// Reschedule the nudge at `until`; `until` then counts as its due time, so the wait imposed by
    /// the policy never makes it stale.
    Defer {
        until: Timestamp,
        reason: DeferReason,
    },
    /// Settle the nudge without sending it.
    Skip {
        reason: SkipReason,
    },
}

/// Why a nudge waits. The names appear in live events and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeferReason {
    QuietHours,
    DailyCap,
}

impl DeferReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeferReason::QuietHours => "quiet_hours",
            DeferReason::DailyCap => "daily_cap",
        }
    }
}

/// Why a nudge is dropped. The names appear in live events and never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    OptedOut,
    Unreachable,
    Stale,
    /// The policy's daily cap is zero: nudges are off for this twin.
    DailyCapZero,
    WindowClosed,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::OptedOut => "opted_out",
            SkipReason::Unreachable => "unreachable",
            SkipReason::Stale => "stale",
            SkipReason::DailyCapZero => "daily_cap_zero",
            SkipReason::WindowClosed => "window_closed",
        }
    }
}

impl fmt::Display for DeferReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Applies the rules of the module doc, in order, to a nudge due at `due_at` that fired at `now`.
/// A nudge handed over early (`now < due_at`) is judged as of `now`.
pub fn decide(policy: &NudgePolicy, audience: &Audience, due_at: Timestamp, now: Timestamp) -> Decision {
    let tz = audience.timezone;
    if audience.opted_out {
        return Decision::Skip { reason: SkipReason::OptedOut };
    }
    if audience.unreachable {
        return Decision::Skip { reason: SkipReason::Unreachable };
    }
    if now.millis_since(due_at) > policy.stale_after.millis() {
        return Decision::Skip { reason: SkipReason::Stale };
    }
    if policy.daily_cap == 0 {
        return Decision::Skip { reason: SkipReason::DailyCapZero };
    }
    if let Some(quiet) = policy.quiet_hours.filter(|q| q.contains(tz, now)) {
        return Decision::Defer { until: quiet.ends_after(tz, now), reason: DeferReason::QuietHours };
    }
    if sent_today(audience.sent_on, tz, now) >= policy.daily_cap {
        let next_day = start_of_next_local_day(tz, now);
        let until = match policy.quiet_hours {
            Some(quiet) if quiet.contains(tz, next_day) => quiet.ends_after(tz, next_day),
            _ => next_day,
        };
        return Decision::Defer { until, reason: DeferReason::DailyCap };
    }
    if audience.window.is_some_and(|w| !w.is_open(now)) {
        return Decision::Skip { reason: SkipReason::WindowClosed };
    }
    Decision::Send
}

/// Nudges already sent on the user's current local date.
pub fn sent_today(sent_on: Option<(NaiveDate, u32)>, tz: TimeZone, now: Timestamp) -> u32 {
    match sent_on {
        Some((date, count)) if date == local_date(tz, now) => count,
        _ => 0,
    }
}

/// The cap counter after a nudge went out at `now`: one more on the same local date, else a fresh
/// count for the new date.
pub fn record_sent(sent_on: Option<(NaiveDate, u32)>, tz: TimeZone, now: Timestamp) -> (NaiveDate, u32) {
    let today = local_date(tz, now);
    match sent_on {
        Some((date, count)) if date == today => (today, count.saturating_add(1)),
        _ => (today, 1),
    }
}

/// Serde for an optional setting that config turns off with `"off"` (YAML `null` and `false` work
/// too; TOML has no null).
mod off_or {
    use super::*;

    const OFF: &str = "off";

    pub fn serialize<T: Serialize, S: Serializer>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => v.serialize(serializer),
            None => serializer.serialize_str(OFF),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
        deserializer.deserialize_any(OffOr(PhantomData))
    }

    struct OffOr<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OffOr<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a setting or \"{OFF}\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v == OFF { Ok(None) } else { T::deserialize(v.into_deserializer()).map(Some) }
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            if v { Err(E::invalid_value(de::Unexpected::Bool(true), &self)) } else { Ok(None) }
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
}
