//! Property tests: printing round-trips, the parser survives any input, and evaluation of
//! well-typed expressions never panics and agrees with the checker.

use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;

use super::super::token::keyword;
use super::super::{
    BinaryOp, EvalError, Expr, ExprKind, MapScope, Span, Type, TypeScope, UnaryOp, Value, check, eval, parse,
};
use crate::time::Timestamp;

fn node(kind: ExprKind) -> Expr {
    Expr::new(kind, Span::default())
}

fn binary(op: BinaryOp, lhs: Expr, rhs: Expr) -> Expr {
    node(ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) })
}

fn unary(op: UnaryOp, operand: Expr) -> Expr {
    node(ExprKind::Unary { op, operand: Box::new(operand) })
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    node(ExprKind::Call { name: name.to_owned(), args })
}

fn var(name: &str) -> Expr {
    node(ExprKind::Var(name.to_owned()))
}

fn text(s: &str) -> Expr {
    node(ExprKind::Text(s.to_owned()))
}

const BINARY_OPS: [BinaryOp; 16] = [
    BinaryOp::Or,
    BinaryOp::And,
    BinaryOp::Eq,
    BinaryOp::Ne,
    BinaryOp::Lt,
    BinaryOp::Le,
    BinaryOp::Gt,
    BinaryOp::Ge,
    BinaryOp::In,
    BinaryOp::Contains,
    BinaryOp::Matches,
    BinaryOp::Add,
    BinaryOp::Sub,
    BinaryOp::Mul,
    BinaryOp::Div,
    BinaryOp::Rem,
];

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,5}(\\.[a-zA-Z_][a-zA-Z0-9_]{0,3}){0,2}".prop_filter("a keyword", |n| keyword(n).is_none())
}

/// Numbers as the parser makes them: finite, not negative, printable in a few dozen characters.
fn number_literal() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0_u32..1_000_000).prop_map(f64::from),
        (0_u64..1 << 53, 0_i32..8).prop_map(|(m, e)| m as f64 / 10_f64.powi(e)),
        any::<f64>().prop_filter("printable", |n| n.is_sign_positive() && (*n == 0.0 || (1e-20..1e20).contains(n))),
    ]
}

/// Any expression the parser can produce, spans left empty.
fn any_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(ExprKind::Bool),
        number_literal().prop_map(ExprKind::Number),
        "[ -~\\n\\t\\r\u{e9}\u{1F600}]{0,8}".prop_map(ExprKind::Text),
        (0_i64..=i64::MAX).prop_map(ExprKind::Duration),
        name().prop_map(ExprKind::Var),
    ]
    .prop_map(node);
    leaf.prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|items| node(ExprKind::List(items))),
            (name(), vec(inner.clone(), 0..3)).prop_map(|(name, args)| node(ExprKind::Call { name, args })),
            (prop_oneof![Just(UnaryOp::Not), Just(UnaryOp::Neg)], inner.clone()).prop_map(|(op, e)| unary(op, e)),
            (proptest::sample::select(&BINARY_OPS[..]), inner.clone(), inner)
                .prop_map(|(op, lhs, rhs)| binary(op, lhs, rhs)),
        ]
    })
}

/// Condition-like text: the language's own words and symbols, in any order.
fn token_soup() -> impl Strategy<Value = String> {
    const WORDS: &[&str] = &[
        "a",
        "user.name",
        "1",
        "2.5",
        "3d",
        "0.5h",
        "'x'",
        "\"y\\n\"",
        "'",
        "\"",
        "\\",
        "(",
        ")",
        "[",
        "]",
        ",",
        "+",
        "-",
        "*",
        "/",
        "%",
        "==",
        "!=",
        "<",
        "<=",
        ">",
        ">=",
        "=",
        "!",
        "and",
        "or",
        "not",
        "in",
        "contains",
        "matches",
        "true",
        "false",
        "count(",
        "now()",
        "answer(",
        "has(",
        ".",
        "é",
        "9999999999999999999d",
    ];
    vec(proptest::sample::select(WORDS), 0..24).prop_map(|w| w.join(" "))
}

