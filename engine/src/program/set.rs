//! A creator's programs as a twin holds them: every stored version compiled once, the latest
//! version of each for new enrolments, and the triggers that start them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::ids::ProgramId;
use crate::ports::StoredProgram;

use super::compile::{Problems, compile};
use super::model::Program;

#[derive(Debug, Clone, Default)]
pub struct ProgramSet {
    versions: HashMap<(ProgramId, u32), Arc<Program>>,
    latest: BTreeMap<ProgramId, Arc<Program>>,
}

/// A stored version that no longer compiles (the rules got stricter, or a manual edit).
#[derive(Debug, Clone)]
pub struct BrokenProgram {
    pub id: ProgramId,
    pub version: u32,
    pub problems: Problems,
}

impl ProgramSet {
    /// Compiles every stored version; the broken ones are left out and returned for the log.
    pub fn build(stored: &[StoredProgram]) -> (Self, Vec<BrokenProgram>) {
        let mut set = Self::default();
        let mut broken = Vec::new();
        for program in stored {
            match compile(&program.id, program.version, &program.source) {
                Ok(compiled) => {
                    let compiled = Arc::new(compiled);
                    let newer = set.latest.get(&program.id).is_none_or(|p| p.version < program.version);
                    if newer {
                        set.latest.insert(program.id.clone(), compiled.clone());
                    }
                    set.versions.insert((program.id.clone(), program.version), compiled);
                }
                Err(problems) => {
                    broken.push(BrokenProgram { id: program.id.clone(), version: program.version, problems })
                }
            }
        }
        (set, broken)
    }

    /// The version an enrolment is pinned to.
    pub fn version(&self, id: &ProgramId, version: u32) -> Option<&Program> {
        self.versions.get(&(id.clone(), version)).map(Arc::as_ref)
    }

    /// The version new enrolments start on.
    pub fn latest(&self, id: &ProgramId) -> Option<&Program> {
        self.latest.get(id).map(Arc::as_ref)
    }

    /// The latest version of every program, by id.
    pub fn latest_versions(&self) -> impl Iterator<Item = &Program> {
        self.latest.values().map(Arc::as_ref)
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The program a user starts when they first write, if one says so (the first by id).
    pub fn for_first_contact(&self) -> Option<&Program> {
        self.latest.values().map(Arc::as_ref).find(|p| p.triggers.first_contact)
    }

    /// `/start PAYLOAD` (a deep link) or `/PAYLOAD` naming a program's command.
    pub fn for_command(&self, text: &str) -> Option<&Program> {
        let text = text.trim();
        let rest = text.strip_prefix('/')?;
        let mut words = rest.split_whitespace();
        let first = words.next()?.to_lowercase();
        let command = if first == "start" { words.next()?.to_lowercase() } else { first };
        self.latest.values().map(Arc::as_ref).find(|p| p.triggers.commands.contains(&command))
    }

    /// A message that contains one of a program's keywords (whole words, case-insensitive).
    pub fn for_keyword(&self, text: &str) -> Option<&Program> {
        let lowered = text.to_lowercase();
        self.latest
            .values()
            .map(Arc::as_ref)
            .find(|p| p.triggers.keywords.iter().any(|k| super::cursor::contains_phrase(&lowered, k)))
    }
}
