//! The creator's persona as written in `creator.toml` (`[persona]`, format v2): who the twin is,
//! how it speaks, what it refuses, and example exchanges. Read by prompt assembly, the built-in
//! responder and the consistency score; `analyze` proposes a draft from the creator's material.
//!
//! Only creator-authored text lives here; it is the only text that reaches a system prompt.

mod analyze;
mod consistency;
mod style;
mod traits;

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

pub use analyze::{DraftChange, PersonaDraft, analyze, draft_changes, merge_draft};
pub use consistency::Consistency;
pub use consistency::{StyleReference, consistency};
pub use style::{FEATURE_NAMES, StyleProfile};
pub use traits::{
    Approach, Communication, Feedback, Interaction, Questioning, TraitOption, Traits, Weights, ranked, weight,
};

/// Most boundaries, examples, values or signature phrases a persona may hold.
pub const MAX_LIST_LEN: usize = 50;
/// Longest single text of a persona (methodology, an example reply, a greeting), in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Persona {
    /// Name the twin speaks as, e.g. "Maya Chen".
    pub name: String,
    /// One line: what the creator does, e.g. "habit and focus coach".
    pub role: String,
    /// The five trait dimensions with the creator's weights.
    #[serde(skip_serializing_if = "Traits::is_empty")]
    pub traits: Traits,
    pub voice: Voice,
    /// How the creator coaches, in their words.
    pub methodology: String,
    pub values: Vec<String>,
    /// Topics the twin does not advise on, and what it does instead.
    pub boundaries: Vec<Boundary>,
    /// Exchanges the creator wrote to show how the twin answers; a couple go into the prompt.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Example>,
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
    /// 0 = chatty and casual, 1 = formal. Unset: the creator has not said (`analyze` may propose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formality: Option<f64>,
    /// 0 = cool and matter-of-fact, 1 = very warm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmth: Option<f64>,
    /// 0 = calm, 1 = high-energy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emoji: Option<EmojiUse>,
    /// Typical sentence length in words (1..=60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentence_length: Option<u32>,
}

/// Where a voice number is unset, prompt assembly and the responder assume the middle.
pub const NEUTRAL: f64 = 0.5;

impl Voice {
    pub fn formality(&self) -> f64 {
        self.formality.unwrap_or(NEUTRAL)
    }
    pub fn warmth(&self) -> f64 {
        self.warmth.unwrap_or(NEUTRAL)
    }
    pub fn energy(&self) -> f64 {
        self.energy.unwrap_or(NEUTRAL)
    }
    pub fn emoji(&self) -> EmojiUse {
        self.emoji.unwrap_or_default()
    }
}

/// How often the creator uses emoji.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmojiUse {
    #[default]
    None,
    Rare,
    Often,
}

/// A topic the twin does not advise on. In `creator.toml` either a plain string (handed off) or
/// `{ topic = "medication", action = "refuse", message = "…" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Boundary {
    pub topic: String,
    pub action: BoundaryAction,
    /// What the twin says instead of the built-in wording; creator-authored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Boundary {
    /// A topic handed back to the creator, the v1 meaning of a plain string.
    pub fn hand_off(topic: impl Into<String>) -> Self {
        Self { topic: topic.into(), action: BoundaryAction::HandOff, message: None }
    }

    pub fn refuse(topic: impl Into<String>) -> Self {
        Self { topic: topic.into(), action: BoundaryAction::Refuse, message: None }
    }
}

impl From<&str> for Boundary {
    fn from(topic: &str) -> Self {
        Self::hand_off(topic)
    }
}

/// What the twin does when a boundary topic comes up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoundaryAction {
    /// Declines and points to the creator (or a professional) for a real conversation.
    #[default]
    HandOff,
    /// Declines, without suggesting where else to ask.
    Refuse,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoundaryTable {
    topic: String,
    #[serde(default)]
    action: BoundaryAction,
    #[serde(default)]
    message: Option<String>,
}

impl<'de> Deserialize<'de> for Boundary {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BoundaryVisitor;
        impl<'de> Visitor<'de> for BoundaryVisitor {
            type Value = Boundary;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a topic string or a table { topic, action = \"refuse\" | \"hand_off\", message }")
            }
            fn visit_str<E: de::Error>(self, topic: &str) -> Result<Boundary, E> {
                Ok(Boundary::hand_off(topic))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Boundary, A::Error> {
                let t = BoundaryTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Boundary { topic: t.topic, action: t.action, message: t.message })
            }
        }
        deserializer.deserialize_any(BoundaryVisitor)
    }
}

/// One exchange the creator wrote: what a client might say and how the twin answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub user: String,
    pub twin: String,
}

/// Why a persona was refused: every problem, each naming its key (`persona.voice.warmth`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the persona has problems: {}", problems.join("; "))]
pub struct PersonaError {
    pub problems: Vec<String>,
}

