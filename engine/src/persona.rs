//! The creator's persona as written in `creator.toml`: who the twin is and how it speaks.
//!
//! Only creator-authored text lives here; it is the only text that reaches a system prompt.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Persona {
    /// Name the twin speaks as, e.g. "Maya Chen".
    pub name: String,
    /// One line: what the creator does, e.g. "habit and focus coach".
    pub role: String,
    /// Free-form trait words ("direct", "warm") with the creator's own emphasis.
    pub traits: Vec<String>,
    pub voice: Voice,
    /// How the creator coaches, in their words.
    pub methodology: String,
    pub values: Vec<String>,
    /// Topics the twin must not advise on; it hands them back to the creator.
    pub boundaries: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Voice {
    /// How the twin opens a first conversation.
    pub greeting: String,
    /// Phrases the creator is known for; the twin uses them sparingly.
    pub signature_phrases: Vec<String>,
    /// Words the creator never uses.
    pub avoid_words: Vec<String>,
    /// What the twin says when its knowledge has nothing on a question.
    pub fallback: String,
}
