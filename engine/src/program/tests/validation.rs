//! `compile`: what a program file must get right, each problem named with its step, all at once.

use super::super::{Expect, MAX_SOURCE_BYTES, Problem, StepKind};
use super::{problems, problems_as, program};
use crate::ids::StepId;

/// Whether `problems` holds one about `step` whose message contains `fragment`.
fn has(problems: &[Problem], step: Option<&str>, fragment: &str) -> bool {
    problems.iter().any(|p| p.step.as_deref() == step && p.message.contains(fragment))
}

fn assert_has(problems: &[Problem], step: Option<&str>, fragment: &str) {
    assert!(
        has(problems, step, fragment),
        "expected a problem for {step:?} containing {fragment:?}, got:\n{}",
        problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn every_problem_of_a_program_is_reported_at_once_each_naming_its_step() {
    let source = r#"
steps:
  - id: hello
    message: "Hi {{ nickname }}"
  - id: hello
    message: again
  - message: no id here
  - id: nothing
  - id: both
    message: x
    question: y
  - id: pause
    wait: 2 days
    choices: [a, b]
  - id: score
    question: "From 1 to 5?"
    expect: number
    min: 5
    max: 1
    on_fail: nowhere
  - id: route
    branch:
      - if: 'score >'
        goto: hello
      - if: 'scroe > 1'
        goto: gone
    else: void
  - id: talk
    chat: Talk it through.
  - id: done
    end: false
"#;
    let found = problems(source);
    let expected: &[(&str, &str)] = &[
        ("hello", "text uses `{{ nickname }}`, which no step defines"),
        ("hello", "the id is used by more than one step"),
        ("#3", "has no `id`"),
        ("nothing", "has no kind"),
        ("both", "has more than one kind: message, question"),
        ("pause", "`choices` does not apply to this step (its kind is `wait`)"),
        ("pause", "`wait: 2 days`"),
        ("score", "`min` (5) is larger than `max` (1)"),
        ("score", "`on_fail: nowhere` names no step of this program"),
        ("route", "condition `score >`: expected"),
        ("route", "condition `scroe > 1`: unknown variable `scroe`"),
        ("route", "`goto: gone` names no step of this program"),
        ("route", "`else: void` names no step of this program"),
        ("talk", "a chat needs a way out"),
        ("done", "`end: false` ends nothing"),
    ];
    for (step, fragment) in expected {
        assert_has(&found, Some(step), fragment);
    }
    assert_eq!(found.len(), expected.len(), "no other problems: {found:#?}");
}

/// One faulty step (or file) per row: the step named and a part of the message.
#[test]
fn each_kind_of_mistake_is_reported_with_its_step() {
    let cases: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "duplicate ids",
            "steps:\n  - { id: a, message: x }\n  - { id: a, end: true }",
            Some("a"),
            "the id is used by more than one step",
        ),
        ("a step without id", "steps:\n  - { id: a, message: x }\n  - { end: true }", Some("#2"), "has no `id`"),
        ("an empty id", "steps:\n  - { id: '', end: true }", Some(""), "the id must not be empty"),
        ("no kind", "steps:\n  - { id: a, next: a }", Some("a"), "has no kind: give one of message, question"),
        ("two kinds", "steps:\n  - { id: a, wait: 1d, end: true }", Some("a"), "has more than one kind: wait, end"),
        (
            "choices on a wait",
            "steps:\n  - { id: a, wait: 1d, choices: [x] }",
            Some("a"),
            "`choices` does not apply to this step (its kind is `wait`)",
        ),
        (
            "save_as on a message",
            "steps:\n  - { id: a, message: x, save_as: y }",
            Some("a"),
            "`save_as` does not apply to this step (its kind is `message`)",
        ),
        (
            "timeout on a task",
            "steps:\n  - { id: a, task: x, check_in: 1d, timeout: 2d }",
            Some("a"),
            "`timeout` does not apply to this step (its kind is `task`)",
        ),
        (
            "max_turns on a question",
            "steps:\n  - { id: a, question: x, max_turns: 2 }",
            Some("a"),
            "`max_turns` does not apply to this step (its kind is `question`)",
        ),
        (
            "a dangling next",
            "steps:\n  - { id: a, message: x, next: nowhere }\n  - { id: b, end: true }",
            Some("a"),
            "`next: nowhere` names no step of this program",
        ),
        (
            "a dangling goto",
            "steps:\n  - id: a\n    branch: [{ if: 'true', goto: nowhere }]\n    else: b\n  - { id: b, end: true }",
            Some("a"),
            "`goto: nowhere` names no step of this program",
        ),
        (
            "a dangling else",
            "steps:\n  - id: a\n    branch: [{ if: 'true', goto: b }]\n    else: nowhere\n  - { id: b, end: true }",
            Some("a"),
            "`else: nowhere` names no step of this program",
        ),
        (
            "a dangling on_fail",
            "steps:\n  - { id: a, question: x, on_fail: nowhere }",
            Some("a"),
            "`on_fail: nowhere` names no step of this program",
        ),
        (
            "a dangling on_error",
            "steps:\n  - id: a\n    branch: [{ if: 'true', goto: b }]\n    else: b\n    on_error: nowhere\n  - { id: b, end: true }",
            Some("a"),
            "`on_error: nowhere` names no step of this program",
        ),
        (
            "a branch without else",
            "steps:\n  - id: a\n    branch: [{ if: 'true', goto: b }]\n  - { id: b, end: true }",
            Some("a"),
            "a branch needs `else`",
        ),
        (
            "a branch without arms",
            "steps:\n  - { id: a, branch: [], else: b }\n  - { id: b, end: true }",
            Some("a"),
            "a branch needs at least one `if`/`goto` arm",
        ),
        (
            "an unreachable step",
            "steps:\n  - { id: a, end: true }\n  - { id: island, message: x }",
            Some("island"),
            "is never reached from the first step",
        ),
        (
            "a condition with a syntax error",
            "steps:\n  - id: a\n    branch: [{ if: 'a = 1', goto: b }]\n    else: b\n  - { id: b, end: true }",
            Some("a"),
            "condition `a = 1`: unexpected character `=` (use `==` to compare) at column 3",
        ),
        (
            "a condition with an unknown variable",
            "steps:\n  - id: a\n    branch: [{ if: 'mood == \"ok\"', goto: b }]\n    else: b\n  - { id: b, end: true }",
            Some("a"),
            "condition `mood == \"ok\"`: unknown variable `mood`",
        ),
        (
            "a condition with a type error",
            "steps:\n  - { id: g, question: x, save_as: goal }\n  - id: a\n    branch: [{ if: 'goal > 3', goto: b }]\n    else: b\n  - { id: b, end: true }",
            Some("a"),
            "condition `goal > 3`: `>` cannot be applied to text and number",
        ),
        (
            "a condition that is not a yes/no",
            "steps:\n  - { id: n, question: x, expect: number, save_as: n }\n  - id: a\n    branch: [{ if: 'n + 1', goto: b }]\n    else: b\n  - { id: b, end: true }",
            Some("a"),
            "condition `n + 1` is a number, not a yes/no (bool) value",
        ),
        (
            "an answer of a step that has none",
            "steps:\n  - { id: hi, message: x }\n  - id: a\n    branch: [{ if: 'answer(\"hi\") == \"x\"', goto: b }]\n    else: b\n  - { id: b, end: true }",
            Some("a"),
            "no step `hi` has an answer",
        ),
        (
            "a chat until that is not a yes/no",
            "steps:\n  - { id: a, chat: talk, until: 'turns' }",
            Some("a"),
            "condition `turns` is a number, not a yes/no (bool) value",
        ),
        (
            "a text with an unknown variable",
            "steps:\n  - { id: a, message: 'Hi {{ nickname | you }}' }",
            Some("a"),
            "text uses `{{ nickname }}`, which no step defines",
        ),
        (
            "a text with an unclosed placeholder",
            "steps:\n  - { id: a, message: 'Hi {{ name' }",
            Some("a"),
            "text: `{{` at byte 3 is never closed with `}}`",
        ),
        (
            "save_as with conflicting types",
            "steps:\n  - { id: a, question: x, expect: number, save_as: v }\n  - { id: b, question: y, expect: yes_no, save_as: v }",
            Some("b"),
            "`save_as: v` stores a bool but another step stores a number there",
        ),
        (
            "save_as over a built-in variable",
            "steps:\n  - { id: a, question: x, save_as: turns }",
            Some("a"),
            "`save_as: turns` would overwrite a built-in variable",
        ),
        (
            "a duration without unit",
            "steps:\n  - { id: a, wait: '2' }",
            Some("a"),
            "`wait: 2`: expected a duration such as \"30m\"",
        ),
        (
            "a duration in words",
            "steps:\n  - { id: a, wait: 2 days }",
            Some("a"),
            "`wait: 2 days`: expected a duration",
        ),
        ("a zero duration", "steps:\n  - { id: a, wait: 0m }", Some("a"), "`wait` must be longer than zero"),
        (
            "a local time out of range",
            "steps:\n  - { id: a, wait: '25:00' }",
            Some("a"),
            "`wait: 25:00`: \"25:00\" is not a time of day",
        ),
        (
            "a local time with seconds",
            "steps:\n  - { id: a, task: x, check_in: '09:00:00' }",
            Some("a"),
            "`check_in: 09:00:00`: expected a time of day as HH:MM",
        ),
        ("a task without check_in", "steps:\n  - { id: a, task: x }", Some("a"), "a task needs `check_in`"),
        (
            "a handoff with a bad timeout",
            "steps:\n  - { id: a, handoff: x, timeout: soon }",
            Some("a"),
            "`timeout: soon`: expected a duration",
        ),
        (
            "expect: number with min above max",
            "steps:\n  - { id: a, question: x, expect: number, min: 10, max: 1 }",
            Some("a"),
            "`min` (10) is larger than `max` (1)",
        ),
        (
            "min on a text question",
            "steps:\n  - { id: a, question: x, min: 1 }",
            Some("a"),
            "`min`/`max` apply to `expect: number` only",
        ),
        (
            "an unknown expect",
            "steps:\n  - { id: a, question: x, expect: date }",
            Some("a"),
            "`expect: date` is not one of text, number, yes_no, choice, timezone",
        ),
        (
            "expect: choice without choices",
            "steps:\n  - { id: a, question: x, expect: choice }",
            Some("a"),
            "`expect: choice` needs `choices`",
        ),
        (
            "choices with another expect",
            "steps:\n  - { id: a, question: x, expect: number, choices: [a, b] }",
            Some("a"),
            "`choices` go with `expect: choice`",
        ),
        (
            "a choice offered twice",
            "steps:\n  - { id: a, question: x, choices: [Sleep, sleep] }",
            Some("a"),
            "the choice `sleep` is offered twice",
        ),
        (
            "a choice without value",
            "steps:\n  - { id: a, question: x, choices: [' ', b] }",
            Some("a"),
            "a choice has an empty value",
        ),
        (
            "zero attempts",
            "steps:\n  - { id: a, question: x, attempts: 0 }",
            Some("a"),
            "`attempts` must be at least 1",
        ),
        ("a chat without exit", "steps:\n  - { id: a, chat: talk }", Some("a"), "a chat needs a way out"),
        (
            "a chat with an empty keyword list",
            "steps:\n  - { id: a, chat: talk, keywords: [] }",
            Some("a"),
            "a chat needs a way out",
        ),
        (
            "zero max_turns",
            "steps:\n  - { id: a, chat: talk, max_turns: 0 }",
            Some("a"),
            "`max_turns` must be at least 1",
        ),
        ("end: false", "steps:\n  - { id: a, end: false }", Some("a"), "`end: false` ends nothing"),
        (
            "an end with next",
            "steps:\n  - { id: a, end: true, next: b }\n  - { id: b, end: true }",
            Some("a"),
            "`next` does not apply to this step (its kind is `end`)",
        ),
        ("empty steps", "title: Nothing\nsteps: []", None, "a program needs at least one step"),
        ("no steps at all", "title: Nothing", None, "a program needs at least one step"),
        (
            "an id that is not the file name",
            "id: other\nsteps:\n  - { id: a, end: true }",
            None,
            "`id: other` does not match the file name `test`",
        ),
        ("not YAML", "steps: [ {", None, "not a valid program file"),
        ("a list instead of a program", "- a\n- b", None, "not a valid program file"),
        ("a misspelt field", "steps:\n  - { id: a, mesage: hi }", None, "not a valid program file"),
        (
            "a trigger command with a space",
            "triggers: { commands: ['sleep well'] }\nsteps:\n  - { id: a, end: true }",
            None,
            "trigger command `sleep well` may only use letters, digits",
        ),
        (
            "an inactivity nudge with a bad delay",
            "inactivity: { after: 2 days, text: hi }\nsteps:\n  - { id: a, end: true }",
            None,
            "`inactivity.after: 2 days`: expected a duration",
        ),
        (
            "an inactivity text with an unknown variable",
            "inactivity: { after: 2d, text: 'Hi {{ name }}' }\nsteps:\n  - { id: a, end: true }",
            None,
            "text uses `{{ name }}`, which no step defines",
        ),
    ];
    for (what, source, step, fragment) in cases {
        let found = problems(source);
        assert!(
            has(&found, *step, fragment),
            "{what}: expected a problem for {step:?} containing {fragment:?}, got {found:#?}"
        );
    }
}