proptest! {
    #[test]
    fn a_printed_expression_parses_back_to_an_equal_one(expr in any_expr()) {
        let printed = expr.to_string();
        let parsed = parse(&printed);
        prop_assert_eq!(parsed.as_ref(), Ok(&expr), "printed as {}", printed);
    }

    #[test]
    fn the_parser_never_panics_on_any_string(src in any::<String>()) {
        let _ = parse(&src);
    }

    #[test]
    fn parsed_token_soup_prints_and_parses_to_the_same_tree(src in token_soup()) {
        if let Ok(expr) = parse(&src) {
            let mut inside = true;
            expr.walk(&mut |e| inside &= e.span.start <= e.span.end && e.span.end <= src.len());
            prop_assert!(inside, "a span lies outside {}", src);
            prop_assert_eq!(parse(&expr.to_string()), Ok(expr));
        }
    }
}

/// The types the typed generator builds expressions of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Bool,
    Number,
    Text,
    Duration,
    Time,
    Numbers,
    Texts,
}

const TYS: [Ty; 7] = [Ty::Bool, Ty::Number, Ty::Text, Ty::Duration, Ty::Time, Ty::Numbers, Ty::Texts];

impl Ty {
    fn ty(self) -> Type {
        match self {
            Ty::Bool => Type::Bool,
            Ty::Number => Type::Number,
            Ty::Text => Type::Text,
            Ty::Duration => Type::Duration,
            Ty::Time => Type::Time,
            Ty::Numbers => Type::list_of(Type::Number),
            Ty::Texts => Type::list_of(Type::Text),
        }
    }
}

/// One variable of each type, and two answers.
struct Declared;

const VARIABLES: [(&str, Ty); 8] = [
    ("b", Ty::Bool),
    ("n", Ty::Number),
    ("m", Ty::Number),
    ("t", Ty::Text),
    ("d", Ty::Duration),
    ("at", Ty::Time),
    ("xs", Ty::Numbers),
    ("ts", Ty::Texts),
];

impl TypeScope for Declared {
    fn variable(&self, name: &str) -> Option<Type> {
        VARIABLES.iter().find(|(n, _)| *n == name).map(|(_, ty)| ty.ty())
    }

    fn answer(&self, step: &str) -> Option<Type> {
        match step {
            "energy" => Some(Type::Number),
            "focus" => Some(Type::Text),
            _ => None,
        }
    }
}

type Strategies = Vec<BoxedStrategy<Expr>>;

fn leaves(ty: Ty) -> BoxedStrategy<Expr> {
    let lit = |kind: ExprKind| node(kind);
    match ty {
        Ty::Bool => prop_oneof![
            any::<bool>().prop_map(move |b| lit(ExprKind::Bool(b))),
            Just(var("b")),
            Just(call("has", vec![var("n")])),
            Just(call("has", vec![call("answer", vec![text("energy")])])),
        ]
        .boxed(),
        Ty::Number => prop_oneof![
            any::<f64>().prop_map(move |n| lit(ExprKind::Number(if n.is_finite() { n } else { 0.0 }))),
            (-3_i32..10).prop_map(move |n| lit(ExprKind::Number(f64::from(n)))),
            Just(var("n")),
            Just(var("m")),
            Just(call("answer", vec![text("energy")])),
        ]
        .boxed(),
        Ty::Text => prop_oneof![
            ".{0,4}".prop_map(move |s| lit(ExprKind::Text(s))),
            Just(var("t")),
            Just(call("answer", vec![text("focus")])),
        ]
        .boxed(),
        Ty::Duration => {
            prop_oneof![any::<i64>().prop_map(move |ms| lit(ExprKind::Duration(ms))), Just(var("d"))].boxed()
        }
        Ty::Time => prop_oneof![Just(var("at")), Just(call("now", vec![]))].boxed(),
        Ty::Numbers => prop_oneof![
            Just(var("xs")),
            vec((-3_i32..10).prop_map(|n| node(ExprKind::Number(f64::from(n)))), 0..3)
                .prop_map(|items| node(ExprKind::List(items))),
        ]
        .boxed(),
        Ty::Texts => prop_oneof![
            Just(var("ts")),
            vec("[a-c]{0,2}".prop_map(|s| text(&s)), 0..3).prop_map(|items| node(ExprKind::List(items))),
        ]
        .boxed(),
    }
}

