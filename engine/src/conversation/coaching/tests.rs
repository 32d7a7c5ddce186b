//! The coaching rules of a conversation, driven by hand-set times: opting out, held timers, the
//! daily cap, time zones across a DST change, run-time condition failures, handoff silence,
//! explicit enrolment and staleness after downtime.

use super::*;
use crate::conversation::test_effects::{live, records};
use crate::conversation::{Effect, Event};
use crate::ids::{ClientMsgId, Slug, UserId};
use crate::nudge::{DurationSpec, NudgePolicy};
use crate::persona::Persona;
use crate::ports::{LiveEventKind, Record, StoredProgram};
use crate::twin::{CreatorProfile, NudgeSettings, TwinSnapshot};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-03-07 12:00 UTC, a Saturday; the US moves to daylight time on Sunday 2026-03-08.
const SATURDAY_NOON: Timestamp = Timestamp(1_772_884_800_000);

fn twin_with(program: &str, nudges: NudgeSettings) -> TwinSnapshot {
    let profile = CreatorProfile {
        slug: Slug::parse("demo").unwrap(),
        persona: Persona { name: "Maya".into(), ..Persona::default() },
        replies: Default::default(),
        allowed_origins: vec![],
        default_program: Some(ProgramId::parse("p").unwrap()),
        nudges,
        model: Default::default(),
        channels: Default::default(),
        user_tokens: None,
    };
    let stored = StoredProgram { id: ProgramId::parse("p").unwrap(), version: 1, source: program.to_owned() };
    let (twin, broken) = TwinSnapshot::new(profile, &[], &[stored]);
    assert!(broken.is_empty(), "{broken:?}");
    twin
}

fn any_hour() -> NudgeSettings {
    NudgeSettings { policy: NudgePolicy { quiet_hours: None, ..NudgePolicy::default() }, ..NudgeSettings::default() }
}

fn conversation(twin: &TwinSnapshot) -> Conversation {
    Conversation::new(twin.creator, UserId::parse("u1").unwrap(), SATURDAY_NOON)
}

fn user(id: &str, text: &str) -> Event {
    Event::UserMessage { client_id: ClientMsgId::parse(id).unwrap(), text: text.into(), session: None, channel: None }
}

fn said(effects: &[Effect]) -> Vec<(Origin, String)> {
    records(effects)
        .into_iter()
        .filter_map(|r| match r {
            Record::Message(m) if m.origin != Origin::User => Some((m.origin, m.text)),
            _ => None,
        })
        .collect()
}