#[test]
fn a_syntax_error_in_a_condition_gives_its_column() {
    let found = problems(
        "steps:\n  - { id: n, question: x, expect: number, save_as: score }\n  - id: a\n    branch: [{ if: '(score + 1', goto: b }]\n    else: b\n  - { id: b, end: true }",
    );
    assert_eq!(
        found,
        vec![Problem {
            step: Some("a".into()),
            message: "condition `(score + 1`: expected `)` at column 11, found end of input".into()
        }]
    );
}

#[test]
fn a_condition_with_several_type_errors_reports_each() {
    let found = problems(
        "steps:\n  - id: a\n    branch: [{ if: 'cnt(habits) > 1 and mood', goto: b }]\n    else: b\n  - { id: b, end: true }",
    );
    assert_has(&found, Some("a"), "unknown function `cnt`");
    assert_has(&found, Some("a"), "unknown variable `habits`");
    assert_has(&found, Some("a"), "unknown variable `mood`");
}

#[test]
fn a_loop_of_steps_that_never_wait_is_refused() {
    let found = problems(
        "steps:\n  - { id: a, message: again }\n  - id: b\n    branch: [{ if: 'true', goto: a }]\n    else: c\n  - { id: c, end: true }",
    );
    assert_eq!(
        found,
        vec![Problem {
            step: Some("a".into()),
            message: "the steps a → b form a loop that never waits for the user or the clock".into()
        }]
    );
}

