use chrono::{Duration, NaiveDate};
use proptest::prelude::*;

use super::*;

fn zone(name: &str) -> TimeZone {
    TimeZone::parse(name).unwrap()
}

fn utc_ts(rfc3339: &str) -> Timestamp {
    Timestamp(DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis())
}

fn hm(raw: &str) -> LocalTime {
    raw.parse().unwrap()
}

#[test]
fn time_zones_are_iana_names_and_an_unknown_one_is_named_in_the_error() {
    assert_eq!(zone("Europe/Berlin").name(), "Europe/Berlin");
    assert_eq!(zone("america/new_york").name(), "America/New_York");
    assert_eq!(zone("UTC"), TimeZone::UTC);
    assert_eq!(TimeZone::default(), TimeZone::UTC);
    let error = TimeZone::parse("Mars/Olympus_Mons").unwrap_err();
    assert_eq!(error.name, "Mars/Olympus_Mons");
    assert!(error.to_string().contains("\"Mars/Olympus_Mons\""), "{error}");
    assert_eq!(TimeZone::parse(&"x".repeat(1000)).unwrap_err().name.len(), 64);
    assert!(TimeZone::parse("").is_err());
}

#[test]
fn a_time_zone_is_its_name_in_serialised_form() {
    let tz: TimeZone = serde_json::from_str("\"Asia/Tokyo\"").unwrap();
    assert_eq!(tz, zone("Asia/Tokyo"));
    assert_eq!(serde_json::to_string(&tz).unwrap(), "\"Asia/Tokyo\"");
    let error = serde_json::from_str::<TimeZone>("\"Nowhere/Atlantis\"").unwrap_err();
    assert!(error.to_string().contains("Nowhere/Atlantis"), "{error}");
}

#[test]
fn times_of_day_read_as_hh_mm() {
    let cases: &[(&str, Option<(u8, u8)>)] = &[
        ("08:00", Some((8, 0))),
        ("8:00", Some((8, 0))),
        ("00:00", Some((0, 0))),
        ("23:59", Some((23, 59))),
        ("21:30", Some((21, 30))),
        ("24:00", None),
        ("12:60", None),
        ("12", None),
        ("12:5", None),
        ("012:00", None),
        ("ab:cd", None),
        ("12:00:00", None),
        (" 12:00", None),
        ("-1:00", None),
        ("+1:00", None),
        ("", None),
    ];
    for (raw, expected) in cases {
        let parsed = raw.parse::<LocalTime>().ok().map(|t| (t.hour(), t.minute()));
        assert_eq!(parsed, *expected, "{raw:?}");
    }
    assert_eq!(hm("7:05").to_string(), "07:05");
    assert!(matches!("24:00".parse::<LocalTime>(), Err(LocalTimeError::OutOfRange(raw)) if raw == "24:00"));
    assert!(matches!("noon".parse::<LocalTime>(), Err(LocalTimeError::Format(raw)) if raw == "noon"));
}

#[test]
fn a_time_of_day_is_hh_mm_in_serialised_form() {
    let t: LocalTime = serde_json::from_str("\"21:00\"").unwrap();
    assert_eq!(t, hm("21:00"));
    assert_eq!(serde_json::to_string(&hm("8:00")).unwrap(), "\"08:00\"");
    assert!(serde_json::from_str::<LocalTime>("\"25:00\"").is_err());
}

