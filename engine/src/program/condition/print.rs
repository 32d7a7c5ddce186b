//! Canonical source for an expression, with only the parentheses its shape needs: parsing the
//! printed text gives back an equal [`Expr`].

use std::fmt;

use super::ast::{BinaryOp, Expr, ExprKind, Level, UnaryOp};
use super::token::UNITS;

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Bool(b) => write!(f, "{b}"),
            // Rust prints the shortest decimal that reads back as the same f64, never an exponent.
            ExprKind::Number(n) => write!(f, "{n}"),
            ExprKind::Text(text) => write_text(f, text),
            ExprKind::Duration(ms) => write_duration(f, *ms),
            ExprKind::Var(name) => f.write_str(name),
            ExprKind::List(items) => {
                f.write_str("[")?;
                write_separated(f, items)?;
                f.write_str("]")
            }
            ExprKind::Call { name, args } => {
                write!(f, "{name}(")?;
                write_separated(f, args)?;
                f.write_str(")")
            }
            ExprKind::Unary { op: UnaryOp::Not, operand } => {
                f.write_str("not ")?;
                write_operand(f, operand, Level::Not)
            }
            ExprKind::Unary { op: UnaryOp::Neg, operand } => {
                f.write_str("-")?;
                write_operand(f, operand, Level::Negate)
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let (left, right) = operand_levels(*op);
                write_operand(f, lhs, left)?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, rhs, right)
            }
        }
    }
}

/// The loosest levels the parser accepts on each side of `op`: chains lean left, and comparisons
/// take no comparison on either side.
fn operand_levels(op: BinaryOp) -> (Level, Level) {
    match op.level() {
        Level::Or => (Level::Or, Level::And),
        Level::And => (Level::And, Level::Not),
        Level::Compare => (Level::Sum, Level::Sum),
        Level::Sum => (Level::Sum, Level::Product),
        _ => (Level::Product, Level::Negate),
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, operand: &Expr, loosest: Level) -> fmt::Result {
    if operand.level() < loosest { write!(f, "({operand})") } else { write!(f, "{operand}") }
}

fn write_separated(f: &mut fmt::Formatter<'_>, exprs: &[Expr]) -> fmt::Result {
    for (i, expr) in exprs.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{expr}")?;
    }
    Ok(())
}

/// In double quotes, escaping what the tokenizer would otherwise read differently.
pub(crate) fn write_text(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in text.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '"' => f.write_str("\\\"")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

/// In the largest unit that divides it (`90m`, `2w`), else in seconds with a fraction (`1.5s`).
pub(crate) fn write_duration(f: &mut fmt::Formatter<'_>, ms: i64) -> fmt::Result {
    if ms < 0 {
        f.write_str("-")?;
    }
    let ms = ms.unsigned_abs();
    if ms == 0 {
        return f.write_str("0s");
    }
    for (unit, length) in UNITS {
        let length = length.unsigned_abs();
        if ms.is_multiple_of(length) {
            return write!(f, "{}{unit}", ms / length);
        }
    }
    let fraction = format!("{:03}", ms % 1000);
    write!(f, "{}.{}s", ms / 1000, fraction.trim_end_matches('0'))
}
