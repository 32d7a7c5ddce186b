//! The user's wall clock: IANA time zones, times of day, and the instant a wall-clock time next
//! comes round. Quiet hours, the daily cap and program timers (`at: "08:00"`) are all judged here.
//!
//! DST rules, for every function that maps a wall-clock time to an instant:
//! - a time the clocks skip that day (spring forward) maps to the first instant after the gap
//!   (02:30 on the day Berlin goes from 02:00 to 03:00 is 03:00);
//! - a time the clocks show twice (fall back) maps to the earlier instant, so a daily time comes
//!   round once per local date.
//!
//! Instants are clamped to the years 1–9999 before they reach the calendar, so no input panics.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _, Timelike, Utc};
use chrono_tz::{GapInfo, TZ_VARIANTS, Tz};
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

#[cfg(test)]
mod tests;

/// 0001-01-01T00:00:00Z: the earliest instant given to the calendar.
const MIN_MS: i64 = -62_135_596_800_000;
/// 9999-12-31T23:59:59.999Z: the latest instant given to the calendar.
const MAX_MS: i64 = 253_402_300_799_999;
const DAY_MS: i64 = 86_400_000;
/// Names longer than this are cut in error messages (they come from users and config files).
const MAX_NAME_IN_ERROR: usize = 64;

/// An IANA time zone such as `Europe/Berlin`; serialised as its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(Tz);

/// A time zone name that is not in the IANA database; tell whoever wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {name:?}: expected an IANA name such as \"Europe/Berlin\"")]
pub struct UnknownTimeZone {
    /// The name as given, cut to 64 characters.
    pub name: String,
}

impl TimeZone {
    pub const UTC: Self = Self(Tz::UTC);

    /// Parses an IANA name. Case is forgiven (`europe/berlin`); the canonical spelling is kept.
    pub fn parse(name: &str) -> Result<Self, UnknownTimeZone> {
        if let Ok(tz) = name.parse::<Tz>() {
            return Ok(Self(tz));
        }
        TZ_VARIANTS
            .iter()
            .find(|tz| tz.name().eq_ignore_ascii_case(name))
            .map(|tz| Self(*tz))
            .ok_or_else(|| UnknownTimeZone { name: name.chars().take(MAX_NAME_IN_ERROR).collect() })
    }

    /// The canonical IANA name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    pub fn tz(self) -> Tz {
        self.0
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        Self::UTC
    }
}

impl From<Tz> for TimeZone {
    fn from(tz: Tz) -> Self {
        Self(tz)
    }
}

