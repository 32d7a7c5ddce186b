//! Evaluation against a user's data. Total: every way it can go wrong is an [`EvalError`] with the
//! span at fault, never a panic and never a silent `false`. The cursor calls it on checked
//! expressions; the user's data may still differ from the declared types, so every operation checks
//! its operands again.

use std::cmp::Ordering;

use super::ast::{BinaryOp, Expr, ExprKind, Function, Span, UnaryOp};
use super::pattern;
use super::scope::ValueScope;
use super::types::{self, Type, TypeError, TypeErrorKind};
use super::value::Value;

const MS_PER_HOUR: f64 = 3_600_000.0;
const MS_PER_DAY: f64 = 86_400_000.0;

/// Why a condition could not be decided. The caller treats the condition as failed to evaluate
/// (reports it to the creator), not as false.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("`{name}` is not set (test it first with has({name}))")]
    Unset { name: String, span: Span },
    #[error("step `{step}` has not been answered (test it first with has(answer(\"{step}\")))")]
    NoAnswer { step: String, span: Span },
    #[error("division by zero")]
    DivisionByZero { span: Span },
    #[error("the result is not a finite number")]
    NotFinite { span: Span },
    #[error("the result is outside the range of durations and times")]
    OutOfRange { span: Span },
    #[error("`{name}` holds a list of mixed types")]
    MixedList { name: String, span: Span },
    #[error("`{name}` holds a number that is not finite")]
    NotFiniteValue { name: String, span: Span },
    #[error("regex does not compile: {reason}")]
    BadPattern { reason: String, span: Span },
    /// A value has another type than the check assumed: the user's data differs from the declared
    /// types (or the expression was never checked).
    #[error("{0}")]
    Type(TypeError),
}

impl EvalError {
    pub fn span(&self) -> Span {
        match self {
            EvalError::Unset { span, .. }
            | EvalError::NoAnswer { span, .. }
            | EvalError::DivisionByZero { span }
            | EvalError::NotFinite { span }
            | EvalError::OutOfRange { span }
            | EvalError::MixedList { span, .. }
            | EvalError::NotFiniteValue { span, .. }
            | EvalError::BadPattern { span, .. } => *span,
            EvalError::Type(error) => error.span,
        }
    }
}

/// The value of `expr`. `and` and `or` evaluate their right side only when the left does not
/// decide, so `has(x) and x > 3` never reads an unset `x`.
pub fn eval(expr: &Expr, scope: &dyn ValueScope) -> Result<Value, EvalError> {
    Evaluator { scope }.eval(expr)
}

struct Evaluator<'a> {
    scope: &'a dyn ValueScope,
}

fn type_error(kind: TypeErrorKind, span: Span) -> EvalError {
    EvalError::Type(TypeError { kind, span })
}

/// The type of a value met during evaluation. Such values are admitted (never mixed lists), so the
/// fallback only words an error message.
fn type_of(value: &Value) -> Type {
    Type::of(value).unwrap_or(Type::List(None))
}

fn number(n: f64, span: Span) -> Result<Value, EvalError> {
    if n.is_finite() { Ok(Value::Number(n)) } else { Err(EvalError::NotFinite { span }) }
}

fn duration(ms: Option<i64>, span: Span) -> Result<Value, EvalError> {
    ms.map(Value::Duration).ok_or(EvalError::OutOfRange { span })
}

fn time(ms: Option<i64>, span: Span) -> Result<Value, EvalError> {
    ms.map(|ms| Value::Time(crate::time::Timestamp::from_millis(ms))).ok_or(EvalError::OutOfRange { span })
}

/// A fractional count of milliseconds, rounded, as a duration.
fn duration_from_f64(ms: f64, span: Span) -> Result<Value, EvalError> {
    let ms = ms.round();
    // -2^63 and 2^63 are exact in f64; the cast below is exact for every value between them.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if ms.is_finite() && (-LIMIT..LIMIT).contains(&ms) {
        Ok(Value::Duration(ms as i64))
    } else {
        Err(EvalError::OutOfRange { span })
    }
}

/// A value read from the scope, refused when no condition could hold it.
fn admit(value: Value, name: &str, span: Span) -> Result<Value, EvalError> {
    fn finite(value: &Value) -> bool {
        match value {
            Value::Number(n) => n.is_finite(),
            Value::List(items) => items.iter().all(finite),
            _ => true,
        }
    }
    if !finite(&value) {
        return Err(EvalError::NotFiniteValue { name: name.to_owned(), span });
    }
    if Type::of(&value).is_none() {
        return Err(EvalError::MixedList { name: name.to_owned(), span });
    }
    Ok(value)
}

