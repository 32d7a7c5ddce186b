//! Persona synthesis, offline: a draft profile measured from the creator's material for them to
//! review (`twin persona analyze` and the API print [`draft_changes`]). A draft never overwrites
//! what the creator wrote: [`merge_draft`] only fills fields that are still unset.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::style::{FUNCTION_WORDS, StyleProfile, normalize_word, raw_words, round_tenth, sentences};
use super::traits::{Approach, Communication, Feedback, Interaction, Questioning, TraitOption, Traits, Weights};
use super::{EmojiUse, Persona};
use crate::knowledge::KnowledgeDocument;

/// Most signature phrases a draft proposes.
const MAX_PHRASES: usize = 5;
/// Most characteristic words and bigrams a draft reports.
const MAX_CHARACTERISTIC: usize = 15;

/// What `analyze` measured and proposes. Every field is a proposal for the creator to review.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersonaDraft {
    /// The measurements the proposals come from.
    pub style: StyleProfile,
    pub formality: f64,
    pub warmth: f64,
    pub energy: f64,
    pub emoji: EmojiUse,
    /// Typical sentence length in words (the rounded mean).
    pub sentence_length: u32,
    /// Recurring short sentences, slogans among the headings, recurring word sequences.
    pub signature_phrases: Vec<String>,
    /// Weights from lexicon cues in the material; options without cues are left out.
    pub traits: Traits,
    /// The creator's most frequent content words and word pairs, with their count per 1000 words.
    pub characteristic_words: Vec<(String, f32)>,
    pub characteristic_bigrams: Vec<(String, f32)>,
}

/// Cue words and phrases per trait option, matched on whole words in lowercased text.
const COMMUNICATION: &[(Communication, &[&str])] = &[
    (Communication::Direct, &["don't", "never", "always", "do it", "just", "simply", "the rule"]),
    (Communication::Collaborative, &["we", "us", "let's", "together", "our"]),
    (Communication::Supportive, &["kind", "okay", "it's fine", "gentle", "without blame", "that's normal"]),
    (Communication::Challenging, &["challenge", "push", "honest", "be honest", "excuse", "excuses", "stop"]),
];
const APPROACH: &[(Approach, &[&str])] = &[
    (Approach::Structured, &["first", "then", "step", "steps", "plan", "routine", "each", "every", "rule", "order"]),
    (Approach::Flexible, &["adjust", "adapt", "if", "depends", "instead", "change", "whatever works"]),
    (Approach::Intuitive, &["feel", "feels", "notice", "sense", "body", "energy"]),
    (Approach::Analytical, &["measure", "track", "count", "data", "because", "review", "evidence", "minutes"]),
];
const INTERACTION: &[(Interaction, &[&str])] = &[
    (Interaction::Formal, &["therefore", "however", "furthermore", "consequently", "regarding"]),
    (Interaction::Casual, &["okay", "pretty", "stuff", "kind of", "a bit", "honestly", "easy"]),
    (Interaction::Empathetic, &["feel", "hard", "understand", "normal", "everyone", "kind", "bad day"]),
    (Interaction::ResultsFocused, &["result", "results", "outcome", "progress", "done", "goal", "get more done"]),
];
const QUESTIONING: &[(Questioning, &[&str])] = &[
    (Questioning::Probing, &["why", "what exactly", "what really"]),
    (Questioning::Exploratory, &["what if", "imagine", "curious", "explore", "experiment"]),
    (Questioning::Clarifying, &["which", "how long", "when", "what time", "do you mean"]),
    (Questioning::Reflective, &["what worked", "what got in the way", "notice", "reflect", "look back", "review"]),
];
const FEEDBACK: &[(Feedback, &[&str])] = &[
    (Feedback::Gentle, &["gentle", "kind", "without blame", "it's okay", "not a verdict", "forgive"]),
    (Feedback::Direct, &["don't", "never", "not enough", "is not", "stop"]),
    (Feedback::Encouraging, &["you can", "great", "well done", "keep", "win", "wins", "celebrate"]),
    (Feedback::Constructive, &["instead", "next time", "try", "rather than", "adjust", "cut it", "shrink"]),
];

/// Cue hits per 1000 words at which an option gets weight 1.
const SATURATION_PER_1000: f64 = 12.0;
/// Options below this weight are left out of the draft.
const MIN_WEIGHT: f64 = 0.2;