fn scheduled(effects: &[Effect]) -> Vec<ScheduledNudge> {
    records(effects)
        .into_iter()
        .filter_map(|r| match r {
            Record::NudgeScheduled(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn starts_reply(effects: &[Effect]) -> bool {
    effects.iter().any(|e| matches!(e, Effect::StartReply(_)))
}

const WAIT_THEN_ASK: &str = r#"
inactivity:
  after: 2h
  text: "Still there?"
steps:
  - id: tz
    question: "Your time zone?"
    expect: timezone
  - id: morning
    wait: "09:00"
  - id: ask
    question: "How did you sleep?"
  - id: bye
    end: "Thanks."
"#;

#[test]
fn a_wait_until_nine_follows_the_users_time_zone_across_the_dst_change() {
    let twin = twin_with(WAIT_THEN_ASK, any_hour());
    let mut c = conversation(&twin);
    assert_eq!(said(&c.step(&twin, user("m1", "hi"), SATURDAY_NOON)), [(Origin::Program, "Your time zone?".into())]);

    // Saturday evening in New York (EST, UTC-5): the next 09:00 is Sunday, after clocks sprang
    // forward at 02:00, so it is 09:00 EDT = 13:00 UTC, not 14:00.
    let evening = SATURDAY_NOON.plus_millis(10 * HOUR); // 22:00 UTC = 17:00 EST
    let effects = c.step(&twin, user("m2", "America/New_York"), evening);
    assert_eq!(c.state().audience.timezone.as_deref(), Some("America/New_York"));
    let wait = scheduled(&effects);
    assert_eq!(wait.len(), 1, "{effects:?}");
    assert_eq!(wait[0].due_at, Timestamp(1_772_974_800_000), "Sunday 2026-03-08 13:00 UTC");

    let effects = c.step(&twin, Event::NudgeDue { id: wait[0].id }, wait[0].due_at);
    assert_eq!(said(&effects), [(Origin::Program, "How did you sleep?".into())]);
    assert!(records(&effects).iter().any(|r| matches!(r, Record::NudgeSettled { outcome: NudgeOutcome::Fired, .. })));
}

#[test]
fn stop_cancels_pending_nudges_start_allows_them_again() {
    let twin = twin_with(WAIT_THEN_ASK, any_hour());
    let mut c = conversation(&twin);
    let effects = c.step(&twin, user("m1", "hi"), SATURDAY_NOON);
    let inactivity = scheduled(&effects);
    assert_eq!(inactivity.len(), 1, "the question arms an inactivity nudge");

    let effects = c.step(&twin, user("m2", "STOP"), SATURDAY_NOON.plus_millis(1_000));
    assert!(c.state().audience.opted_out);
    assert!(said(&effects)[0].1.contains("no more reminders"));
    assert!(!starts_reply(&effects), "STOP is not a question for the twin");
    assert!(records(&effects).iter().any(
        |r| matches!(r, Record::NudgeSettled { id, outcome: NudgeOutcome::Cancelled, .. } if *id == inactivity[0].id)
    ));
    assert!(c.state().nudges.is_empty());

    let effects = c.step(&twin, user("m3", "start"), SATURDAY_NOON.plus_millis(2_000));
    assert!(!c.state().audience.opted_out);
    assert_eq!(said(&effects), [(Origin::Program, "Reminders are back on.".into())], "START is not an answer");
    // Still waiting for the time zone: the program takes the next message as its answer.
    let effects = c.step(&twin, user("m4", "Europe/Berlin"), SATURDAY_NOON.plus_millis(3_000));
    assert_eq!(scheduled(&effects).len(), 1, "the wait until 09:00: {effects:?}");
}

#[test]
fn a_program_timer_due_while_opted_out_is_held_until_the_user_writes() {
    let twin = twin_with(WAIT_THEN_ASK, any_hour());
    let mut c = conversation(&twin);
    c.step(&twin, user("m1", "hi"), SATURDAY_NOON);
    let wait = scheduled(&c.step(&twin, user("m2", "UTC"), SATURDAY_NOON.plus_millis(1_000)));
    let wait = wait.iter().find(|n| n.due_at.millis() % DAY == 9 * HOUR).unwrap().clone();
    c.step(&twin, user("m3", "stop"), SATURDAY_NOON.plus_millis(2_000));

    let effects = c.step(&twin, Event::NudgeDue { id: wait.id }, wait.due_at);
    assert!(said(&effects).is_empty(), "nothing proactive after STOP: {effects:?}");
    assert!(live(&effects).contains(&LiveEventKind::NudgeSkipped { id: wait.id, reason: "opted_out" }));

    // The user writes again: the held timer runs first. The message was written before the
    // question it leads to, so it is not taken as the answer.
    let effects = c.step(&twin, user("m4", "hello again"), wait.due_at.plus_millis(HOUR));
    assert_eq!(said(&effects), [(Origin::Program, "How did you sleep?".into())]);
    let effects = c.step(&twin, user("m5", "slept well"), wait.due_at.plus_millis(2 * HOUR));
    assert_eq!(said(&effects), [(Origin::Program, "Thanks.".into())]);
}

#[test]
fn the_daily_cap_moves_a_nudge_to_the_next_local_day() {
    let settings = NudgeSettings {
        policy: NudgePolicy { quiet_hours: None, daily_cap: 1, ..NudgePolicy::default() },
        ..NudgeSettings::default()
    };
    let program = r#"
steps:
  - id: t1
    task: "First task."
    check_in: 1h
    check_in_text: "First check-in?"
  - id: t2
    task: "Second task."
    check_in: 1h
    check_in_text: "Second check-in?"
"#;
    let twin = twin_with(program, settings);
    let mut c = conversation(&twin);
    let first = scheduled(&c.step(&twin, user("m1", "hi"), SATURDAY_NOON))[0].clone();
    let effects = c.step(&twin, Event::NudgeDue { id: first.id }, first.due_at);
    assert_eq!(said(&effects), [(Origin::Nudge, "First check-in?".into())]);

    let second = scheduled(&c.step(&twin, user("m2", "done"), first.due_at.plus_millis(1_000)))[0].clone();
    let effects = c.step(&twin, Event::NudgeDue { id: second.id }, second.due_at);
    assert!(said(&effects).is_empty(), "one nudge a day: {effects:?}");
    let moved = scheduled(&effects);
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].due_at, Timestamp((SATURDAY_NOON.millis() / DAY + 1) * DAY), "UTC midnight");
    assert!(live(&effects).iter().any(|e| matches!(e, LiveEventKind::NudgeDeferred { reason: "daily_cap", .. })));

    let effects = c.step(&twin, Event::NudgeDue { id: moved[0].id }, moved[0].due_at);
    assert_eq!(said(&effects), [(Origin::Nudge, "Second check-in?".into())]);
}

#[test]
fn a_condition_that_fails_at_run_time_takes_the_else_path_and_is_reported() {
    let program = r#"
steps:
  - id: hours
    question: "Hours of sleep?"
    expect: number
    save_as: hours
    attempts: 1
  - id: route
    branch:
      - if: 'hours < 6'
        goto: short
    else: fine
  - id: short
    end: "Let's work on that."
  - id: fine
    end: "Good."
"#;
    let twin = twin_with(program, any_hour());
    let mut c = conversation(&twin);
    c.step(&twin, user("m1", "hi"), SATURDAY_NOON);
    // Not a number, and only one attempt: the program moves on with `hours` unset.
    let effects = c.step(&twin, user("m2", "lots"), SATURDAY_NOON.plus_millis(1_000));
    assert_eq!(said(&effects), [(Origin::Program, "Good.".into())]);
    let events = live(&effects);
    assert!(events.iter().any(|e| matches!(e, LiveEventKind::AnswerInvalid { gave_up: true, .. })), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, LiveEventKind::ConditionFailed { .. })), "{events:?}");
    assert!(c.state().enrolment.is_none(), "finished");
}