#[test]
fn a_step_that_goes_to_itself_without_waiting_is_refused() {
    let found = problems("steps:\n  - { id: a, message: again, next: a }");
    assert_eq!(
        found,
        vec![Problem {
            step: Some("a".into()),
            message: "the steps a form a loop that never waits for the user or the clock".into()
        }]
    );
}

#[test]
fn a_loop_through_a_step_that_waits_is_accepted() {
    let looping_through = [
        ("a question", "{ id: q, question: 'Again?', expect: yes_no, save_as: again }"),
        ("a message with choices", "{ id: q, message: 'Again?', choices: ['yes', 'no'] }"),
        ("a wait", "{ id: q, wait: 1d }"),
        ("a task", "{ id: q, task: 'Walk', check_in: '18:00' }"),
        ("a chat", "{ id: q, chat: 'Talk', max_turns: 2 }"),
        ("a handoff", "{ id: q, handoff: 'Asking Maya' }"),
    ];
    for (what, waiting) in looping_through {
        let source = format!(
            "steps:\n  - {{ id: a, message: Hi }}\n  - {waiting}\n  - id: b\n    branch: [{{ if: 'turns == 0', goto: a }}]\n    else: c\n  - {{ id: c, end: true }}"
        );
        let compiled = crate::program::compile(&crate::ids::ProgramId::parse("test").unwrap(), 1, &source);
        assert!(compiled.is_ok(), "a loop through {what}: {compiled:?}");
    }
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
    let padding = "#".repeat(MAX_SOURCE_BYTES);
    let source = format!("steps:\n  - {{ id: a, end: true }}\n{padding}\n");
    assert_eq!(problems(&source), vec![Problem { step: None, message: "the file is larger than 256 KiB".into() }]);
    // Just under the limit is fine.
    let fits = format!("steps:\n  - {{ id: a, end: true }}\n{}", "#".repeat(MAX_SOURCE_BYTES - 40));
    assert!(fits.len() <= MAX_SOURCE_BYTES);
    program(&fits);
}

