use super::super::{Type, TypeErrorKind, Value, check, parse};
use super::{Declared, at, scope};

fn list(element: Type) -> Type {
    Type::list_of(element)
}

#[test]
fn every_typing_rule_gives_its_type() {
    let cases = [
        ("true", Type::Bool),
        ("1.5", Type::Number),
        ("'a'", Type::Text),
        ("2h", Type::Duration),
        ("now()", Type::Time),
        ("[1, 2]", list(Type::Number)),
        ("[]", Type::List(None)),
        ("[[], [1]]", list(list(Type::Number))),
        ("[[1], []]", list(list(Type::Number))),
        ("user.name", Type::Text),
        // Arithmetic on numbers.
        ("score * 2 + 1", Type::Number),
        ("score - 1", Type::Number),
        ("score / 2", Type::Number),
        ("score % 2", Type::Number),
        ("-score", Type::Number),
        // Durations and times.
        ("now() - last_reply", Type::Duration),
        ("last_reply + 1d", Type::Time),
        ("1d + last_reply", Type::Time),
        ("last_reply - 1d", Type::Time),
        ("streak + 1h", Type::Duration),
        ("streak - 1h", Type::Duration),
        ("streak * 2", Type::Duration),
        ("2 * streak", Type::Duration),
        ("streak / 2", Type::Duration),
        ("streak / 1d", Type::Number),
        ("-streak", Type::Duration),
        // Texts.
        ("name + '!'", Type::Text),
        // Comparisons.
        ("score <= 3", Type::Bool),
        ("name < 'B'", Type::Bool),
        ("streak >= 1d", Type::Bool),
        ("last_reply > now()", Type::Bool),
        ("goal == 'sleep'", Type::Bool),
        ("flag != true", Type::Bool),
        ("habits == []", Type::Bool),
        ("[] != numbers", Type::Bool),
        ("[[1]] == [[]]", Type::Bool),
        ("'walk' in habits", Type::Bool),
        ("3 in numbers", Type::Bool),
        ("'x' in []", Type::Bool),
        ("'ti' in mood", Type::Bool),
        ("mood contains 'tired'", Type::Bool),
        ("habits contains 'read'", Type::Bool),
        ("[] contains 1", Type::Bool),
        ("name matches '^[A-Z]'", Type::Bool),
        // Logic.
        ("not flag or flag and flag", Type::Bool),
        // Functions.
        ("count(habits)", Type::Number),
        ("count([])", Type::Number),
        ("len(name)", Type::Number),
        ("lower(name)", Type::Text),
        ("days_since(enrolled_at)", Type::Number),
        ("hours_since(last_reply)", Type::Number),
        ("answer(\"energy\")", Type::Number),
        ("answer('focus')", Type::Text),
        ("has(goal)", Type::Bool),
        ("has(user.name)", Type::Bool),
        ("has(answer(\"energy\"))", Type::Bool),
        // Declared, yet unset.
        ("has(missing)", Type::Bool),
        ("has(answer('later'))", Type::Bool),
        ("missing + 1", Type::Number),
    ];
    let scope = scope();
    for (src, expected) in cases {
        let expr = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(check(&expr, &Declared(&scope)), Ok(expected), "{src}");
    }
}

