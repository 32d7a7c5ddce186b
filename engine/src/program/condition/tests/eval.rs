use std::collections::BTreeMap;

use super::super::{EvalError, Type, TypeErrorKind, TypeScope, Value, check, eval, parse};
use super::{DAY, Declared as Fixture, HOUR, NOW, at, scope};
use crate::time::Timestamp;

fn number(n: f64) -> Value {
    Value::Number(n)
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn time(ms: i64) -> Value {
    Value::Time(Timestamp::from_millis(ms))
}

fn assert_evaluates(cases: &[(&str, Value)]) {
    let scope = scope();
    for (src, expected) in cases {
        let expr = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(check(&expr, &Fixture(&scope)).map(|_| ()), Ok(()), "{src}");
        assert_eq!(eval(&expr, &scope).as_ref(), Ok(expected), "{src}");
    }
}

#[test]
fn every_operator_and_function_evaluates_as_documented() {
    assert_evaluates(&[
        // Arithmetic.
        ("1 + 2 * 3", number(7.0)),
        ("-2 * 3", number(-6.0)),
        ("7 / 2", number(3.5)),
        ("7 % 3", number(1.0)),
        ("-7 % 3", number(-1.0)),
        ("10 - 2 - 3", number(5.0)),
        ("score * 2 + 1 > 7", Value::Bool(false)),
        ("score * 2 + 1 >= 7", Value::Bool(true)),
        // Logic.
        ("not flag", Value::Bool(false)),
        ("true and false", Value::Bool(false)),
        ("false or true", Value::Bool(true)),
        ("not false and false", Value::Bool(false)),
        // Comparisons.
        ("2 <= 2", Value::Bool(true)),
        ("2 < 2", Value::Bool(false)),
        ("3 > 2", Value::Bool(true)),
        ("1 == 1.0", Value::Bool(true)),
        ("1 != 1", Value::Bool(false)),
        ("'a' < 'b'", Value::Bool(true)),
        ("'B' < 'a'", Value::Bool(true)),
        ("goal == 'sleep'", Value::Bool(true)),
        ("goal == 'Sleep'", Value::Bool(false)),
        ("[1, 2] == [1, 2]", Value::Bool(true)),
        ("[1, 2] == [2, 1]", Value::Bool(false)),
        ("[] == []", Value::Bool(true)),
        ("empty == numbers", Value::Bool(false)),
        ("flag == true", Value::Bool(true)),
        // Membership.
        ("'walk' in habits", Value::Bool(true)),
        ("'swim' in habits", Value::Bool(false)),
        ("2 in numbers", Value::Bool(true)),
        ("1 in []", Value::Bool(false)),
        ("1 in empty", Value::Bool(false)),
        ("'ti' in mood", Value::Bool(true)),
        ("mood contains 'tired'", Value::Bool(true)),
        ("mood contains 'Tired'", Value::Bool(false)),
        ("habits contains 'read'", Value::Bool(true)),
        ("[[1], []] contains []", Value::Bool(true)),
        // Regexes: a search anywhere in the text unless anchored.
        ("name matches '^[A-Z]'", Value::Bool(true)),
        ("goal matches 'ee'", Value::Bool(true)),
        ("goal matches '^ee'", Value::Bool(false)),
        ("mood matches '(?i)TIRED'", Value::Bool(true)),
        // Texts.
        ("name + '!'", text("Ana!")),
        ("lower('AbC É')", text("abc é")),
        ("len('héllo')", number(5.0)),
        ("len('')", number(0.0)),
        // Functions.
        ("count(habits)", number(2.0)),
        ("count([])", number(0.0)),
        ("days_since(enrolled_at)", number(4.0)),
        ("hours_since(last_reply)", number(72.0)),
        ("days_since(now() + 12h)", number(-0.5)),
        ("answer('energy')", number(2.0)),
        ("answer(\"focus\")", text("deep work")),
        ("has(goal)", Value::Bool(true)),
        ("has(missing)", Value::Bool(false)),
        ("has(answer('energy'))", Value::Bool(true)),
        ("now()", time(NOW)),
        ("user.timezone", text("Europe/Lisbon")),
        ("[score, 1]", Value::List(vec![number(3.0), number(1.0)])),
        // The examples of the issue.
        ("goal == \"sleep\" and days_since(enrolled_at) >= 3", Value::Bool(true)),
        ("not (answer(\"energy\") in [1, 2]) or mood contains \"tired\"", Value::Bool(true)),
        ("now() - last_reply > 2d", Value::Bool(true)),
        ("count(habits) >= 2", Value::Bool(true)),
    ]);
}

#[test]
fn durations_and_times_follow_their_arithmetic() {
    assert_evaluates(&[
        ("now() - last_reply", Value::Duration(3 * DAY)),
        ("last_reply - now()", Value::Duration(-3 * DAY)),
        ("last_reply + 1d", time(NOW - 2 * DAY)),
        ("1d + last_reply", time(NOW - 2 * DAY)),
        ("last_reply - 1d", time(NOW - 4 * DAY)),
        ("1h + 30m", Value::Duration(90 * 60_000)),
        ("1h - 90m", Value::Duration(-30 * 60_000)),
        ("2h * 1.5", Value::Duration(3 * HOUR)),
        ("1.5 * 2h", Value::Duration(3 * HOUR)),
        ("1d / 4", Value::Duration(6 * HOUR)),
        ("1s / 3", Value::Duration(333)),
        ("2s / 3", Value::Duration(667)),
        ("(now() - enrolled_at) / 1d", number(4.0)),
        ("-streak", Value::Duration(-2 * DAY)),
        ("-1d < 0s", Value::Bool(true)),
        ("90m == 1.5h", Value::Bool(true)),
        ("streak > 1d", Value::Bool(true)),
        ("enrolled_at < last_reply", Value::Bool(true)),
        ("last_reply + 3d == now()", Value::Bool(true)),
    ]);
}

#[test]
fn and_and_or_evaluate_their_right_side_only_when_needed() {
    assert_evaluates(&[
        ("has(missing) and missing > 3", Value::Bool(false)),
        ("not has(missing) or missing > 3", Value::Bool(true)),
        ("has(score) and score > 2", Value::Bool(true)),
        ("false and 1 / 0 > 1", Value::Bool(false)),
        ("true or answer('later') == 1", Value::Bool(true)),
        ("has(answer('later')) and answer('later') == 1", Value::Bool(false)),
    ]);
    let scope = scope();
    let error = eval(&parse("true and missing").unwrap(), &scope).unwrap_err();
    assert!(matches!(error, EvalError::Unset { .. }), "{error:?}");
}

#[test]
fn evaluation_errors_name_the_cause_and_the_span() {
    let cases = [
        ("1 / zero > 0", "1 / zero", "division by zero"),
        ("score % 0", "score % 0", "division by zero"),
        ("1d / 0", "1d / 0", "division by zero"),
        ("1d / 0s", "1d / 0s", "division by zero"),
        ("big * big", "big * big", "the result is not a finite number"),
        ("big * big - big * big", "big * big", "the result is not a finite number"),
        ("1w * big", "1w * big", "the result is outside the range of durations and times"),
        ("far + far", "far + far", "the result is outside the range of durations and times"),
        ("last_reply + far", "last_reply + far", "the result is outside the range of durations and times"),
        ("missing > 1", "missing", "`missing` is not set (test it first with has(missing))"),
        (
            "answer('later') == 1",
            "'later'",
            "step `later` has not been answered (test it first with has(answer(\"later\")))",
        ),
    ];
    let scope = scope();
    for (src, span, message) in cases {
        let error = eval(&parse(src).unwrap(), &scope).expect_err(src);
        assert_eq!((at(src, error.span()), error.to_string().as_str()), (span, message), "{src}");
    }
}

/// Declared types that the user's data does not follow.
struct Declared;

impl TypeScope for Declared {
    fn variable(&self, name: &str) -> Option<Type> {
        match name {
            "score" => Some(Type::Number),
            "flag" => Some(Type::Bool),
            "tags" => Some(Type::list_of(Type::Number)),
            "since" => Some(Type::Time),
            _ => None,
        }
    }

    fn answer(&self, _: &str) -> Option<Type> {
        None
    }
}

#[test]
fn data_that_differs_from_the_declared_types_is_an_error_not_false() {
    let mut values = scope();
    values.vars = BTreeMap::from([
        ("score".to_owned(), text("high")),
        ("flag".to_owned(), number(1.0)),
        ("tags".to_owned(), Value::List(vec![number(1.0), text("a")])),
        ("since".to_owned(), text("yesterday")),
    ]);
    let cases = [
        ("score > 2", "score > 2", "`>` cannot be applied to text and number"),
        ("score == 3", "score == 3", "`==` cannot be applied to text and number"),
        ("score != 3", "score != 3", "`!=` cannot be applied to text and number"),
        ("3 in [score]", "3 in [score]", "`in` cannot be applied to number and list of text"),
        ("[score, 1] == []", "1", "list items must all have one type: text, then number"),
        ("flag and true", "flag", "`and` expects bool on both sides, found number"),
        ("not flag", "not flag", "`not` expects bool, found number"),
        ("count(tags) > 1", "tags", "`tags` holds a list of mixed types"),
        ("-score < 0", "-score", "`-` expects a number or a duration, found text"),
        ("days_since(since) > 1", "since", "days_since() expects a time, found text"),
    ];
    for (src, span, message) in cases {
        let expr = parse(src).unwrap();
        assert_eq!(check(&expr, &Declared).map(|_| ()), Ok(()), "{src}");
        let error = eval(&expr, &values).expect_err(src);
        assert_eq!((at(src, error.span()), error.to_string().as_str()), (span, message), "{src}");
    }
}

#[test]
fn a_number_that_is_not_finite_in_the_data_is_refused_where_it_is_read() {
    let mut values = scope();
    values.vars.insert("score".to_owned(), number(f64::NAN));
    values.answers.insert("energy".to_owned(), Value::List(vec![number(f64::INFINITY)]));
    let error = eval(&parse("score == score").unwrap(), &values).unwrap_err();
    assert_eq!(error, EvalError::NotFiniteValue { name: "score".into(), span: super::super::Span::new(0, 5) });
    let error = eval(&parse("count(answer('energy'))").unwrap(), &values).unwrap_err();
    assert_eq!(error.to_string(), "`answer(\"energy\")` holds a number that is not finite");
}

#[test]
fn eval_of_an_unchecked_expression_reports_what_check_would() {
    let cases = [
        ("cnt(1)", "cnt(1)"),
        ("count(1, 2)", "count(1, 2)"),
        ("now(1)", "now(1)"),
        ("answer(goal)", "goal"),
        ("has(1)", "1"),
        ("[1, 'a']", "'a'"),
        ("1 + 'a'", "1 + 'a'"),
    ];
    let scope = scope();
    for (src, span) in cases {
        let expr = parse(src).unwrap();
        let checked = check(&expr, &scope).unwrap_err();
        let EvalError::Type(error) = eval(&expr, &scope).unwrap_err() else { panic!("{src}: not a type error") };
        assert_eq!(at(src, error.span), span, "{src}");
        assert_eq!(checked, [error], "{src}");
    }
}

#[test]
fn a_regex_built_at_run_time_that_does_not_compile_is_an_error() {
    let src = "name matches '(' + ''";
    let expr = parse(src).unwrap();
    let errors = check(&expr, &scope()).unwrap_err();
    assert_eq!(errors[0].kind, TypeErrorKind::PatternNotLiteral);
    let error = eval(&expr, &scope()).unwrap_err();
    assert_eq!((at(src, error.span()), error.to_string().as_str()), (src, "regex does not compile: unclosed group"));
}
