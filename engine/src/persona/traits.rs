//! The five trait dimensions of a persona, each option with the creator's weight (0..=1).
//! Read by prompt assembly (rendered as guidance), the built-in responder and `analyze`.
//!
//! In `creator.toml`: `[persona.traits] communication = { direct = 0.8, supportive = 0.6 }`.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// One option of a trait dimension, e.g. [`Communication::Direct`].
pub trait TraitOption: Copy + Ord + fmt::Debug + 'static {
    /// Every option, in declaration order.
    const ALL: &'static [Self];
    /// The option as written in `creator.toml` (`results_focused`).
    fn key(self) -> &'static str;
    /// The option in prose (`results-focused`).
    fn label(self) -> &'static str;
}

macro_rules! dimension {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $key:literal, $label:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($variant,)+
        }

        impl TraitOption for $name {
            const ALL: &'static [Self] = &[$(Self::$variant,)+];
            fn key(self) -> &'static str {
                match self { $(Self::$variant => $key,)+ }
            }
            fn label(self) -> &'static str {
                match self { $(Self::$variant => $label,)+ }
            }
        }
    };
}

dimension!(
    /// How the twin talks to a client.
    Communication {
        Direct => "direct", "direct";
        Collaborative => "collaborative", "collaborative";
        Supportive => "supportive", "supportive";
        Challenging => "challenging", "challenging";
    }
);
dimension!(
    /// How the twin works through a problem.
    Approach {
        Structured => "structured", "structured";
        Flexible => "flexible", "flexible";
        Intuitive => "intuitive", "intuitive";
        Analytical => "analytical", "analytical";
    }
);
dimension!(
    /// The register of the relationship.
    Interaction {
        Formal => "formal", "formal";
        Casual => "casual", "casual";
        Empathetic => "empathetic", "empathetic";
        ResultsFocused => "results_focused", "results-focused";
    }
);
dimension!(
    /// What kind of questions the twin asks.
    Questioning {
        Probing => "probing", "probing";
        Exploratory => "exploratory", "exploratory";
        Clarifying => "clarifying", "clarifying";
        Reflective => "reflective", "reflective";
    }
);
dimension!(
    /// How the twin gives feedback.
    Feedback {
        Gentle => "gentle", "gentle";
        Direct => "direct", "direct";
        Encouraging => "encouraging", "encouraging";
        Constructive => "constructive", "constructive";
    }
);

/// The options of one dimension the creator chose, each with a weight in 0..=1 (checked by
/// [`super::Persona::validate`]). Empty means "not set": `analyze` may propose weights for it.
pub type Weights<T> = BTreeMap<T, f64>;

/// The five dimensions. Every one is optional; an empty map says nothing about the creator.
///
/// Also reads the v1 form, a list of words (`traits = ["warm", "direct"]`), so profiles stored
/// before v2 still load: a word naming an option of a dimension gets weight 0.7 there, other words
/// are dropped (they carried no typed meaning).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Traits {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub communication: Weights<Communication>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub approach: Weights<Approach>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub interaction: Weights<Interaction>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub questioning: Weights<Questioning>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub feedback: Weights<Feedback>,
}

/// The v2 table form of [`Traits`], strict about its keys.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TraitsTable {
    communication: Weights<Communication>,
    approach: Weights<Approach>,
    interaction: Weights<Interaction>,
    questioning: Weights<Questioning>,
    feedback: Weights<Feedback>,
}

impl From<TraitsTable> for Traits {
    fn from(t: TraitsTable) -> Self {
        Self {
            communication: t.communication,
            approach: t.approach,
            interaction: t.interaction,
            questioning: t.questioning,
            feedback: t.feedback,
        }
    }
}

/// Weight a v1 trait word gets in the dimension it names.
const LEGACY_WEIGHT: f64 = 0.7;

impl Traits {
    pub fn is_empty(&self) -> bool {
        let t = self;
        t.communication.is_empty()
            && t.approach.is_empty()
            && t.interaction.is_empty()
            && t.questioning.is_empty()
            && t.feedback.is_empty()
    }

    /// v1 trait words mapped onto the dimensions whose option they name.
    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Self {
        fn set<T: TraitOption>(map: &mut Weights<T>, word: &str) {
            if let Some(option) = T::ALL.iter().find(|o| o.key() == word || o.label() == word) {
                map.insert(*option, LEGACY_WEIGHT);
            }
        }
        let mut table = Self::default();
        for word in words {
            let word = word.as_ref().trim().to_lowercase();
            set(&mut table.communication, &word);
            set(&mut table.approach, &word);
            set(&mut table.interaction, &word);
            set(&mut table.questioning, &word);
            set(&mut table.feedback, &word);
        }
        table
    }

    /// Each weight with its `creator.toml` key, e.g. `("traits.communication.direct", 0.8)`.
    pub fn weights(&self) -> Vec<(String, f64)> {
        fn keyed<T: TraitOption>(out: &mut Vec<(String, f64)>, dimension: &str, map: &Weights<T>) {
            out.extend(map.iter().map(|(o, w)| (format!("traits.{dimension}.{}", o.key()), *w)));
        }
        let mut out = Vec::new();
        keyed(&mut out, "communication", &self.communication);
        keyed(&mut out, "approach", &self.approach);
        keyed(&mut out, "interaction", &self.interaction);
        keyed(&mut out, "questioning", &self.questioning);
        keyed(&mut out, "feedback", &self.feedback);
        out
    }
}

/// The options of `map` from the heaviest down; equal weights keep declaration order.
pub fn ranked<T: TraitOption>(map: &Weights<T>) -> Vec<(T, f64)> {
    let mut options: Vec<(T, f64)> = map.iter().map(|(o, w)| (*o, *w)).collect();
    options.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    options
}

/// The weight of `option`, 0 when the creator did not name it.
pub fn weight<T: TraitOption>(map: &Weights<T>, option: T) -> f64 {
    map.get(&option).copied().unwrap_or(0.0)
}

impl<'de> Deserialize<'de> for Traits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TraitsVisitor;
        impl<'de> Visitor<'de> for TraitsVisitor {
            type Value = Traits;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of trait dimensions (communication, approach, interaction, questioning, feedback)")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Traits, A::Error> {
                TraitsTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(Traits::from)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Traits, A::Error> {
                let mut words: Vec<String> = Vec::new();
                while let Some(word) = seq.next_element::<String>()? {
                    words.push(word);
                }
                Ok(Traits::from_words(&words))
            }
        }
        deserializer.deserialize_any(TraitsVisitor)
    }
}
