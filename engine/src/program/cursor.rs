//! Walking one user through one program version: pure transitions on user text, due timers and
//! finished replies, returning [`Output`]s the conversation turns into messages, nudges and live
//! events.
//!
//! Stated rules:
//! - A question answered invalidly is asked again (with its `retry` text) until `attempts` invalid
//!   answers; then the program goes to `on_fail`, or to `next` with the variable left unset.
//! - A branch condition that fails at run time (an unset variable, a type that user data broke)
//!   takes the branch's `on_error` target (its `else` by default) and is reported as an output.
//! - A chat `until` condition that fails at run time counts as "not yet" and is reported.
//! - While a step waits for the clock the user may chat with the twin; the timer still fires.

use crate::ids::{StepId, UserId};
use crate::message::{Choice, Origin};
use crate::nudge::{DurationSpec, TimeZone, local_datetime, next_local_time};
use crate::time::Timestamp;

use super::condition::{self, Value, ValueScope};
use super::enrolment::{Enrolment, Phase};
use super::model::{Expect, Program, Step, StepKind, Timer};
use super::template::Template;

/// What the cursor needs from outside: the program version, who the user is, their time zone, now.
pub struct Context<'a> {
    pub program: &'a Program,
    pub user: &'a UserId,
    pub timezone: &'a TimeZone,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A durable message to the user.
    Say {
        text: String,
        choices: Vec<Choice>,
        origin: Origin,
    },
    /// Arm a timer for the current step entry.
    Timer {
        due: Timestamp,
    },
    /// Timers of the step being left are obsolete.
    CancelTimers,
    /// Ask the twin to answer the user's last message, toward the step's goal if there is one.
    Reply {
        goal: Option<String>,
    },
    Entered {
        step: StepId,
        kind: &'static str,
    },
    Left {
        step: StepId,
    },
    AnswerInvalid {
        step: StepId,
        attempts: u32,
        gave_up: bool,
    },
    ConditionFailed {
        step: StepId,
        error: String,
    },
    HandoffRequested {
        step: StepId,
    },
    /// The user told us their time zone.
    Timezone(String),
    Finished,
}

/// Longest answer text kept in the enrolment's variables, in bytes; longer answers are cut there.
pub const MAX_ANSWER_BYTES: usize = 1024;

/// Longest chain of steps one event may run through; validation already refuses loops that do not
/// wait, this only bounds the damage of a bug.
const MAX_TRANSITIONS: usize = 1_000;

impl Enrolment {
    /// Enrols the user and runs the program up to its first step that waits.
    pub fn start(ctx: &Context<'_>) -> (Self, Vec<Output>) {
        let first = ctx.program.first();
        let mut enrolment = Enrolment {
            program: ctx.program.id.clone(),
            version: ctx.program.version,
            step: first.id.clone(),
            entry: 0,
            phase: Phase::Answer,
            enrolled_at: ctx.now,
            entered_at: ctx.now,
            attempts: 0,
            turns: 0,
            vars: Default::default(),
            answers: Default::default(),
            handling: None,
        };
        let mut out = Vec::new();
        enrolment.enter(ctx, first.index, &mut out);
        (enrolment, out)
    }

    pub fn on_user_text(&mut self, ctx: &Context<'_>, text: &str) -> Vec<Output> {
        self.handling = Some(text.to_owned());
        let entry = self.entry;
        let mut out = self.user_text(ctx, text);
        self.handling = None;
        // The message moved the user into a chat step and nothing answered it (no program text):
        // the twin does, toward the step's goal, rather than leave the user unanswered. It is the
        // answer to the previous step, not one of the chat's turns.
        let answered = out.iter().any(|o| matches!(o, Output::Say { .. } | Output::Reply { .. }));
        if self.entry != entry
            && self.phase == Phase::Chat
            && !answered
            && let Some(StepKind::Chat { goal, .. }) = ctx.program.step(&self.step).map(|s| &s.kind)
        {
            out.push(Output::Reply { goal: Some(goal.clone()) });
        }
        out
    }

