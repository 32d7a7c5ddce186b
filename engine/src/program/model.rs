//! A validated program version: steps resolved to indices, conditions parsed and type-checked,
//! texts split into templates. Built only by [`super::compile`], so a `Program` is always runnable.

use std::collections::HashMap;

use crate::ids::{ProgramId, StepId};
use crate::message::Choice;
use crate::nudge::LocalTime;

use super::condition::Expr;
use super::template::Template;

#[derive(Debug, Clone)]
pub struct Program {
    pub id: ProgramId,
    pub version: u32,
    pub title: String,
    pub triggers: Triggers,
    pub inactivity: Option<Inactivity>,
    pub steps: Vec<Step>,
    pub(super) index: HashMap<StepId, usize>,
}

impl Program {
    pub fn step(&self, id: &StepId) -> Option<&Step> {
        self.index.get(id).map(|&i| &self.steps[i])
    }

    pub fn first(&self) -> &Step {
        // Invariant: compile refuses a program without steps.
        &self.steps[0]
    }

    pub fn at(&self, index: usize) -> &Step {
        &self.steps[index]
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Triggers {
    pub first_contact: bool,
    /// Lowercase, without the slash.
    pub commands: Vec<String>,
    /// Lowercase phrases.
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Inactivity {
    pub after_ms: i64,
    pub text: Template,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: StepId,
    pub index: usize,
    pub kind: StepKind,
    /// The step after this one; `None` ends the program.
    pub next: Option<usize>,
}

/// When a timer of a step falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    After {
        ms: i64,
    },
    /// The next time the user's wall clock shows this time.
    At(LocalTime),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expect {
    Text,
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    YesNo,
    Choice(Vec<Choice>),
    /// An IANA time zone name; also becomes the user's time zone for nudges.
    Timezone,
}

#[derive(Debug, Clone)]
pub enum StepKind {
    /// Says something; with choices it waits for a pick (any reply continues).
    Message {
        text: Template,
        choices: Vec<Choice>,
    },
    Question {
        text: Template,
        expect: Expect,
        save_as: Option<String>,
        retry: Template,
        attempts: u32,
        on_fail: Option<usize>,
    },
    /// Assigns something to do; checks in when the timer falls due and waits for the answer.
    Task {
        text: Template,
        check_in: Timer,
        check_in_text: Template,
    },
    Wait {
        timer: Timer,
    },
    Branch {
        arms: Vec<(Expr, usize)>,
        otherwise: usize,
        on_error: usize,
    },
    /// Free conversation with the twin toward `goal`, left on a condition, a keyword or after
    /// `max_turns` user messages.
    Chat {
        goal: String,
        until: Option<Expr>,
        keywords: Vec<String>,
        max_turns: Option<u32>,
    },
    /// Asks for the creator; the twin stays silent until a human releases the conversation or the
    /// timeout passes.
    Handoff {
        text: Template,
        timeout: Option<Timer>,
    },
    End {
        text: Option<Template>,
    },
}

impl StepKind {
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Message { .. } => "message",
            StepKind::Question { .. } => "question",
            StepKind::Task { .. } => "task",
            StepKind::Wait { .. } => "wait",
            StepKind::Branch { .. } => "branch",
            StepKind::Chat { .. } => "chat",
            StepKind::Handoff { .. } => "handoff",
            StepKind::End { .. } => "end",
        }
    }

    /// The step stops and waits for the user or the clock, so a cycle through it cannot spin.
    pub fn waits(&self) -> bool {
        match self {
            StepKind::Message { choices, .. } => !choices.is_empty(),
            StepKind::Branch { .. } => false,
            StepKind::End { .. } => true,
            _ => true,
        }
    }
}
