//! Tests of the condition language, one file per concern; the shared fixture lives here.

mod check;
mod eval;
mod json;
mod parse;
mod print;
mod props;

use super::{Expr, ExprKind, MapScope, Span, Type, TypeScope, Value};
use crate::time::Timestamp;

/// 2024-05-01T12:00:00Z.
pub(super) const NOW: i64 = 1_714_564_800_000;
pub(super) const HOUR: i64 = 3_600_000;
pub(super) const DAY: i64 = 24 * HOUR;

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// A user four days into a sleep program, who answered two steps.
pub(super) fn scope() -> MapScope {
    let mut scope = MapScope::new(Timestamp::from_millis(NOW));
    let vars = [
        ("goal", text("sleep")),
        ("mood", text("tired today")),
        ("name", text("Ana")),
        ("score", Value::Number(3.0)),
        ("zero", Value::Number(0.0)),
        ("big", Value::Number(1e300)),
        ("flag", Value::Bool(true)),
        ("streak", Value::Duration(2 * DAY)),
        ("far", Value::Duration(i64::MAX)),
        ("enrolled_at", Value::Time(Timestamp::from_millis(NOW - 4 * DAY))),
        ("last_reply", Value::Time(Timestamp::from_millis(NOW - 3 * DAY))),
        ("habits", Value::List(vec![text("walk"), text("read")])),
        ("numbers", Value::List(vec![Value::Number(1.0), Value::Number(2.0), Value::Number(3.0)])),
        ("empty", Value::List(vec![])),
        ("user.name", text("Ana")),
        ("user.timezone", text("Europe/Lisbon")),
    ];
    scope.vars = vars.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
    scope.answers.insert("energy".to_owned(), Value::Number(2.0));
    scope.answers.insert("focus".to_owned(), text("deep work"));
    scope
}

/// The types of a [`scope`]'s values, and besides them a declared variable `missing` and a
/// declared step `later`, both without a value.
pub(super) struct Declared<'a>(pub &'a MapScope);

impl TypeScope for Declared<'_> {
    fn variable(&self, name: &str) -> Option<Type> {
        if name == "missing" { Some(Type::Number) } else { self.0.variable(name) }
    }

    fn answer(&self, step: &str) -> Option<Type> {
        if step == "later" { Some(Type::Number) } else { self.0.answer(step) }
    }
}

/// The source text a span covers.
pub(super) fn at(src: &str, span: Span) -> &str {
    &src[span.start..span.end]
}

/// The tree fully parenthesised, operator first, to state precedence plainly.
pub(super) fn shape(expr: &Expr) -> String {
    let all = |exprs: &[Expr]| exprs.iter().map(shape).collect::<Vec<_>>().join(" ");
    match &expr.kind {
        ExprKind::List(items) => format!("[{}]", all(items)),
        ExprKind::Call { name, args } if args.is_empty() => format!("({name})"),
        ExprKind::Call { name, args } => format!("({name} {})", all(args)),
        ExprKind::Unary { op, operand } => format!("({} {})", op.symbol(), shape(operand)),
        ExprKind::Binary { op, lhs, rhs } => format!("({} {} {})", op.symbol(), shape(lhs), shape(rhs)),
        _ => expr.to_string(),
    }
}