#[test]
fn each_type_error_points_at_its_span_with_a_message() {
    let cases = [
        ("goal + 1", "goal + 1", "`+` cannot be applied to text and number"),
        ("'a' * 2", "'a' * 2", "`*` cannot be applied to text and number"),
        ("last_reply + last_reply", "last_reply + last_reply", "`+` cannot be applied to time and time"),
        ("now() - 1", "now() - 1", "`-` cannot be applied to time and number"),
        ("streak * streak", "streak * streak", "`*` cannot be applied to duration and duration"),
        ("1d % 2", "1d % 2", "`%` cannot be applied to duration and number"),
        ("2 / 1d", "2 / 1d", "`/` cannot be applied to number and duration"),
        ("1d == 1", "1d == 1", "`==` cannot be applied to duration and number"),
        ("score == 'a'", "score == 'a'", "`==` cannot be applied to number and text"),
        ("habits != numbers", "habits != numbers", "`!=` cannot be applied to list of text and list of number"),
        ("score < '3'", "score < '3'", "`<` cannot be applied to number and text"),
        ("flag < flag", "flag < flag", "`<` cannot be applied to bool and bool"),
        ("habits >= habits", "habits >= habits", "`>=` cannot be applied to list of text and list of text"),
        ("1 in habits", "1 in habits", "`in` cannot be applied to number and list of text"),
        ("score in 'abc'", "score in 'abc'", "`in` cannot be applied to number and text"),
        ("habits contains 1", "habits contains 1", "`contains` cannot be applied to list of text and number"),
        ("score contains 1", "score contains 1", "`contains` cannot be applied to number and number"),
        ("score matches 'a'", "score matches 'a'", "`matches` cannot be applied to number and text"),
        ("name matches goal", "goal", "the right side of `matches` must be a regex in quotes, like \"^[A-Z]\""),
        ("name matches '('", "'('", "bad regex: unclosed group"),
        ("score and flag", "score", "`and` expects bool on both sides, found number"),
        ("flag or 1", "1", "`or` expects bool on both sides, found number"),
        ("not score", "not score", "`not` expects bool, found number"),
        ("-name", "-name", "`-` expects a number or a duration, found text"),
        ("[1, 'a']", "'a'", "list items must all have one type: number, then text"),
        ("[[1], ['a']]", "['a']", "list items must all have one type: list of number, then list of text"),
        ("unknown > 3", "unknown", "unknown variable `unknown`"),
        ("user.nam", "user.nam", "unknown variable `user.nam`"),
        (
            "cnt(habits)",
            "cnt(habits)",
            "unknown function `cnt` (the functions are count, len, lower, days_since, hours_since, now, answer and has)",
        ),
        ("count(habits, 1)", "count(habits, 1)", "count() takes 1 argument, found 2"),
        ("len()", "len()", "len() takes 1 argument, found 0"),
        ("now(1)", "now(1)", "now() takes 0 arguments, found 1"),
        ("count(name)", "name", "count() expects a list, found text"),
        ("len(habits)", "habits", "len() expects text (count() counts a list), found list of text"),
        ("lower(3)", "3", "lower() expects text, found number"),
        ("days_since(goal)", "goal", "days_since() expects a time, found text"),
        ("hours_since(streak)", "streak", "hours_since() expects a time, found duration"),
        ("answer(goal) == 1", "goal", "answer() takes a step id in quotes, like answer(\"energy\")"),
        ("answer('nope') == 1", "'nope'", "no step `nope` has an answer"),
        ("has(1)", "1", "has() takes a variable or answer(\"step\"), like has(user.name)"),
        ("has(lower(name))", "lower(name)", "has() takes a variable or answer(\"step\"), like has(user.name)"),
        ("has(unknown)", "unknown", "unknown variable `unknown`"),
        ("has(answer('nope'))", "'nope'", "no step `nope` has an answer"),
    ];
    let scope = scope();
    for (src, span, message) in cases {
        let expr = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        let errors = check(&expr, &Declared(&scope)).expect_err(src);
        let found: Vec<_> = errors.iter().map(|e| (at(src, e.span), e.to_string())).collect();
        assert_eq!(found, [(span, message.to_owned())], "{src}");
    }
}

#[test]
fn a_regex_too_large_to_compile_is_refused_at_check_time() {
    let src = "name matches 'a{1000}{1000}'";
    let errors = check(&parse(src).unwrap(), &scope()).unwrap_err();
    assert!(
        matches!(&errors[..], [e] if matches!(&e.kind, TypeErrorKind::BadPattern { reason } if reason.contains("size limit"))),
        "{errors:?}"
    );
}

#[test]
fn check_collects_every_error_not_only_the_first() {
    let src = "unknown > 1 and cnt(x) or goal + 1 == 2 or has(2)";
    let errors = check(&parse(src).unwrap(), &scope()).unwrap_err();
    let found: Vec<_> = errors.iter().map(|e| at(src, e.span)).collect();
    assert_eq!(found, ["unknown", "x", "cnt(x)", "goal + 1", "2"]);
}

#[test]
fn an_error_is_reported_once_and_not_again_by_the_expressions_around_it() {
    let src = "not (unknown + 1 > 2 and lower(unknown2) == 'x')";
    let errors = check(&parse(src).unwrap(), &scope()).unwrap_err();
    let found: Vec<_> = errors.iter().map(|e| at(src, e.span)).collect();
    assert_eq!(found, ["unknown", "unknown2"]);
}

#[test]
fn empty_lists_take_the_element_type_of_the_other_side() {
    let number_list = Type::list_of(Type::Number);
    assert_eq!(Type::List(None).unify(&number_list), Some(number_list.clone()));
    assert_eq!(number_list.unify(&Type::List(None)), Some(number_list.clone()));
    assert_eq!(number_list.unify(&Type::list_of(Type::Text)), None);
    assert_eq!(Type::Number.unify(&Type::List(None)), None);
    let nested = Type::list_of(Type::List(None));
    assert_eq!(nested.unify(&Type::list_of(number_list.clone())), Some(Type::list_of(number_list)));
}

#[test]
fn the_type_of_a_value_follows_its_contents() {
    let number = Value::Number(1.0);
    let cases = [
        (Value::Bool(true), Some(Type::Bool)),
        (Value::Duration(1), Some(Type::Duration)),
        (Value::List(vec![]), Some(Type::List(None))),
        (Value::List(vec![Value::List(vec![]), Value::List(vec![number.clone()])]), Some(list(list(Type::Number)))),
        (Value::List(vec![number, Value::Text("a".into())]), None),
    ];
    for (value, expected) in cases {
        assert_eq!(Type::of(&value), expected, "{value}");
    }
}

#[test]
fn types_are_named_plainly_in_messages() {
    let cases = [
        (Type::Bool, "bool"),
        (Type::Time, "time"),
        (Type::List(None), "empty list"),
        (list(list(Type::Duration)), "list of list of duration"),
    ];
    for (ty, name) in cases {
        assert_eq!(ty.to_string(), name);
    }
}