#[test]
fn an_id_that_matches_the_file_name_is_accepted() {
    let compiled = crate::program::compile(
        &crate::ids::ProgramId::parse("sleep").unwrap(),
        3,
        "id: sleep\ntitle: Sleep\nsteps:\n  - { id: a, end: true }",
    )
    .unwrap();
    assert_eq!((compiled.id.as_str(), compiled.version, compiled.title.as_str()), ("sleep", 3, "Sleep"));
    assert_eq!(problems_as("other", "id: sleep\nsteps:\n  - { id: a, end: true }").len(), 1);
}

#[test]
fn next_defaults_to_the_following_step_and_the_last_step_ends_the_program() {
    let compiled = program(
        "steps:\n  - { id: a, message: one }\n  - { id: b, question: two, on_fail: d }\n  - { id: c, message: three, next: e }\n  - { id: d, message: four }\n  - { id: e, message: five }\n",
    );
    let next: Vec<Option<&str>> = compiled.steps.iter().map(|s| s.next.map(|i| compiled.at(i).id.as_str())).collect();
    assert_eq!(next, [Some("b"), Some("c"), Some("e"), Some("e"), None]);
    let StepKind::Question { on_fail, attempts, .. } = &compiled.step(&StepId::parse("b").unwrap()).unwrap().kind
    else {
        panic!("b is a question")
    };
    assert_eq!((on_fail.map(|i| compiled.at(i).id.as_str()), *attempts), (Some("d"), 2));
}

