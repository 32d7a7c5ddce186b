//! The cursor on user text: messages, questions and their answers, branches, chats, handoffs and
//! the end. Timers have their own file.

use serde_json::json;

use super::super::compile::DEFAULT_HANDOFF_TIMEOUT_MS;
use super::super::condition::Value;
use super::super::{Expect, Output, Phase, validate};
use super::{Run, entered, entered_step, left, said, say};
use crate::ids::StepId;
use crate::message::{Choice, Origin};

fn id(step: &str) -> StepId {
    StepId::parse(step).unwrap()
}

fn invalid(step: &str, attempts: u32, gave_up: bool) -> Output {
    Output::AnswerInvalid { step: id(step), attempts, gave_up }
}

#[test]
fn messages_run_on_until_a_step_that_waits() {
    let mut run = Run::new(
        "steps:\n  - { id: hi, message: Hello }\n  - { id: plan, message: Here is the plan }\n  - { id: name, question: Your name? }\n  - { id: done, end: true }",
    );
    assert_eq!(
        run.start(),
        vec![
            entered_step("hi", "message"),
            say("Hello"),
            left("hi"),
            entered_step("plan", "message"),
            say("Here is the plan"),
            left("plan"),
            entered_step("name", "question"),
            say("Your name?"),
        ]
    );
    let enrolment = run.enrolment();
    assert_eq!((enrolment.step.as_str(), enrolment.phase, enrolment.entry), ("name", Phase::Answer, 3));
    assert_eq!((enrolment.program.as_str(), enrolment.version), ("test", 1));
    assert_eq!((enrolment.enrolled_at, enrolment.entered_at), (run.now, run.now));
}

#[test]
fn a_message_with_choices_waits_for_a_pick_and_any_reply_continues() {
    let mut run = Run::new(
        "steps:\n  - { id: pick, message: Ready?, choices: [{ value: go, label: Let's go }, later] }\n  - id: route\n    branch: [{ if: 'answer(\"pick\") == \"go\"', goto: going }]\n    else: other\n  - { id: going, end: Going }\n  - { id: other, end: Other }",
    );
    let start = run.start();
    let choices = vec![
        Choice { value: "go".into(), label: "Let's go".into() },
        Choice { value: "later".into(), label: "later".into() },
    ];
    assert_eq!(
        start,
        vec![entered_step("pick", "message"), Output::Say { text: "Ready?".into(), choices, origin: Origin::Program }]
    );
    assert_eq!(said(&run.text("let's GO!")), ["Going"]);
    assert_eq!(run.enrolment().answers.get(&id("pick")), Some(&json!("go")));

    let mut run = Run::of(run.program.clone());
    run.start();
    assert_eq!(said(&run.text("Maybe tomorrow")), ["Other"]);
    assert_eq!(run.enrolment().answers.get(&id("pick")), Some(&json!("Maybe tomorrow")));
}

#[test]
fn an_invalid_answer_is_asked_again_with_the_retry_text() {
    let mut run = Run::new(
        "steps:\n  - { id: hours, question: How many hours?, expect: number, retry: A number please., attempts: 3, save_as: hours }\n  - { id: done, end: 'You said {{ hours }}.' }",
    );
    run.start();
    assert_eq!(run.text("lots"), vec![invalid("hours", 1, false), say("A number please. How many hours?")]);
    assert_eq!(run.text("many"), vec![invalid("hours", 2, false), say("A number please. How many hours?")]);
    assert_eq!(run.step(), "hours");
    assert_eq!(said(&run.text("7")), ["You said 7."]);
}

#[test]
fn a_question_without_retry_text_uses_the_default_for_what_it_expects() {
    let cases = [
        ("", "Could you say that again? Q"),
        ("expect: number", "Please answer with a number. Q"),
        ("expect: yes_no", "Please answer yes or no. Q"),
        ("choices: [a, b]", "Please pick one of the options. Q"),
        ("expect: timezone", "Please give your time zone like Europe/Berlin or America/New_York. Q"),
    ];
    for (expect, again) in cases {
        let mut run =
            Run::new(&format!("steps:\n  - {{ id: q, question: Q, {expect} }}\n  - {{ id: done, end: true }}"));
        run.start();
        assert_eq!(said(&run.text("   ")), [again], "{expect}");
    }
}