#[test]
fn during_a_handoff_the_twin_is_silent_and_a_reload_does_not_answer_either() {
    let program = r#"
steps:
  - id: human
    handoff: "Maya will answer you herself."
  - id: bye
    end: true
"#;
    let twin = twin_with(program, any_hour());
    let mut c = conversation(&twin);
    let effects = c.step(&twin, user("m1", "hi"), SATURDAY_NOON);
    assert_eq!(said(&effects), [(Origin::Program, "Maya will answer you herself.".into())]);
    let effects = c.step(&twin, user("m2", "hello? anyone?"), SATURDAY_NOON.plus_millis(1_000));
    assert!(!starts_reply(&effects) && said(&effects).is_empty(), "{effects:?}");
    assert!(c.step(&twin, Event::Recovered, SATURDAY_NOON.plus_millis(2_000)).is_empty());
}

#[test]
fn an_explicit_enrolment_starts_a_program_once() {
    let program = "steps:\n  - id: q\n    question: \"Ready?\"\n";
    let twin = twin_with(program, any_hour());
    let mut c = conversation(&twin);
    let enrol = || Event::Enrol { program: ProgramId::parse("p").unwrap() };
    let effects = c.step(&twin, enrol(), SATURDAY_NOON);
    assert_eq!(said(&effects), [(Origin::Program, "Ready?".into())]);
    assert!(live(&effects).iter().any(|e| matches!(e, LiveEventKind::Enrolled { version: 1, .. })));
    let only_answered = |effects: Vec<Effect>| matches!(&effects[..], [Effect::Answer(_)]);
    assert!(only_answered(c.step(&twin, enrol(), SATURDAY_NOON.plus_millis(1))), "already enrolled");
    let unknown = Event::Enrol { program: ProgramId::parse("nope").unwrap() };
    assert!(only_answered(c.step(&twin, unknown, SATURDAY_NOON.plus_millis(2))));
}

