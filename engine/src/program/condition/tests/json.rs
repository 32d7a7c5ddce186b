use std::collections::BTreeMap;

use serde_json::json;

use super::super::{JsonErrorKind, MapScope, Type, TypeScope, Value, check, eval, flatten_json_vars, parse};
use super::NOW;
use crate::time::Timestamp;

#[test]
fn values_convert_to_json_and_back() {
    let cases = [
        (Value::Bool(true), json!(true)),
        (Value::Number(3.0), json!(3)),
        (Value::Number(-2.5), json!(-2.5)),
        (Value::Text("Ana".into()), json!("Ana")),
        (Value::Duration(90_000), json!({ "duration_ms": 90_000 })),
        (Value::Time(Timestamp::from_millis(NOW)), json!({ "time_ms": NOW })),
        (Value::List(vec![]), json!([])),
        (Value::List(vec![Value::Number(1.0), Value::Number(0.5)]), json!([1, 0.5])),
        (Value::List(vec![Value::Duration(-1)]), json!([{ "duration_ms": -1 }])),
    ];
    for (value, json) in cases {
        assert_eq!(value.to_json(), json, "{value}");
        assert_eq!(Value::from_json(&json), Ok(value), "{json}");
    }
}

#[test]
fn a_number_without_a_json_form_is_written_as_null() {
    assert_eq!(Value::Number(f64::NAN).to_json(), json!(null));
}

#[test]
fn flattening_gives_dotted_names_and_leaves_nulls_unset() {
    let vars = flatten_json_vars(&json!({
        "user": { "name": "Ana", "timezone": null, "prefs": { "lang": "pt" } },
        "streak": { "duration_ms": 1000 },
        "enrolled_at": { "time_ms": 5 },
        "tags": ["a", "b"],
        "mixed": [1, "a"],
        "gone": null,
        "nothing": {},
    }))
    .unwrap();
    let text = |s: &str| Value::Text(s.to_owned());
    let expected = BTreeMap::from([
        ("user.name".to_owned(), text("Ana")),
        ("user.prefs.lang".to_owned(), text("pt")),
        ("streak".to_owned(), Value::Duration(1000)),
        ("enrolled_at".to_owned(), Value::Time(Timestamp::from_millis(5))),
        ("tags".to_owned(), Value::List(vec![text("a"), text("b")])),
        ("mixed".to_owned(), Value::List(vec![Value::Number(1.0), text("a")])),
    ]);
    assert_eq!(vars, expected);
}

#[test]
fn json_that_holds_no_value_is_refused_with_its_path() {
    let cases = [
        (json!([1]), "", JsonErrorKind::NotAnObject),
        (json!({ "a-b": 1 }), "a-b", JsonErrorKind::BadName),
        (json!({ "user": { "1st": 1 } }), "user.1st", JsonErrorKind::BadName),
        (json!({ "xs": [1, null] }), "xs[1]", JsonErrorKind::Null),
        (json!({ "xs": [[{ "a": 1 }]] }), "xs[0][0]", JsonErrorKind::Object),
        (json!({ "d": { "duration_ms": "x" } }), "d", JsonErrorKind::BadMarker { key: "duration_ms".into() }),
        (json!({ "t": { "time_ms": 1.5 } }), "t", JsonErrorKind::BadMarker { key: "time_ms".into() }),
    ];
    for (json, path, kind) in cases {
        let error = flatten_json_vars(&json).expect_err(&json.to_string());
        assert_eq!((error.path.as_str(), &error.kind), (path, &kind), "{json}");
    }
    let error = flatten_json_vars(&json!({ "xs": [1, null] })).unwrap_err();
    assert_eq!(error.to_string(), "`xs[1]`: null means unset and cannot stand here");
    assert_eq!(Value::from_json(&json!(null)).unwrap_err().kind, JsonErrorKind::Null);
    assert_eq!(Value::from_json(&json!({ "a": 1 })).unwrap_err().kind, JsonErrorKind::Object);
}

#[test]
fn a_map_scope_from_json_checks_and_evaluates_like_the_cli() {
    let mut scope = MapScope::new(Timestamp::from_millis(NOW));
    scope.vars = flatten_json_vars(&json!({
        "user": { "name": "Ana" },
        "score": 3,
        "last_reply": { "time_ms": NOW - 1000 },
        "tags": [],
        "mixed": [1, "a"],
    }))
    .unwrap();
    scope.answers.insert("energy".to_owned(), Value::from_json(&json!(2)).unwrap());

    assert_eq!(TypeScope::variable(&scope, "tags"), Some(Type::List(None)));
    // A list of mixed types has no type, so check cannot use it.
    assert_eq!(TypeScope::variable(&scope, "mixed"), None);

    let expr =
        parse("user.name == 'Ana' and score > 2 and now() - last_reply == 1s and answer('energy') == 2").unwrap();
    assert_eq!(check(&expr, &scope), Ok(Type::Bool));
    assert_eq!(eval(&expr, &scope), Ok(Value::Bool(true)));
}

#[test]
fn values_print_as_the_cli_shows_them() {
    let cases = [
        (Value::Bool(false), "false"),
        (Value::Number(2.5), "2.5"),
        (Value::Number(3.0), "3"),
        (Value::Text("say \"hi\"".into()), "\"say \\\"hi\\\"\""),
        (Value::Duration(5_400_000), "90m"),
        (Value::Duration(-1500), "-1.5s"),
        (Value::Time(Timestamp::from_millis(NOW)), "2024-05-01T12:00:00Z"),
        (Value::Time(Timestamp::from_millis(NOW + 250)), "2024-05-01T12:00:00.250Z"),
        (Value::List(vec![Value::Number(1.0), Value::Number(2.0)]), "[1, 2]"),
    ];
    for (value, printed) in cases {
        assert_eq!(value.to_string(), printed);
    }
}