#[test]
fn after_its_attempts_a_question_gives_up_to_on_fail() {
    let mut run = Run::new(
        "steps:\n  - { id: age, question: Age?, expect: number, attempts: 2, on_fail: skipped, save_as: age }\n  - { id: thanks, end: Thanks }\n  - { id: skipped, end: 'No worries, {{ age | stranger }}.' }",
    );
    run.start();
    assert_eq!(said(&run.text("old")), ["Please answer with a number. Age?"]);
    assert_eq!(
        run.text("very old"),
        vec![
            invalid("age", 2, true),
            left("age"),
            entered_step("skipped", "end"),
            say("No worries, stranger."),
            left("skipped"),
            Output::Finished,
        ]
    );
    assert_eq!(run.var("age"), None);
    assert_eq!(run.enrolment().answers.get(&id("age")), None);
}

#[test]
fn without_on_fail_a_question_that_gives_up_goes_to_next_with_the_variable_unset() {
    let mut run = Run::new(
        "steps:\n  - { id: ok, question: OK?, expect: yes_no, attempts: 1, save_as: ok }\n  - { id: after, message: 'ok: {{ ok | unknown }}' }\n  - { id: ask, question: Next? }",
    );
    run.start();
    let out = run.text("hmm");
    assert_eq!(out[0], invalid("ok", 1, true));
    assert_eq!(said(&out), ["ok: unknown", "Next?"]);
    assert_eq!(run.step(), "ask");
    assert_eq!(run.var("ok"), None);
}

#[test]
fn a_valid_answer_after_an_invalid_one_starts_the_count_afresh_at_the_next_question() {
    let mut run = Run::new(
        "steps:\n  - { id: a, question: A?, expect: number, attempts: 2 }\n  - { id: b, question: B?, expect: number, attempts: 2 }\n  - { id: done, end: true }",
    );
    run.start();
    run.text("x");
    run.text("1");
    assert_eq!(run.enrolment().attempts, 0);
    assert_eq!(run.text("y"), vec![invalid("b", 1, false), say("Please answer with a number. B?")]);
}

#[test]
fn choices_are_accepted_by_value_by_label_ignoring_case_and_by_their_number() {
    let expect = Expect::Choice(vec![
        Choice { value: "focus".into(), label: "Deep focus at work".into() },
        Choice { value: "mornings".into(), label: "Calmer mornings".into() },
        Choice { value: "habit".into(), label: "A new habit that sticks".into() },
    ]);
    let cases: &[(&str, Option<&str>)] = &[
        ("focus", Some("focus")),
        ("FOCUS", Some("focus")),
        ("  mornings  ", Some("mornings")),
        ("Deep focus at work", Some("focus")),
        ("calmer MORNINGS", Some("mornings")),
        ("calmer mornings!", Some("mornings")),
        ("1", Some("focus")),
        ("2", Some("mornings")),
        ("3.", Some("habit")),
        ("4", None),
        ("0", None),
        ("-1", None),
        ("focus please", None),
        ("deep", None),
        ("", None),
    ];
    for (text, value) in cases {
        assert_eq!(validate(&expect, text), value.map(|v| Value::Text(v.into())), "{text:?}");
    }
}

#[test]
fn yes_and_no_are_read_from_the_usual_words() {
    let cases: &[(&str, Option<bool>)] = &[
        ("yes", Some(true)),
        ("Yes!", Some(true)),
        ("y", Some(true)),
        ("yeah", Some(true)),
        ("yep", Some(true)),
        ("sure", Some(true)),
        ("OK", Some(true)),
        ("okay.", Some(true)),
        ("true", Some(true)),
        ("no", Some(false)),
        ("No.", Some(false)),
        ("n", Some(false)),
        ("nope", Some(false)),
        ("nah", Some(false)),
        ("not really", Some(false)),
        ("false", Some(false)),
        ("yes please", None),
        ("maybe", None),
        ("", None),
    ];
    for (text, answer) in cases {
        assert_eq!(validate(&Expect::YesNo, text), answer.map(Value::Bool), "{text:?}");
    }
}