#[test]
fn after_downtime_a_stale_inactivity_nudge_is_dropped_but_a_program_timer_fires_late() {
    let settings = NudgeSettings {
        policy: NudgePolicy {
            quiet_hours: None,
            stale_after: DurationSpec::from_millis(HOUR),
            ..NudgePolicy::default()
        },
        ..NudgeSettings::default()
    };
    let twin = twin_with(WAIT_THEN_ASK, settings);
    let mut c = conversation(&twin);
    let inactivity = scheduled(&c.step(&twin, user("m1", "hi"), SATURDAY_NOON))[0].clone();
    // The server was down for a day: the inactivity nudge is a day late, past `stale_after`.
    let effects = c.step(&twin, Event::NudgeDue { id: inactivity.id }, inactivity.due_at.plus_millis(DAY));
    assert!(said(&effects).is_empty());
    assert!(live(&effects).contains(&LiveEventKind::NudgeSkipped { id: inactivity.id, reason: "stale" }));

    let wait = scheduled(&c.step(&twin, user("m2", "UTC"), inactivity.due_at.plus_millis(DAY)))
        .into_iter()
        .find(|n| n.due_at.millis() % DAY == 9 * HOUR)
        .unwrap();
    let effects = c.step(&twin, Event::NudgeDue { id: wait.id }, wait.due_at.plus_millis(3 * DAY));
    assert_eq!(said(&effects), [(Origin::Program, "How did you sleep?".into())], "late, not never");
}

#[test]
fn a_nudge_that_is_no_longer_pending_is_settled_again_and_changes_nothing() {
    let twin = twin_with(WAIT_THEN_ASK, any_hour());
    let mut c = conversation(&twin);
    c.step(&twin, user("m1", "hi"), SATURDAY_NOON);
    let stray = crate::ids::NudgeId::of(c.id(), 999);
    let version = c.version();
    let effects = c.step(&twin, Event::NudgeDue { id: stray }, SATURDAY_NOON.plus_millis(1));
    assert_eq!(
        records(&effects),
        [Record::NudgeSettled { creator: twin.creator, id: stray, outcome: NudgeOutcome::Cancelled }]
    );
    assert_eq!(c.version(), version);
}

#[test]
fn an_abandoned_nudge_is_forgotten_in_the_same_commit_and_its_program_resumes_when_the_user_writes() {
    let twin = twin_with(WAIT_THEN_ASK, any_hour());
    let mut c = conversation(&twin);
    c.step(&twin, user("m1", "hi"), SATURDAY_NOON);
    let wait = scheduled(&c.step(&twin, user("m2", "UTC"), SATURDAY_NOON.plus_millis(1_000)))
        .into_iter()
        .find(|n| n.due_at.millis() % DAY == 9 * HOUR)
        .unwrap();
    let effects = c.step(&twin, Event::NudgeAbandoned { id: wait.id }, wait.due_at);
    let written = records(&effects);
    assert!(matches!(&written[0], Record::Conversation(h) if h.state.nudges.iter().all(|n| n.id != wait.id)));
    assert!(
        written
            .iter()
            .any(|r| matches!(r, Record::NudgeSettled { id, outcome: NudgeOutcome::Skipped, .. } if *id == wait.id))
    );
    let effects = c.step(&twin, user("m3", "morning"), wait.due_at.plus_millis(HOUR));
    assert_eq!(said(&effects), [(Origin::Program, "How did you sleep?".into())]);
}

