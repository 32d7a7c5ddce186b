use super::super::{Expr, ExprKind, Span, parse};

#[test]
fn printing_keeps_only_the_parentheses_the_shape_needs() {
    let cases = [
        ("(a or b) and c", "(a or b) and c"),
        ("a or (b and c)", "a or b and c"),
        ("a or (b or c)", "a or (b or c)"),
        ("(a or b) or c", "a or b or c"),
        ("((1 + 2)) * 3", "(1 + 2) * 3"),
        ("1 - (2 - 3)", "1 - (2 - 3)"),
        ("(1 - 2) - 3", "1 - 2 - 3"),
        ("1 + (2 * 3)", "1 + 2 * 3"),
        ("not (a == b)", "not a == b"),
        ("(not a) == b", "(not a) == b"),
        ("not (not a)", "not not a"),
        ("not (a and b)", "not (a and b)"),
        ("1 + (not a)", "1 + (not a)"),
        ("-(2 * 3)", "-(2 * 3)"),
        ("(-2) * 3", "-2 * 3"),
        ("-(-2)", "--2"),
        ("2 - (-2)", "2 - -2"),
        ("(a < b) == c", "(a < b) == c"),
        ("a == (b < c)", "a == (b < c)"),
        ("x  in[1,2]", "x in [1, 2]"),
        ("f( a,b )", "f(a, b)"),
        ("now( )", "now()"),
        ("'it\\'s'", "\"it's\""),
        ("'say \"hi\"'", "\"say \\\"hi\\\"\""),
        ("'tab\\tnew\\nline\\\\'", "\"tab\\tnew\\nline\\\\\""),
        ("1.50", "1.5"),
        ("007", "7"),
        ("0.1", "0.1"),
        ("90m", "90m"),
        ("1.5h", "90m"),
        ("120s", "2m"),
        ("7d", "1w"),
        ("1.5s", "1.5s"),
        ("0.25s", "0.25s"),
        ("0.001s", "0.001s"),
        ("0m", "0s"),
        ("user.name", "user.name"),
    ];
    for (src, printed) in cases {
        let expr = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(expr.to_string(), printed, "{src}");
        assert_eq!(parse(printed).unwrap(), expr, "{src}");
    }
}

#[test]
fn durations_print_in_the_largest_unit_that_divides_them() {
    let cases = [(i64::MAX, "9223372036854775.807s"), (i64::MIN, "-9223372036854775.808s"), (-3_600_000, "-1h")];
    for (ms, printed) in cases {
        assert_eq!(Expr::new(ExprKind::Duration(ms), Span::default()).to_string(), printed);
    }
    assert_eq!(parse("9223372036854775.807s").unwrap().kind, ExprKind::Duration(i64::MAX));
}