/// The first number in the answer counts, wherever it stands and whatever is around it.
#[test]
fn numbers_are_read_from_the_first_number_in_the_answer_and_checked_against_the_range() {
    let range = Expect::Number { min: Some(0.0), max: Some(16.0) };
    let cases: &[(&str, Option<f64>)] = &[
        ("6", Some(6.0)),
        ("6 hours", Some(6.0)),
        ("6,5", Some(6.5)),
        (" 2.5 ", Some(2.5)),
        ("0", Some(0.0)),
        ("16", Some(16.0)),
        ("about 6", Some(6.0)),
        ("about 3 hours", Some(3.0)),
        ("6h", Some(6.0)),
        ("2.5h", Some(2.5)),
        ("roughly 4.", Some(4.0)),
        ("(5)", Some(5.0)),
        ("16.5", None),
        ("-1", None),
        ("17 or 3", None),
        ("six", None),
        ("NaN", None),
        ("inf", None),
        ("", None),
    ];
    for (text, n) in cases {
        assert_eq!(validate(&range, text), n.map(Value::Number), "{text:?}");
    }
    let open = Expect::Number { min: None, max: None };
    assert_eq!(validate(&open, "-40"), Some(Value::Number(-40.0)));
    assert_eq!(validate(&open, "1e400"), None);
}

#[test]
fn a_text_answer_is_trimmed_and_may_not_be_blank() {
    assert_eq!(validate(&Expect::Text, "  Ana \n"), Some(Value::Text("Ana".into())));
    assert_eq!(validate(&Expect::Text, " \t\n"), None);
}

#[test]
fn a_time_zone_answer_is_an_iana_name_in_any_case() {
    let cases: &[(&str, Option<&str>)] = &[
        ("Europe/Berlin", Some("Europe/Berlin")),
        ("  america/new_york ", Some("America/New_York")),
        ("UTC", Some("UTC")),
        ("Berlin", None),
        ("GMT+2 please", None),
        ("", None),
    ];
    for (text, zone) in cases {
        assert_eq!(validate(&Expect::Timezone, text), zone.map(|z| Value::Text(z.into())), "{text:?}");
    }
}

#[test]
fn a_timezone_question_tells_the_conversation_the_users_time_zone() {
    let mut run = Run::new(
        "steps:\n  - { id: tz, question: Where are you?, expect: timezone, save_as: zone }\n  - { id: done, end: 'Noted: {{ zone }}' }",
    );
    run.start();
    let out = run.text("america/new_york");
    assert_eq!(out[0], Output::Timezone("America/New_York".into()));
    assert_eq!(said(&out), ["Noted: America/New_York"]);

    let mut run = Run::of(run.program.clone());
    run.start();
    let out = run.text("Mars/Olympus");
    assert!(!out.iter().any(|o| matches!(o, Output::Timezone(_))), "{out:?}");
    assert_eq!(out[0], invalid("tz", 1, false));
}

#[test]
fn an_answer_is_saved_under_save_as_and_by_step_with_its_type() {
    let mut run = Run::new(
        "steps:\n  - { id: name, question: Name?, save_as: name }\n  - { id: hours, question: Hours?, expect: number, save_as: hours }\n  - { id: ok, question: OK?, expect: yes_no, save_as: ok }\n  - { id: goal, question: Goal?, choices: [sleep, focus] }\n  - { id: done, end: '{{ name }} {{ hours }} {{ ok }}' }",
    );
    run.start();
    run.text(" Ana ");
    run.text("6,5");
    run.text("no");
    let out = run.text("2");
    assert_eq!(run.var("name"), Some(&json!("Ana")));
    assert_eq!(run.var("hours"), Some(&json!(6.5)));
    assert_eq!(run.var("ok"), Some(&json!(false)));
    assert_eq!(run.var("goal"), None, "a question without save_as keeps its answer by step only");
    assert_eq!(run.enrolment().answers.get(&id("goal")), Some(&json!("focus")));
    assert_eq!(said(&out), ["Ana 6.5 no"]);
}

#[test]
fn a_branch_takes_the_first_arm_that_holds_in_the_order_written() {
    let source = "steps:\n  - { id: score, question: Score?, expect: number, save_as: score }\n  - id: route\n    branch:\n      - { if: 'score >= 4', goto: high }\n      - { if: 'score >= 2', goto: middle }\n      - { if: 'score >= 4', goto: never }\n    else: low\n  - { id: high, end: high }\n  - { id: middle, end: middle }\n  - { id: never, end: never }\n  - { id: low, end: low }";
    let cases = [("5", "high"), ("4", "high"), ("3", "middle"), ("2", "middle"), ("1", "low")];
    for (answer, ending) in cases {
        let mut run = Run::new(source);
        run.start();
        let out = run.text(answer);
        assert_eq!(entered(&out), ["route", ending], "score {answer}");
        assert_eq!(said(&out), [ending], "score {answer}");
        assert!(!out.iter().any(|o| matches!(o, Output::ConditionFailed { .. })));
    }
}

