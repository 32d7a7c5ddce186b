//! The syntax tree of a condition: what the parser builds and the checker, evaluator and printer walk.

/// Byte range of a piece of the source, `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// An expression and where it came from.
///
/// Equality ignores spans: two expressions are equal when they have the same shape, so
/// `parse("(a)+b")` equals `parse("a + b")`.
#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    /// Covers the whole expression, including parentheses written around it.
    pub span: Span,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Bool(bool),
    /// Always finite; the parser makes no negative literals (`-2` is a negation of `2`).
    Number(f64),
    Text(String),
    /// Milliseconds.
    Duration(i64),
    List(Vec<Expr>),
    /// A variable by its dotted path, like `user.name`.
    Var(String),
    /// Any name may be called; [`super::check`] refuses names that are not a [`Function`].
    Call {
        name: String,
        args: Vec<Expr>,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Contains,
    Matches,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// How tightly an expression binds, loosest first. A child binding looser than its place in the
/// tree allows is printed in parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Or,
    And,
    Not,
    Compare,
    Sum,
    Product,
    Negate,
    Atom,
}

impl UnaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Not => "not",
            UnaryOp::Neg => "-",
        }
    }
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::Contains => "contains",
            BinaryOp::Matches => "matches",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }

    pub(crate) fn level(self) -> Level {
        match self {
            BinaryOp::Or => Level::Or,
            BinaryOp::And => Level::And,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::In
            | BinaryOp::Contains
            | BinaryOp::Matches => Level::Compare,
            BinaryOp::Add | BinaryOp::Sub => Level::Sum,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => Level::Product,
        }
    }
}

/// The built-in functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Count,
    Len,
    Lower,
    DaysSince,
    HoursSince,
    Now,
    Answer,
    Has,
}

impl Function {
    pub const ALL: [Function; 8] = [
        Function::Count,
        Function::Len,
        Function::Lower,
        Function::DaysSince,
        Function::HoursSince,
        Function::Now,
        Function::Answer,
        Function::Has,
    ];

    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Function::Count => "count",
            Function::Len => "len",
            Function::Lower => "lower",
            Function::DaysSince => "days_since",
            Function::HoursSince => "hours_since",
            Function::Now => "now",
            Function::Answer => "answer",
            Function::Has => "has",
        }
    }

    pub fn arity(self) -> usize {
        match self {
            Function::Now => 0,
            _ => 1,
        }
    }
}

impl Expr {
    pub fn new(kind: ExprKind, span: Span) -> Self {
        Self { kind, span }
    }

    pub(crate) fn level(&self) -> Level {
        match &self.kind {
            ExprKind::Unary { op: UnaryOp::Not, .. } => Level::Not,
            ExprKind::Unary { op: UnaryOp::Neg, .. } => Level::Negate,
            ExprKind::Binary { op, .. } => op.level(),
            _ => Level::Atom,
        }
    }

    /// Visits this expression and every expression inside it, parents before children.
    pub fn walk(&self, visit: &mut impl FnMut(&Expr)) {
        visit(self);
        match &self.kind {
            ExprKind::Bool(_) | ExprKind::Number(_) | ExprKind::Text(_) | ExprKind::Duration(_) | ExprKind::Var(_) => {}
            ExprKind::List(items) => items.iter().for_each(|e| e.walk(visit)),
            ExprKind::Call { args, .. } => args.iter().for_each(|e| e.walk(visit)),
            ExprKind::Unary { operand, .. } => operand.walk(visit),
            ExprKind::Binary { lhs, rhs, .. } => {
                lhs.walk(visit);
                rhs.walk(visit);
            }
        }
    }

    /// The step id when this is `answer("step")` with a text literal.
    pub fn answer_step(&self) -> Option<&str> {
        match &self.kind {
            ExprKind::Call { name, args } if name == Function::Answer.name() => match args.as_slice() {
                [Expr { kind: ExprKind::Text(step), .. }] => Some(step),
                _ => None,
            },
            _ => None,
        }
    }
}