    fn user_text(&mut self, ctx: &Context<'_>, text: &str) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(step) = ctx.program.step(&self.step) else { return out };
        match (self.phase, &step.kind) {
            (Phase::Answer, StepKind::Question { expect, save_as, retry, attempts, on_fail, text: ask }) => {
                match validate(expect, text) {
                    Some(answer) => {
                        // A new time zone applies at once: to the steps this answer runs into.
                        let timezone = match (expect, &answer) {
                            (Expect::Timezone, Value::Text(name)) => {
                                out.push(Output::Timezone(name.clone()));
                                name.parse::<TimeZone>().ok()
                            }
                            _ => None,
                        };
                        self.record_answer(step, save_as.as_deref(), answer);
                        match &timezone {
                            Some(timezone) => {
                                let ctx = Context { program: ctx.program, user: ctx.user, timezone, now: ctx.now };
                                self.advance(&ctx, step, step.next, &mut out);
                            }
                            None => self.advance(ctx, step, step.next, &mut out),
                        }
                    }
                    None => {
                        self.attempts += 1;
                        let gave_up = self.attempts >= *attempts;
                        out.push(Output::AnswerInvalid { step: step.id.clone(), attempts: self.attempts, gave_up });
                        if gave_up {
                            self.advance(ctx, step, on_fail.or(step.next), &mut out);
                        } else {
                            let again = format!("{} {}", self.render(ctx, retry), self.render(ctx, ask));
                            out.push(Output::Say { text: again, choices: choices_of(expect), origin: Origin::Program });
                        }
                    }
                }
            }
            (Phase::Answer, StepKind::Message { choices, .. }) => {
                let picked = match_choice(choices, text).map_or_else(|| text.trim().to_owned(), |c| c.value.clone());
                self.record_answer(step, None, Value::Text(picked));
                self.advance(ctx, step, step.next, &mut out);
            }
            (Phase::CheckIn, StepKind::Task { .. }) => {
                self.record_answer(step, None, Value::Text(text.trim().to_owned()));
                self.advance(ctx, step, step.next, &mut out);
            }
            (Phase::Chat, StepKind::Chat { goal, until, keywords, .. }) => {
                self.turns += 1;
                let lowered = text.to_lowercase();
                let said_keyword = keywords.iter().any(|k| contains_phrase(&lowered, k));
                let condition_met = match until {
                    Some(until) => match condition::eval(until, &Scope { enrolment: self, ctx }) {
                        Ok(Value::Bool(met)) => met,
                        Ok(other) => {
                            let error = format!("`until` gave {} instead of true or false", type_name(&other));
                            out.push(Output::ConditionFailed { step: step.id.clone(), error });
                            false
                        }
                        Err(e) => {
                            out.push(Output::ConditionFailed { step: step.id.clone(), error: e.to_string() });
                            false
                        }
                    },
                    None => false,
                };
                if said_keyword || condition_met {
                    self.advance(ctx, step, step.next, &mut out);
                } else {
                    out.push(Output::Reply { goal: Some(goal.clone()) });
                }
            }
            // The twin is silent while a human is asked for.
            (Phase::Handoff, _) => {}
            // Waiting for the clock (or a state this version no longer explains): chat freely.
            _ => out.push(Output::Reply { goal: None }),
        }
        out
    }

    /// The current step's timer fell due (the caller checked it belongs to this step entry).
    pub fn on_timer(&mut self, ctx: &Context<'_>) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(step) = ctx.program.step(&self.step) else { return out };
        match (&step.kind, self.phase) {
            (StepKind::Task { check_in_text, .. }, Phase::Clock) => {
                out.push(Output::Say {
                    text: self.render(ctx, check_in_text),
                    choices: Vec::new(),
                    origin: Origin::Nudge,
                });
                self.phase = Phase::CheckIn;
            }
            (StepKind::Wait { .. }, Phase::Clock) | (StepKind::Handoff { .. }, Phase::Handoff) => {
                self.advance(ctx, step, step.next, &mut out);
            }
            _ => {}
        }
        out
    }

    /// The twin finished a reply: a chat step that used up its turns moves on.
    pub fn on_reply_finished(&mut self, ctx: &Context<'_>) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(step) = ctx.program.step(&self.step) else { return out };
        if let (Phase::Chat, StepKind::Chat { max_turns: Some(max), .. }) = (self.phase, &step.kind)
            && self.turns >= *max
        {
            self.advance(ctx, step, step.next, &mut out);
        }
        out
    }

    /// A human released a handed-off conversation: the program goes on.
    pub fn on_released(&mut self, ctx: &Context<'_>) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(step) = ctx.program.step(&self.step) else { return out };
        if self.phase == Phase::Handoff {
            self.advance(ctx, step, step.next, &mut out);
        }
        out
    }

    fn record_answer(&mut self, step: &Step, save_as: Option<&str>, answer: Value) {
        // The full text is in the conversation's messages; the state keeps what conditions need.
        let answer = match answer {
            Value::Text(mut text) if text.len() > MAX_ANSWER_BYTES => {
                let mut end = MAX_ANSWER_BYTES;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                Value::Text(text)
            }
            other => other,
        };
        let json = answer.to_json();
        if let Some(name) = save_as {
            self.vars.insert(name.to_owned(), json.clone());
        }
        self.answers.insert(step.id.clone(), json);
    }