#[test]
fn a_branch_condition_that_fails_at_run_time_goes_to_on_error_and_is_reported() {
    let source = "steps:\n  - { id: score, question: Score?, expect: number, attempts: 1, save_as: score }\n  - id: route\n    branch: [{ if: 'score > 3', goto: high }]\n    else: low\n    on_error: unknown\n  - { id: high, end: high }\n  - { id: low, end: low }\n  - { id: unknown, end: unknown }";
    let mut run = Run::new(source);
    run.start();
    let out = run.text("not a number");
    assert_eq!(
        out,
        vec![
            invalid("score", 1, true),
            left("score"),
            entered_step("route", "branch"),
            Output::ConditionFailed {
                step: id("route"),
                error: "`score > 3`: `score` is not set (test it first with has(score))".into()
            },
            left("route"),
            entered_step("unknown", "end"),
            say("unknown"),
            left("unknown"),
            Output::Finished,
        ]
    );
}

#[test]
fn without_on_error_a_failing_branch_condition_falls_to_else() {
    let mut run = Run::new(
        "steps:\n  - { id: score, question: Score?, expect: number, attempts: 1, save_as: score }\n  - id: route\n    branch: [{ if: 'score > 3', goto: high }, { if: 'true', goto: high }]\n    else: low\n  - { id: high, end: high }\n  - { id: low, end: low }",
    );
    run.start();
    let out = run.text("?");
    assert!(out.iter().any(|o| matches!(o, Output::ConditionFailed { step, .. } if step.as_str() == "route")));
    assert_eq!(said(&out), ["low"], "a failing arm stops the branch: later arms are not tried");
}

#[test]
fn a_guarded_condition_never_fails_on_an_unset_variable() {
    let mut run = Run::new(
        "steps:\n  - { id: score, question: Score?, expect: number, attempts: 1, save_as: score }\n  - id: route\n    branch: [{ if: 'has(score) and score > 3', goto: high }]\n    else: low\n  - { id: high, end: high }\n  - { id: low, end: low }",
    );
    run.start();
    let out = run.text("?");
    assert!(!out.iter().any(|o| matches!(o, Output::ConditionFailed { .. })), "{out:?}");
    assert_eq!(said(&out), ["low"]);
}

#[test]
fn branches_see_built_in_variables_and_answers_of_earlier_steps() {
    let mut run = Run::new(
        "steps:\n  - { id: mood, question: Mood?, choices: [good, bad] }\n  - id: route\n    branch:\n      - if: 'answer(\"mood\") == \"bad\" and user.id == \"ana\" and user.timezone == \"Europe/Berlin\" and days_since(enrolled_at) == 0 and step_entered_at == now()'\n        goto: comfort\n    else: cheer\n  - { id: comfort, end: comfort }\n  - { id: cheer, end: cheer }",
    );
    run.start();
    assert_eq!(said(&run.text("bad")), ["comfort"]);
}

#[test]
fn a_chat_asks_the_twin_to_reply_toward_its_goal_until_a_keyword_is_said() {
    let mut run = Run::new(
        "steps:\n  - { id: talk, chat: Help them reflect., keywords: [next, move on] }\n  - { id: done, end: Done }",
    );
    let start = run.start();
    assert_eq!(start, vec![entered_step("talk", "chat")], "a chat says nothing until the user writes");
    assert_eq!(run.enrolment().phase, Phase::Chat);
    let goal = Output::Reply { goal: Some("Help them reflect.".into()) };
    for text in ["It went fine", "the nextdoor neighbour was loud", "NEXTstep", "let's remove on"] {
        assert_eq!(run.text(text), vec![goal.clone()], "{text:?} is not a keyword as a whole word");
    }
    assert_eq!(run.enrolment().turns, 4);
    assert_eq!(said(&run.text("OK, let's MOVE ON!")), ["Done"]);

    let mut run = Run::of(run.program.clone());
    run.start();
    assert_eq!(said(&run.text("next")), ["Done"]);
}

