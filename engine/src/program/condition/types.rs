//! Types of the condition language and the checker the program validator runs at load time, so
//! unknown names and type errors are found before any user reaches the condition.

use std::fmt;

use super::ast::{BinaryOp, Expr, ExprKind, Function, Span, UnaryOp};
use super::pattern;
use super::scope::TypeScope;
use super::value::Value;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Number,
    Text,
    Duration,
    Time,
    /// The element type; `None` for an empty list, whose element type is whatever it meets.
    List(Option<Box<Type>>),
}

impl Type {
    pub fn list_of(element: Type) -> Type {
        Type::List(Some(Box::new(element)))
    }

    /// The type of a value; `None` when a list mixes element types (such a value fails evaluation).
    pub fn of(value: &Value) -> Option<Type> {
        Some(match value {
            Value::Bool(_) => Type::Bool,
            Value::Number(_) => Type::Number,
            Value::Text(_) => Type::Text,
            Value::Duration(_) => Type::Duration,
            Value::Time(_) => Type::Time,
            Value::List(items) => return Type::of_items(items),
        })
    }

    /// The type of a list holding `items`; `None` when they mix types.
    pub(crate) fn of_items(items: &[Value]) -> Option<Type> {
        let mut element: Option<Type> = None;
        for item in items {
            let item = Type::of(item)?;
            element = Some(match element {
                None => item,
                Some(known) => known.unify(&item)?,
            });
        }
        Some(Type::List(element.map(Box::new)))
    }

    /// The type both sides can be: equal types, or lists whose element type is unknown on one side.
    pub fn unify(&self, other: &Type) -> Option<Type> {
        match (self, other) {
            (Type::List(Some(a)), Type::List(Some(b))) => Some(Type::list_of(a.unify(b)?)),
            (Type::List(None), Type::List(element)) | (Type::List(element), Type::List(None)) => {
                Some(Type::List(element.clone()))
            }
            (a, b) if a == b => Some(a.clone()),
            _ => None,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Number => f.write_str("number"),
            Type::Text => f.write_str("text"),
            Type::Duration => f.write_str("duration"),
            Type::Time => f.write_str("time"),
            Type::List(None) => f.write_str("empty list"),
            Type::List(Some(element)) => write!(f, "list of {element}"),
        }
    }
}

/// A type error and the part of the source it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct TypeError {
    pub kind: TypeErrorKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeErrorKind {
    #[error("unknown variable `{name}`")]
    UnknownVariable { name: String },
    #[error(
        "unknown function `{name}` (the functions are count, len, lower, days_since, hours_since, now, answer and has)"
    )]
    UnknownFunction { name: String },
    #[error("{function}() takes {expected} argument{}, found {found}", if *.expected == 1 { "" } else { "s" })]
    Arity { function: &'static str, expected: usize, found: usize },
    #[error("`{op}` cannot be applied to {lhs} and {rhs}")]
    Operands { op: &'static str, lhs: Type, rhs: Type },
    #[error("`{op}` expects {expected}, found {found}")]
    Operand { op: &'static str, expected: &'static str, found: Type },
    #[error("{function}() expects {expected}, found {found}")]
    Argument { function: &'static str, expected: &'static str, found: Type },
    #[error("list items must all have one type: {first}, then {found}")]
    MixedList { first: Type, found: Type },
    #[error("the right side of `matches` must be a regex in quotes, like \"^[A-Z]\"")]
    PatternNotLiteral,
    #[error("bad regex: {reason}")]
    BadPattern { reason: String },
    #[error("answer() takes a step id in quotes, like answer(\"energy\")")]
    AnswerNotLiteral,
    #[error("no step `{step}` has an answer")]
    UnknownAnswer { step: String },
    #[error("has() takes a variable or answer(\"step\"), like has(user.name)")]
    HasNotVariable,
}

/// The type of `expr`, or every error found in it.
pub fn check(expr: &Expr, scope: &dyn TypeScope) -> Result<Type, Vec<TypeError>> {
    let mut checker = Checker { scope, errors: Vec::new() };
    match checker.infer(expr) {
        Some(ty) if checker.errors.is_empty() => Ok(ty),
        _ => Err(checker.errors),
    }
}

struct Checker<'a> {
    scope: &'a dyn TypeScope,
    errors: Vec<TypeError>,
}