#[test]
fn a_json_program_of_the_same_shape_compiles() {
    let source = r#"{
  "title": "Sleep",
  "triggers": { "commands": ["/Sleep"], "keywords": ["  Sleep Better "] },
  "inactivity": { "after": "1d", "text": "Still there, {{ name | friend }}?" },
  "steps": [
    { "id": "name", "question": "What should I call you?", "save_as": "name" },
    { "id": "hours", "question": "Hours of sleep?", "expect": "number", "min": 0, "max": 24, "save_as": "hours" },
    { "id": "route", "branch": [{ "if": "has(hours) and hours < 6", "goto": "short" }], "else": "done" },
    { "id": "short", "task": "Go to bed 30 minutes earlier.", "check_in": "09:00" },
    { "id": "done", "end": "Sleep well, {{ name }}." }
  ]
}"#;
    let compiled = program(source);
    assert_eq!(compiled.title, "Sleep");
    assert_eq!(compiled.triggers.commands, ["sleep"]);
    assert_eq!(compiled.triggers.keywords, ["sleep better"]);
    assert_eq!(compiled.inactivity.as_ref().map(|i| i.after_ms), Some(super::DAY));
    let kinds: Vec<&str> = compiled.steps.iter().map(|s| s.kind.name()).collect();
    assert_eq!(kinds, ["question", "question", "branch", "task", "end"]);
}

#[test]
fn the_demo_program_compiles() {
    let compiled = program(super::DEMO);
    assert_eq!(compiled.title, "Five-day focus reset");
    assert!(compiled.triggers.first_contact);
    assert_eq!(compiled.triggers.commands, ["focus"]);
    assert_eq!(compiled.triggers.keywords, ["focus reset"]);
    assert_eq!(compiled.inactivity.as_ref().map(|i| i.after_ms), Some(2 * super::DAY));
    assert_eq!(compiled.first().id.as_str(), "welcome");
    assert_eq!(compiled.steps.len(), 21);
}

/// A branch whose `if` and `else` both go back (its `on_error` defaulting to `else` too) closes
/// the same loop three times; identical problems are reported once.
#[test]
fn a_loop_is_reported_once_however_many_targets_close_it() {
    let found = problems(
        "steps:\n  - { id: a, message: again }\n  - id: b\n    branch: [{ if: 'true', goto: a }]\n    else: a",
    );
    assert_eq!(
        found,
        vec![Problem {
            step: Some("a".into()),
            message: "the steps a → b form a loop that never waits for the user or the clock".into()
        }]
    );
}