#[test]
fn the_next_local_time_follows_the_users_wall_clock_across_dst() {
    // (zone, after, wall-clock time, expected instant)
    let cases: &[(&str, &str, &str, &str)] = &[
        // An ordinary summer day in Berlin (UTC+2): later today, tomorrow, and strictly after.
        ("Europe/Berlin", "2024-06-01T04:00:00Z", "08:00", "2024-06-01T06:00:00Z"),
        ("Europe/Berlin", "2024-06-01T10:00:00Z", "08:00", "2024-06-02T06:00:00Z"),
        ("Europe/Berlin", "2024-06-01T06:00:00Z", "08:00", "2024-06-02T06:00:00Z"),
        ("Europe/Berlin", "2024-06-01T05:59:59.999Z", "08:00", "2024-06-01T06:00:00Z"),
        // Spring forward (02:00 -> 03:00 on 31 March): 02:30 does not exist, it becomes 03:00.
        ("Europe/Berlin", "2024-03-30T23:00:00Z", "02:30", "2024-03-31T01:00:00Z"),
        ("Europe/Berlin", "2024-03-30T23:00:00Z", "08:00", "2024-03-31T06:00:00Z"),
        ("Europe/Berlin", "2024-03-31T01:00:00Z", "02:30", "2024-04-01T00:30:00Z"),
        // Fall back (03:00 -> 02:00 on 27 October): 02:30 happens twice; the first counts, once.
        ("Europe/Berlin", "2024-10-26T22:00:00Z", "02:30", "2024-10-27T00:30:00Z"),
        ("Europe/Berlin", "2024-10-27T00:30:00Z", "02:30", "2024-10-28T01:30:00Z"),
        ("Europe/Berlin", "2024-10-27T01:00:00Z", "02:30", "2024-10-28T01:30:00Z"),
        ("Europe/Berlin", "2024-10-26T22:00:00Z", "08:00", "2024-10-27T07:00:00Z"),
        // New York: spring forward 10 March (02:00 -> 03:00), fall back 3 November (02:00 -> 01:00).
        ("America/New_York", "2024-03-10T05:00:00Z", "02:30", "2024-03-10T07:00:00Z"),
        ("America/New_York", "2024-03-10T05:00:00Z", "08:00", "2024-03-10T12:00:00Z"),
        ("America/New_York", "2024-11-03T04:00:00Z", "01:30", "2024-11-03T05:30:00Z"),
        ("America/New_York", "2024-11-03T06:00:00Z", "01:30", "2024-11-04T06:30:00Z"),
        ("America/New_York", "2024-11-03T04:00:00Z", "08:00", "2024-11-03T13:00:00Z"),
        // Lord Howe Island moves its clocks by half an hour (02:00 -> 02:30 on 6 October 2024).
        ("Australia/Lord_Howe", "2024-10-05T13:00:00Z", "02:15", "2024-10-05T15:30:00Z"),
        // Samoa skipped 30 December 2011 entirely: its 09:00 becomes the first instant of the 31st.
        ("Pacific/Apia", "2011-12-29T22:00:00Z", "09:00", "2011-12-30T10:00:00Z"),
        ("Pacific/Apia", "2011-12-30T10:00:00Z", "09:00", "2011-12-30T19:00:00Z"),
        // Nepal is UTC+05:45.
        ("Asia/Kathmandu", "2024-01-01T00:00:00Z", "08:00", "2024-01-01T02:15:00Z"),
        ("UTC", "2024-02-28T23:59:00Z", "00:00", "2024-02-29T00:00:00Z"),
    ];
    for (tz, after, at, expected) in cases {
        assert_eq!(
            next_local_time(zone(tz), utc_ts(after), hm(at)),
            utc_ts(expected),
            "{tz}: after {after}, next {at}"
        );
    }
}

#[test]
fn the_next_wall_clock_counts_a_repeated_hour_twice() {
    let ny = zone("America/New_York");
    // Between the two 01:30s of 3 November: the second one comes next.
    assert_eq!(next_wall_clock(ny, utc_ts("2024-11-03T06:00:00Z"), hm("01:30")), utc_ts("2024-11-03T06:30:00Z"));
    assert_eq!(next_wall_clock(ny, utc_ts("2024-11-03T04:00:00Z"), hm("01:30")), utc_ts("2024-11-03T05:30:00Z"));
    assert_eq!(next_wall_clock(ny, utc_ts("2024-03-10T05:00:00Z"), hm("02:30")), utc_ts("2024-03-10T07:00:00Z"));
}

#[test]
fn the_local_date_is_the_users_calendar_day() {
    let cases: &[(&str, &str, (i32, u32, u32))] = &[
        ("Europe/Berlin", "2024-06-01T21:59:59Z", (2024, 6, 1)),
        ("Europe/Berlin", "2024-06-01T22:00:00Z", (2024, 6, 2)),
        ("America/New_York", "2024-06-02T03:00:00Z", (2024, 6, 1)),
        ("Asia/Tokyo", "2024-06-01T15:00:00Z", (2024, 6, 2)),
        ("UTC", "2024-06-01T23:59:59Z", (2024, 6, 1)),
    ];
    for (tz, t, (y, m, d)) in cases {
        assert_eq!(local_date(zone(tz), utc_ts(t)), NaiveDate::from_ymd_opt(*y, *m, *d).unwrap(), "{tz} {t}");
    }
}