#[test]
fn a_chat_ends_when_its_until_condition_holds() {
    let mut run = Run::new(
        "steps:\n  - { id: talk, chat: Talk., until: 'last_message matches \"(?i)ready\" or turns >= 3' }\n  - { id: done, end: Done }",
    );
    run.start();
    assert_eq!(run.text("not yet"), vec![Output::Reply { goal: Some("Talk.".into()) }]);
    assert_eq!(said(&run.text("I'm Ready")), ["Done"]);

    let mut run = Run::of(run.program.clone());
    run.start();
    run.text("a");
    run.text("b");
    assert_eq!(said(&run.text("c")), ["Done"], "the third message reaches turns >= 3");
}

#[test]
fn a_chat_until_that_fails_at_run_time_counts_as_not_yet_and_is_reported() {
    let mut run = Run::new(
        "steps:\n  - { id: n, question: N?, expect: number, attempts: 1, save_as: n }\n  - { id: talk, chat: Talk., until: 'n > 1', max_turns: 5 }\n  - { id: done, end: Done }",
    );
    run.start();
    run.text("?");
    let out = run.text("hello");
    assert_eq!(
        out,
        vec![
            Output::ConditionFailed { step: id("talk"), error: "`n` is not set (test it first with has(n))".into() },
            Output::Reply { goal: Some("Talk.".into()) },
        ]
    );
    assert_eq!(run.step(), "talk");
}

#[test]
fn a_chat_moves_on_after_max_turns_once_the_twin_has_replied() {
    let mut run = Run::new("steps:\n  - { id: talk, chat: Talk., max_turns: 2 }\n  - { id: after, question: Next? }");
    run.start();
    assert_eq!(run.reply_finished(), vec![], "no turn taken yet");
    run.text("one");
    assert_eq!(run.reply_finished(), vec![]);
    assert_eq!(run.text("two"), vec![Output::Reply { goal: Some("Talk.".into()) }], "the last turn is answered");
    assert_eq!(run.step(), "talk");
    assert_eq!(run.reply_finished(), vec![left("talk"), entered_step("after", "question"), say("Next?")]);
    assert_eq!(run.reply_finished(), vec![], "a finished reply outside a chat moves nothing");
}

/// Without `timeout` a handoff still ends after a day (nothing else can release it yet).
#[test]
fn a_handoff_asks_for_the_creator_and_the_twin_stays_silent() {
    let mut run = Run::new("steps:\n  - { id: maya, handoff: Asking Maya. }\n  - { id: done, end: Welcome back. }");
    assert_eq!(
        run.start(),
        vec![
            entered_step("maya", "handoff"),
            say("Asking Maya."),
            Output::HandoffRequested { step: id("maya") },
            Output::Timer { due: run.now.plus_millis(DEFAULT_HANDOFF_TIMEOUT_MS) },
        ],
        "no timeout: the default one"
    );
    assert_eq!(run.text("Hello? Anyone?"), vec![]);
    assert_eq!(run.text("next"), vec![]);
    assert_eq!(run.reply_finished(), vec![]);
    assert_eq!(run.enrolment().phase, Phase::Handoff);
    assert_eq!(
        run.released(),
        vec![
            left("maya"),
            Output::CancelTimers,
            entered_step("done", "end"),
            say("Welcome back."),
            left("done"),
            Output::Finished
        ]
    );
}

#[test]
fn on_released_outside_a_handoff_does_nothing() {
    let mut run = Run::new("steps:\n  - { id: q, question: Q? }\n  - { id: done, end: true }");
    run.start();
    assert_eq!(run.released(), vec![]);
    assert_eq!(run.step(), "q");
}

#[test]
fn an_end_step_finishes_the_program_with_or_without_a_text() {
    let mut run = Run::new("steps:\n  - { id: bye, end: 'Bye, {{ user.id }}.' }");
    assert_eq!(run.start(), vec![entered_step("bye", "end"), say("Bye, ana."), left("bye"), Output::Finished]);
    let mut run = Run::new("steps:\n  - { id: bye, end: true }");
    assert_eq!(run.start(), vec![entered_step("bye", "end"), left("bye"), Output::Finished]);
}

#[test]
fn the_last_step_in_the_file_finishes_the_program_when_it_has_no_next() {
    let mut run = Run::new("steps:\n  - { id: q, question: Q? }\n  - { id: last, message: That's all. }");
    run.start();
    assert_eq!(
        run.text("fine"),
        vec![left("q"), entered_step("last", "message"), say("That's all."), left("last"), Output::Finished]
    );
}