impl Evaluator<'_> {
    fn eval(&self, expr: &Expr) -> Result<Value, EvalError> {
        let span = expr.span;
        match &expr.kind {
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            // The parser only makes finite numbers; a tree built by hand may not.
            ExprKind::Number(n) => number(*n, span),
            ExprKind::Text(text) => Ok(Value::Text(text.clone())),
            ExprKind::Duration(ms) => Ok(Value::Duration(*ms)),
            ExprKind::List(items) => self.list(items),
            ExprKind::Var(name) => match self.scope.variable(name) {
                Some(value) => admit(value, name, span),
                None => Err(EvalError::Unset { name: name.clone(), span }),
            },
            ExprKind::Call { name, args } => self.call(name, args, span),
            ExprKind::Unary { op, operand } => unary(*op, self.eval(operand)?, span),
            ExprKind::Binary { op: op @ (BinaryOp::And | BinaryOp::Or), lhs, rhs } => {
                let left = self.boolean(*op, lhs)?;
                // `false and _` and `true or _` are decided without the right side.
                if left == (*op == BinaryOp::Or) {
                    return Ok(Value::Bool(left));
                }
                Ok(Value::Bool(self.boolean(*op, rhs)?))
            }
            ExprKind::Binary { op, lhs, rhs } => binary(*op, self.eval(lhs)?, self.eval(rhs)?, span),
        }
    }

    fn boolean(&self, op: BinaryOp, side: &Expr) -> Result<bool, EvalError> {
        match self.eval(side)? {
            Value::Bool(b) => Ok(b),
            other => {
                let kind =
                    TypeErrorKind::Operand { op: op.symbol(), expected: "bool on both sides", found: type_of(&other) };
                Err(type_error(kind, side.span))
            }
        }
    }

    fn list(&self, items: &[Expr]) -> Result<Value, EvalError> {
        let mut values = Vec::with_capacity(items.len());
        let mut element: Option<Type> = None;
        for item in items {
            let value = self.eval(item)?;
            let found = type_of(&value);
            element = Some(match element {
                None => found,
                Some(first) => match first.unify(&found) {
                    Some(both) => both,
                    None => return Err(type_error(TypeErrorKind::MixedList { first, found }, item.span)),
                },
            });
            values.push(value);
        }
        Ok(Value::List(values))
    }

    fn answer(&self, arg: &Expr) -> Result<Value, EvalError> {
        let ExprKind::Text(step) = &arg.kind else {
            return Err(type_error(TypeErrorKind::AnswerNotLiteral, arg.span));
        };
        match self.scope.answer(step) {
            Some(value) => admit(value, &format!("answer(\"{step}\")"), arg.span),
            None => Err(EvalError::NoAnswer { step: step.clone(), span: arg.span }),
        }
    }

    fn call(&self, name: &str, args: &[Expr], span: Span) -> Result<Value, EvalError> {
        let Some(function) = Function::from_name(name) else {
            return Err(type_error(TypeErrorKind::UnknownFunction { name: name.to_owned() }, span));
        };
        match (function, args) {
            (Function::Now, []) => Ok(Value::Time(self.scope.now())),
            (Function::Answer, [arg]) => self.answer(arg),
            (Function::Has, [arg]) => match (&arg.kind, arg.answer_step()) {
                (ExprKind::Var(name), _) => Ok(Value::Bool(self.scope.variable(name).is_some())),
                (_, Some(step)) => Ok(Value::Bool(self.scope.answer(step).is_some())),
                _ => Err(type_error(TypeErrorKind::HasNotVariable, arg.span)),
            },
            (Function::Now, _) | (_, [] | [_, _, ..]) => {
                let kind =
                    TypeErrorKind::Arity { function: function.name(), expected: function.arity(), found: args.len() };
                Err(type_error(kind, span))
            }
            (_, [arg]) => {
                let value = self.eval(arg)?;
                let since = |at: crate::time::Timestamp| {
                    // In i128 so that no pair of times overflows; the quotient is finite.
                    (i128::from(self.scope.now().millis()) - i128::from(at.millis())) as f64
                };
                match (function, value) {
                    (Function::Count, Value::List(items)) => Ok(Value::Number(items.len() as f64)),
                    (Function::Len, Value::Text(text)) => Ok(Value::Number(text.chars().count() as f64)),
                    (Function::Lower, Value::Text(text)) => Ok(Value::Text(text.to_lowercase())),
                    (Function::DaysSince, Value::Time(at)) => number(since(at) / MS_PER_DAY, span),
                    (Function::HoursSince, Value::Time(at)) => number(since(at) / MS_PER_HOUR, span),
                    (_, value) => {
                        let found = type_of(&value);
                        let expected = types::expected_argument(function);
                        Err(type_error(
                            TypeErrorKind::Argument { function: function.name(), expected, found },
                            arg.span,
                        ))
                    }
                }
            }
        }
    }
}

