use super::super::{ExprKind, MAX_DEPTH, MAX_SOURCE_LEN, SyntaxErrorKind, answers, parse, variables};
use super::{at, shape};

#[test]
fn operators_bind_from_or_loosest_to_unary_minus_tightest() {
    let cases = [
        ("a or b and c", "(or a (and b c))"),
        ("a and b or c", "(or (and a b) c)"),
        ("a or b or c", "(or (or a b) c)"),
        ("not a and b", "(and (not a) b)"),
        ("not a == b", "(not (== a b))"),
        ("not not a", "(not (not a))"),
        ("a and not b", "(and a (not b))"),
        ("1 + 2 * 3", "(+ 1 (* 2 3))"),
        ("(1 + 2) * 3", "(* (+ 1 2) 3)"),
        ("-2 * 3", "(* (- 2) 3)"),
        ("- -2", "(- (- 2))"),
        ("-(2 * 3)", "(- (* 2 3))"),
        ("1 - 2 - 3", "(- (- 1 2) 3)"),
        ("8 / 4 / 2", "(/ (/ 8 4) 2)"),
        ("7 % 3 * 2", "(* (% 7 3) 2)"),
        ("1 - 2 + 3", "(+ (- 1 2) 3)"),
        ("a + b > c * d", "(> (+ a b) (* c d))"),
        ("a != b", "(!= a b)"),
        ("a <= b", "(<= a b)"),
        ("a >= b", "(>= a b)"),
        ("a < b", "(< a b)"),
        ("x in [1, 2] or y", "(or (in x [1 2]) y)"),
        ("mood contains 'tired' and x", "(and (contains mood \"tired\") x)"),
        ("name matches \"^[A-Z]\"", "(matches name \"^[A-Z]\")"),
        (
            "goal == \"sleep\" and days_since(enrolled_at) >= 3",
            "(and (== goal \"sleep\") (>= (days_since enrolled_at) 3))",
        ),
        (
            "not (answer(\"energy\") in [1, 2]) or mood contains \"tired\"",
            "(or (not (in (answer \"energy\") [1 2])) (contains mood \"tired\"))",
        ),
        ("score * 2 + 1 > 7", "(> (+ (* score 2) 1) 7)"),
        ("now() - last_reply > 2d", "(> (- (now) last_reply) 2d)"),
        ("count(habits) >= 2", "(>= (count habits) 2)"),
        ("f(a, b + 1, [])", "(f a (+ b 1) [])"),
        ("(a or b) and c", "(and (or a b) c)"),
        ("1 + (not a)", "(+ 1 (not a))"),
    ];
    for (src, expected) in cases {
        let expr = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(shape(&expr), expected, "{src}");
    }
}

#[test]
fn literals_and_names_read_as_written() {
    let cases = [
        ("42", ExprKind::Number(42.0)),
        ("3.25", ExprKind::Number(3.25)),
        ("007", ExprKind::Number(7.0)),
        ("0.5", ExprKind::Number(0.5)),
        ("'it\\'s'", ExprKind::Text("it's".into())),
        ("\"a\\\"b\\\\c\\nd\\te\"", ExprKind::Text("a\"b\\c\nd\te".into())),
        ("'say \"hi\"'", ExprKind::Text("say \"hi\"".into())),
        ("\"\"", ExprKind::Text(String::new())),
        ("'é😀'", ExprKind::Text("é😀".into())),
        ("true", ExprKind::Bool(true)),
        ("false", ExprKind::Bool(false)),
        ("30s", ExprKind::Duration(30_000)),
        ("15m", ExprKind::Duration(900_000)),
        ("2h", ExprKind::Duration(7_200_000)),
        ("3d", ExprKind::Duration(259_200_000)),
        ("1w", ExprKind::Duration(604_800_000)),
        ("1.5h", ExprKind::Duration(5_400_000)),
        ("0.001s", ExprKind::Duration(1)),
        ("0.0004s", ExprKind::Duration(0)),
        ("0.0005s", ExprKind::Duration(1)),
        ("0s", ExprKind::Duration(0)),
        ("user.name", ExprKind::Var("user.name".into())),
        ("_x1", ExprKind::Var("_x1".into())),
        ("a.b.c", ExprKind::Var("a.b.c".into())),
        ("user.and", ExprKind::Var("user.and".into())),
        ("True", ExprKind::Var("True".into())),
        ("count", ExprKind::Var("count".into())),
        ("[]", ExprKind::List(vec![])),
    ];
    for (src, expected) in cases {
        let expr = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(expr.kind, expected, "{src}");
    }
}

