//! Tests of coaching programs, one file per concern: validation, the cursor's steps, its timers, the
//! demo program and a property test over it. The shared fixtures live here.

mod cursor;
mod demo;
mod props;
mod timers;
mod validation;

use super::{Context, Enrolment, Output, Problem, Program, compile};
use crate::ids::{ProgramId, UserId};
use crate::message::Origin;
use crate::nudge::TimeZone;
use crate::time::Timestamp;

/// The demo creator's program, as shipped.
pub(super) const DEMO: &str = include_str!("../../../creators/demo/programs/focus-reset.yaml");

pub(super) const MINUTE: i64 = 60_000;
pub(super) const HOUR: i64 = 60 * MINUTE;
pub(super) const DAY: i64 = 24 * HOUR;

/// An instant written in RFC 3339 (`2026-03-27T12:00:00Z`).
pub(super) fn utc(rfc3339: &str) -> Timestamp {
    Timestamp::from_millis(chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis())
}

/// Friday 2026-03-27, 13:00 in Berlin (CET, UTC+1), two days before the clocks go forward.
pub(super) fn now() -> Timestamp {
    utc("2026-03-27T12:00:00Z")
}

pub(super) fn berlin() -> TimeZone {
    "Europe/Berlin".parse().unwrap()
}

/// A program that must compile, stored as version 1 of `test`.
pub(super) fn program(source: &str) -> Program {
    match compile(&ProgramId::parse("test").unwrap(), 1, source) {
        Ok(program) => program,
        Err(problems) => panic!("the program should compile: {problems}"),
    }
}

/// The problems of a program that must not compile, as `test`.
pub(super) fn problems(source: &str) -> Vec<Problem> {
    problems_as("test", source)
}

pub(super) fn problems_as(id: &str, source: &str) -> Vec<Problem> {
    match compile(&ProgramId::parse(id).unwrap(), 1, source) {
        Ok(_) => panic!("the program should not compile:\n{source}"),
        Err(problems) => problems.0,
    }
}

/// One user walking through one program: the cursor and what it needs from outside. Time stands
/// still unless a test moves it.
pub(super) struct Run {
    pub program: Program,
    pub user: UserId,
    pub timezone: TimeZone,
    pub now: Timestamp,
    pub enrolment: Option<Enrolment>,
}

impl Run {
    /// A user in Berlin at [`now`], not enrolled yet.
    pub fn new(source: &str) -> Self {
        Self::of(program(source))
    }

    pub fn of(program: Program) -> Self {
        Self { program, user: UserId::parse("ana").unwrap(), timezone: berlin(), now: now(), enrolment: None }
    }

    pub fn start(&mut self) -> Vec<Output> {
        let ctx = Context { program: &self.program, user: &self.user, timezone: &self.timezone, now: self.now };
        let (enrolment, out) = Enrolment::start(&ctx);
        self.enrolment = Some(enrolment);
        out
    }

    /// A user message.
    pub fn text(&mut self, text: &str) -> Vec<Output> {
        let ctx = Context { program: &self.program, user: &self.user, timezone: &self.timezone, now: self.now };
        self.enrolment.as_mut().expect("enrolled").on_user_text(&ctx, text)
    }

    /// The current step's timer falls due now.
    pub fn timer(&mut self) -> Vec<Output> {
        let ctx = Context { program: &self.program, user: &self.user, timezone: &self.timezone, now: self.now };
        self.enrolment.as_mut().expect("enrolled").on_timer(&ctx)
    }

    pub fn reply_finished(&mut self) -> Vec<Output> {
        let ctx = Context { program: &self.program, user: &self.user, timezone: &self.timezone, now: self.now };
        self.enrolment.as_mut().expect("enrolled").on_reply_finished(&ctx)
    }

    pub fn released(&mut self) -> Vec<Output> {
        let ctx = Context { program: &self.program, user: &self.user, timezone: &self.timezone, now: self.now };
        self.enrolment.as_mut().expect("enrolled").on_released(&ctx)
    }

    pub fn enrolment(&self) -> &Enrolment {
        self.enrolment.as_ref().expect("enrolled")
    }

    /// The id of the step the user is at.
    pub fn step(&self) -> &str {
        self.enrolment().step.as_str()
    }

    /// What the user saved under `name`, as JSON.
    pub fn var(&self, name: &str) -> Option<&serde_json::Value> {
        self.enrolment().vars.get(name)
    }
}

/// The texts said to the user, in order.
pub(super) fn said(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Say { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// The ids of the steps entered, in order.
pub(super) fn entered(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Entered { step, .. } => Some(step.as_str().to_owned()),
            _ => None,
        })
        .collect()
}

/// When the timers armed by these outputs fall due.
pub(super) fn timers(outputs: &[Output]) -> Vec<Timestamp> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Timer { due } => Some(*due),
            _ => None,
        })
        .collect()
}

pub(super) fn say(text: &str) -> Output {
    Output::Say { text: text.to_owned(), choices: Vec::new(), origin: Origin::Program }
}

pub(super) fn entered_step(step: &str, kind: &'static str) -> Output {
    Output::Entered { step: crate::ids::StepId::parse(step).unwrap(), kind }
}

pub(super) fn left(step: &str) -> Output {
    Output::Left { step: crate::ids::StepId::parse(step).unwrap() }
}