    fn advance(&mut self, ctx: &Context<'_>, from: &Step, to: Option<usize>, out: &mut Vec<Output>) {
        out.push(Output::Left { step: from.id.clone() });
        if matches!(from.kind, StepKind::Task { .. } | StepKind::Wait { .. } | StepKind::Handoff { .. }) {
            out.push(Output::CancelTimers);
        }
        match to {
            Some(index) => self.enter(ctx, index, out),
            None => out.push(Output::Finished),
        }
    }

    /// Enters a step and runs on through steps that do not wait.
    fn enter(&mut self, ctx: &Context<'_>, mut index: usize, out: &mut Vec<Output>) {
        for _ in 0..MAX_TRANSITIONS {
            let step = ctx.program.at(index);
            self.step = step.id.clone();
            self.entry += 1;
            self.entered_at = ctx.now;
            self.attempts = 0;
            self.turns = 0;
            out.push(Output::Entered { step: step.id.clone(), kind: step.kind.name() });
            let next = match &step.kind {
                StepKind::Message { text, choices } => {
                    out.push(Output::Say {
                        text: self.render(ctx, text),
                        choices: choices.clone(),
                        origin: Origin::Program,
                    });
                    if !choices.is_empty() {
                        self.phase = Phase::Answer;
                        return;
                    }
                    step.next
                }
                StepKind::Question { text, expect, .. } => {
                    out.push(Output::Say {
                        text: self.render(ctx, text),
                        choices: choices_of(expect),
                        origin: Origin::Program,
                    });
                    self.phase = Phase::Answer;
                    return;
                }
                StepKind::Task { text, check_in, .. } => {
                    out.push(Output::Say {
                        text: self.render(ctx, text),
                        choices: Vec::new(),
                        origin: Origin::Program,
                    });
                    out.push(Output::Timer { due: due(ctx, *check_in) });
                    self.phase = Phase::Clock;
                    return;
                }
                StepKind::Wait { timer } => {
                    out.push(Output::Timer { due: due(ctx, *timer) });
                    self.phase = Phase::Clock;
                    return;
                }
                StepKind::Chat { .. } => {
                    self.phase = Phase::Chat;
                    return;
                }
                StepKind::Handoff { text, timeout } => {
                    out.push(Output::Say {
                        text: self.render(ctx, text),
                        choices: Vec::new(),
                        origin: Origin::Program,
                    });
                    out.push(Output::HandoffRequested { step: step.id.clone() });
                    if let Some(timeout) = timeout {
                        out.push(Output::Timer { due: due(ctx, *timeout) });
                    }
                    self.phase = Phase::Handoff;
                    return;
                }
                StepKind::End { text } => {
                    if let Some(text) = text {
                        out.push(Output::Say {
                            text: self.render(ctx, text),
                            choices: Vec::new(),
                            origin: Origin::Program,
                        });
                    }
                    out.push(Output::Left { step: step.id.clone() });
                    out.push(Output::Finished);
                    return;
                }
                StepKind::Branch { arms, otherwise, on_error } => {
                    Some(self.choose(ctx, step, arms, *otherwise, *on_error, out))
                }
            };
            out.push(Output::Left { step: step.id.clone() });
            match next {
                Some(next) => index = next,
                None => {
                    out.push(Output::Finished);
                    return;
                }
            }
        }
        out.push(Output::ConditionFailed {
            step: self.step.clone(),
            error: format!("stopped after {MAX_TRANSITIONS} steps without waiting"),
        });
        out.push(Output::Finished);
    }

    fn choose(
        &self,
        ctx: &Context<'_>,
        step: &Step,
        arms: &[(condition::Expr, usize)],
        otherwise: usize,
        on_error: usize,
        out: &mut Vec<Output>,
    ) -> usize {
        let scope = Scope { enrolment: self, ctx };
        for (condition, target) in arms {
            match condition::eval(condition, &scope) {
                Ok(Value::Bool(true)) => return *target,
                Ok(Value::Bool(false)) => {}
                Ok(other) => {
                    let error = format!("`{condition}` gave {} instead of true or false", type_name(&other));
                    out.push(Output::ConditionFailed { step: step.id.clone(), error });
                    return on_error;
                }
                Err(e) => {
                    out.push(Output::ConditionFailed { step: step.id.clone(), error: format!("`{condition}`: {e}") });
                    return on_error;
                }
            }
        }
        otherwise
    }

    /// A text of this program with the enrolment's variables filled in.
    pub fn render(&self, ctx: &Context<'_>, template: &Template) -> String {
        let scope = Scope { enrolment: self, ctx };
        template.render(|name| scope.variable(name).map(|v| display(ctx, &v)))
    }
}

