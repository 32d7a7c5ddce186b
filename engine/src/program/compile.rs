//! From a program file to a runnable [`Program`], reporting every problem at once, each naming the
//! step it is in: duplicate ids, dangling targets, unreachable steps, cycles that could spin
//! without waiting for the user or the clock, bad conditions and undefined variables.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::ids::{ProgramId, StepId};
use crate::message::Choice;
use crate::nudge::{DurationSpec, LocalTime};

use super::condition::{self, Type, TypeScope};
use super::model::{Expect, Inactivity, Program, Step, StepKind, Timer, Triggers};
use super::source::{ChoiceFile, EndFile, ProgramFile, StepFile};
use super::template::Template;

/// Most steps a program may have; a hand-written program has tens.
pub const MAX_STEPS: usize = 500;
/// How long a handoff waits for a human when its step gives no `timeout`.
pub const DEFAULT_HANDOFF_TIMEOUT_MS: i64 = 24 * 3_600_000;
/// Largest program file accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;

/// One thing wrong with a program, naming the step when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub step: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step `{step}`: {}", self.message),
            None => write!(f, "program: {}", self.message),
        }
    }
}

/// Every problem of a program that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the program has {} problem(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Problems(pub Vec<Problem>);

/// Variables every program may use, with their types.
pub const BUILTIN_VARIABLES: &[(&str, Type)] = &[
    ("user.id", Type::Text),
    ("user.timezone", Type::Text),
    ("enrolled_at", Type::Time),
    ("step_entered_at", Type::Time),
    ("last_message", Type::Text),
    ("turns", Type::Number),
];

/// Parses and validates a program's YAML (or JSON) source. `id` is the program's id (its file
/// name); `version` the version it is stored as.
pub fn compile(id: &ProgramId, version: u32, source: &str) -> Result<Program, Problems> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(Problems(vec![Problem {
            step: None,
            message: format!("the file is larger than {} KiB", MAX_SOURCE_BYTES / 1024),
        }]));
    }
    // YAML 1.2 booleans only (`true`/`false`): an unquoted `yes`/`no`/`on`/`off` choice stays the
    // word it is, and `007` stays text.
    let options = serde_saphyr::options! { strict_booleans: true, leading_zero_numbers_as_strings: true };
    let file: ProgramFile = serde_saphyr::from_str_with_options(source, options)
        .map_err(|e| Problems(vec![Problem { step: None, message: format!("not a valid program file: {e}") }]))?;
    Compiler::new(id, version).run(file)
}

struct Compiler {
    id: ProgramId,
    version: u32,
    problems: Vec<Problem>,
    /// Targets of branch arms whose condition did not compile, by step id: still edges of the
    /// graph, so their targets are not reported as unreachable on top of the condition's problem.
    broken_arms: HashMap<String, Vec<usize>>,
}

struct Declared {
    /// Types of the variables questions save into, and of the answers by step.
    variables: BTreeMap<String, Type>,
    answers: BTreeMap<String, Type>,
}

impl TypeScope for Declared {
    fn variable(&self, name: &str) -> Option<Type> {
        BUILTIN_VARIABLES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.clone())
            .or_else(|| self.variables.get(name).cloned())
    }

    fn answer(&self, step: &str) -> Option<Type> {
        self.answers.get(step).cloned()
    }
}

impl Compiler {
    fn new(id: &ProgramId, version: u32) -> Self {
        Self { id: id.clone(), version, problems: Vec::new(), broken_arms: HashMap::new() }
    }

    fn problem(&mut self, step: Option<&str>, message: impl Into<String>) {
        self.problems.push(Problem { step: step.map(str::to_owned), message: message.into() });
    }