#[test]
fn a_held_timer_does_not_follow_the_user_into_another_program() {
    let mut twin = twin_with(WAIT_THEN_ASK, any_hour());
    let other = StoredProgram { id: ProgramId::parse("other").unwrap(), version: 1, source: WAIT_THEN_ASK.to_owned() };
    let first = StoredProgram { id: ProgramId::parse("p").unwrap(), version: 1, source: WAIT_THEN_ASK.to_owned() };
    twin.programs = crate::program::ProgramSet::build(&[first, other]).0;
    let mut c = conversation(&twin);
    c.step(&twin, user("m1", "hi"), SATURDAY_NOON);
    let wait = scheduled(&c.step(&twin, user("m2", "UTC"), SATURDAY_NOON.plus_millis(1_000)))
        .into_iter()
        .find(|n| n.due_at.millis() % DAY == 9 * HOUR)
        .unwrap();
    c.step(&twin, user("m3", "stop"), SATURDAY_NOON.plus_millis(2_000));
    c.step(&twin, Event::NudgeDue { id: wait.id }, wait.due_at);
    assert!(c.state().held.is_some());
    // The same step ids and entry numbers in another program: the held timer must not fire there.
    c.step(&twin, Event::Enrol { program: ProgramId::parse("other").unwrap() }, wait.due_at.plus_millis(1));
    assert!(c.state().held.is_none(), "enrolling in another program starts afresh");
}

mod channels {
    use super::*;
    use crate::channel::{
        Arrival, ChannelAddress, ChannelKind, OutboxBody, OutboxEntry, TemplateRef, WhatsAppSettings,
    };

    fn from(kind: ChannelKind, id: &str, text: &str, inbox: i64) -> Event {
        let address = ChannelAddress::new(kind, "4915");
        Event::UserMessage {
            client_id: ClientMsgId::parse(id).unwrap(),
            text: text.into(),
            session: None,
            channel: Some(Arrival { address, inbox: Some(inbox) }),
        }
    }

    fn outbox(effects: &[Effect]) -> Vec<OutboxEntry> {
        records(effects)
            .into_iter()
            .filter_map(|r| match r {
                Record::Outbox(entry) => Some(entry),
                _ => None,
            })
            .collect()
    }

    fn with_template(mut twin: TwinSnapshot) -> TwinSnapshot {
        twin.profile.channels.whatsapp = Some(WhatsAppSettings {
            phone_number_id: "1".into(),
            access_token: crate::channel::SecretRef::new("t"),
            app_secret: crate::channel::SecretRef::new("s"),
            verify_token: crate::channel::SecretRef::new("v"),
            nudge_template: Some(TemplateRef { name: "checkin".into(), language: "en_US".into() }),
        });
        twin
    }