impl Checker<'_> {
    /// `None` only after an error was recorded; the parent then stays quiet rather than report a
    /// consequence of it.
    fn infer(&mut self, expr: &Expr) -> Option<Type> {
        match &expr.kind {
            ExprKind::Bool(_) => Some(Type::Bool),
            ExprKind::Number(_) => Some(Type::Number),
            ExprKind::Text(_) => Some(Type::Text),
            ExprKind::Duration(_) => Some(Type::Duration),
            ExprKind::List(items) => self.list(items),
            ExprKind::Var(name) => self.variable(name, expr.span),
            ExprKind::Call { name, args } => self.call(name, args, expr.span),
            ExprKind::Unary { op, operand } => {
                let found = self.infer(operand)?;
                unary_type(*op, &found).or_else(|| {
                    let expected = expected_operand(*op);
                    self.fail(TypeErrorKind::Operand { op: op.symbol(), expected, found }, expr.span)
                })
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, expr.span),
        }
    }

    fn fail(&mut self, kind: TypeErrorKind, span: Span) -> Option<Type> {
        self.errors.push(TypeError { kind, span });
        None
    }

    fn infer_all(&mut self, exprs: &[Expr]) {
        for expr in exprs {
            self.infer(expr);
        }
    }

    fn variable(&mut self, name: &str, span: Span) -> Option<Type> {
        self.scope.variable(name).or_else(|| self.fail(TypeErrorKind::UnknownVariable { name: name.to_owned() }, span))
    }

    fn answer(&mut self, arg: &Expr) -> Option<Type> {
        let ExprKind::Text(step) = &arg.kind else {
            self.infer(arg);
            return self.fail(TypeErrorKind::AnswerNotLiteral, arg.span);
        };
        self.scope.answer(step).or_else(|| self.fail(TypeErrorKind::UnknownAnswer { step: step.clone() }, arg.span))
    }

    fn list(&mut self, items: &[Expr]) -> Option<Type> {
        let mut element: Option<Type> = None;
        let mut sound = true;
        for item in items {
            let Some(found) = self.infer(item) else {
                sound = false;
                continue;
            };
            element = match element {
                None => Some(found),
                Some(first) => match first.unify(&found) {
                    Some(both) => Some(both),
                    None => {
                        sound = false;
                        self.fail(TypeErrorKind::MixedList { first: first.clone(), found }, item.span);
                        Some(first)
                    }
                },
            };
        }
        sound.then(|| Type::List(element.map(Box::new)))
    }

    fn call(&mut self, name: &str, args: &[Expr], span: Span) -> Option<Type> {
        let Some(function) = Function::from_name(name) else {
            self.infer_all(args);
            return self.fail(TypeErrorKind::UnknownFunction { name: name.to_owned() }, span);
        };
        match (function, args) {
            (Function::Now, []) => Some(Type::Time),
            (Function::Answer, [arg]) => self.answer(arg),
            (Function::Has, [arg]) => {
                match &arg.kind {
                    ExprKind::Var(name) => self.variable(name, arg.span)?,
                    ExprKind::Call { name, .. } if name == Function::Answer.name() => self.infer(arg)?,
                    _ => return self.fail(TypeErrorKind::HasNotVariable, arg.span),
                };
                Some(Type::Bool)
            }
            (Function::Now, _) | (_, [] | [_, _, ..]) => {
                self.infer_all(args);
                let kind =
                    TypeErrorKind::Arity { function: function.name(), expected: function.arity(), found: args.len() };
                self.fail(kind, span)
            }
            (_, [arg]) => {
                let found = self.infer(arg)?;
                function_type(function, &found).or_else(|| {
                    let kind = TypeErrorKind::Argument {
                        function: function.name(),
                        expected: expected_argument(function),
                        found,
                    };
                    self.fail(kind, arg.span)
                })
            }
        }
    }

    fn binary(&mut self, op: BinaryOp, lhs: &Expr, rhs: &Expr, span: Span) -> Option<Type> {
        match op {
            BinaryOp::And | BinaryOp::Or => {
                // Each side on its own, so `a and 3` points at the 3.
                let left = self.infer(lhs).map(|found| self.logical_side(op, found, lhs.span));
                let right = self.infer(rhs).map(|found| self.logical_side(op, found, rhs.span));
                (left == Some(true) && right == Some(true)).then_some(Type::Bool)
            }
            BinaryOp::Matches => {
                let text = self.infer(lhs);
                let pattern_error = match &rhs.kind {
                    ExprKind::Text(pattern) => {
                        pattern::compile(pattern).err().map(|reason| TypeErrorKind::BadPattern { reason })
                    }
                    _ => {
                        self.infer(rhs);
                        Some(TypeErrorKind::PatternNotLiteral)
                    }
                };
                let pattern_ok = pattern_error.is_none();
                if let Some(kind) = pattern_error {
                    self.fail(kind, rhs.span);
                }
                match text? {
                    Type::Text => pattern_ok.then_some(Type::Bool),
                    found => self.fail(TypeErrorKind::Operands { op: op.symbol(), lhs: found, rhs: Type::Text }, span),
                }
            }
            _ => {
                let left = self.infer(lhs);
                let right = self.infer(rhs);
                let (left, right) = (left?, right?);
                binary_type(op, &left, &right)
                    .or_else(|| self.fail(TypeErrorKind::Operands { op: op.symbol(), lhs: left, rhs: right }, span))
            }
        }
    }

    fn logical_side(&mut self, op: BinaryOp, found: Type, span: Span) -> bool {
        if found == Type::Bool {
            return true;
        }
        self.fail(TypeErrorKind::Operand { op: op.symbol(), expected: "bool on both sides", found }, span);
        false
    }
}