    fn run(mut self, file: ProgramFile) -> Result<Program, Problems> {
        if let Some(declared) = &file.id
            && declared != self.id.as_str()
        {
            let message = format!("`id: {declared}` does not match the file name `{}`", self.id);
            self.problem(None, message);
        }
        if file.steps.is_empty() {
            self.problem(None, "a program needs at least one step");
            return Err(Problems(self.problems));
        }
        if file.steps.len() > MAX_STEPS {
            self.problem(None, format!("a program may have at most {MAX_STEPS} steps"));
            return Err(Problems(self.problems));
        }

        // Ids first: every later check refers to steps by id.
        let mut ids: Vec<String> = Vec::with_capacity(file.steps.len());
        let mut index: HashMap<StepId, usize> = HashMap::new();
        for (i, step) in file.steps.iter().enumerate() {
            let raw = step.id.clone().unwrap_or_else(|| format!("#{}", i + 1));
            match StepId::parse(&raw) {
                Err(e) => self.problem(Some(&raw), format!("the id {e}")),
                Ok(id) => {
                    if step.id.is_none() {
                        self.problem(Some(&raw), "has no `id`");
                    } else if index.insert(id, i).is_some() {
                        self.problem(Some(&raw), "the id is used by more than one step");
                    }
                }
            }
            ids.push(raw);
        }

        let declared = self.declarations(&file.steps, &ids);
        let mut steps = Vec::with_capacity(file.steps.len());
        for (i, raw) in file.steps.iter().enumerate() {
            if let Some(kind) = self.step_kind(raw, &ids[i], &index, &declared) {
                let next = match &raw.next {
                    Some(target) => self.target(&ids[i], "next", target, &index),
                    None => (i + 1 < file.steps.len()).then_some(i + 1),
                };
                let id = StepId::parse(&ids[i]).unwrap_or_else(|_| StepId::parse("invalid").expect("a valid id"));
                steps.push(Step { id, index: i, kind, next });
            }
        }

        let triggers = self.triggers(&file);
        let inactivity = file.inactivity.as_ref().and_then(|inactivity| {
            let after = self.duration(None, "inactivity.after", &inactivity.after)?;
            let text = self.template(None, &inactivity.text, &declared)?;
            Some(Inactivity { after_ms: after, text })
        });

        // The graph can be checked whenever every step compiled, alongside other problems.
        if steps.len() == file.steps.len() {
            self.check_graph(&steps);
        }
        if !self.problems.is_empty() {
            let mut seen = std::collections::HashSet::new();
            self.problems.retain(|p| seen.insert(p.to_string()));
            return Err(Problems(self.problems));
        }
        Ok(Program {
            id: self.id,
            version: self.version,
            title: file.title.unwrap_or_default(),
            triggers,
            inactivity,
            steps,
            index,
        })
    }

    /// The variables questions save into and the answer type of each step, so conditions anywhere
    /// in the program may use them.
    fn declarations(&mut self, steps: &[StepFile], ids: &[String]) -> Declared {
        let mut declared = Declared { variables: BTreeMap::new(), answers: BTreeMap::new() };
        for (raw, id) in steps.iter().zip(ids) {
            let answer = if raw.question.is_some() {
                Some(expect_type(raw))
            } else if raw.message.is_some() && raw.choices.is_some() || raw.task.is_some() {
                Some(Type::Text)
            } else {
                None
            };
            let Some(answer) = answer else { continue };
            declared.answers.insert(id.clone(), answer.clone());
            if let Some(name) = &raw.save_as {
                if !is_variable_name(name) {
                    self.problem(Some(id), format!("`save_as: {name}` is not a variable name (letters, digits and `_`, not starting with a digit, not a keyword)"));
                    continue;
                }
                if BUILTIN_VARIABLES.iter().any(|(n, _)| n == name) {
                    self.problem(Some(id), format!("`save_as: {name}` would overwrite a built-in variable"));
                    continue;
                }
                match declared.variables.get(name) {
                    Some(existing) if *existing != answer => self.problem(
                        Some(id),
                        format!("`save_as: {name}` stores a {answer} but another step stores a {existing} there"),
                    ),
                    _ => {
                        declared.variables.insert(name.clone(), answer);
                    }
                }
            }
        }
        declared
    }

