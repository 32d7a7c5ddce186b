//! Durations as creators write them in config and program files: `30m`, `2h`, `2d`, `1w`, or a
//! sum such as `1h30m`. Units: `ms`, `s`, `m` (minutes), `h`, `d`, `w`. Read by the nudge policy and
//! the program compiler.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest text read as a duration; anything longer is refused before parsing.
const MAX_LEN: usize = 32;

const UNITS: [(&str, i64); 6] =
    [("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// A length of time in milliseconds, never negative; serialised as text (`"2d"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DurationSpec(i64);

/// Text that is not a duration; tell whoever wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("expected a duration such as \"30m\", \"2h\", \"2d\" or \"1w\", got nothing")]
    Empty,
    #[error("expected a duration such as \"30m\", \"2h\", \"2d\" or \"1w\" (units ms, s, m, h, d, w), got {0:?}")]
    Format(String),
    #[error("duration {0:?} is too long")]
    TooLong(String),
}

impl DurationSpec {
    pub const ZERO: Self = Self(0);

    /// A duration of `ms` milliseconds; a negative value becomes zero.
    pub const fn from_millis(ms: i64) -> Self {
        Self(if ms < 0 { 0 } else { ms })
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    pub fn parse(raw: &str) -> Result<Self, DurationError> {
        if raw.is_empty() {
            return Err(DurationError::Empty);
        }
        let format_error = || DurationError::Format(raw.chars().take(MAX_LEN).collect());
        if raw.len() > MAX_LEN {
            return Err(format_error());
        }
        let mut rest = raw;
        let mut total: i64 = 0;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            let letters = rest[digits..].bytes().take_while(u8::is_ascii_alphabetic).count();
            if digits == 0 || letters == 0 {
                return Err(format_error());
            }
            let (number, unit) = (&rest[..digits], &rest[digits..digits + letters]);
            let scale = UNITS.iter().find(|(name, _)| *name == unit).map(|(_, ms)| *ms).ok_or_else(format_error)?;
            let too_long = || DurationError::TooLong(raw.to_owned());
            let n: i64 = number.parse().map_err(|_| too_long())?;
            total = n.checked_mul(scale).and_then(|ms| total.checked_add(ms)).ok_or_else(too_long)?;
            rest = &rest[digits + letters..];
        }
        Ok(Self(total))
    }
}

impl FromStr for DurationSpec {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for DurationSpec {
    type Error = DurationError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DurationSpec> for String {
    fn from(value: DurationSpec) -> Self {
        value.to_string()
    }
}

/// The largest unit that divides the duration exactly, so `Display` and `parse` round-trip.
impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let (unit, scale) = UNITS.iter().find(|(_, ms)| self.0 % ms == 0).copied().unwrap_or(("ms", 1));
        write!(f, "{}{unit}", self.0 / scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_creators_write_them() {
        let cases: &[(&str, i64)] = &[
            ("30m", 30 * 60_000),
            ("2h", 2 * 3_600_000),
            ("2d", 2 * 86_400_000),
            ("1w", 604_800_000),
            ("1h30m", 90 * 60_000),
            ("45s", 45_000),
            ("500ms", 500),
            ("0m", 0),
            ("1d12h", 36 * 3_600_000),
        ];
        for (raw, ms) in cases {
            assert_eq!(raw.parse::<DurationSpec>().map(DurationSpec::millis), Ok(*ms), "{raw}");
        }
    }

    #[test]
    fn text_that_is_not_a_duration_is_refused_with_what_was_written() {
        let cases: &[(&str, DurationError)] = &[
            ("", DurationError::Empty),
            ("2", DurationError::Format("2".into())),
            ("d", DurationError::Format("d".into())),
            ("-1d", DurationError::Format("-1d".into())),
            ("2x", DurationError::Format("2x".into())),
            ("1.5h", DurationError::Format("1.5h".into())),
            (" 2d", DurationError::Format(" 2d".into())),
            ("2 d", DurationError::Format("2 d".into())),
            ("2D", DurationError::Format("2D".into())),
            ("99999999999999999w", DurationError::TooLong("99999999999999999w".into())),
            ("99999999999999999999999", DurationError::Format("99999999999999999999999".into())),
        ];
        for (raw, error) in cases {
            assert_eq!(raw.parse::<DurationSpec>().as_ref(), Err(error), "{raw:?}");
        }
        let long = "1".repeat(100) + "d";
        assert!(matches!(long.parse::<DurationSpec>(), Err(DurationError::Format(shown)) if shown.len() == MAX_LEN));
    }

    #[test]
    fn a_duration_prints_in_its_largest_exact_unit_and_reads_back() {
        let cases: &[(i64, &str)] =
            &[(0, "0s"), (500, "500ms"), (90 * 60_000, "90m"), (2 * 86_400_000, "2d"), (1_209_600_000, "2w")];
        for (ms, text) in cases {
            let d = DurationSpec::from_millis(*ms);
            assert_eq!(d.to_string(), *text);
            assert_eq!(text.parse::<DurationSpec>(), Ok(d));
        }
    }

    #[test]
    fn a_negative_duration_becomes_zero() {
        assert_eq!(DurationSpec::from_millis(-5), DurationSpec::ZERO);
    }

    #[test]
    fn a_duration_is_text_in_serialised_form() {
        let d: DurationSpec = serde_json::from_str("\"2d\"").unwrap();
        assert_eq!(d.millis(), 172_800_000);
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2d\"");
        assert!(serde_json::from_str::<DurationSpec>("\"2 days\"").is_err());
    }
}