/// Expressions of `ty` one level deeper than those in `sub` (indexed like [`TYS`]).
fn composites(ty: Ty, sub: &Strategies) -> BoxedStrategy<Expr> {
    let of = |t: Ty| sub[TYS.iter().position(|x| *x == t).unwrap_or_default()].clone();
    let op = |ops: &'static [BinaryOp]| proptest::sample::select(ops);
    let bin = |ops: &'static [BinaryOp], l: Ty, r: Ty| {
        (op(ops), of(l), of(r)).prop_map(|(op, l, r)| binary(op, l, r)).boxed()
    };
    let call1 = |name: &'static str, t: Ty| of(t).prop_map(move |a| call(name, vec![a])).boxed();
    const ORDER: &[BinaryOp] = &[BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge, BinaryOp::Eq, BinaryOp::Ne];
    const EQUAL: &[BinaryOp] = &[BinaryOp::Eq, BinaryOp::Ne];
    match ty {
        Ty::Bool => prop_oneof![
            bin(&[BinaryOp::And, BinaryOp::Or], Ty::Bool, Ty::Bool),
            of(Ty::Bool).prop_map(|e| unary(UnaryOp::Not, e)),
            bin(ORDER, Ty::Number, Ty::Number),
            bin(ORDER, Ty::Duration, Ty::Duration),
            bin(ORDER, Ty::Time, Ty::Time),
            bin(ORDER, Ty::Text, Ty::Text),
            bin(EQUAL, Ty::Bool, Ty::Bool),
            bin(EQUAL, Ty::Numbers, Ty::Numbers),
            bin(&[BinaryOp::In], Ty::Number, Ty::Numbers),
            bin(&[BinaryOp::In, BinaryOp::Contains], Ty::Text, Ty::Text),
            bin(&[BinaryOp::Contains], Ty::Texts, Ty::Text),
            (of(Ty::Text), proptest::sample::select(&["^a", "b$", "[0-9]+", "(?i)X", ""][..]))
                .prop_map(|(t, p)| binary(BinaryOp::Matches, t, text(p))),
        ]
        .boxed(),
        Ty::Number => prop_oneof![
            bin(&[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Rem], Ty::Number, Ty::Number),
            of(Ty::Number).prop_map(|e| unary(UnaryOp::Neg, e)),
            bin(&[BinaryOp::Div], Ty::Duration, Ty::Duration),
            call1("count", Ty::Numbers),
            call1("count", Ty::Texts),
            call1("len", Ty::Text),
            call1("days_since", Ty::Time),
            call1("hours_since", Ty::Time),
        ]
        .boxed(),
        Ty::Text => prop_oneof![bin(&[BinaryOp::Add], Ty::Text, Ty::Text), call1("lower", Ty::Text)].boxed(),
        Ty::Duration => prop_oneof![
            bin(&[BinaryOp::Add, BinaryOp::Sub], Ty::Duration, Ty::Duration),
            bin(&[BinaryOp::Mul, BinaryOp::Div], Ty::Duration, Ty::Number),
            bin(&[BinaryOp::Mul], Ty::Number, Ty::Duration),
            bin(&[BinaryOp::Sub], Ty::Time, Ty::Time),
            of(Ty::Duration).prop_map(|e| unary(UnaryOp::Neg, e)),
        ]
        .boxed(),
        Ty::Time => prop_oneof![
            bin(&[BinaryOp::Add, BinaryOp::Sub], Ty::Time, Ty::Duration),
            bin(&[BinaryOp::Add], Ty::Duration, Ty::Time),
        ]
        .boxed(),
        Ty::Numbers => vec(of(Ty::Number), 0..3).prop_map(|items| node(ExprKind::List(items))).boxed(),
        Ty::Texts => vec(of(Ty::Text), 0..3).prop_map(|items| node(ExprKind::List(items))).boxed(),
    }
}

/// Well-typed expressions of each type in [`TYS`], up to `depth` operators deep.
fn typed(depth: usize) -> Strategies {
    let mut level: Strategies = TYS.iter().map(|ty| leaves(*ty)).collect();
    for _ in 0..depth {
        level = TYS.iter().map(|ty| prop_oneof![1 => leaves(*ty), 3 => composites(*ty, &level)].boxed()).collect();
    }
    level
}

