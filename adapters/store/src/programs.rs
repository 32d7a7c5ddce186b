//! Which programs of a creator import become a new version. Both backends read each program's
//! latest stored version, ask [`new_versions`], and insert what it returns.

use std::collections::{HashMap, HashSet};

use twin_engine::ports::{ProgramSource, StoreError};

use crate::content_hash::body_hash;

/// A program version to insert.
pub(crate) struct NewVersion<'a> {
    pub id: &'a str,
    /// The latest stored version plus one; 1 for a program not stored yet.
    pub version: i32,
    pub source: &'a str,
    pub hash: String,
}

/// The latest stored version of one program and the hash of its source.
pub(crate) struct Latest {
    pub version: i64,
    pub hash: String,
}

/// The given programs whose source differs from their latest stored version (or that have none),
/// in the order given. A program id given twice refuses the import: which source would win?
pub(crate) fn new_versions<'a>(
    given: &'a [ProgramSource],
    latest: &HashMap<String, Latest>,
) -> Result<Vec<NewVersion<'a>>, StoreError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for program in given {
        let id = program.id.as_str();
        if !seen.insert(id) {
            return Err(StoreError::Corrupt(format!("two programs share the id {id:?}")));
        }
        let hash = body_hash(&program.source);
        let version = match latest.get(id) {
            Some(stored) if stored.hash == hash => continue,
            Some(stored) => stored.version + 1,
            None => 1,
        };
        let version = i32::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("program {id:?} has run out of versions")))?;
        out.push(NewVersion { id, version, source: &program.source, hash });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use twin_engine::ProgramId;

    use super::*;

    fn source(id: &str, source: &str) -> ProgramSource {
        ProgramSource { id: ProgramId::parse(id).unwrap(), source: source.to_owned() }
    }

    #[test]
    fn only_new_and_changed_programs_get_a_version() {
        let given = [source("new", "a"), source("same", "b"), source("changed", "c2")];
        let latest = HashMap::from([
            ("same".to_owned(), Latest { version: 3, hash: body_hash("b") }),
            ("changed".to_owned(), Latest { version: 2, hash: body_hash("c1") }),
        ]);
        let versions = new_versions(&given, &latest).unwrap();
        let got: Vec<(&str, i32, &str)> = versions.iter().map(|v| (v.id, v.version, v.source)).collect();
        assert_eq!(got, vec![("new", 1, "a"), ("changed", 3, "c2")]);
    }

    #[test]
    fn a_program_given_twice_is_refused() {
        let given = [source("p", "a"), source("p", "a")];
        assert!(matches!(new_versions(&given, &HashMap::new()), Err(StoreError::Corrupt(_))));
    }
}