#[test]
fn an_identical_problem_is_reported_once() {
    let found = problems("steps:\n  - { id: a, message: 'Hi {{ x }}, {{ x }}!' }\n  - { id: b, end: 'Bye {{ x }}' }");
    assert_eq!(
        found,
        vec![
            Problem { step: Some("a".into()), message: "text uses `{{ x }}`, which no step defines".into() },
            Problem { step: Some("b".into()), message: "text uses `{{ x }}`, which no step defines".into() },
        ],
        "once per step, not once per use"
    );
    let found = problems("steps:\n  - { id: a, message: x }\n  - { id: a, message: y }\n  - { id: a, end: true }");
    let duplicates = found.iter().filter(|p| p.message == "the id is used by more than one step").count();
    assert_eq!(duplicates, 1, "{found:#?}");
}

/// Unreachable steps and spinning loops are looked for whenever every step compiled, alongside the
/// other problems.
#[test]
fn unreachable_steps_and_loops_are_reported_alongside_other_problems() {
    let found = problems(
        "steps:\n  - { id: a, message: 'Hi {{ nickname }}' }\n  - { id: b, end: true }\n  - { id: island, end: true }",
    );
    assert_has(&found, Some("a"), "text uses `{{ nickname }}`");
    assert_has(&found, Some("island"), "is never reached from the first step");
    assert_eq!(found.len(), 2, "{found:#?}");

    let found = problems("steps:\n  - { id: a, message: again, next: a, save_as: x }");
    assert_has(&found, Some("a"), "`save_as` does not apply to this step (its kind is `message`)");
    assert_has(&found, Some("a"), "the steps a form a loop that never waits");
}

/// A step that cannot be compiled (no kind, two kinds, a field that cannot be read) leaves the graph
/// incomplete: then it is not checked, rather than reporting steps that only the broken one reaches.
#[test]
fn the_graph_is_not_checked_while_a_step_does_not_compile() {
    let found =
        problems("steps:\n  - { id: a, wait: soon, next: c }\n  - { id: island, end: true }\n  - { id: c, end: true }");
    assert_eq!(
        found,
        vec![Problem {
            step: Some("a".into()),
            message: "`wait: soon`: expected a duration such as \"30m\", \"2h\", \"2d\" or \"1w\" (units ms, s, m, h, d, w), got \"soon\"".into()
        }]
    );
}

/// Bug: a branch arm whose condition does not compile is dropped before the graph is checked, so
/// the step it goes to is also reported as "never reached", though the creator wrote a path to it.
#[test]
fn a_broken_branch_arm_does_not_make_its_target_unreachable() {
    let found = problems(
        "steps:\n  - id: a\n    branch: [{ if: 'scroe > 1', goto: x }]\n    else: y\n  - { id: x, end: true }\n  - { id: y, end: true }",
    );
    assert_eq!(
        found,
        vec![Problem { step: Some("a".into()), message: "condition `scroe > 1`: unknown variable `scroe`".into() }]
    );
}

/// A blank keyword would "occur" in any message with two non-letters in a row, such as "ok!!".
#[test]
fn a_blank_chat_keyword_is_refused() {
    let found = problems("steps:\n  - { id: a, chat: talk, keywords: [next, ' '] }\n  - { id: b, end: true }");
    assert_eq!(found, vec![Problem { step: Some("a".into()), message: "a chat keyword must not be blank".into() }]);
    let found = problems("steps:\n  - { id: a, chat: talk, keywords: [''] }\n  - { id: b, end: true }");
    assert_has(&found, Some("a"), "a chat keyword must not be blank");
}

/// A field is named as written, not after a neighbour of the same kind of step.
#[test]
fn a_field_of_another_kind_is_named_as_written() {
    let found = problems(
        "steps:\n  - { id: a, question: x, on_error: b, keywords: [k], check_in_text: y }\n  - { id: b, end: true }",
    );
    let messages: Vec<&str> = found.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "`check_in_text` does not apply to this step (its kind is `question`)",
            "`on_error` does not apply to this step (its kind is `question`)",
            "`keywords` does not apply to this step (its kind is `question`)",
        ]
    );
    assert!(found.iter().all(|p| p.step.as_deref() == Some("a")));
}

