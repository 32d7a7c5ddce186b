//! Regexes of `matches`: compiled with a size limit so a hostile pattern cannot take the memory, by
//! the checker (to refuse bad patterns at load time) and by the evaluator (nothing is cached).

use regex::{Regex, RegexBuilder};

/// Bound on the compiled program and on the lazy DFA's cache, in bytes.
const SIZE_LIMIT: usize = 1 << 20;

/// The compiled pattern, or a one-line reason it does not compile.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern).size_limit(SIZE_LIMIT).dfa_size_limit(SIZE_LIMIT).build().map_err(|e| {
        // Syntax errors span several lines (the pattern with a caret under it); keep the verdict.
        let message = e.to_string();
        match message.lines().find_map(|l| l.strip_prefix("error: ")) {
            Some(reason) => reason.to_owned(),
            None => message.lines().next().unwrap_or_default().to_owned(),
        }
    })
}