#[test]
fn every_node_carries_its_byte_span() {
    let src = "not (score + 1) > count(habits) or 'é' == x";
    let expr = parse(src).unwrap();
    assert_eq!(at(src, expr.span), src);
    let mut spans = Vec::new();
    expr.walk(&mut |e| spans.push(at(src, e.span).to_owned()));
    assert_eq!(
        spans,
        [
            src,
            "not (score + 1) > count(habits)",
            "(score + 1) > count(habits)",
            "(score + 1)",
            "score",
            "1",
            "count(habits)",
            "habits",
            "'é' == x",
            "'é'",
            "x",
        ]
    );
}

#[test]
fn equality_of_expressions_ignores_spans_and_redundant_parentheses() {
    assert_eq!(parse("(a)+b").unwrap(), parse("a + b").unwrap());
    assert_eq!(parse("((not x))").unwrap(), parse("not x").unwrap());
    assert_ne!(parse("a + b").unwrap(), parse("a + c").unwrap());
    assert_ne!(parse("a - (b - c)").unwrap(), parse("a - b - c").unwrap());
}

#[test]
fn syntax_errors_say_what_was_expected_and_where() {
    let cases = [
        ("(a + b", 6, "expected `)` at column 7, found end of input"),
        ("count(habits >= 2", 17, "expected `,` or `)` at column 18, found end of input"),
        ("[1, 2", 5, "expected `,` or `]` at column 6, found end of input"),
        ("f(1 2)", 4, "expected `,` or `)` at column 5, found `2`"),
        ("a b", 2, "expected an operator or the end of the condition at column 3, found `b`"),
        ("a AND b", 2, "expected an operator or the end of the condition at column 3, found `AND`"),
        ("", 0, "expected an expression at column 1, found end of input"),
        ("a +", 3, "expected an expression at column 4, found end of input"),
        ("a + )", 4, "expected an expression at column 5, found `)`"),
        ("a < b < c", 6, "comparisons cannot be chained; join them with `and`, as in `a < b and b < c` at column 7"),
        ("a == b in c", 7, "comparisons cannot be chained; join them with `and`, as in `a < b and b < c` at column 8"),
        ("a = 1", 2, "unexpected character `=` (use `==` to compare) at column 3"),
        ("!a", 0, "unexpected character `!` (use `not`, or `!=` to compare) at column 1"),
        ("a && b", 2, "unexpected character `&` (use `and`) at column 3"),
        ("a || b", 2, "unexpected character `|` (use `or`) at column 3"),
        ("é", 0, "unexpected character `é` at column 1"),
        ("3.", 1, "unexpected character `.` at column 2"),
        ("user . name", 5, "unexpected character `.` at column 6"),
        ("'abc", 0, "text is not closed with its quote at column 1"),
        ("'abc\\", 0, "text is not closed with its quote at column 1"),
        ("'a\\qb'", 2, "unknown escape `\\q` (use \\\\, \\\", \\', \\n or \\t) at column 3"),
        ("3days", 1, "unknown duration unit `days` (use s, m, h, d or w, as in 30m) at column 2"),
        ("user.", 5, "expected a name after `.` at column 6"),
        ("user.1", 5, "expected a name after `.` at column 6"),
        ("a not in b", 2, "write `not (a in b)` instead of `a not in b` at column 3"),
        ("a not contains b", 2, "write `not (a contains b)` instead of `a not contains b` at column 3"),
        ("1 + not a", 4, "`not` binds looser than this operator; put it in parentheses: `(not ...)` at column 5"),
        ("99999999999999999w", 0, "duration is too large at column 1"),
        ("'é' ==\n  (y", 12, "expected `)` at line 2, column 5, found end of input"),
        ("x == 'a long text' z", 19, "expected an operator or the end of the condition at column 20, found `z`"),
    ];
    for (src, offset, message) in cases {
        let error = parse(src).expect_err(src);
        assert_eq!((error.offset, error.to_string().as_str()), (offset, message), "{src}");
    }
}

