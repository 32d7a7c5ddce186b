//! The cursor and the clock: task check-ins, waits in the user's time zone (across daylight saving
//! changes), handoff timeouts, and chatting while a step waits for the clock.

use serde_json::json;

use super::super::compile::DEFAULT_HANDOFF_TIMEOUT_MS;
use super::super::{Output, Phase};
use super::{DAY, HOUR, Run, entered, entered_step, left, said, say, timers, utc};
use crate::ids::StepId;
use crate::message::Origin;

#[test]
fn a_task_says_its_text_then_checks_in_as_a_nudge_when_its_timer_falls_due() {
    let mut run = Run::new(
        "steps:\n  - { id: walk, task: Walk for ten minutes., check_in: 1d, check_in_text: 'Did you walk, {{ user.id }}?' }\n  - id: route\n    branch: [{ if: 'lower(answer(\"walk\")) contains \"yes\"', goto: great }]\n    else: next_time\n  - { id: great, end: Great. }\n  - { id: next_time, end: Next time. }",
    );
    assert_eq!(
        run.start(),
        vec![
            entered_step("walk", "task"),
            say("Walk for ten minutes."),
            Output::Timer { due: run.now.plus_millis(DAY) },
        ]
    );
    assert_eq!(run.enrolment().phase, Phase::Clock);

    run.now = run.now.plus_millis(DAY);
    assert_eq!(
        run.timer(),
        vec![Output::Say { text: "Did you walk, ana?".into(), choices: Vec::new(), origin: Origin::Nudge }],
        "the check-in stays in the task: no step is entered or left"
    );
    assert_eq!(run.enrolment().phase, Phase::CheckIn);
    assert_eq!(run.enrolment().entry, 1);

    let out = run.text("Yes, twice!");
    assert_eq!(entered(&out), ["route", "great"]);
    assert_eq!(out[..2], [left("walk"), Output::CancelTimers]);
    assert_eq!(run.enrolment().answers.get(&StepId::parse("walk").unwrap()), Some(&json!("Yes, twice!")));
}

#[test]
fn a_task_without_check_in_text_asks_how_it_went() {
    let mut run = Run::new("steps:\n  - { id: walk, task: Walk., check_in: 2h }\n  - { id: done, end: true }");
    run.start();
    assert_eq!(said(&run.timer()), ["How did it go with the task?"]);
}

#[test]
fn while_a_step_waits_for_the_clock_the_user_chats_freely_and_the_timer_still_fires() {
    let mut run = Run::new(
        "steps:\n  - { id: walk, task: Walk., check_in: 1d }\n  - { id: pause, wait: 1d }\n  - { id: done, end: Done. }",
    );
    run.start();
    assert_eq!(run.text("Quick question about walking"), vec![Output::Reply { goal: None }]);
    assert_eq!(run.step(), "walk");
    assert_eq!(run.enrolment().answers.len(), 0, "chatting before the check-in answers nothing");
    run.timer();
    let out = run.text("Done it");
    assert_eq!(
        out,
        vec![
            left("walk"),
            Output::CancelTimers,
            entered_step("pause", "wait"),
            Output::Timer { due: run.now.plus_millis(DAY) }
        ]
    );
    assert_eq!(run.text("Thanks!"), vec![Output::Reply { goal: None }]);
    assert_eq!(said(&run.timer()), ["Done."]);
}

#[test]
fn a_timer_that_falls_due_in_a_step_without_one_changes_nothing() {
    let mut run = Run::new(
        "steps:\n  - { id: q, question: Q? }\n  - { id: talk, chat: Talk., max_turns: 1 }\n  - { id: walk, task: Walk., check_in: 1d }\n  - { id: done, end: true }",
    );
    run.start();
    assert_eq!(run.timer(), vec![], "a question");
    run.text("a");
    assert_eq!(run.timer(), vec![], "a chat");
    run.text("b");
    run.reply_finished();
    assert_eq!(run.step(), "walk");
    run.timer();
    assert_eq!(run.timer(), vec![], "a task that already checked in");
    assert_eq!((run.step(), run.enrolment().phase), ("walk", Phase::CheckIn));
}