#[test]
fn texts_fill_in_answers_and_fall_back_when_unset() {
    let mut run = Run::new(
        "steps:\n  - { id: name, question: 'Hi {{ name | there }}! Name?', attempts: 1, save_as: name }\n  - { id: ok, question: 'Thanks {{ name | friend }}, ready?', expect: yes_no, save_as: ready }\n  - { id: done, end: '{{ name | friend }} {{ ready }} {{ ready | - }} {{ user.timezone }}' }",
    );
    assert_eq!(said(&run.start()), ["Hi there! Name?"]);
    assert_eq!(said(&run.text("Ana")), ["Thanks Ana, ready?"]);
    assert_eq!(said(&run.text("yes")), ["Ana yes yes Europe/Berlin"]);

    let mut run = Run::of(run.program.clone());
    run.start();
    assert_eq!(said(&run.text(" ")), ["Thanks friend, ready?"]);
    assert_eq!(said(&run.text("nope")), ["friend no no Europe/Berlin"]);
}

#[test]
fn numbers_in_texts_read_as_people_write_them() {
    let source = "steps:\n  - { id: n, question: N?, expect: number, save_as: n }\n  - { id: done, end: 'n={{ n }}' }";
    for (answer, shown) in [("6", "n=6"), ("6,5", "n=6.5"), ("-0.25", "n=-0.25"), ("1e3", "n=1000")] {
        let mut run = Run::new(source);
        run.start();
        assert_eq!(said(&run.text(answer)), [shown], "{answer}");
    }
}

#[test]
fn leaving_a_step_with_a_timer_cancels_its_timers_and_other_steps_do_not() {
    let mut run = Run::new(
        "steps:\n  - { id: q, question: Q? }\n  - { id: pause, wait: 1h }\n  - { id: task, task: Walk., check_in: 2h }\n  - { id: maya, handoff: Maya., timeout: 1d }\n  - { id: done, end: true }",
    );
    run.start();
    let cancels = |out: &[Output]| out.iter().filter(|o| **o == Output::CancelTimers).count();
    let out = run.text("a");
    assert_eq!(cancels(&out), 0, "leaving a question");
    let out = run.timer();
    assert_eq!(cancels(&out), 1, "leaving a wait");
    assert_eq!(out[..2], [left("pause"), Output::CancelTimers]);
    run.timer();
    let out = run.text("done it");
    assert_eq!(cancels(&out), 1, "leaving a task");
    let out = run.timer();
    assert_eq!(cancels(&out), 1, "leaving a handoff");
}

#[test]
fn every_step_entered_counts_one_more_entry_even_the_same_step_again() {
    let mut run = Run::new(
        "steps:\n  - { id: hi, message: Hi }\n  - { id: again, question: Again?, expect: yes_no, save_as: again }\n  - id: loop\n    branch: [{ if: 'again', goto: hi }]\n    else: done\n  - { id: done, end: true }",
    );
    run.start();
    assert_eq!(run.enrolment().entry, 2);
    run.text("yes");
    assert_eq!(run.enrolment().entry, 5, "loop, hi, again");
    assert_eq!(run.step(), "again");
    run.text("x");
    assert_eq!(run.enrolment().entry, 5, "an invalid answer enters nothing");
    run.text("no");
    assert_eq!(run.enrolment().entry, 7, "loop, done");
}

#[test]
fn an_enrolment_survives_serialisation_as_it_is_stored() {
    let mut run = Run::new(
        "steps:\n  - { id: n, question: N?, expect: number, save_as: n }\n  - { id: t, task: Walk., check_in: 1d }\n  - { id: done, end: true }",
    );
    run.start();
    run.text("3");
    let stored = serde_json::to_string(run.enrolment()).unwrap();
    let back: crate::program::Enrolment = serde_json::from_str(&stored).unwrap();
    assert_eq!(&back, run.enrolment());
    assert_eq!(back.phase, Phase::Clock);
}

/// `last_message` is the user message being handled: in a branch run right after an answer and in
/// the texts said then, not only in a chat's `until`.
#[test]
fn a_branch_right_after_an_answer_sees_it_as_last_message() {
    let mut run = Run::new(
        "steps:\n  - { id: q, question: How was it? }\n  - id: route\n    branch: [{ if: 'last_message contains \"great\"', goto: yay }]\n    else: meh\n  - { id: yay, end: 'You said: {{ last_message | nothing }}' }\n  - { id: meh, end: meh }",
    );
    run.start();
    assert_eq!(said(&run.text("It was great")), ["You said: It was great"]);
}