fn unary(op: UnaryOp, value: Value, span: Span) -> Result<Value, EvalError> {
    match (op, value) {
        (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (UnaryOp::Neg, Value::Number(n)) => Ok(Value::Number(-n)),
        (UnaryOp::Neg, Value::Duration(ms)) => duration(ms.checked_neg(), span),
        (op, value) => {
            let kind = TypeErrorKind::Operand {
                op: op.symbol(),
                expected: types::expected_operand(op),
                found: type_of(&value),
            };
            Err(type_error(kind, span))
        }
    }
}

fn binary(op: BinaryOp, lhs: Value, rhs: Value, span: Span) -> Result<Value, EvalError> {
    use Value::{Duration, List, Number, Text, Time};
    let mismatch = |lhs: &Value, rhs: &Value| {
        type_error(TypeErrorKind::Operands { op: op.symbol(), lhs: type_of(lhs), rhs: type_of(rhs) }, span)
    };
    match (op, &lhs, &rhs) {
        (BinaryOp::Div | BinaryOp::Rem, Number(_), Number(b)) if *b == 0.0 => Err(EvalError::DivisionByZero { span }),
        (BinaryOp::Div, Duration(_), Number(b)) if *b == 0.0 => Err(EvalError::DivisionByZero { span }),
        (BinaryOp::Div, Duration(_), Duration(0)) => Err(EvalError::DivisionByZero { span }),
        (BinaryOp::Add, Number(a), Number(b)) => number(a + b, span),
        (BinaryOp::Sub, Number(a), Number(b)) => number(a - b, span),
        (BinaryOp::Mul, Number(a), Number(b)) => number(a * b, span),
        (BinaryOp::Div, Number(a), Number(b)) => number(a / b, span),
        // The remainder takes the sign of the left side: -7 % 3 == -1.
        (BinaryOp::Rem, Number(a), Number(b)) => number(a % b, span),
        (BinaryOp::Add, Text(a), Text(b)) => Ok(Text(format!("{a}{b}"))),
        (BinaryOp::Add, Duration(a), Duration(b)) => duration(a.checked_add(*b), span),
        (BinaryOp::Sub, Duration(a), Duration(b)) => duration(a.checked_sub(*b), span),
        (BinaryOp::Add, Time(at), Duration(d)) | (BinaryOp::Add, Duration(d), Time(at)) => {
            time(at.millis().checked_add(*d), span)
        }
        (BinaryOp::Sub, Time(at), Duration(d)) => time(at.millis().checked_sub(*d), span),
        (BinaryOp::Sub, Time(a), Time(b)) => duration(a.millis().checked_sub(b.millis()), span),
        (BinaryOp::Mul, Duration(d), Number(x)) | (BinaryOp::Mul, Number(x), Duration(d)) => {
            duration_from_f64(*d as f64 * x, span)
        }
        (BinaryOp::Div, Duration(d), Number(x)) => duration_from_f64(*d as f64 / x, span),
        (BinaryOp::Div, Duration(a), Duration(b)) => number(*a as f64 / *b as f64, span),
        (BinaryOp::Eq | BinaryOp::Ne, a, b) => match type_of(a).unify(&type_of(b)) {
            Some(_) => Ok(Value::Bool((a == b) == (op == BinaryOp::Eq))),
            None => Err(mismatch(a, b)),
        },
        (BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge, a, b) => match order(a, b) {
            Some(ordering) => Ok(Value::Bool(match op {
                BinaryOp::Lt => ordering.is_lt(),
                BinaryOp::Le => ordering.is_le(),
                BinaryOp::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            })),
            None => Err(mismatch(a, b)),
        },
        (BinaryOp::In, Text(needle), Text(text)) | (BinaryOp::Contains, Text(text), Text(needle)) => {
            Ok(Value::Bool(text.contains(needle.as_str())))
        }
        (BinaryOp::In, item, List(items)) | (BinaryOp::Contains, List(items), item) => {
            let fits = match Type::of_items(items) {
                Some(Type::List(Some(element))) => element.unify(&type_of(item)).is_some(),
                Some(_) => true,
                None => false,
            };
            if fits { Ok(Value::Bool(items.contains(item))) } else { Err(mismatch(&lhs, &rhs)) }
        }
        (BinaryOp::Matches, Text(text), Text(pattern)) => match pattern::compile(pattern) {
            Ok(regex) => Ok(Value::Bool(regex.is_match(text))),
            Err(reason) => Err(EvalError::BadPattern { reason, span }),
        },
        _ => Err(mismatch(&lhs, &rhs)),
    }
}

/// Numbers, durations and times by size, texts by their bytes; `None` across types. Numbers here
/// are finite, so their comparison always decides.
fn order(lhs: &Value, rhs: &Value) -> Option<Ordering> {
    match (lhs, rhs) {
        (Value::Number(a), Value::Number(b)) => a.partial_cmp(b),
        (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
        (Value::Duration(a), Value::Duration(b)) => Some(a.cmp(b)),
        (Value::Time(a), Value::Time(b)) => Some(a.cmp(b)),
        _ => None,
    }
}