impl FromStr for TimeZone {
    type Err = UnknownTimeZone;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TimeZone {
    type Error = UnknownTimeZone;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TimeZone> for String {
    fn from(value: TimeZone) -> Self {
        value.name().to_owned()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A wall-clock time of day to the minute, written `HH:MM` (`8:00` is accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LocalTime {
    /// 0–23.
    hour: u8,
    /// 0–59.
    minute: u8,
}

/// A time of day that could not be read; tell whoever wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalTimeError {
    #[error("expected a time of day as HH:MM (24-hour clock), got {0:?}")]
    Format(String),
    #[error("{0:?} is not a time of day: hours go from 00 to 23 and minutes from 00 to 59")]
    OutOfRange(String),
}

impl LocalTime {
    pub const MIDNIGHT: Self = Self { hour: 0, minute: 0 };

    pub fn new(hour: u8, minute: u8) -> Result<Self, LocalTimeError> {
        if hour > 23 || minute > 59 {
            return Err(LocalTimeError::OutOfRange(format!("{hour:02}:{minute:02}")));
        }
        Ok(Self { hour, minute })
    }

    pub fn parse(raw: &str) -> Result<Self, LocalTimeError> {
        let format_error = || LocalTimeError::Format(raw.chars().take(MAX_NAME_IN_ERROR).collect());
        let (h, m) = raw.split_once(':').ok_or_else(format_error)?;
        let digits = |s: &str, lens: &[usize]| lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(h, &[1, 2]) || !digits(m, &[2]) {
            return Err(format_error());
        }
        // At most two ASCII digits each, so the value is at most 99 and fits a u8.
        let value = |s: &str| s.bytes().fold(0u8, |acc, b| acc * 10 + (b - b'0'));
        Self::new(value(h), value(m)).map_err(|_| LocalTimeError::OutOfRange(raw.to_owned()))
    }

    /// For constants: an out-of-range time fails to compile.
    pub(crate) const fn from_parts(hour: u8, minute: u8) -> Self {
        assert!(hour < 24 && minute < 60, "a time of day has hours 0-23 and minutes 0-59");
        Self { hour, minute }
    }

    pub fn hour(self) -> u8 {
        self.hour
    }

    pub fn minute(self) -> u8 {
        self.minute
    }

    /// Whole seconds since midnight.
    pub fn seconds_from_midnight(self) -> u32 {
        u32::from(self.hour) * 3600 + u32::from(self.minute) * 60
    }

    pub fn naive(self) -> NaiveTime {
        // Fields are range-checked at construction, so this always succeeds.
        NaiveTime::from_hms_opt(self.hour.into(), self.minute.into(), 0).unwrap_or(NaiveTime::MIN)
    }
}

impl FromStr for LocalTime {
    type Err = LocalTimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for LocalTime {
    type Error = LocalTimeError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<LocalTime> for String {
    fn from(value: LocalTime) -> Self {
        value.to_string()
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// The wall-clock date and time `tz` shows at `t`.
pub fn local_datetime(tz: TimeZone, t: Timestamp) -> NaiveDateTime {
    utc(t).with_timezone(&tz.0).naive_local()
}

/// The date on the wall calendar in `tz` at `t`.
pub fn local_date(tz: TimeZone, t: Timestamp) -> NaiveDate {
    local_datetime(tz, t).date()
}

/// Seconds since local midnight that the wall clock in `tz` shows at `t` (fractions dropped).
pub(crate) fn local_seconds_of_day(tz: TimeZone, t: Timestamp) -> u32 {
    local_datetime(tz, t).time().num_seconds_from_midnight()
}

/// The first instant strictly after `after` at which the wall clock in `tz` shows `at`, with the
/// DST rules of the module: a skipped time maps to the end of the gap, a repeated one to its earlier
/// instant (so this comes round once per local date).
///
/// Never panics. Inputs before year 1 are treated as year 1; for inputs after year 9999 (only
/// corrupt data gets there) the result is a day later, saturating at `Timestamp(i64::MAX)`.
pub fn next_local_time(tz: TimeZone, after: Timestamp, at: LocalTime) -> Timestamp {
    next_occurrence(tz, after, at, Repeated::EarlierOnly)
}

/// The first instant of the next local date after `t` (its midnight, or the end of a DST gap
/// that swallowed midnight).
pub fn start_of_next_local_day(tz: TimeZone, t: Timestamp) -> Timestamp {
    next_local_time(tz, t, LocalTime::MIDNIGHT)
}

/// Like [`next_local_time`], but a time shown twice counts twice: the answer to "when does the
/// wall clock next show `at`", as when quiet hours end while the clocks fall back.
pub(crate) fn next_wall_clock(tz: TimeZone, after: Timestamp, at: LocalTime) -> Timestamp {
    next_occurrence(tz, after, at, Repeated::Both)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeated {
    EarlierOnly,
    Both,
}

fn next_occurrence(tz: TimeZone, after: Timestamp, at: LocalTime, repeated: Repeated) -> Timestamp {
    if after.0 > MAX_MS {
        return after.plus_millis(DAY_MS);
    }
    // Start a day early: the gap of the previous date can end after `after` (Samoa skipped a whole
    // date). Five dates always reach an occurrence: no zone skips more than one.
    let first = local_date(tz, after).pred_opt().unwrap_or(NaiveDate::MIN);
    for date in first.iter_days().take(5) {
        let wall = date.and_time(at.naive());
        let (earlier, later) = match tz.0.from_local_datetime(&wall) {
            LocalResult::Single(t) => (Some(t), None),
            LocalResult::Ambiguous(a, b) => (Some(a), (repeated == Repeated::Both).then_some(b)),
            LocalResult::None => (gap_end(tz, &wall), None),
        };
        for instant in [earlier, later].into_iter().flatten() {
            let ms = instant.timestamp_millis();
            if ms > after.0 {
                return Timestamp(ms);
            }
        }
    }
    // Not reached with the tz database (every date has an occurrence); kept so this never panics.
    after.plus_millis(DAY_MS)
}

/// The first instant after the gap that swallows the local time `wall`.
fn gap_end(tz: TimeZone, wall: &NaiveDateTime) -> Option<DateTime<Tz>> {
    GapInfo::new(wall, &tz.0)?.end
}

fn utc(t: Timestamp) -> DateTime<Utc> {
    // Clamped to a range chrono represents, so `from_timestamp_millis` always succeeds.
    DateTime::from_timestamp_millis(t.0.clamp(MIN_MS, MAX_MS)).unwrap_or_default()
}