#[test]
fn last_message_is_the_message_that_moved_the_program_and_empty_when_the_clock_did() {
    let mut run = Run::new(
        "steps:\n  - { id: q, question: 'Hi [{{ last_message }}], name?', save_as: name }\n  - { id: echo, message: 'You wrote [{{ last_message }}].' }\n  - { id: pause, wait: 1h }\n  - { id: after, question: 'Back [{{ last_message | none }}]?' }\n  - { id: done, end: 'Bye [{{ last_message }}]' }",
    );
    assert_eq!(said(&run.start()), ["Hi [], name?"], "on enrolment no message is handled");
    assert_eq!(said(&run.text("Ana")), ["You wrote [Ana]."]);
    assert_eq!(run.text("still there?"), vec![Output::Reply { goal: None }]);
    assert_eq!(said(&run.timer()), ["Back []?"], "a timer moved the program: empty, not unset");
    assert_eq!(said(&run.text("yes")), ["Bye [yes]"]);
    assert_eq!(run.enrolment().handling, None, "nothing of the message is kept after it is handled");
}

#[test]
fn an_answer_that_leads_straight_into_a_chat_is_answered_by_the_twin() {
    let mut run = Run::new(
        "steps:\n  - { id: how, question: How did it go? }\n  - { id: talk, chat: Help them reflect., max_turns: 2 }",
    );
    run.start();
    let out = run.text("It went well");
    assert!(out.contains(&Output::Reply { goal: Some("Help them reflect.".into()) }), "{out:?}");
    assert_eq!(run.enrolment().turns, 0, "the answer to the question is not one of the chat's turns");

    // With a program text in between, the program answered: no twin reply on top of it.
    let mut run = Run::new(
        "steps:\n  - { id: how, question: How did it go? }\n  - { id: ok, message: Thanks! }\n  - { id: talk, chat: Reflect., max_turns: 2 }",
    );
    run.start();
    let out = run.text("Fine");
    assert_eq!(said(&out), ["Thanks!"]);
    assert!(!out.iter().any(|o| matches!(o, Output::Reply { .. })), "{out:?}");
}

#[test]
fn a_chat_ended_by_a_keyword_hands_its_message_to_the_next_step() {
    let mut run = Run::new(
        "steps:\n  - { id: talk, chat: Talk., keywords: [next] }\n  - { id: done, end: 'Last: {{ last_message }}' }",
    );
    run.start();
    assert_eq!(said(&run.text("OK, next please")), ["Last: OK, next please"]);
}

/// Times read as the user's local date and time, `YYYY-MM-DD HH:MM`.
#[test]
fn a_time_in_a_text_reads_as_the_users_local_date_and_time() {
    let source = "steps:\n  - { id: a, end: 'You started on {{ enrolled_at }} ({{ step_entered_at }}).' }";
    let mut run = Run::new(source);
    assert_eq!(said(&run.start()), ["You started on 2026-03-27 13:00 (2026-03-27 13:00)."], "Berlin, UTC+1");
    let mut run = Run::new(source);
    run.timezone = "America/New_York".parse().unwrap();
    assert_eq!(said(&run.start()), ["You started on 2026-03-27 08:00 (2026-03-27 08:00)."], "New York, UTC-4");
}

/// Choices match their value and label ignoring case in every script, as chat keywords and
/// triggers do.
#[test]
fn a_choice_is_picked_ignoring_case_beyond_ascii() {
    let expect = Expect::Choice(vec![
        Choice { value: "exercise".into(), label: "Übung".into() },
        Choice { value: "Ruhe".into(), label: "ΗΣΥΧΊΑ".into() },
    ]);
    assert_eq!(validate(&expect, "übung"), Some(Value::Text("exercise".into())));
    assert_eq!(validate(&expect, "ÜBUNG!"), Some(Value::Text("exercise".into())));
    assert_eq!(validate(&expect, "ησυχία"), Some(Value::Text("Ruhe".into())));
    assert_eq!(validate(&expect, "RUHE"), Some(Value::Text("Ruhe".into())), "the value keeps its case");
}