pub(crate) fn unary_type(op: UnaryOp, operand: &Type) -> Option<Type> {
    match (op, operand) {
        (UnaryOp::Not, Type::Bool) => Some(Type::Bool),
        (UnaryOp::Neg, Type::Number) => Some(Type::Number),
        (UnaryOp::Neg, Type::Duration) => Some(Type::Duration),
        _ => None,
    }
}

pub(crate) fn expected_operand(op: UnaryOp) -> &'static str {
    match op {
        UnaryOp::Not => "bool",
        UnaryOp::Neg => "a number or a duration",
    }
}

/// The result of a one-argument function given its argument's type.
pub(crate) fn function_type(function: Function, arg: &Type) -> Option<Type> {
    match (function, arg) {
        (Function::Count, Type::List(_)) => Some(Type::Number),
        (Function::Len, Type::Text) => Some(Type::Number),
        (Function::Lower, Type::Text) => Some(Type::Text),
        (Function::DaysSince | Function::HoursSince, Type::Time) => Some(Type::Number),
        _ => None,
    }
}

pub(crate) fn expected_argument(function: Function) -> &'static str {
    match function {
        Function::Count => "a list",
        Function::Len => "text (count() counts a list)",
        Function::Lower => "text",
        Function::DaysSince | Function::HoursSince => "a time",
        Function::Answer => "a step id in quotes",
        Function::Has => "a variable",
        Function::Now => "no argument",
    }
}

/// The result of a binary operator given its operands' types; `None` when it does not apply.
pub(crate) fn binary_type(op: BinaryOp, lhs: &Type, rhs: &Type) -> Option<Type> {
    use Type::{Bool, Duration, List, Number, Text, Time};
    let result = match (op, lhs, rhs) {
        (BinaryOp::And | BinaryOp::Or, Bool, Bool) => Bool,
        (BinaryOp::Add, Number, Number) | (BinaryOp::Sub, Number, Number) => Number,
        (BinaryOp::Add, Text, Text) => Text,
        (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => Duration,
        (BinaryOp::Add, Time, Duration) | (BinaryOp::Add, Duration, Time) | (BinaryOp::Sub, Time, Duration) => Time,
        (BinaryOp::Sub, Time, Time) => Duration,
        (BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem, Number, Number) => Number,
        (BinaryOp::Mul, Duration, Number) | (BinaryOp::Mul, Number, Duration) | (BinaryOp::Div, Duration, Number) => {
            Duration
        }
        (BinaryOp::Div, Duration, Duration) => Number,
        (BinaryOp::Eq | BinaryOp::Ne, _, _) => {
            lhs.unify(rhs)?;
            Bool
        }
        (BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge, _, _)
            if lhs == rhs && matches!(lhs, Number | Duration | Time | Text) =>
        {
            Bool
        }
        (BinaryOp::In, Text, Text) | (BinaryOp::Contains, Text, Text) | (BinaryOp::Matches, Text, Text) => Bool,
        (BinaryOp::In, element, List(elements)) | (BinaryOp::Contains, List(elements), element) => {
            if let Some(elements) = elements {
                elements.unify(element)?;
            }
            Bool
        }
        _ => return None,
    };
    Some(result)
}
