//! The demo creator's program (`creators/demo/programs/focus-reset.yaml`) walked through as users
//! would.

use super::super::{Output, Phase};
use super::{DAY, DEMO, Run, entered, said, timers, utc};
use crate::ids::StepId;
use crate::message::Origin;
use crate::nudge::local_date;

#[test]
fn a_user_walks_through_the_whole_demo_program() {
    let mut run = Run::new(DEMO);
    let out = run.start();
    assert_eq!(entered(&out), ["welcome", "name"]);
    assert_eq!(said(&out)[1], "First, what should I call you?");

    let out = run.text("Ana");
    assert_eq!(said(&out), ["Nice to meet you, Ana. What matters most to you right now?"]);
    assert!(matches!(&out[..], [.., Output::Say { choices, .. }] if choices.len() == 3));

    assert_eq!(entered(&run.text("2")), ["hours"]);
    assert_eq!(run.var("goal"), Some(&serde_json::json!("mornings")));
    assert_eq!(
        said(&run.text("lots")),
        ["A rough number is fine, like 1 or 2.5. Roughly how many hours a day do you get of truly focused work?"]
    );
    assert_eq!(entered(&run.text("3 hours")), ["timezone"]);

    // 13:00 in Berlin on Friday: the morning task ("tomorrow morning") checks in a day later, at
    // 13:00 on Saturday.
    let out = run.text("europe/berlin");
    assert_eq!(out[0], Output::Timezone("Europe/Berlin".into()));
    assert_eq!(entered(&out), ["route", "morning_task"]);
    assert_eq!(
        said(&out),
        [
            "Your first step: tomorrow morning, protect your first hour: no email or news until you've done one thing for yourself."
        ]
    );
    assert_eq!(timers(&out), [utc("2026-03-28T12:00:00Z")]);

    run.now = utc("2026-03-28T12:00:00Z");
    let out = run.timer();
    assert_eq!(
        out,
        vec![Output::Say {
            text: "Hi Ana! How did your first hour go this morning?".into(),
            choices: Vec::new(),
            origin: Origin::Nudge
        }]
    );

    assert_eq!(entered(&run.text("Better than I thought")), ["reflect"]);
    assert!(matches!(&run.text("Email was hard to resist")[..], [Output::Reply { goal: Some(_) }]));
    let out = run.text("OK, next");
    assert_eq!(entered(&out), ["rest", "rest_day"]);
    assert_eq!(timers(&out), [run.now.plus_millis(DAY)]);

    run.now = run.now.plus_millis(DAY);
    let out = run.timer();
    assert_eq!(entered(&out), ["next_morning"]);
    // Sunday 14:00 CEST (the clocks went forward in the night): the next 09:00 is Monday's.
    assert_eq!(timers(&out), [utc("2026-03-30T07:00:00Z")]);

    run.now = utc("2026-03-30T07:00:00Z");
    assert_eq!(said(&run.timer()), ["Day 3, Ana. From 1 to 5, how focused have you felt since we started?"]);
    let out = run.text("4");
    assert_eq!(entered(&out), ["score_branch", "keep_going", "offer_maya"]);
    let out = run.text("yes");
    assert_eq!(entered(&out), ["maya_branch", "to_maya"]);
    assert!(out.iter().any(|o| matches!(o, Output::HandoffRequested { .. })));
    assert_eq!(timers(&out), [run.now.plus_millis(2 * DAY)]);
    assert_eq!(run.text("Thanks"), vec![]);

    let out = run.released();
    assert_eq!(
        said(&out),
        ["That's the focus reset, Ana. Keep the block going; I'm here whenever you want to talk it through."]
    );
    assert_eq!(out.last(), Some(&Output::Finished));
}

