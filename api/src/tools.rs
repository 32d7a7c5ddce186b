//! Offline tools for creators who write programs by hand: `twin program validate FILE` and
//! `twin condition eval EXPR`. Neither touches the store or the network.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use twin_engine::ports::{Clock, SystemClock};
use twin_engine::program::condition::{self, MapScope, Value};

use crate::bundle::{self, BundleError};

/// Exit code of `condition eval` on a syntax error (CONTRACT.md).
const SYNTAX_ERROR: u8 = 2;

/// Prints `ok` and returns success when the program compiles; otherwise one line per problem,
/// each naming its step, on stderr, and exit code 1.
pub fn validate_program(path: &Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    match bundle::program_source(path, bytes) {
        Ok(program) => {
            println!("{}: ok (program `{}`)", path.display(), program.id);
            Ok(ExitCode::SUCCESS)
        }
        Err(BundleError::Program { path, problems }) => {
            for problem in &problems.0 {
                eprintln!("{}: {problem}", path.display());
            }
            eprintln!("{}: {} problem(s)", path.display(), problems.0.len());
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(other.into()),
    }
}

/// Evaluates a condition against JSON variables (`{"goal": "sleep", "user": {"name": "Ana"}}`,
/// nested objects as dotted names) and answers by step id, and prints the value as JSON.
pub fn eval_condition(expr: &str, vars: Option<&str>, answers: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut scope = MapScope::new(SystemClock.now());
    if let Some(vars) = vars {
        scope.vars = json_map("--vars", vars)?;
    }
    if let Some(answers) = answers {
        scope.answers = json_map("--answers", answers)?;
    }
    let parsed = match condition::parse(expr) {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("twin: syntax error: {error}");
            eprintln!("  {expr}");
            eprintln!("  {}^", " ".repeat(error.column.saturating_sub(1)));
            return Ok(ExitCode::from(SYNTAX_ERROR));
        }
    };
    // Types come from the given values, so a variable left out is unknown to the checker; evaluate
    // directly instead (an unset variable is an evaluation error, and `has(x)` can be tried out).
    match condition::eval(&parsed, &scope) {
        Ok(value) => {
            println!("{}", value.to_json());
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("twin: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn json_map(flag: &str, raw: &str) -> anyhow::Result<BTreeMap<String, Value>> {
    let json: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| anyhow::anyhow!("{flag} is not valid JSON: {e}"))?;
    condition::flatten_json_vars(&json).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}