fn well_typed() -> impl Strategy<Value = (Expr, Ty)> {
    let per_type = TYS.into_iter().zip(typed(3)).map(|(ty, exprs)| exprs.prop_map(move |e| (e, ty)));
    proptest::strategy::Union::new(per_type)
}

/// A value of the type, with the extremes that break arithmetic (huge, NaN, i64 bounds).
fn value_of(ty: Ty) -> BoxedStrategy<Value> {
    match ty {
        Ty::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Ty::Number => prop_oneof![any::<f64>(), -10.0..10.0_f64, Just(0.0)].prop_map(Value::Number).boxed(),
        Ty::Text => ".{0,4}".prop_map(Value::Text).boxed(),
        Ty::Duration => prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), -100_000_i64..100_000]
            .prop_map(Value::Duration)
            .boxed(),
        Ty::Time => prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), 0_i64..1 << 42]
            .prop_map(|ms| Value::Time(Timestamp::from_millis(ms)))
            .boxed(),
        Ty::Numbers => vec(value_of(Ty::Number), 0..3).prop_map(Value::List).boxed(),
        Ty::Texts => vec(value_of(Ty::Text), 0..3).prop_map(Value::List).boxed(),
    }
}

/// Any value at all, of any type, lists mixed or not.
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        value_of(Ty::Bool),
        value_of(Ty::Number),
        value_of(Ty::Text),
        value_of(Ty::Duration),
        value_of(Ty::Time)
    ];
    leaf.prop_recursive(2, 8, 3, |inner| vec(inner, 0..3).prop_map(Value::List))
}

/// The declared variables with values of their types, each possibly unset.
fn conforming_scope() -> impl Strategy<Value = MapScope> {
    let vars: Vec<_> = VARIABLES
        .iter()
        .map(|(name, ty)| proptest::option::weighted(0.9, value_of(*ty)).prop_map(move |v| (name.to_string(), v)))
        .collect();
    let answers =
        (proptest::option::weighted(0.9, value_of(Ty::Number)), proptest::option::weighted(0.9, value_of(Ty::Text)));
    (vars, answers, any::<i64>()).prop_map(|(vars, (energy, focus), now)| MapScope {
        vars: vars.into_iter().filter_map(|(name, v)| Some((name, v?))).collect(),
        answers: [("energy", energy), ("focus", focus)]
            .into_iter()
            .filter_map(|(s, v)| Some((s.to_owned(), v?)))
            .collect(),
        now: Timestamp::from_millis(now),
    })
}

/// The declared names with arbitrary values of any type.
fn arbitrary_scope() -> impl Strategy<Value = MapScope> {
    let names: Vec<_> = VARIABLES.iter().map(|(name, _)| name.to_string()).collect();
    (vec(proptest::option::of(any_value()), VARIABLES.len()), proptest::option::of(any_value()), any::<i64>()).prop_map(
        move |(values, energy, now)| MapScope {
            vars: names.iter().cloned().zip(values).filter_map(|(n, v)| Some((n, v?))).collect(),
            answers: energy.map(|v| ("energy".to_owned(), v)).into_iter().collect::<BTreeMap<_, _>>(),
            now: Timestamp::from_millis(now),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_expressions_check_to_the_type_they_were_built_for((expr, ty) in well_typed()) {
        let checked = check(&expr, &Declared);
        prop_assert!(matches!(&checked, Ok(found) if found.unify(&ty.ty()).is_some()), "{} gave {:?}", expr, checked);
    }

    /// On data that follows the declared types, evaluation gives a value of the checked type or an
    /// error about the data (unset, out of range...), never a type error.
    #[test]
    fn eval_of_a_well_typed_expression_gives_its_type_or_a_data_error(
        (expr, ty) in well_typed(),
        scope in conforming_scope(),
    ) {
        match eval(&expr, &scope) {
            Ok(value) => prop_assert!(
                Type::of(&value).and_then(|found| found.unify(&ty.ty())).is_some(),
                "{} gave {} for {:?}", expr, value, ty
            ),
            Err(EvalError::Type(error)) => prop_assert!(false, "{} gave a type error: {}", expr, error),
            Err(_) => {}
        }
    }

    #[test]
    fn eval_never_panics_whatever_the_data(
        (expr, _) in well_typed(),
        scope in arbitrary_scope(),
    ) {
        let _ = eval(&expr, &scope);
    }
}