    fn step_kind(
        &mut self,
        raw: &StepFile,
        id: &str,
        index: &HashMap<StepId, usize>,
        declared: &Declared,
    ) -> Option<StepKind> {
        let kinds: Vec<&str> = [
            ("message", raw.message.is_some()),
            ("question", raw.question.is_some()),
            ("task", raw.task.is_some()),
            ("wait", raw.wait.is_some()),
            ("branch", raw.branch.is_some()),
            ("chat", raw.chat.is_some()),
            ("handoff", raw.handoff.is_some()),
            ("end", raw.end.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        let kind = match kinds.as_slice() {
            [one] => *one,
            [] => {
                self.problem(
                    Some(id),
                    "has no kind: give one of message, question, task, wait, branch, chat, handoff, end",
                );
                return None;
            }
            many => {
                self.problem(Some(id), format!("has more than one kind: {}", many.join(", ")));
                return None;
            }
        };
        self.unused_fields(raw, id, kind);
        let step = match kind {
            "message" => {
                let text = self.template(Some(id), raw.message.as_deref().unwrap_or_default(), declared);
                let choices = self.choices(id, raw.choices.as_deref().unwrap_or_default());
                StepKind::Message { text: text?, choices }
            }
            "question" => {
                let text = self.template(Some(id), raw.question.as_deref().unwrap_or_default(), declared);
                // Every field is checked before giving up on the step, so all its problems show.
                let expect = self.expect(raw, id);
                let retry_raw = match (&raw.retry, &expect) {
                    (Some(retry), _) => retry.clone(),
                    (None, Some(expect)) => default_retry(expect).to_owned(),
                    (None, None) => String::new(),
                };
                let retry = self.template(Some(id), &retry_raw, declared);
                let on_fail = raw.on_fail.as_ref().and_then(|t| self.target(id, "on_fail", t, index));
                if raw.attempts == Some(0) {
                    self.problem(Some(id), "`attempts` must be at least 1");
                }
                let expect = expect?;
                StepKind::Question {
                    text: text?,
                    expect,
                    save_as: raw.save_as.clone(),
                    retry: retry?,
                    attempts: raw.attempts.unwrap_or(2),
                    on_fail,
                }
            }
            "task" => {
                let text = self.template(Some(id), raw.task.as_deref().unwrap_or_default(), declared);
                let check_in = match &raw.check_in {
                    Some(timer) => self.timer(id, "check_in", timer),
                    None => {
                        self.problem(
                            Some(id),
                            "a task needs `check_in` (a duration like `1d` or a time like `\"09:00\"`)",
                        );
                        None
                    }
                };
                let check_in_text = self.template(
                    Some(id),
                    raw.check_in_text.as_deref().unwrap_or("How did it go with the task?"),
                    declared,
                );
                StepKind::Task { text: text?, check_in: check_in?, check_in_text: check_in_text? }
            }
            "wait" => StepKind::Wait { timer: self.timer(id, "wait", raw.wait.as_deref().unwrap_or_default())? },
            "branch" => {
                let arms_raw = raw.branch.clone().unwrap_or_default();
                let mut arms = Vec::with_capacity(arms_raw.len());
                for arm in &arms_raw {
                    let target = self.target(id, "goto", &arm.goto, index);
                    let condition = self.condition(id, &arm.condition, declared);
                    match (target, condition) {
                        (Some(target), Some(condition)) => arms.push((condition, target)),
                        (Some(target), None) => self.broken_arms.entry(id.to_owned()).or_default().push(target),
                        _ => {}
                    }
                }
                if arms_raw.is_empty() {
                    self.problem(Some(id), "a branch needs at least one `if`/`goto` arm");
                }
                let otherwise = match &raw.otherwise {
                    Some(target) => self.target(id, "else", target, index),
                    None => {
                        self.problem(Some(id), "a branch needs `else`: where to go when no condition holds");
                        None
                    }
                };
                let on_error = raw.on_error.as_ref().map(|t| self.target(id, "on_error", t, index));
                let otherwise = otherwise?;
                let on_error = on_error.unwrap_or(Some(otherwise))?;
                StepKind::Branch { arms, otherwise, on_error }
            }
            "chat" => {
                let until = raw.until.as_ref().and_then(|c| self.condition(id, c, declared));
                let keywords: Vec<String> =
                    raw.keywords.clone().unwrap_or_default().iter().map(|k| k.trim().to_lowercase()).collect();
                if keywords.iter().any(String::is_empty) {
                    self.problem(Some(id), "a chat keyword must not be blank");
                }
                if raw.until.is_none() && keywords.is_empty() && raw.max_turns.is_none() {
                    self.problem(Some(id), "a chat needs a way out: `until`, `keywords` or `max_turns`");
                }
                if raw.max_turns == Some(0) {
                    self.problem(Some(id), "`max_turns` must be at least 1");
                }
                StepKind::Chat { goal: raw.chat.clone().unwrap_or_default(), until, keywords, max_turns: raw.max_turns }
            }
            "handoff" => {
                let text = self.template(Some(id), raw.handoff.as_deref().unwrap_or_default(), declared);
                // A handoff nobody takes over must not silence the twin for good: without a
                // timeout it ends after a day (a human who takes it over ends it by releasing).
                let timeout = match &raw.timeout {
                    Some(t) => Some(self.timer(id, "timeout", t)?),
                    None => Some(Timer::After { ms: DEFAULT_HANDOFF_TIMEOUT_MS }),
                };
                StepKind::Handoff { text: text?, timeout }
            }
            _ => {
                let text = match &raw.end {
                    Some(EndFile::Text(text)) => Some(self.template(Some(id), text, declared)?),
                    Some(EndFile::Flag(false)) => {
                        self.problem(Some(id), "`end: false` ends nothing: write `end: true` or an end text");
                        None
                    }
                    _ => None,
                };
                StepKind::End { text }
            }
        };
        Some(step)
    }

    /// Fields that belong to another kind of step are mistakes worth naming.
    fn unused_fields(&mut self, raw: &StepFile, id: &str, kind: &str) {
        const ALL_BUT_BRANCH_AND_END: &[&str] = &["message", "question", "task", "wait", "chat", "handoff"];
        let fields: [(&str, bool, &[&str]); 17] = [
            ("next", raw.next.is_some(), ALL_BUT_BRANCH_AND_END),
            ("choices", raw.choices.is_some(), &["message", "question"]),
            ("expect", raw.expect.is_some(), &["question"]),
            ("min", raw.min.is_some(), &["question"]),
            ("max", raw.max.is_some(), &["question"]),
            ("save_as", raw.save_as.is_some(), &["question"]),
            ("retry", raw.retry.is_some(), &["question"]),
            ("attempts", raw.attempts.is_some(), &["question"]),
            ("on_fail", raw.on_fail.is_some(), &["question"]),
            ("check_in", raw.check_in.is_some(), &["task"]),
            ("check_in_text", raw.check_in_text.is_some(), &["task"]),
            ("else", raw.otherwise.is_some(), &["branch"]),
            ("on_error", raw.on_error.is_some(), &["branch"]),
            ("until", raw.until.is_some(), &["chat"]),
            ("keywords", raw.keywords.is_some(), &["chat"]),
            ("max_turns", raw.max_turns.is_some(), &["chat"]),
            ("timeout", raw.timeout.is_some(), &["handoff"]),
        ];
        for (field, present, kinds) in fields {
            if present && !kinds.contains(&kind) {
                self.problem(Some(id), format!("`{field}` does not apply to this step (its kind is `{kind}`)"));
            }
        }
    }

    fn target(&mut self, id: &str, field: &str, target: &str, index: &HashMap<StepId, usize>) -> Option<usize> {
        let found = StepId::parse(target).ok().and_then(|t| index.get(&t).copied());
        if found.is_none() {
            self.problem(Some(id), format!("`{field}: {target}` names no step of this program"));
        }
        found
    }

    fn template(&mut self, step: Option<&str>, raw: &str, declared: &Declared) -> Option<Template> {
        match Template::parse(raw) {
            Err(e) => {
                self.problem(step, format!("text: {e}"));
                None
            }
            Ok(template) => {
                let unknown: Vec<String> =
                    template.variables().filter(|v| declared.variable(v).is_none()).map(str::to_owned).collect();
                for name in unknown {
                    self.problem(step, format!("text uses `{{{{ {name} }}}}`, which no step defines"));
                }
                Some(template)
            }
        }
    }

    fn condition(&mut self, id: &str, raw: &str, declared: &Declared) -> Option<condition::Expr> {
        let expr = match condition::parse(raw) {
            Ok(expr) => expr,
            Err(e) => {
                self.problem(Some(id), format!("condition `{raw}`: {e}"));
                return None;
            }
        };
        match condition::check(&expr, declared) {
            Ok(Type::Bool) => Some(expr),
            Ok(other) => {
                self.problem(Some(id), format!("condition `{raw}` is a {other}, not a yes/no (bool) value"));
                None
            }
            Err(errors) => {
                for e in errors {
                    self.problem(Some(id), format!("condition `{raw}`: {e}"));
                }
                None
            }
        }
    }

    fn duration(&mut self, step: Option<&str>, field: &str, raw: &str) -> Option<i64> {
        match raw.parse::<DurationSpec>() {
            Ok(d) if d.millis() > 0 => Some(d.millis()),
            Ok(_) => {
                self.problem(step, format!("`{field}` must be longer than zero"));
                None
            }
            Err(e) => {
                self.problem(step, format!("`{field}: {raw}`: {e}"));
                None
            }
        }
    }

    fn timer(&mut self, id: &str, field: &str, raw: &str) -> Option<Timer> {
        if raw.contains(':') {
            match raw.parse::<LocalTime>() {
                Ok(at) => Some(Timer::At(at)),
                Err(e) => {
                    self.problem(Some(id), format!("`{field}: {raw}`: {e}"));
                    None
                }
            }
        } else {
            self.duration(Some(id), field, raw).map(|ms| Timer::After { ms })
        }
    }

    fn choices(&mut self, id: &str, raw: &[ChoiceFile]) -> Vec<Choice> {
        let choices: Vec<Choice> = raw
            .iter()
            .map(|c| match c {
                ChoiceFile::Plain(v) => Choice { value: v.text(), label: v.text() },
                ChoiceFile::Full { value, label } => Choice { value: value.text(), label: label.text() },
            })
            .collect();
        for (i, choice) in choices.iter().enumerate() {
            if choice.value.trim().is_empty() {
                self.problem(Some(id), "a choice has an empty value");
            }
            if choices[..i].iter().any(|c| c.value.to_lowercase() == choice.value.to_lowercase()) {
                self.problem(Some(id), format!("the choice `{}` is offered twice", choice.value));
            }
        }
        choices
    }

    fn expect(&mut self, raw: &StepFile, id: &str) -> Option<Expect> {
        let choices = raw.choices.as_deref().map(|c| self.choices(id, c));
        let expect = match (raw.expect.as_deref(), choices) {
            (None | Some("choice"), Some(choices)) if !choices.is_empty() => Expect::Choice(choices),
            (Some("choice"), _) => {
                self.problem(Some(id), "`expect: choice` needs `choices`");
                return None;
            }
            (_, Some(_)) => {
                self.problem(Some(id), "`choices` go with `expect: choice` (or no `expect`)");
                return None;
            }
            (None | Some("text"), None) => Expect::Text,
            (Some("number"), None) => Expect::Number { min: raw.min, max: raw.max },
            (Some("yes_no"), None) => Expect::YesNo,
            (Some("timezone"), None) => Expect::Timezone,
            (Some(other), None) => {
                self.problem(
                    Some(id),
                    format!("`expect: {other}` is not one of text, number, yes_no, choice, timezone"),
                );
                return None;
            }
        };
        if (raw.min.is_some() || raw.max.is_some()) && !matches!(expect, Expect::Number { .. }) {
            self.problem(Some(id), "`min`/`max` apply to `expect: number` only");
        }
        if let (Some(min), Some(max)) = (raw.min, raw.max)
            && min > max
        {
            self.problem(Some(id), format!("`min` ({min}) is larger than `max` ({max})"));
        }
        Some(expect)
    }

    fn triggers(&mut self, file: &ProgramFile) -> Triggers {
        let mut commands = Vec::new();
        for command in &file.triggers.commands {
            let command = command.trim().trim_start_matches('/').to_lowercase();
            let valid = !command.is_empty()
                && command.len() <= 64
                && command.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if valid {
                commands.push(command);
            } else {
                self.problem(None, format!("trigger command `{command}` may only use letters, digits, `_` and `-`"));
            }
        }
        let keywords =
            file.triggers.keywords.iter().map(|k| k.trim().to_lowercase()).filter(|k| !k.is_empty()).collect();
        Triggers { first_contact: file.triggers.first_contact, commands, keywords }
    }

    /// Unreachable steps, and cycles made only of steps that never wait (they would spin forever).
    fn check_graph(&mut self, steps: &[Step]) {
        let broken_arms = std::mem::take(&mut self.broken_arms);
        let edges = |step: &Step| -> Vec<usize> {
            let mut out: Vec<usize> = step.next.into_iter().collect();
            match &step.kind {
                StepKind::Branch { arms, otherwise, on_error } => {
                    out = arms.iter().map(|(_, t)| *t).collect();
                    out.push(*otherwise);
                    out.push(*on_error);
                }
                StepKind::Question { on_fail: Some(t), .. } => out.push(*t),
                StepKind::End { .. } => out.clear(),
                _ => {}
            }
            out.extend(broken_arms.get(step.id.as_str()).into_iter().flatten());
            out
        };

        let mut reached = vec![false; steps.len()];
        let mut stack = vec![0];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut reached[i], true) {
                continue;
            }
            stack.extend(edges(&steps[i]));
        }
        for step in steps.iter().filter(|s| !reached[s.index]) {
            self.problem(Some(step.id.as_str()), "is never reached from the first step");
        }

        // Depth-first search over the steps that do not wait; a back edge is a spinning cycle.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut marks = vec![Mark::New; steps.len()];
        for start in 0..steps.len() {
            if marks[start] != Mark::New || steps[start].kind.waits() {
                continue;
            }
            let mut path: Vec<(usize, Vec<usize>)> = vec![(start, edges(&steps[start]))];
            marks[start] = Mark::Open;
            while let Some((node, pending)) = path.last_mut() {
                let node = *node;
                match pending.pop() {
                    None => {
                        marks[node] = Mark::Done;
                        path.pop();
                    }
                    Some(next) if steps[next].kind.waits() => {}
                    Some(next) => match marks[next] {
                        Mark::Open => {
                            let from = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                            let cycle: Vec<&str> = path[from..].iter().map(|(n, _)| steps[*n].id.as_str()).collect();
                            let message = format!(
                                "the steps {} form a loop that never waits for the user or the clock",
                                cycle.join(" → ")
                            );
                            self.problem(Some(steps[next].id.as_str()), message);
                        }
                        Mark::New => {
                            marks[next] = Mark::Open;
                            path.push((next, edges(&steps[next])));
                        }
                        Mark::Done => {}
                    },
                }
            }
        }
    }
}

/// A name conditions can read: an identifier that is not a keyword of the condition language.
fn is_variable_name(name: &str) -> bool {
    const KEYWORDS: &[&str] = &["and", "or", "not", "in", "contains", "matches", "true", "false"];
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&name)
}

fn expect_type(raw: &StepFile) -> Type {
    match raw.expect.as_deref() {
        Some("number") => Type::Number,
        Some("yes_no") => Type::Bool,
        _ => Type::Text,
    }
}

fn default_retry(expect: &Expect) -> &'static str {
    match expect {
        Expect::Text => "Could you say that again?",
        Expect::Number { .. } => "Please answer with a number.",
        Expect::YesNo => "Please answer yes or no.",
        Expect::Choice(_) => "Please pick one of the options.",
        Expect::Timezone => "Please give your time zone like Europe/Berlin or America/New_York.",
    }
}