    #[test]
    fn what_the_twin_says_to_a_telegram_user_is_in_the_outbox_of_the_same_commit_and_dispatched_after_it() {
        let twin = twin_with(WAIT_THEN_ASK, any_hour());
        let mut c = conversation(&twin);
        let effects = c.step(&twin, from(ChannelKind::Telegram, "tg:update:1", "hi", 7), SATURDAY_NOON);
        let Effect::Persist(first) = &effects[0] else { panic!("{effects:?}") };
        assert!(first.contains(&Record::InboxDone { creator: twin.creator, id: 7 }), "{first:?}");
        let entries = outbox(&effects);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].address, ChannelAddress::new(ChannelKind::Telegram, "4915"));
        assert_eq!(entries[0].body, OutboxBody::Text { text: "Your time zone?".into(), choices: vec![] });
        assert_eq!(entries[0].seq, crate::ids::Seq(2));
        let dispatch = effects.iter().position(|e| matches!(e, Effect::Dispatch(_))).expect("dispatched");
        assert!(dispatch > 0, "after the commit");

        // The same delivery fed again (a replay after a crash): the row is marked, nothing else.
        let effects = c.step(&twin, from(ChannelKind::Telegram, "tg:update:1", "hi", 7), SATURDAY_NOON);
        assert_eq!(records(&effects), [Record::InboxDone { creator: twin.creator, id: 7 }]);
        assert!(outbox(&effects).is_empty());

        // Back on the web: replies go to the sockets only.
        let effects = c.step(&twin, user("w1", "UTC"), SATURDAY_NOON.plus_millis(HOUR));
        assert!(!said(&effects).is_empty() || !scheduled(&effects).is_empty());
        assert!(outbox(&effects).is_empty(), "{effects:?}");
    }

    #[test]
    fn a_user_who_blocked_every_channel_gets_no_nudges_until_they_write_again() {
        let twin = twin_with(WAIT_THEN_ASK, any_hour());
        let mut c = conversation(&twin);
        let inactivity = scheduled(&c.step(&twin, from(ChannelKind::Telegram, "a", "hi", 1), SATURDAY_NOON))[0].clone();
        let blocked =
            Event::Reachability { address: ChannelAddress::new(ChannelKind::Telegram, "4915"), reachable: false };
        let effects = c.step(&twin, blocked.clone(), SATURDAY_NOON);
        assert!(matches!(&effects[0], Effect::Persist(r) if matches!(r[0], Record::Conversation(_))));
        assert!(c.step(&twin, blocked, SATURDAY_NOON).is_empty(), "no change, nothing written");
        let effects = c.step(&twin, Event::NudgeDue { id: inactivity.id }, inactivity.due_at);
        assert!(live(&effects).contains(&LiveEventKind::NudgeSkipped { id: inactivity.id, reason: "unreachable" }));
        assert!(outbox(&effects).is_empty());
    }

    #[test]
    fn outside_the_whatsapp_window_a_nudge_is_the_creators_template_or_nothing() {
        for template in [false, true] {
            let twin = twin_with(WAIT_THEN_ASK, any_hour());
            let twin = if template { with_template(twin) } else { twin };
            let mut c = conversation(&twin);
            let effects = c.step(&twin, from(ChannelKind::WhatsApp, "a", "hi", 1), SATURDAY_NOON);
            let inactivity = scheduled(&effects)[0].clone();
            // Two hours later the window is open: the nudge is plain text.
            let effects = c.step(&twin, Event::NudgeDue { id: inactivity.id }, inactivity.due_at);
            assert_eq!(said(&effects), [(Origin::Nudge, "Still there?".into())]);
            assert!(matches!(outbox(&effects)[0].body, OutboxBody::Text { .. }));

            // The user writes again, then goes quiet for more than a day.
            let effects =
                c.step(&twin, from(ChannelKind::WhatsApp, "b", "sorry", 2), SATURDAY_NOON.plus_millis(3 * HOUR));
            let next = scheduled(&effects).into_iter().last().expect("re-armed");
            let late = SATURDAY_NOON.plus_millis(3 * HOUR + DAY + HOUR);
            let effects = c.step(&twin, Event::NudgeDue { id: next.id }, late.max(next.due_at));
            if template {
                let entries = outbox(&effects);
                assert_eq!(entries.len(), 1, "{effects:?}");
                assert_eq!(entries[0].body, OutboxBody::Template { name: "checkin".into(), language: "en_US".into() });
                assert!(live(&effects).contains(&LiveEventKind::NudgeFired { id: next.id }));
            } else {
                assert!(outbox(&effects).is_empty());
                assert!(live(&effects).contains(&LiveEventKind::NudgeSkipped { id: next.id, reason: "window_closed" }));
            }
        }
    }
}