/// Unquoted numbers and booleans are taken as the text they are written as (as `message: 1` is).
#[test]
fn choices_may_be_plain_numbers_or_booleans() {
    let values = |source: &str| -> Vec<(String, String)> {
        let compiled = program(source);
        let StepKind::Question { expect: Expect::Choice(choices), .. } = &compiled.steps[0].kind else {
            panic!("a choice question")
        };
        choices.iter().map(|c| (c.value.clone(), c.label.clone())).collect()
    };
    let pair = |value: &str, label: &str| (value.to_owned(), label.to_owned());
    assert_eq!(
        values("steps:\n  - { id: a, question: 'From 1 to 3?', choices: [1, 2, 3] }\n  - { id: b, end: true }"),
        [pair("1", "1"), pair("2", "2"), pair("3", "3")]
    );
    assert_eq!(
        values("steps:\n  - { id: a, question: 'Sure?', choices: [true, false] }\n  - { id: b, end: true }"),
        [pair("true", "true"), pair("false", "false")]
    );
    assert_eq!(
        values(
            "steps:\n  - { id: a, question: 'Level?', choices: [{ value: 1, label: Low }, { value: 2, label: 2 }] }\n  - { id: b, end: true }"
        ),
        [pair("1", "Low"), pair("2", "2")]
    );
}

/// Bug: unquoted `yes` and `no` (and `on`/`off`) are read by the YAML reader as booleans before
/// `Scalar` sees them, so `choices: [yes, no]` offers the buttons "true" and "false".
#[test]
fn unquoted_yes_and_no_choices_keep_their_words() {
    let compiled = program("steps:\n  - { id: a, question: 'Ready?', choices: [yes, no] }\n  - { id: b, end: true }");
    let StepKind::Question { expect: Expect::Choice(choices), .. } = &compiled.steps[0].kind else {
        panic!("a choice question")
    };
    let values: Vec<&str> = choices.iter().map(|c| c.value.as_str()).collect();
    assert_eq!(values, ["yes", "no"]);
}

/// Choices match ignoring case in every script (`Übung` is picked by "übung"), so two choices that
/// differ only so cannot be told apart.
#[test]
fn a_choice_offered_twice_is_found_ignoring_case_beyond_ascii() {
    let found = problems("steps:\n  - { id: a, question: x, choices: [Übung, übung] }\n  - { id: b, end: true }");
    assert_has(&found, Some("a"), "the choice `übung` is offered twice");
}

/// `next` on a branch would never be used (a branch goes to an arm, `else` or `on_error`), nor on
/// an end: both are refused like any field of another kind.
#[test]
fn next_on_a_branch_or_an_end_is_refused() {
    let found = problems(
        "steps:\n  - id: a\n    branch: [{ if: 'true', goto: c }]\n    else: c\n    next: b\n  - { id: b, message: never }\n  - { id: c, end: true }",
    );
    assert_has(&found, Some("a"), "`next` does not apply to this step (its kind is `branch`)");
    let found = problems("steps:\n  - { id: a, end: true, next: a }");
    assert_eq!(
        found,
        vec![Problem {
            step: Some("a".into()),
            message: "`next` does not apply to this step (its kind is `end`)".into()
        }]
    );
}

/// `save_as` names a variable conditions and texts can read.
#[test]
fn save_as_must_be_a_variable_name() {
    for name in ["'my goal'", "1st", "and", "'true'", "user.name", "'goal!'", "''"] {
        let found =
            problems(&format!("steps:\n  - {{ id: a, question: x, save_as: {name} }}\n  - {{ id: b, end: true }}"));
        assert_has(&found, Some("a"), "is not a variable name");
    }
    let compiled = program(
        "steps:\n  - { id: a, question: x, save_as: goal_2 }\n  - { id: b, question: y, save_as: _Mood }\n  - { id: c, end: '{{ goal_2 }} {{ _Mood }}' }",
    );
    assert_eq!(compiled.steps.len(), 3);
}