#[test]
fn in_the_demo_little_focus_leads_to_the_tiny_block_and_a_low_score_to_a_smaller_step() {
    let mut run = Run::new(DEMO);
    run.start();
    run.text("Ben");
    run.text("focus");
    run.text("0,5");
    let out = run.text("UTC");
    assert_eq!(entered(&out), ["route", "tiny_block"]);
    run.timer();
    assert_eq!(entered(&run.text("It felt good")), ["reflect"]);
    run.text("a");
    run.text("b");
    run.text("c");
    assert_eq!(entered(&run.reply_finished()), ["rest", "rest_day"], "after three turns");
    run.timer();
    run.timer();
    let out = run.text("2");
    assert_eq!(entered(&out), ["score_branch", "smaller", "offer_maya"]);
    let out = run.text("no");
    assert_eq!(entered(&out), ["maya_branch", "finish"]);
    assert_eq!(out.last(), Some(&Output::Finished));
}

#[test]
fn in_the_demo_unanswered_questions_fall_through_to_the_defaults() {
    let mut run = Run::new(DEMO);
    run.start();
    run.text("Cleo");
    run.text("?");
    let out = run.text("??");
    assert!(out.contains(&Output::AnswerInvalid { step: StepId::parse("goal").unwrap(), attempts: 2, gave_up: true }));
    run.text("?");
    run.text("??");
    run.text("Mars");
    let out = run.text("Venus");
    // No goal and no hours: the route's second arm reads an unset `goal`, which is reported and
    // takes the branch's else.
    assert!(out.iter().any(|o| matches!(o, Output::ConditionFailed { step, .. } if step.as_str() == "route")));
    assert_eq!(entered(&out), ["route", "block_task"]);
    assert_eq!(timers(&out), [run.now.plus_millis(DAY)]);
    assert_eq!(run.enrolment().phase, Phase::Clock);
    assert!(!out.iter().any(|o| matches!(o, Output::Timezone(_))));
}

/// Enrols at `now` and answers the demo's questions up to the day-one task.
fn day_one(now: &str, goal: &str, hours: &str) -> (Run, Vec<Output>) {
    let mut run = Run::new(DEMO);
    run.now = utc(now);
    run.start();
    run.text("Ana");
    run.text(goal);
    run.text(hours);
    let out = run.text("Europe/Berlin");
    (run, out)
}

/// Each day-one task says when it is due and checks in after that: the tiny block ("before 6 pm")
/// at the next 18:00 in the user's time zone, which is the same day when it is set before then;
/// the morning task ("tomorrow morning") and the focus block ("in the next day") a day later.
#[test]
fn the_demo_checks_in_on_a_day_one_task_once_it_was_due() {
    let (_, out) = day_one("2026-03-27T09:00:00Z", "focus", "0.5"); // 10:00 in Berlin
    assert_eq!(entered(&out), ["route", "tiny_block"]);
    assert!(said(&out)[0].contains("before 6 pm"), "{:?}", said(&out));
    assert_eq!(timers(&out), [utc("2026-03-27T17:00:00Z")], "18:00 the same day");

    let (_, out) = day_one("2026-03-27T18:00:00Z", "focus", "0.5"); // 19:00 in Berlin
    assert_eq!(timers(&out), [utc("2026-03-28T17:00:00Z")], "past 18:00: the next day's");

    let (run, out) = day_one("2026-03-27T06:00:00Z", "mornings", "3"); // 07:00 in Berlin
    assert_eq!(entered(&out), ["route", "morning_task"]);
    assert!(said(&out)[0].contains("tomorrow morning"), "{:?}", said(&out));
    let due = timers(&out)[0];
    assert_eq!(due, run.now.plus_millis(DAY));
    assert!(local_date(run.timezone, due) > local_date(run.timezone, run.now));

    let (run, out) = day_one("2026-03-27T06:00:00Z", "habit", "3");
    assert_eq!(entered(&out), ["route", "block_task"]);
    assert!(said(&out)[0].contains("in the next day"), "{:?}", said(&out));
    assert_eq!(timers(&out), [run.now.plus_millis(DAY)]);
}