/// Derives a draft persona from the creator's documents (Markdown or plain text).
pub fn analyze(documents: &[KnowledgeDocument]) -> PersonaDraft {
    let all: String = documents.iter().map(|d| d.body.as_str()).collect::<Vec<_>>().join("\n\n");
    let style = StyleProfile::measure(&all);
    let emoji = if style.emoji_rate <= 0.0 {
        EmojiUse::None
    } else if style.emoji_rate < 0.2 {
        EmojiUse::Rare
    } else {
        EmojiUse::Often
    };
    let lowered = format!(" {} ", raw_words(&all).map(normalize_word).collect::<Vec<_>>().join(" "));
    let per_1000 = 1000.0 / style.words.max(1) as f64;
    let traits = Traits {
        communication: cue_weights(COMMUNICATION, &lowered, per_1000, f64::from(style.imperative_rate)),
        approach: cue_weights(APPROACH, &lowered, per_1000, 0.0),
        interaction: cue_weights(INTERACTION, &lowered, per_1000, 0.0),
        questioning: cue_weights(QUESTIONING, &lowered, per_1000, 0.0),
        feedback: cue_weights(FEEDBACK, &lowered, per_1000, 0.0),
    };
    let (characteristic_words, characteristic_bigrams) = characteristic(&all, per_1000 as f32);
    PersonaDraft {
        formality: style.formality(),
        warmth: style.warmth(),
        energy: style.energy(),
        emoji,
        sentence_length: style.sentence_length_mean.round().max(1.0) as u32,
        signature_phrases: signature_phrases(documents),
        traits,
        characteristic_words,
        characteristic_bigrams,
        style,
    }
}

/// Weights from cue counts; `imperatives` (per sentence) adds to the first option, which for
/// communication is "direct": instructions are the clearest sign of a direct writer.
fn cue_weights<T: TraitOption>(cues: &[(T, &[&str])], lowered: &str, per_1000: f64, imperatives: f64) -> Weights<T> {
    let mut weights = BTreeMap::new();
    for (i, (option, words)) in cues.iter().enumerate() {
        let hits: usize = words.iter().map(|w| lowered.matches(&format!(" {w} ")).count()).sum();
        let mut w = hits as f64 * per_1000 / SATURATION_PER_1000;
        if i == 0 {
            w += imperatives;
        }
        let w = round_tenth(w);
        if w >= MIN_WEIGHT {
            weights.insert(*option, w);
        }
    }
    weights
}

/// Candidate signature phrases: short sentences said more than once, short slogan-like headings
/// (an instruction or a "never"), and word sequences of four to six words that recur across
/// documents. At most [`MAX_PHRASES`], the most frequent first.
fn signature_phrases(documents: &[KnowledgeDocument]) -> Vec<String> {
    let mut counts: HashMap<String, (usize, String)> = HashMap::new();
    let mut candidates: Vec<(usize, String)> = Vec::new();
    for document in documents {
        for line in document.body.lines() {
            if let Some(heading) = line.trim().strip_prefix("## ") {
                let words: Vec<&str> = raw_words(heading).collect();
                let slogan = words.first().is_some_and(|w| {
                    matches!(normalize_word(w).as_str(), "never" | "always" | "don't" | "make" | "protect" | "shrink")
                });
                if slogan && (2..=6).contains(&words.len()) {
                    candidates.push((2, format!("{}.", heading.trim().trim_end_matches('.'))));
                }
            }
        }
        for sentence in sentences(&document.body) {
            let words = raw_words(sentence).count();
            if (2..=8).contains(&words) {
                let key = raw_words(sentence).map(normalize_word).collect::<Vec<_>>().join(" ");
                counts.entry(key).or_insert_with(|| (0, sentence.to_owned())).0 += 1;
            }
        }
    }
    candidates.extend(counts.into_values().filter(|(n, _)| *n >= 2));

    // Recurring word sequences, counted once per document so one repetitive file is not a habit.
    let mut sequences: HashMap<String, usize> = HashMap::new();
    for document in documents {
        let mut seen = std::collections::HashSet::new();
        for sentence in sentences(&document.body) {
            let words: Vec<String> = raw_words(sentence).map(normalize_word).collect();
            for n in 4..=6 {
                for window in words.windows(n) {
                    let content = window.iter().filter(|w| FUNCTION_WORDS.binary_search(&w.as_str()).is_err()).count();
                    let numbers = window.iter().any(|w| w.chars().any(|c| c.is_ascii_digit()));
                    if content >= 2 && !numbers && seen.insert(window.join(" ")) {
                        *sequences.entry(window.join(" ")).or_default() += 1;
                    }
                }
            }
        }
    }
    let mut recurring: Vec<(usize, String)> =
        sequences.into_iter().filter(|(_, n)| *n >= 2).map(|(s, n)| (n, s)).collect();
    // Longest sequences first, so "miss twice" inside "never miss twice" is not proposed twice.
    recurring.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.1.cmp(&b.1)));
    let mut kept: Vec<(usize, String)> = Vec::new();
    for (n, s) in recurring {
        if !kept.iter().any(|(_, k)| k.contains(&s)) {
            kept.push((n, s));
        }
    }
    candidates.extend(kept);

    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut out: Vec<String> = Vec::new();
    for (_, phrase) in candidates {
        let key = phrase.to_lowercase();
        if !out.iter().any(|p| p.to_lowercase().contains(key.trim_end_matches('.'))) {
            out.push(phrase);
        }
        if out.len() == MAX_PHRASES {
            break;
        }
    }
    out
}

