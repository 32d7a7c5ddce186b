//! Property tests: whatever users write and whenever timers fire, the cursor never panics, says a
//! bounded amount per event and always stands on a step of its program; the compiler never panics.

use std::collections::HashSet;

use proptest::collection::vec;
use proptest::prelude::*;

use super::super::{Output, Program};
use super::{DAY, DEMO, Run, entered, program};
use crate::ids::ProgramId;

/// Most outputs one event may give for the demo: its longest run (an answer given up on day 3,
/// through a failing branch and a message to the next question) gives 10.
const DEMO_MAX_OUTPUTS: usize = 12;

/// Most outputs one event may give in any valid program: validation refuses loops that do not wait,
/// so an event enters each step at most once, and a step gives at most four outputs (a handoff:
/// entered, said, handoff requested, timer), plus what leaving the current step gives.
fn max_outputs(program: &Program) -> usize {
    4 * program.steps.len() + 4
}

#[derive(Debug, Clone)]
enum Event {
    Text(String),
    Timer,
    ReplyFinished,
    Released,
    /// Time passes (milliseconds).
    Later(i64),
}

/// Answers that mean something to the demo, and anything else.
fn text() -> impl Strategy<Value = String> {
    let meaningful = prop::sample::select(vec![
        "Ana",
        "1",
        "2",
        "3",
        "4",
        "5",
        "0",
        "0,5",
        "6 hours",
        "17",
        "-1",
        "focus",
        "Calmer mornings",
        "yes",
        "no",
        "not really",
        "Europe/Berlin",
        "america/new_york",
        "Mars",
        "next",
        "done",
        "move on",
        "nextdoor",
        "",
        "   ",
        "STOP",
        "/focus",
        "{{ name }}",
    ])
    .prop_map(str::to_owned);
    prop_oneof![3 => meaningful, 1 => "\\PC{0,30}", 1 => any::<String>()]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => text().prop_map(Event::Text),
        3 => Just(Event::Timer),
        1 => Just(Event::ReplyFinished),
        1 => Just(Event::Released),
        2 => (0..3 * DAY).prop_map(Event::Later),
    ]
}

/// Runs `events` against `program` from a fresh enrolment, re-enrolling after the program
/// finishes (as a trigger would), and checks the cursor's invariants after every event.
fn walk(program: Program, max: usize, events: &[Event]) -> Result<(), TestCaseError> {
    let mut run = Run::of(program);
    let first = run.start();
    check(&run, &first, 0, max)?;
    for event in events {
        let entry_before = run.enrolment().entry;
        let out = match event {
            Event::Text(text) => run.text(text),
            Event::Timer => run.timer(),
            Event::ReplyFinished => run.reply_finished(),
            Event::Released => run.released(),
            Event::Later(ms) => {
                run.now = run.now.plus_millis(*ms);
                continue;
            }
        };
        check(&run, &out, entry_before, max)?;
        for output in &out {
            if let Output::Timezone(name) = output {
                // As the conversation does: later events run in the user's time zone.
                run.timezone = name.parse().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            }
        }
        if out.contains(&Output::Finished) {
            let again = run.start();
            check(&run, &again, 0, max)?;
        }
    }
    Ok(())
}

fn check(run: &Run, out: &[Output], entry_before: u64, max: usize) -> Result<(), TestCaseError> {
    let enrolment = run.enrolment();
    prop_assert!(out.len() <= max, "{} outputs: {out:?}", out.len());
    let steps = entered(out);
    let once: HashSet<&String> = steps.iter().collect();
    prop_assert_eq!(once.len(), steps.len(), "a step entered twice in one event: {:?}", steps);
    prop_assert!(run.program.step(&enrolment.step).is_some(), "step `{}` is not in the program", enrolment.step);
    prop_assert!(enrolment.entry >= entry_before, "the entry went back from {entry_before} to {}", enrolment.entry);
    let finished = out.iter().filter(|o| **o == Output::Finished).count();
    prop_assert!(finished <= 1 && (finished == 0 || out.last() == Some(&Output::Finished)), "{out:?}");
    for output in out {
        match output {
            Output::Timer { due } => prop_assert!(*due > run.now, "a timer due at {due:?}, not after now"),
            Output::Entered { step, .. } | Output::Left { step } => {
                prop_assert!(run.program.step(step).is_some(), "entered or left an unknown step `{step}`")
            }
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_demo_program_survives_any_sequence_of_messages_and_timers(events in vec(event(), 0..60)) {
        walk(program(DEMO), DEMO_MAX_OUTPUTS, &events)?;
    }

    /// Programs the compiler accepts, other than the demo: the demo with a few lines left out. Each
    /// either compiles and then runs like any program, or is refused with at least one problem.
    #[test]
    fn any_program_the_compiler_accepts_runs_without_panicking(
        removed in vec(any::<prop::sample::Index>(), 1..4),
        events in vec(event(), 0..40),
    ) {
        let mut lines: Vec<&str> = DEMO.lines().collect();
        for index in removed {
            let at = index.index(lines.len());
            lines.remove(at);
        }
        let source = lines.join("\n");
        match super::super::compile(&ProgramId::parse("focus-reset").unwrap(), 1, &source) {
            Ok(compiled) => {
                let max = max_outputs(&compiled);
                walk(compiled, max, &events)?
            }
            Err(problems) => prop_assert!(!problems.0.is_empty()),
        }
    }

    #[test]
    fn the_compiler_never_panics_on_any_text(source in "\\PC{0,300}") {
        let _ = super::super::compile(&ProgramId::parse("any").unwrap(), 1, &source);
    }
}