#[test]
fn a_long_token_is_cut_short_in_the_message() {
    let error = parse("x 'a text long enough to be cut in a message'").unwrap_err();
    assert_eq!(
        error.to_string(),
        "expected an operator or the end of the condition at column 3, found `'a text long enough to b…`"
    );
}

#[test]
fn a_number_too_large_for_a_float_is_refused() {
    let src = format!("1{}", "0".repeat(400));
    assert_eq!(parse(&src).unwrap_err().kind, SyntaxErrorKind::NumberTooLarge);
}

#[test]
fn input_longer_than_4_kib_is_refused() {
    let fits = format!("'{}'", "x".repeat(MAX_SOURCE_LEN - 2));
    assert!(parse(&fits).is_ok());
    let error = parse(&format!("'{}'", "x".repeat(MAX_SOURCE_LEN - 1))).unwrap_err();
    assert_eq!((error.kind, error.offset), (SyntaxErrorKind::TooLong { max: MAX_SOURCE_LEN }, 0));
}

#[test]
fn nesting_deeper_than_64_is_refused_without_overflowing_the_stack() {
    let nested = |open: &str, close: &str, n: usize| format!("{}1{}", open.repeat(n), close.repeat(n));
    let chain = |op: &str, n: usize| format!("1{}", format!(" {op} 1").repeat(n));
    let fitting = [
        nested("(", ")", MAX_DEPTH),
        nested("[", "]", MAX_DEPTH),
        nested("f(", ")", MAX_DEPTH),
        nested("-", "", MAX_DEPTH),
        nested("not ", "", MAX_DEPTH),
        chain("+", MAX_DEPTH),
        chain("or", MAX_DEPTH),
    ];
    for src in fitting {
        assert!(parse(&src).is_ok(), "{src}");
    }
    let too_deep = [
        nested("(", ")", MAX_DEPTH + 1),
        nested("[", "]", MAX_DEPTH + 1),
        nested("f(", ")", MAX_DEPTH + 1),
        nested("-", "", MAX_DEPTH + 1),
        nested("not ", "", MAX_DEPTH + 1),
        chain("+", MAX_DEPTH + 1),
        chain("or", MAX_DEPTH + 1),
        nested("(", ")", 2000),
        nested("-", "", 4000),
        nested("not ", "", 1000),
        chain("*", 1000),
        format!("{}1", "[".repeat(4000)),
    ];
    for src in too_deep {
        let error = parse(&src).expect_err(&src);
        assert_eq!(error.kind, SyntaxErrorKind::TooDeep { max: MAX_DEPTH }, "{src}");
    }
    let error = parse(&nested("(", ")", MAX_DEPTH + 1)).unwrap_err();
    assert_eq!(error.to_string(), "the condition nests deeper than 64 levels at column 65");
}

#[test]
fn variables_and_answers_are_listed_once_in_order_of_appearance() {
    let expr = parse("has(b) and a > 1 and b < a and answer('x') == answer(\"y\") or answer('x') == c.d").unwrap();
    assert_eq!(variables(&expr), ["b", "a", "c.d"]);
    assert_eq!(answers(&expr), ["x", "y"]);
    let expr = parse("answer(goal) == 1").unwrap();
    assert_eq!(variables(&expr), ["goal"]);
    assert!(answers(&expr).is_empty());
}