/// The most frequent content words and word pairs, with their count per 1000 words.
type Frequencies = Vec<(String, f32)>;

fn characteristic(text: &str, per_1000: f32) -> (Frequencies, Frequencies) {
    let mut words: HashMap<String, u32> = HashMap::new();
    let mut bigrams: HashMap<String, u32> = HashMap::new();
    for sentence in sentences(text) {
        let tokens: Vec<String> = crate::knowledge::tokens(sentence)
            .filter(|w| w.chars().count() > 2 && !w.contains('\'') && !w.chars().all(|c| c.is_ascii_digit()))
            .collect();
        for token in &tokens {
            *words.entry(token.clone()).or_default() += 1;
        }
        for pair in tokens.windows(2) {
            *bigrams.entry(format!("{} {}", pair[0], pair[1])).or_default() += 1;
        }
    }
    let top = |map: HashMap<String, u32>, min: u32| -> Frequencies {
        let mut list: Vec<(String, u32)> = map.into_iter().filter(|(_, n)| *n >= min).collect();
        list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        list.into_iter().take(MAX_CHARACTERISTIC).map(|(w, n)| (w, n as f32 * per_1000)).collect()
    };
    (top(words, 2), top(bigrams, 2))
}

/// One field a draft would set, or would have set if the creator had not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DraftChange {
    /// The `creator.toml` key under `[persona]`, e.g. `voice.warmth`.
    pub key: String,
    /// The creator's value, when they set one.
    pub current: Option<String>,
    pub proposed: String,
    /// True when [`merge_draft`] fills it (the field was unset); false when the creator's value stays.
    pub applied: bool,
}

impl fmt::Display for DraftChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.current, self.applied) {
            (_, true) => write!(f, "+ {} = {}", self.key, self.proposed),
            (Some(current), false) => {
                write!(f, "  {} = {} (yours, kept; the draft suggests {})", self.key, current, self.proposed)
            }
            (None, false) => write!(f, "  {}: the draft suggests {}", self.key, self.proposed),
        }
    }
}

/// `current` with the draft filling only what the creator has not set: voice numbers that are
/// unset, trait dimensions with no option, and signature phrases when there are none. Names,
/// texts, boundaries, avoid words and examples are never touched.
pub fn merge_draft(current: &Persona, draft: &PersonaDraft) -> Persona {
    let mut merged = current.clone();
    let voice = &mut merged.voice;
    voice.formality.get_or_insert(draft.formality);
    voice.warmth.get_or_insert(draft.warmth);
    voice.energy.get_or_insert(draft.energy);
    voice.emoji.get_or_insert(draft.emoji);
    voice.sentence_length.get_or_insert(draft.sentence_length);
    if voice.signature_phrases.is_empty() {
        voice.signature_phrases = draft.signature_phrases.clone();
    }
    let traits = &mut merged.traits;
    fill(&mut traits.communication, &draft.traits.communication);
    fill(&mut traits.approach, &draft.traits.approach);
    fill(&mut traits.interaction, &draft.traits.interaction);
    fill(&mut traits.questioning, &draft.traits.questioning);
    fill(&mut traits.feedback, &draft.traits.feedback);
    merged
}

fn fill<T: TraitOption>(current: &mut Weights<T>, draft: &Weights<T>) {
    if current.is_empty() {
        current.clone_from(draft);
    }
}

/// What [`merge_draft`] would do, field by field, for the CLI and the API to show: filled fields
/// and the creator's own values the draft disagrees with. Fields where both agree are left out.
pub fn draft_changes(current: &Persona, draft: &PersonaDraft) -> Vec<DraftChange> {
    let mut changes = Vec::new();
    let mut push = |key: &str, current: Option<String>, proposed: String| {
        if current.as_ref() != Some(&proposed) && !proposed.is_empty() && proposed != "[]" {
            changes.push(DraftChange { key: key.to_owned(), applied: current.is_none(), current, proposed });
        }
    };
    let voice = &current.voice;
    push("voice.formality", voice.formality.map(|v| v.to_string()), draft.formality.to_string());
    push("voice.warmth", voice.warmth.map(|v| v.to_string()), draft.warmth.to_string());
    push("voice.energy", voice.energy.map(|v| v.to_string()), draft.energy.to_string());
    push("voice.emoji", voice.emoji.map(|e| emoji_name(e).to_owned()), emoji_name(draft.emoji).to_owned());
    push("voice.sentence_length", voice.sentence_length.map(|v| v.to_string()), draft.sentence_length.to_string());
    let phrases = |list: &[String]| format!("{list:?}");
    push(
        "voice.signature_phrases",
        (!voice.signature_phrases.is_empty()).then(|| phrases(&voice.signature_phrases)),
        phrases(&draft.signature_phrases),
    );
    let traits = &current.traits;
    push("traits.communication", shown(&traits.communication), inline(&draft.traits.communication));
    push("traits.approach", shown(&traits.approach), inline(&draft.traits.approach));
    push("traits.interaction", shown(&traits.interaction), inline(&draft.traits.interaction));
    push("traits.questioning", shown(&traits.questioning), inline(&draft.traits.questioning));
    push("traits.feedback", shown(&traits.feedback), inline(&draft.traits.feedback));
    changes
}