impl Persona {
    /// Checks ranges and sizes; the error lists every problem with its key, so a creator fixes all
    /// of them at once. Parsing already refused unknown keys and unknown trait options.
    pub fn validate(&self) -> Result<(), PersonaError> {
        let mut problems = Vec::new();
        let mut unit = |key: &str, value: f64| {
            if !(0.0..=1.0).contains(&value) {
                problems.push(format!("`persona.{key}` is {value}; it must be between 0 and 1"));
            }
        };
        for (key, value) in self.traits.weights() {
            unit(&key, value);
        }
        for (key, value) in [
            ("voice.formality", self.voice.formality),
            ("voice.warmth", self.voice.warmth),
            ("voice.energy", self.voice.energy),
        ] {
            if let Some(value) = value {
                unit(key, value);
            }
        }
        if let Some(length) = self.voice.sentence_length
            && !(1..=60).contains(&length)
        {
            problems.push(format!("`persona.voice.sentence_length` is {length}; it must be 1 to 60 words"));
        }
        let lists = [
            ("values", self.values.len()),
            ("boundaries", self.boundaries.len()),
            ("examples", self.examples.len()),
            ("voice.signature_phrases", self.voice.signature_phrases.len()),
            ("voice.avoid_words", self.voice.avoid_words.len()),
        ];
        for (key, len) in lists {
            if len > MAX_LIST_LEN {
                problems.push(format!("`persona.{key}` has {len} entries; at most {MAX_LIST_LEN} are allowed"));
            }
        }
        let mut texts: Vec<(String, &str)> = vec![
            ("role".into(), &self.role),
            ("methodology".into(), &self.methodology),
            ("voice.greeting".into(), &self.voice.greeting),
            ("voice.fallback".into(), &self.voice.fallback),
        ];
        for (i, example) in self.examples.iter().enumerate() {
            texts.push((format!("examples[{i}].user"), &example.user));
            texts.push((format!("examples[{i}].twin"), &example.twin));
            if example.user.trim().is_empty() || example.twin.trim().is_empty() {
                problems.push(format!("`persona.examples[{i}]` needs both `user` and `twin` text"));
            }
        }
        for (i, boundary) in self.boundaries.iter().enumerate() {
            if boundary.topic.trim().is_empty() {
                problems.push(format!("`persona.boundaries[{i}]` has an empty topic"));
            }
            if let Some(message) = &boundary.message {
                texts.push((format!("boundaries[{i}].message"), message));
            }
        }
        for (key, text) in texts {
            if text.len() > MAX_TEXT_BYTES {
                problems.push(format!("`persona.{key}` is {} bytes; at most {MAX_TEXT_BYTES} are allowed", text.len()));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(PersonaError { problems }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        persona: Persona,
    }

    /// The engine has no TOML parser; tests write JSON, which takes the same serde paths.
    fn parse(json: &str) -> Result<Persona, String> {
        serde_json::from_str::<File>(json).map(|f| f.persona).map_err(|e| e.to_string())
    }

    #[test]
    fn trait_dimensions_are_typed_with_weights_and_v1_words_still_load() {
        let persona = parse(
            r#"{"persona": {"traits": {"communication": {"direct": 0.8, "supportive": 0.6},
                "interaction": {"results_focused": 0.3}}}}"#,
        )
        .expect("valid");
        assert_eq!(weight(&persona.traits.communication, Communication::Direct), 0.8);
        assert_eq!(weight(&persona.traits.interaction, Interaction::ResultsFocused), 0.3);
        assert_eq!(ranked(&persona.traits.communication)[0].0, Communication::Direct);

        let legacy = parse(r#"{"persona": {"traits": ["warm", "Direct", "analytical"]}}"#).expect("v1 list");
        assert_eq!(weight(&legacy.traits.communication, Communication::Direct), 0.7);
        assert_eq!(weight(&legacy.traits.feedback, Feedback::Direct), 0.7);
        assert_eq!(weight(&legacy.traits.approach, Approach::Analytical), 0.7);

        let typo = parse(r#"{"persona": {"traits": {"communication": {"blunt": 0.8}}}}"#).expect_err("unknown");
        assert!(typo.contains("blunt"), "{typo}");
        let dimension = parse(r#"{"persona": {"traits": {"tone": {"direct": 0.8}}}}"#).expect_err("unknown");
        assert!(dimension.contains("tone"), "{dimension}");
    }

    #[test]
    fn boundaries_are_plain_topics_or_tables_with_an_action() {
        let persona = parse(
            r#"{"persona": {"boundaries": ["medication",
                {"topic": "diagnosis", "action": "refuse", "message": "I can't diagnose anything."}]}}"#,
        )
        .expect("valid");
        assert_eq!(persona.boundaries[0], Boundary::hand_off("medication"));
        assert_eq!(persona.boundaries[1].action, BoundaryAction::Refuse);
        assert_eq!(persona.boundaries[1].message.as_deref(), Some("I can't diagnose anything."));
        let back: Persona =
            serde_json::from_value(serde_json::to_value(&persona).expect("serializes")).expect("reads back");
        assert_eq!(back, persona);
    }

    #[test]
    fn out_of_range_numbers_are_refused_naming_every_key() {
        let persona = parse(
            r#"{"persona": {"traits": {"feedback": {"gentle": 1.5}}, "voice": {"warmth": -0.1,
                "sentence_length": 0}, "examples": [{"user": "hi", "twin": " "}]}}"#,
        )
        .expect("parses");
        let err = persona.validate().expect_err("out of range").to_string();
        for key in ["persona.traits.feedback.gentle", "persona.voice.warmth", "persona.voice.sentence_length"] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
        assert!(err.contains("persona.examples[0]"), "{err}");
        assert!(Persona::default().validate().is_ok());
    }
}