#[test]
fn a_wait_step_schedules_the_next_local_time_in_the_users_time_zone() {
    // Europe/Berlin is UTC+1 until the clocks go forward at 02:00 on Sunday 2026-03-29, UTC+2 after.
    let cases = [
        ("09:00", "2026-03-27T12:00:00Z", "2026-03-28T08:00:00Z", "later today is past: tomorrow 09:00 CET"),
        ("9:00", "2026-03-27T07:00:00Z", "2026-03-27T08:00:00Z", "still to come today"),
        ("09:00", "2026-03-27T08:00:00Z", "2026-03-28T08:00:00Z", "exactly now is not next"),
        ("09:00", "2026-03-28T12:00:00Z", "2026-03-29T07:00:00Z", "across the spring-forward night: 09:00 CEST"),
        ("02:30", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z", "a skipped time maps to the end of the gap, 03:00"),
        ("09:00", "2026-03-29T06:30:00Z", "2026-03-29T07:00:00Z", "on the first summer-time day"),
        ("02:30", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z", "a repeated time maps to its first pass"),
        ("00:00", "2026-12-31T22:59:00Z", "2026-12-31T23:00:00Z", "midnight into the new year"),
    ];
    for (at, now, due, why) in cases {
        let mut run = Run::new(&format!("steps:\n  - {{ id: pause, wait: '{at}' }}\n  - {{ id: done, end: true }}"));
        run.now = utc(now);
        assert_eq!(timers(&run.start()), [utc(due)], "wait {at} from {now}: {why}");
    }
}

#[test]
fn a_task_check_in_at_a_time_of_day_uses_the_users_time_zone() {
    let source = "steps:\n  - { id: walk, task: Walk., check_in: '18:00' }\n  - { id: done, end: true }";
    let mut run = Run::new(source);
    assert_eq!(timers(&run.start()), [utc("2026-03-27T17:00:00Z")], "18:00 in Berlin");
    let mut run = Run::new(source);
    run.timezone = "America/New_York".parse().unwrap();
    assert_eq!(timers(&run.start()), [utc("2026-03-27T22:00:00Z")], "18:00 in New York (EDT)");
}

#[test]
fn a_wait_of_a_duration_counts_from_when_the_step_is_entered() {
    let mut run =
        Run::new("steps:\n  - { id: q, question: Q? }\n  - { id: pause, wait: 1h30m }\n  - { id: done, end: true }");
    run.start();
    run.now = run.now.plus_millis(5 * HOUR);
    let out = run.text("ok");
    assert_eq!(timers(&out), [run.now.plus_millis(90 * 60_000)]);
    assert_eq!(run.enrolment().entered_at, run.now);
}

#[test]
fn a_handoff_moves_on_when_its_timeout_falls_due() {
    let mut run = Run::new(
        "steps:\n  - { id: maya, handoff: Asking Maya., timeout: 2d }\n  - { id: after, question: Still there? }",
    );
    assert_eq!(
        run.start(),
        vec![
            entered_step("maya", "handoff"),
            say("Asking Maya."),
            Output::HandoffRequested { step: StepId::parse("maya").unwrap() },
            Output::Timer { due: run.now.plus_millis(2 * DAY) },
        ]
    );
    assert_eq!(run.text("Is Maya there?"), vec![], "silent while a human is asked for");
    run.now = run.now.plus_millis(2 * DAY);
    assert_eq!(
        run.timer(),
        vec![left("maya"), Output::CancelTimers, entered_step("after", "question"), say("Still there?")]
    );
}

#[test]
fn a_handoff_released_before_its_timeout_cancels_the_timer() {
    let mut run = Run::new(
        "steps:\n  - { id: maya, handoff: Asking Maya., timeout: 2d }\n  - { id: after, question: Still there? }",
    );
    run.start();
    let out = run.released();
    assert_eq!(out[..2], [left("maya"), Output::CancelTimers]);
    assert_eq!(run.step(), "after");
    assert_eq!(run.timer(), vec![], "the old timeout, were it delivered anyway, does nothing to a question");
}

/// Without `timeout` a handoff ends after a day: until the live view can release a conversation,
/// nothing else would.
#[test]
fn a_handoff_without_timeout_moves_on_after_a_day() {
    let mut run =
        Run::new("steps:\n  - { id: maya, handoff: Asking Maya. }\n  - { id: after, question: Still there? }");
    assert_eq!(timers(&run.start()), [run.now.plus_millis(DAY)]);
    assert_eq!(DEFAULT_HANDOFF_TIMEOUT_MS, DAY);
    run.now = run.now.plus_millis(DAY);
    assert_eq!(
        run.timer(),
        vec![left("maya"), Output::CancelTimers, entered_step("after", "question"), say("Still there?")]
    );
}

/// A `timezone` answer applies at once: a timer armed by the steps it runs into, and
/// `{{ user.timezone }}` in their texts, use the new zone.
#[test]
fn a_timer_armed_right_after_the_timezone_answer_uses_the_new_time_zone() {
    let mut run = Run::new(
        "steps:\n  - { id: tz, question: Time zone?, expect: timezone }\n  - { id: walk, task: 'Walk ({{ user.timezone }}).', check_in: '18:00' }\n  - { id: done, end: true }",
    );
    run.start();
    let out = run.text("America/New_York");
    assert_eq!(out[0], Output::Timezone("America/New_York".into()));
    assert_eq!(said(&out), ["Walk (America/New_York)."]);
    assert_eq!(timers(&out), [utc("2026-03-27T22:00:00Z")], "18:00 in New York, not 18:00 in Berlin (17:00Z)");
}

/// An invalid time zone answer changes nothing: the old zone stays for what follows.
#[test]
fn a_timezone_question_given_up_on_keeps_the_old_time_zone() {
    let mut run = Run::new(
        "steps:\n  - { id: tz, question: Time zone?, expect: timezone, attempts: 1 }\n  - { id: walk, task: 'Walk ({{ user.timezone }}).', check_in: '18:00' }\n  - { id: done, end: true }",
    );
    run.start();
    let out = run.text("Mars/Olympus");
    assert!(!out.iter().any(|o| matches!(o, Output::Timezone(_))), "{out:?}");
    assert_eq!(said(&out), ["Walk (Europe/Berlin)."]);
    assert_eq!(timers(&out), [utc("2026-03-27T17:00:00Z")]);
}
