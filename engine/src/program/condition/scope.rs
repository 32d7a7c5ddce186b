//! What a condition can see: the declared types (for [`super::check`]) and the user's values (for
//! [`super::eval`]). The program validator and the cursor bring their own; [`MapScope`] serves the
//! CLI and tests.

use std::collections::BTreeMap;

use super::types::Type;
use super::value::Value;
use crate::time::Timestamp;

/// Types known when a program loads.
pub trait TypeScope {
    /// The declared type of a variable by its dotted path; `None` when no such variable exists.
    fn variable(&self, name: &str) -> Option<Type>;
    /// The type of a step's answer; `None` when no such step, or one without an answer.
    fn answer(&self, step: &str) -> Option<Type>;
}

/// Values known when a condition runs.
pub trait ValueScope {
    /// `None` when the variable is unset.
    fn variable(&self, name: &str) -> Option<Value>;
    /// `None` when the step has not been answered.
    fn answer(&self, step: &str) -> Option<Value>;
    fn now(&self) -> Timestamp;
}

/// Variables and answers held in maps; types are those of the values, so a variable absent from
/// `vars` is unknown to [`super::check`] (and unset to [`super::eval`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MapScope {
    /// By dotted path, as [`super::flatten_json_vars`] gives them.
    pub vars: BTreeMap<String, Value>,
    /// By step id.
    pub answers: BTreeMap<String, Value>,
    pub now: Timestamp,
}

impl MapScope {
    pub fn new(now: Timestamp) -> Self {
        Self { vars: BTreeMap::new(), answers: BTreeMap::new(), now }
    }
}

impl TypeScope for MapScope {
    fn variable(&self, name: &str) -> Option<Type> {
        self.vars.get(name).and_then(Type::of)
    }

    fn answer(&self, step: &str) -> Option<Type> {
        self.answers.get(step).and_then(Type::of)
    }
}

impl ValueScope for MapScope {
    fn variable(&self, name: &str) -> Option<Value> {
        self.vars.get(name).cloned()
    }

    fn answer(&self, step: &str) -> Option<Value> {
        self.answers.get(step).cloned()
    }

    fn now(&self) -> Timestamp {
        self.now
    }
}
