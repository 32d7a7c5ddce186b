use chrono::DateTime;

use super::*;

fn zone(name: &str) -> TimeZone {
    TimeZone::parse(name).unwrap()
}

fn utc(rfc3339: &str) -> Timestamp {
    Timestamp(DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis())
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn quiet(start: &str, end: &str) -> QuietHours {
    QuietHours::new(start.parse().unwrap(), end.parse().unwrap()).unwrap()
}

fn policy_with_quiet(quiet_hours: Option<QuietHours>) -> NudgePolicy {
    NudgePolicy { quiet_hours, ..NudgePolicy::default() }
}

fn audience(tz: &str) -> Audience {
    Audience { timezone: zone(tz), ..Audience::default() }
}

/// `decide` for a nudge that is due right now.
fn decide_now(policy: &NudgePolicy, audience: &Audience, now: Timestamp) -> Decision {
    decide(policy, audience, now, now)
}

fn defer(until: &str, reason: DeferReason) -> Decision {
    Decision::Defer { until: utc(until), reason }
}

fn skip(reason: SkipReason) -> Decision {
    Decision::Skip { reason }
}

/// A daily cap counter: nudges sent on a local date.
type SentOn = Option<(NaiveDate, u32)>;

const NOON_IN_BERLIN: &str = "2024-06-01T10:00:00Z";

#[test]
fn a_user_who_opted_out_gets_no_nudge() {
    let who = Audience { opted_out: true, ..audience("Europe/Berlin") };
    assert_eq!(decide_now(&NudgePolicy::default(), &who, utc(NOON_IN_BERLIN)), skip(SkipReason::OptedOut));
}

#[test]
fn an_unreachable_user_gets_no_nudge() {
    let who = Audience { unreachable: true, ..audience("Europe/Berlin") };
    assert_eq!(decide_now(&NudgePolicy::default(), &who, utc(NOON_IN_BERLIN)), skip(SkipReason::Unreachable));
}

#[test]
fn a_nudge_overdue_by_more_than_stale_after_is_dropped_not_sent() {
    let policy = NudgePolicy::default(); // stale after one day
    let now = utc(NOON_IN_BERLIN);
    let cases: &[(i64, Decision)] = &[
        (0, Decision::Send),
        (-60_000, Decision::Send), // handed over a minute early: judged as of now
        (60_000, Decision::Send),
        (DAY_MS, Decision::Send),
        (DAY_MS + 1, skip(SkipReason::Stale)),
        (30 * DAY_MS, skip(SkipReason::Stale)),
    ];
    for (late_by, expected) in cases {
        let due_at = Timestamp(now.0 - late_by);
        assert_eq!(decide(&policy, &audience("Europe/Berlin"), due_at, now), *expected, "late by {late_by} ms");
    }
}

#[test]
fn a_nudge_in_quiet_hours_moves_to_when_they_end_in_the_users_timezone() {
    let policy = NudgePolicy::default(); // quiet 21:00-08:00
    let cases: &[(&str, &str, &str)] = &[
        // 22:30 in Berlin (UTC+2 in June): 08:00 the next morning.
        ("Europe/Berlin", "2024-06-01T20:30:00Z", "2024-06-02T06:00:00Z"),
        // 03:00 in Berlin: 08:00 the same morning.
        ("Europe/Berlin", "2024-06-02T01:00:00Z", "2024-06-02T06:00:00Z"),
        // 22:00 in New York (UTC-4) is already the next day in UTC.
        ("America/New_York", "2024-06-02T02:00:00Z", "2024-06-02T12:00:00Z"),
        // 22:00 in Tokyo (UTC+9).
        ("Asia/Tokyo", "2024-06-01T13:00:00Z", "2024-06-01T23:00:00Z"),
        ("UTC", "2024-06-01T07:59:59.999Z", "2024-06-01T08:00:00Z"),
    ];
    for (tz, now, until) in cases {
        assert_eq!(decide_now(&policy, &audience(tz), utc(now)), defer(until, DeferReason::QuietHours), "{tz} {now}");
    }
}

#[test]
fn quiet_hours_that_wrap_midnight_cover_both_sides_of_it() {
    let policy = policy_with_quiet(Some(quiet("21:00", "08:00")));
    let cases: &[(&str, Decision)] = &[
        ("2024-06-01T20:59:59Z", Decision::Send),
        ("2024-06-01T21:00:00Z", defer("2024-06-02T08:00:00Z", DeferReason::QuietHours)),
        ("2024-06-01T23:59:59Z", defer("2024-06-02T08:00:00Z", DeferReason::QuietHours)),
        ("2024-06-02T00:00:00Z", defer("2024-06-02T08:00:00Z", DeferReason::QuietHours)),
        ("2024-06-02T07:59:00Z", defer("2024-06-02T08:00:00Z", DeferReason::QuietHours)),
        ("2024-06-02T08:00:00Z", Decision::Send),
        ("2024-06-02T12:00:00Z", Decision::Send),
    ];
    for (now, expected) in cases {
        assert_eq!(decide_now(&policy, &audience("UTC"), utc(now)), *expected, "{now}");
    }
}

#[test]
fn quiet_hours_within_one_day_end_the_same_day() {
    let policy = policy_with_quiet(Some(quiet("13:00", "14:00")));
    let cases: &[(&str, Decision)] = &[
        ("2024-06-01T12:59:59Z", Decision::Send),
        ("2024-06-01T13:00:00Z", defer("2024-06-01T14:00:00Z", DeferReason::QuietHours)),
        ("2024-06-01T13:59:59Z", defer("2024-06-01T14:00:00Z", DeferReason::QuietHours)),
        ("2024-06-01T14:00:00Z", Decision::Send),
        ("2024-06-01T23:00:00Z", Decision::Send),
    ];
    for (now, expected) in cases {
        assert_eq!(decide_now(&policy, &audience("UTC"), utc(now)), *expected, "{now}");
    }
}

#[test]
fn quiet_hours_across_a_dst_night_end_at_the_local_time_of_the_new_offset() {
    let policy = NudgePolicy::default();
    let cases: &[(&str, &str, &str)] = &[
        // Berlin springs forward in the night to 31 March: 23:00 CET to 08:00 CEST is 8 hours.
        ("Europe/Berlin", "2024-03-30T22:00:00Z", "2024-03-31T06:00:00Z"),
        // And falls back in the night to 27 October: 23:00 CEST to 08:00 CET is 10 hours.
        ("Europe/Berlin", "2024-10-26T21:00:00Z", "2024-10-27T07:00:00Z"),
        // New York springs forward on 10 March and falls back on 3 November.
        ("America/New_York", "2024-03-10T04:00:00Z", "2024-03-10T12:00:00Z"),
        ("America/New_York", "2024-11-03T03:00:00Z", "2024-11-03T13:00:00Z"),
    ];
    for (tz, now, until) in cases {
        assert_eq!(decide_now(&policy, &audience(tz), utc(now)), defer(until, DeferReason::QuietHours), "{tz} {now}");
    }
}

#[test]
fn quiet_hours_ending_in_the_spring_forward_gap_end_when_the_clocks_jump() {
    let cases: &[(&str, &str, &str)] = &[
        // 00:30 CET on 31 March, quiet until 02:30, which Berlin skips: 03:00 CEST.
        ("Europe/Berlin", "2024-03-30T23:30:00Z", "2024-03-31T01:00:00Z"),
        // 01:00 EST on 10 March, quiet until 02:30, which New York skips: 03:00 EDT.
        ("America/New_York", "2024-03-10T06:00:00Z", "2024-03-10T07:00:00Z"),
    ];
    let policy = policy_with_quiet(Some(quiet("21:00", "02:30")));
    for (tz, now, until) in cases {
        assert_eq!(decide_now(&policy, &audience(tz), utc(now)), defer(until, DeferReason::QuietHours), "{tz} {now}");
    }
    // And at 03:00 the wall clock is past the end: the nudge goes.
    assert_eq!(decide_now(&policy, &audience("Europe/Berlin"), utc("2024-03-31T01:00:00Z")), Decision::Send);
}

#[test]
fn quiet_hours_ending_in_the_repeated_hour_end_on_each_pass_through_it() {
    let cases: &[(&str, &str, &str, Decision)] = &[
        // New York repeats 01:00-02:00 on 3 November; quiet until 01:30.
        ("America/New_York", "01:30", "2024-11-03T05:10:00Z", defer("2024-11-03T05:30:00Z", DeferReason::QuietHours)),
        ("America/New_York", "01:30", "2024-11-03T05:45:00Z", Decision::Send),
        ("America/New_York", "01:30", "2024-11-03T06:10:00Z", defer("2024-11-03T06:30:00Z", DeferReason::QuietHours)),
        ("America/New_York", "01:30", "2024-11-03T06:30:00Z", Decision::Send),
        // Berlin repeats 02:00-03:00 on 27 October; quiet until 02:30.
        ("Europe/Berlin", "02:30", "2024-10-27T00:10:00Z", defer("2024-10-27T00:30:00Z", DeferReason::QuietHours)),
        ("Europe/Berlin", "02:30", "2024-10-27T01:10:00Z", defer("2024-10-27T01:30:00Z", DeferReason::QuietHours)),
    ];
    for (tz, end, now, expected) in cases {
        let policy = policy_with_quiet(Some(quiet("21:00", end)));
        assert_eq!(decide_now(&policy, &audience(tz), utc(now)), *expected, "{tz} {now}");
    }
}

#[test]
fn the_daily_cap_defers_to_when_quiet_hours_end_the_next_local_day() {
    let who = Audience { sent_on: Some((date(2024, 6, 1), 2)), ..audience("Europe/Berlin") };
    let cases: &[(Option<QuietHours>, &str)] = &[
        (Some(quiet("21:00", "08:00")), "2024-06-02T06:00:00Z"),
        (Some(quiet("23:00", "06:30")), "2024-06-02T04:30:00Z"),
        (Some(quiet("00:00", "07:00")), "2024-06-02T05:00:00Z"),
        // Quiet hours that do not cover midnight, or none: local midnight.
        (Some(quiet("13:00", "14:00")), "2024-06-01T22:00:00Z"),
        (None, "2024-06-01T22:00:00Z"),
    ];
    for (quiet_hours, until) in cases {
        let policy = policy_with_quiet(*quiet_hours);
        assert_eq!(
            decide_now(&policy, &who, utc(NOON_IN_BERLIN)),
            defer(until, DeferReason::DailyCap),
            "{quiet_hours:?}"
        );
    }
}

#[test]
fn the_daily_cap_counts_per_local_date_and_rolls_over_at_local_midnight() {
    let policy = policy_with_quiet(None); // cap 2
    let ny = |sent_on| Audience { sent_on, ..audience("America/New_York") };
    let cases: &[(SentOn, &str, Decision)] = &[
        // 23:30 on 1 June in New York, already 2 June in UTC: the cap of 1 June holds until local midnight.
        (Some((date(2024, 6, 1), 2)), "2024-06-02T03:30:00Z", defer("2024-06-02T04:00:00Z", DeferReason::DailyCap)),
        (Some((date(2024, 6, 1), 2)), "2024-06-02T04:00:00Z", Decision::Send),
        (Some((date(2024, 6, 1), 1)), "2024-06-02T03:30:00Z", Decision::Send),
        (Some((date(2024, 5, 31), 9)), "2024-06-01T16:00:00Z", Decision::Send),
        (None, "2024-06-01T16:00:00Z", Decision::Send),
        // A count for a date still ahead (the user moved west) does not hold today.
        (Some((date(2024, 6, 2), 2)), "2024-06-01T16:00:00Z", Decision::Send),
    ];
    for (sent_on, now, expected) in cases {
        assert_eq!(decide_now(&policy, &ny(*sent_on), utc(now)), *expected, "{sent_on:?} {now}");
    }
}

#[test]
fn the_daily_cap_over_a_dst_night_defers_to_the_morning_in_the_new_offset() {
    let berlin = Audience { sent_on: Some((date(2024, 3, 30), 2)), ..audience("Europe/Berlin") };
    let policy = NudgePolicy::default();
    assert_eq!(
        decide_now(&policy, &berlin, utc("2024-03-30T12:00:00Z")),
        defer("2024-03-31T06:00:00Z", DeferReason::DailyCap)
    );
    let policy = policy_with_quiet(None);
    assert_eq!(
        decide_now(&policy, &berlin, utc("2024-03-30T12:00:00Z")),
        defer("2024-03-30T23:00:00Z", DeferReason::DailyCap)
    );
}

#[test]
fn a_daily_cap_of_zero_turns_nudges_off() {
    let policy = NudgePolicy { daily_cap: 0, ..NudgePolicy::default() };
    assert_eq!(decide_now(&policy, &audience("UTC"), utc(NOON_IN_BERLIN)), skip(SkipReason::DailyCapZero));
}

#[test]
fn a_closed_channel_window_skips_the_nudge_for_the_channel_to_send_a_template() {
    let now = utc(NOON_IN_BERLIN);
    let cases: &[(Option<ChannelWindow>, Decision)] = &[
        (None, Decision::Send),
        (Some(ChannelWindow { open_until: None }), skip(SkipReason::WindowClosed)),
        (Some(ChannelWindow { open_until: Some(now.plus_millis(1)) }), Decision::Send),
        (Some(ChannelWindow { open_until: Some(now) }), skip(SkipReason::WindowClosed)),
        (Some(ChannelWindow { open_until: Some(now.plus_millis(-DAY_MS)) }), skip(SkipReason::WindowClosed)),
    ];
    for (window, expected) in cases {
        let who = Audience { window: *window, ..audience("Europe/Berlin") };
        assert_eq!(decide_now(&NudgePolicy::default(), &who, now), *expected, "{window:?}");
    }
}

#[test]
fn the_first_rule_that_applies_decides() {
    let night = utc("2024-06-01T23:00:00Z"); // 01:00 in Berlin: quiet hours
    let capped = Some((date(2024, 6, 2), 2));
    let closed = Some(ChannelWindow { open_until: None });
    let everything =
        Audience { opted_out: true, unreachable: true, sent_on: capped, window: closed, ..audience("Europe/Berlin") };
    let stale_due = Timestamp(night.0 - 2 * DAY_MS);
    let cases: &[(Audience, Timestamp, Decision)] = &[
        (everything.clone(), stale_due, skip(SkipReason::OptedOut)),
        (Audience { opted_out: false, ..everything.clone() }, stale_due, skip(SkipReason::Unreachable)),
        (Audience { opted_out: false, unreachable: false, ..everything.clone() }, stale_due, skip(SkipReason::Stale)),
        (
            Audience { opted_out: false, unreachable: false, ..everything.clone() },
            night,
            defer("2024-06-02T06:00:00Z", DeferReason::QuietHours),
        ),
    ];
    for (who, due_at, expected) in cases {
        assert_eq!(decide(&NudgePolicy::default(), who, *due_at, night), *expected, "{who:?}");
    }
    // Past quiet hours the cap comes before the window.
    let morning = utc("2024-06-02T07:00:00Z");
    let capped_and_closed = Audience { sent_on: capped, window: closed, ..audience("Europe/Berlin") };
    assert_eq!(
        decide_now(&NudgePolicy::default(), &capped_and_closed, morning),
        defer("2024-06-03T06:00:00Z", DeferReason::DailyCap)
    );
    // A zero cap beats quiet hours: no point deferring what will never go.
    let off = NudgePolicy { daily_cap: 0, ..NudgePolicy::default() };
    assert_eq!(decide_now(&off, &audience("Europe/Berlin"), night), skip(SkipReason::DailyCapZero));
}

#[test]
fn a_sent_nudge_counts_on_the_users_local_date() {
    let ny = zone("America/New_York");
    let late_evening = utc("2024-06-02T03:30:00Z"); // 23:30 on 1 June in New York
    let cases: &[(SentOn, (NaiveDate, u32))] = &[
        (None, (date(2024, 6, 1), 1)),
        (Some((date(2024, 6, 1), 1)), (date(2024, 6, 1), 2)),
        (Some((date(2024, 5, 31), 2)), (date(2024, 6, 1), 1)),
        (Some((date(2024, 6, 2), 2)), (date(2024, 6, 1), 1)),
        (Some((date(2024, 6, 1), u32::MAX)), (date(2024, 6, 1), u32::MAX)),
    ];
    for (before, after) in cases {
        assert_eq!(record_sent(*before, ny, late_evening), *after, "{before:?}");
    }
    assert_eq!(sent_today(Some((date(2024, 6, 1), 2)), ny, late_evening), 2);
    assert_eq!(sent_today(Some((date(2024, 6, 1), 2)), TimeZone::UTC, late_evening), 0);
}

#[test]
fn reasons_have_stable_snake_case_names() {
    let defer: &[(DeferReason, &str)] =
        &[(DeferReason::QuietHours, "quiet_hours"), (DeferReason::DailyCap, "daily_cap")];
    for (reason, name) in defer {
        assert_eq!(reason.as_str(), *name);
        assert_eq!(reason.to_string(), *name);
    }
    let skip: &[(SkipReason, &str)] = &[
        (SkipReason::OptedOut, "opted_out"),
        (SkipReason::Unreachable, "unreachable"),
        (SkipReason::Stale, "stale"),
        (SkipReason::DailyCapZero, "daily_cap_zero"),
        (SkipReason::WindowClosed, "window_closed"),
    ];
    for (reason, name) in skip {
        assert_eq!(reason.as_str(), *name);
        assert_eq!(reason.to_string(), *name);
    }
}

#[test]
fn an_inactivity_nudge_falls_due_after_the_configured_silence() {
    let policy = NudgePolicy::default();
    assert_eq!(policy.inactivity_due(Timestamp(1_000)), Some(Timestamp(1_000 + 2 * DAY_MS)));
    let off = NudgePolicy { inactivity_after: None, ..policy };
    assert_eq!(off.inactivity_due(Timestamp(1_000)), None);
}

#[test]
fn quiet_hours_must_start_and_end_at_different_times() {
    let eight = "08:00".parse().unwrap();
    assert_eq!(QuietHours::new(eight, eight), Err(QuietHoursError::Empty(eight)));
    assert_eq!(QuietHours::DEFAULT, quiet("21:00", "08:00"));
}

#[test]
fn a_policy_reads_from_config_with_defaults_for_what_is_left_out() {
    let yaml = |text: &str| serde_saphyr::from_str::<NudgePolicy>(text);
    assert_eq!(yaml("{}").unwrap(), NudgePolicy::default());
    assert_eq!(serde_json::from_str::<NudgePolicy>("{}").unwrap(), NudgePolicy::default());

    // Times may go unquoted in YAML.
    let full = "quiet_hours: { start: 22:00, end: 7:30 }\ndaily_cap: 1\ninactivity_after: 3d\nstale_after: 12h\n";
    assert_eq!(
        yaml(full).unwrap(),
        NudgePolicy {
            quiet_hours: Some(quiet("22:00", "07:30")),
            daily_cap: 1,
            inactivity_after: Some(DurationSpec::from_millis(3 * DAY_MS)),
            stale_after: DurationSpec::from_millis(DAY_MS / 2),
        }
    );

    // "off" turns an optional setting off; YAML's null and false do too.
    for text in ["quiet_hours: \"off\"", "quiet_hours: off", "quiet_hours: null", "quiet_hours: false"] {
        assert_eq!(yaml(text).unwrap().quiet_hours, None, "{text}");
    }
    for text in
        [r#"{"quiet_hours": "off", "inactivity_after": "off"}"#, r#"{"quiet_hours": null, "inactivity_after": null}"#]
    {
        let policy: NudgePolicy = serde_json::from_str(text).unwrap();
        assert_eq!((policy.quiet_hours, policy.inactivity_after), (None, None), "{text}");
    }
}

#[test]
fn a_policy_with_a_mistake_is_refused_with_the_reason() {
    let cases: &[(&str, &str)] = &[
        (r#"{"quiet_hourz": "off"}"#, "quiet_hourz"),
        (r#"{"quiet_hours": {"start": "25:00", "end": "08:00"}}"#, "25:00"),
        (r#"{"quiet_hours": {"start": "08:00", "end": "08:00"}}"#, "start and end at 08:00"),
        (r#"{"quiet_hours": {"start": "21:00"}}"#, "end"),
        (r#"{"quiet_hours": {"start": "21:00", "end": "08:00", "days": 5}}"#, "days"),
        (r#"{"quiet_hours": "sometimes"}"#, "sometimes"),
        (r#"{"quiet_hours": true}"#, "true"),
        (r#"{"inactivity_after": "2 days"}"#, "2 days"),
        (r#"{"stale_after": "off"}"#, "off"),
        (r#"{"daily_cap": -1}"#, "-1"),
    ];
    for (text, mentions) in cases {
        let error = serde_json::from_str::<NudgePolicy>(text).unwrap_err().to_string();
        assert!(error.contains(mentions), "{text}: {error}");
    }
    let error = serde_saphyr::from_str::<NudgePolicy>("quiet_hours: { start: \"21:00\", end: \"8\" }").unwrap_err();
    assert!(error.to_string().contains("HH:MM"), "{error}");
}

#[test]
fn a_policy_writes_back_to_the_same_config() {
    let policies = [
        NudgePolicy::default(),
        NudgePolicy { quiet_hours: None, inactivity_after: None, daily_cap: 0, ..NudgePolicy::default() },
    ];
    for policy in policies {
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(serde_json::from_str::<NudgePolicy>(&json).unwrap(), policy, "{json}");
    }
    assert_eq!(
        serde_json::to_string(&NudgePolicy::default()).unwrap(),
        r#"{"quiet_hours":{"start":"21:00","end":"08:00"},"daily_cap":2,"inactivity_after":"2d","stale_after":"1d"}"#
    );
}