#[test]
fn the_next_local_day_starts_at_local_midnight_or_where_a_gap_swallowed_it() {
    let berlin = zone("Europe/Berlin");
    assert_eq!(start_of_next_local_day(berlin, utc_ts("2024-06-01T12:00:00Z")), utc_ts("2024-06-01T22:00:00Z"));
    assert_eq!(start_of_next_local_day(berlin, utc_ts("2024-06-01T22:00:00Z")), utc_ts("2024-06-02T22:00:00Z"));
    // Santiago de Chile springs forward at midnight: 8 September 2024 began at 01:00 (UTC-3).
    let santiago = zone("America/Santiago");
    assert_eq!(start_of_next_local_day(santiago, utc_ts("2024-09-07T12:00:00Z")), utc_ts("2024-09-08T04:00:00Z"));
}

#[test]
fn absurd_instants_do_not_panic_and_still_move_forward() {
    let zones = [TimeZone::UTC, zone("Europe/Berlin"), zone("Pacific/Kiritimati"), zone("America/Adak")];
    let instants = [i64::MIN, i64::MIN + 1, MIN_MS - 1, MIN_MS, -1, 0, 1, MAX_MS - 1, MAX_MS, MAX_MS + 1, i64::MAX - 1];
    for tz in zones {
        for ms in instants {
            let t = Timestamp(ms);
            for at in [hm("00:00"), hm("12:34"), hm("23:59")] {
                assert!(next_local_time(tz, t, at) > t, "{tz} {ms} {at}");
                assert!(next_wall_clock(tz, t, at) > t, "{tz} {ms} {at}");
            }
            let _ = local_date(tz, t);
            assert!(start_of_next_local_day(tz, t) > t, "{tz} {ms}");
        }
        assert_eq!(next_local_time(tz, Timestamp(i64::MAX), hm("08:00")), Timestamp(i64::MAX));
    }
}

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Santiago",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "America/Sao_Paulo",
    "Asia/Tehran",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Checked against a brute-force walk over every minute between `after` and the answer.
    #[test]
    fn the_next_local_time_is_the_first_matching_minute_after(
        zone_index in 0..ZONES.len(),
        // 1971 to 2037: zones with whole-minute offsets, so a walk by minutes sees every match.
        after in 31_536_000_000i64..2_145_916_800_000,
        hour in 0u8..24,
        minute in 0u8..60,
    ) {
        let tz = zone(ZONES[zone_index]);
        let at = LocalTime::new(hour, minute).unwrap();
        let after = Timestamp(after);
        let next = next_local_time(tz, after, at);
        prop_assert!(next > after);
        prop_assert!(next.millis_since(after) <= 2 * DAY_MS, "{} days", next.millis_since(after) / DAY_MS);

        let shown = local_datetime(tz, next);
        let skipped_that_day =
            |date: NaiveDate| matches!(tz.0.from_local_datetime(&date.and_time(at.naive())), LocalResult::None);
        let is_gap_end = local_datetime(tz, Timestamp(next.0 - 1)) + Duration::milliseconds(1) != shown;
        prop_assert!(
            shown.time() == at.naive() || (is_gap_end && (skipped_that_day(shown.date()) || shown.date().pred_opt().is_some_and(skipped_that_day))),
            "{tz}: {at} mapped to local {shown}"
        );

        let mut minute_ms = (after.0.div_euclid(60_000) + 1) * 60_000;
        while minute_ms < next.0 {
            let wall = local_datetime(tz, Timestamp(minute_ms));
            let first_of_pair = tz.0.from_local_datetime(&wall).earliest().map(|t| t.timestamp_millis()) == Some(minute_ms);
            prop_assert!(
                !(wall.time() == at.naive() && first_of_pair),
                "{tz}: {at} already shown at {minute_ms} before {next:?}"
            );
            minute_ms += 60_000;
        }
    }
}