fn due(ctx: &Context<'_>, timer: Timer) -> Timestamp {
    match timer {
        Timer::After { ms } => ctx.now.plus_millis(ms),
        Timer::At(at) => next_local_time(*ctx.timezone, ctx.now, at),
    }
}

/// Variables as conditions and texts see them.
struct Scope<'a> {
    enrolment: &'a Enrolment,
    ctx: &'a Context<'a>,
}

impl ValueScope for Scope<'_> {
    fn variable(&self, name: &str) -> Option<Value> {
        Some(match name {
            "user.id" => Value::Text(self.ctx.user.as_str().to_owned()),
            "user.timezone" => Value::Text(self.ctx.timezone.name().to_owned()),
            "enrolled_at" => Value::Time(self.enrolment.enrolled_at),
            "step_entered_at" => Value::Time(self.enrolment.entered_at),
            "last_message" => Value::Text(self.enrolment.handling.clone().unwrap_or_default()),
            "turns" => Value::Number(f64::from(self.enrolment.turns)),
            _ => return self.enrolment.vars.get(name).and_then(|json| Value::from_json(json).ok()),
        })
    }

    fn answer(&self, step: &str) -> Option<Value> {
        let step = StepId::parse(step).ok()?;
        self.enrolment.answers.get(&step).and_then(|json| Value::from_json(json).ok())
    }

    fn now(&self) -> Timestamp {
        self.ctx.now
    }
}

/// How a value reads inside a message: times in the user's time zone, durations as written.
fn display(ctx: &Context<'_>, value: &Value) -> String {
    match value {
        Value::Text(text) => text.clone(),
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
        Value::Number(n) => format!("{n}"),
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        Value::List(items) => items.iter().map(|v| display(ctx, v)).collect::<Vec<_>>().join(", "),
        Value::Time(t) => local_datetime(*ctx.timezone, *t).format("%Y-%m-%d %H:%M").to_string(),
        Value::Duration(ms) => DurationSpec::from_millis(*ms).to_string(),
    }
}

fn type_name(value: &Value) -> String {
    condition::Type::of(value).map_or_else(|| "a list of mixed values".to_owned(), |t| format!("a value of type {t}"))
}

fn choices_of(expect: &Expect) -> Vec<Choice> {
    match expect {
        Expect::Choice(choices) => choices.clone(),
        _ => Vec::new(),
    }
}

/// A pick by value, by label (both ignoring case) or by its number in the list (1-based).
fn match_choice<'c>(choices: &'c [Choice], text: &str) -> Option<&'c Choice> {
    let text = text.trim().trim_end_matches(['.', '!']);
    let lowered = text.to_lowercase();
    choices
        .iter()
        .find(|c| c.value.to_lowercase() == lowered || c.label.to_lowercase() == lowered)
        .or_else(|| text.parse::<usize>().ok().and_then(|n| n.checked_sub(1)).and_then(|i| choices.get(i)))
}

pub(super) fn contains_phrase(lowered: &str, phrase: &str) -> bool {
    lowered.match_indices(phrase).any(|(at, _)| {
        let before = lowered[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = lowered[at + phrase.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}

/// Checks an answer against what the question expects: the value to store, or `None` when the
/// answer is not valid (the question is asked again).
pub fn validate(expect: &Expect, text: &str) -> Option<Value> {
    let trimmed = text.trim();
    match expect {
        Expect::Text => (!trimmed.is_empty()).then(|| Value::Text(trimmed.to_owned())),
        Expect::Choice(choices) => match_choice(choices, trimmed).map(|c| Value::Text(c.value.clone())),
        Expect::YesNo => {
            let word = trimmed.trim_end_matches(['.', '!']).to_lowercase();
            match word.as_str() {
                "yes" | "y" | "yeah" | "yep" | "sure" | "ok" | "okay" | "true" => Some(Value::Bool(true)),
                "no" | "n" | "nope" | "nah" | "false" | "not really" => Some(Value::Bool(false)),
                _ => None,
            }
        }
        Expect::Number { min, max } => {
            // The first number in the answer: "6", "6,5", "about 3 hours", "2.5h".
            let n: f64 = trimmed.split_whitespace().find_map(|word| {
                let word = word.trim_matches(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',' || c == '-'));
                word.trim_end_matches(['.', ',']).replace(',', ".").parse().ok()
            })?;
            let in_range = n.is_finite() && min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m);
            in_range.then_some(Value::Number(n))
        }
        Expect::Timezone => trimmed.parse::<TimeZone>().ok().map(|tz| Value::Text(tz.name().to_owned())),
    }
}