fn emoji_name(emoji: EmojiUse) -> &'static str {
    match emoji {
        EmojiUse::None => "\"none\"",
        EmojiUse::Rare => "\"rare\"",
        EmojiUse::Often => "\"often\"",
    }
}

fn shown<T: TraitOption>(map: &Weights<T>) -> Option<String> {
    (!map.is_empty()).then(|| inline(map))
}

/// A weights map as an inline TOML table: `{ direct = 0.8, supportive = 0.6 }`.
fn inline<T: TraitOption>(map: &Weights<T>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let entries: Vec<String> = super::traits::ranked(map).iter().map(|(o, w)| format!("{} = {w}", o.key())).collect();
    format!("{{ {} }}", entries.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persona::{Communication, Voice};

    fn demo_documents() -> Vec<KnowledgeDocument> {
        [
            ("focus-blocks.md", include_str!("../../../creators/demo/knowledge/focus-blocks.md")),
            ("habit-stacking.md", include_str!("../../../creators/demo/knowledge/habit-stacking.md")),
            ("morning-routine.md", include_str!("../../../creators/demo/knowledge/morning-routine.md")),
            ("setbacks.md", include_str!("../../../creators/demo/knowledge/setbacks.md")),
            ("sleep-basics.md", include_str!("../../../creators/demo/knowledge/sleep-basics.md")),
        ]
        .map(|(path, body)| KnowledgeDocument { path: path.into(), body: body.into() })
        .to_vec()
    }

    #[test]
    fn the_demo_material_reads_as_a_warm_informal_direct_coach() {
        let draft = analyze(&demo_documents());
        eprintln!("{draft:#?}");
        assert!(draft.formality <= 0.5, "formality {}", draft.formality);
        assert!(draft.warmth >= 0.5, "warmth {}", draft.warmth);
        assert_eq!(draft.emoji, EmojiUse::None);
        assert!((8..=25).contains(&draft.sentence_length), "{}", draft.sentence_length);
        assert!(draft.traits.communication.contains_key(&Communication::Direct), "{:?}", draft.traits);
        assert!(draft.signature_phrases.iter().any(|p| p == "Never miss twice."), "{:?}", draft.signature_phrases);
        assert!(!draft.characteristic_words.is_empty());
    }

    #[test]
    fn a_merge_fills_only_what_the_creator_left_unset() {
        let draft = analyze(&demo_documents());
        let creator = Persona {
            name: "Maya".into(),
            voice: Voice { warmth: Some(1.0), signature_phrases: vec!["Mine.".into()], ..Voice::default() },
            traits: Traits { communication: BTreeMap::from([(Communication::Supportive, 0.9)]), ..Traits::default() },
            ..Persona::default()
        };
        let merged = merge_draft(&creator, &draft);
        assert_eq!(merged.voice.warmth, Some(1.0));
        assert_eq!(merged.voice.signature_phrases, ["Mine."]);
        assert_eq!(merged.traits.communication, creator.traits.communication);
        assert_eq!(merged.voice.formality, Some(draft.formality));
        assert_eq!(merged.traits.feedback, draft.traits.feedback);
        assert_eq!(merged.name, "Maya");
        assert_eq!(merge_draft(&merged, &draft), merged, "merging twice changes nothing more");

        let changes = draft_changes(&creator, &draft);
        let warmth = changes.iter().find(|c| c.key == "voice.warmth").expect("the draft disagrees on warmth");
        assert!(!warmth.applied && warmth.to_string().contains("yours, kept"), "{warmth}");
        let formality = changes.iter().find(|c| c.key == "voice.formality").expect("formality is filled");
        assert!(formality.applied && formality.to_string().starts_with("+ voice.formality = "), "{formality}");
        assert!(draft_changes(&merged, &draft).iter().all(|c| !c.applied), "nothing left to fill");
    }
}
