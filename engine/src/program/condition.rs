//! The condition language of coaching programs: `goal == "sleep" and days_since(enrolled_at) >= 3`.
//!
//! The program validator parses and [`check`]s every condition when a program loads, so unknown
//! variables and type errors surface before any user meets them; the cursor [`eval`]uates the
//! checked expression against the user's data at run time, and the CLI's `twin condition eval`
//! does the same through a [`MapScope`]. The language itself is described for creators in
//! `docs/CONDITIONS.md`.

mod ast;
mod eval;
mod parse;
mod pattern;
mod print;
mod scope;
mod token;
mod types;
mod value;

#[cfg(test)]
mod tests;

pub use ast::{BinaryOp, Expr, ExprKind, Function, Span, UnaryOp};
pub use eval::{EvalError, eval};
pub use parse::{MAX_DEPTH, MAX_SOURCE_LEN, SyntaxError, SyntaxErrorKind, line_column, parse};
pub use scope::{MapScope, TypeScope, ValueScope};
pub use types::{Type, TypeError, TypeErrorKind, check};
pub use value::{JsonError, JsonErrorKind, Value, flatten_json_vars};

/// The variables an expression reads, in order of first appearance, each once. Variables tested
/// with `has(...)` are included: they too must be declared.
pub fn variables(expr: &Expr) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    expr.walk(&mut |e| {
        if let ExprKind::Var(name) = &e.kind
            && !found.contains(name)
        {
            found.push(name.clone());
        }
    });
    found
}

/// The step ids passed to `answer("...")`, in order of first appearance, each once. Calls whose
/// argument is not a text literal are left out ([`check`] reports them).
pub fn answers(expr: &Expr) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    expr.walk(&mut |e| {
        if let Some(step) = e.answer_step()
            && !found.iter().any(|s| s == step)
        {
            found.push(step.to_owned());
        }
    });
    found
}
