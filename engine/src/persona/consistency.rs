//! The consistency score: how much a twin reply reads like the creator, in 0..=1, cheap and
//! offline. A [`StyleReference`] is built once per twin version from the persona and the creator's
//! own writing; [`consistency`] scores each reply against it (a few microseconds).
//!
//! Four parts (docs/PERSONA.md explains how to read them):
//! - style: the reply's stylometric features z-scored against the spread of the creator's
//!   paragraphs, turned into a closeness (1 = typical of the creator);
//! - function words: cosine of the square-rooted function-word frequencies (a writer's habits);
//! - vocabulary: the share of the reply's content words the creator uses;
//! - voice: agreement with the voice numbers the creator set (formality, warmth, energy, emoji,
//!   sentence length), left out when none is set.
//!
//! Then a reply that uses one of the creator's avoid words loses 40% per word, and one that uses a
//! signature phrase gains a little.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::style::{FEATURES, FUNCTION_WORDS, StyleProfile, normalize_word, raw_words};
use super::{EmojiUse, Persona};
use crate::knowledge::{KnowledgeDocument, split_document};

/// A paragraph shorter than this is measured together with the next one: rates of a ten-word
/// paragraph are noise.
const MIN_SAMPLE_WORDS: usize = 40;

/// Smallest spread assumed per feature, so a feature the creator never varies (no emoji at all)
/// does not turn one emoji into an infinite distance. Same order as [`super::style::FEATURE_NAMES`].
const SPREAD_FLOOR: [f32; FEATURES] =
    [3.0, 2.5, 0.25, 0.02, 0.1, 0.1, 0.1, 0.01, 0.01, 0.015, 0.01, 0.005, 0.12, 0.025, 0.005, 0.006];

/// A feature farther than this many spreads from the creator counts as this far.
const MAX_Z: f32 = 4.0;

const WEIGHT_STYLE: f32 = 0.35;
const WEIGHT_FUNCTION_WORDS: f32 = 0.2;
const WEIGHT_VOCABULARY: f32 = 0.3;
const WEIGHT_VOICE: f32 = 0.15;
/// Factor per avoid word the reply contains.
const AVOID_FACTOR: f32 = 0.6;
const SIGNATURE_BONUS: f32 = 0.05;

/// What a reply is compared with, built once per twin version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleReference {
    /// Paragraph-sized samples of the creator's writing the statistics come from.
    pub samples: usize,
    mean: [f32; FEATURES],
    spread: [f32; FEATURES],
    /// Square roots of the creator's function-word frequencies, unit length.
    function_words: Vec<f32>,
    /// Content words the creator writes (lowercased, plural `s` dropped).
    vocabulary: HashSet<String>,
    avoid_words: Vec<String>,
    signature_phrases: Vec<String>,
    formality: Option<f64>,
    warmth: Option<f64>,
    energy: Option<f64>,
    emoji: Option<EmojiUse>,
    sentence_length: Option<u32>,
}

/// A reply's score and its parts, each in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Consistency {
    pub score: f32,
    pub style: f32,
    pub function_words: f32,
    pub vocabulary: f32,
    /// None when the persona sets no voice number.
    pub voice: Option<f32>,
    pub avoid_words: usize,
    pub signature_phrase: bool,
}

/// How consistent `reply` is with the creator, in 0..=1. See [`StyleReference::score`].
pub fn consistency(reply: &str, reference: &StyleReference) -> f32 {
    reference.score(reply).score
}

impl StyleReference {
    /// The creator's style from their documents plus what they wrote in the persona (greeting,
    /// fallback, methodology, example replies). The persona supplies avoid words, signature
    /// phrases and voice numbers.
    pub fn new(persona: &Persona, documents: &[KnowledgeDocument]) -> Self {
        let mut texts: Vec<String> = Vec::new();
        for document in documents {
            let mut sample = String::new();
            for passage in split_document(document) {
                if !sample.is_empty() {
                    sample.push('\n');
                }
                sample.push_str(&passage.text);
                if raw_words(&sample).count() >= MIN_SAMPLE_WORDS {
                    texts.push(std::mem::take(&mut sample));
                }
            }
            if !sample.is_empty() {
                texts.push(sample);
            }
        }
        let voice = &persona.voice;
        let persona_texts = [voice.greeting.as_str(), voice.fallback.as_str(), persona.methodology.as_str()];
        let examples = persona.examples.iter().map(|e| e.twin.as_str());
        texts.extend(persona_texts.into_iter().chain(examples).filter(|t| !t.trim().is_empty()).map(str::to_owned));

        let profiles: Vec<StyleProfile> = texts.iter().map(|t| StyleProfile::measure(t)).collect();
        let n = profiles.len().max(1) as f32;
        let mut mean = [0.0; FEATURES];
        for features in profiles.iter().map(StyleProfile::features) {
            for (m, f) in mean.iter_mut().zip(features) {
                *m += f / n;
            }
        }
        let mut spread = [0.0; FEATURES];
        for features in profiles.iter().map(StyleProfile::features) {
            for (i, f) in features.iter().enumerate() {
                spread[i] += (f - mean[i]).powi(2) / n;
            }
        }
        for (s, floor) in spread.iter_mut().zip(SPREAD_FLOOR) {
            *s = s.sqrt().max(floor);
        }

        let all = texts.join("\n");
        let function_words = unit_root(&StyleProfile::measure(&all).function_words);
        let mut vocabulary: HashSet<String> = content_words(&all).collect();
        for text in persona.values.iter().chain(&voice.signature_phrases) {
            vocabulary.extend(content_words(text));
        }
        Self {
            samples: profiles.len(),
            mean,
            spread,
            function_words,
            vocabulary,
            avoid_words: voice.avoid_words.iter().map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()).collect(),
            signature_phrases: voice
                .signature_phrases
                .iter()
                .map(|p| comparable(p))
                .filter(|p| !p.is_empty())
                .collect(),
            formality: voice.formality,
            warmth: voice.warmth,
            energy: voice.energy,
            emoji: voice.emoji,
            sentence_length: voice.sentence_length,
        }
    }

    /// Scores `reply`; the parts say why.
    pub fn score(&self, reply: &str) -> Consistency {
        let style_profile = StyleProfile::measure(reply);
        let style = if self.samples == 0 { 0.5 } else { self.closeness(&style_profile) };
        let function_words =
            if self.samples == 0 { 0.5 } else { dot(&unit_root(&style_profile.function_words), &self.function_words) };
        let vocabulary = self.vocabulary_share(reply);
        let voice = self.voice_match(&style_profile);

        let (mut total, mut weights) = (
            WEIGHT_STYLE * style + WEIGHT_FUNCTION_WORDS * function_words + WEIGHT_VOCABULARY * vocabulary,
            WEIGHT_STYLE + WEIGHT_FUNCTION_WORDS + WEIGHT_VOCABULARY,
        );
        if let Some(voice) = voice {
            total += WEIGHT_VOICE * voice;
            weights += WEIGHT_VOICE;
        }
        let mut score = total / weights;

        let lower = reply.to_lowercase();
        let avoid_words = self.avoid_words.iter().filter(|w| lower.contains(w.as_str())).count();
        score *= AVOID_FACTOR.powi(avoid_words as i32);
        let said = comparable(reply);
        let signature_phrase = self.signature_phrases.iter().any(|p| said.contains(p.as_str()));
        if signature_phrase {
            score += SIGNATURE_BONUS;
        }
        Consistency {
            score: score.clamp(0.0, 1.0),
            style,
            function_words,
            vocabulary,
            voice,
            avoid_words,
            signature_phrase,
        }
    }

    /// exp(-d²/4.5) for the root-mean-square z-distance d: about 0.8 for a text one spread away
    /// (a typical paragraph of the creator), 0.4 at two spreads, 0.14 at three.
    fn closeness(&self, profile: &StyleProfile) -> f32 {
        let features = profile.features();
        let (mut sum, mut count) = (0.0, 0.0);
        for (i, f) in features.iter().enumerate() {
            // The spread of sentence lengths means nothing below three sentences.
            if i == 1 && profile.sentences < 3 {
                continue;
            }
            let z = ((f - self.mean[i]) / self.spread[i]).clamp(-MAX_Z, MAX_Z);
            sum += z * z;
            count += 1.0;
        }
        let d2 = if count > 0.0 { sum / count } else { 0.0 };
        (-d2 / 4.5).exp()
    }

    fn vocabulary_share(&self, reply: &str) -> f32 {
        let (mut known, mut total) = (0, 0);
        for word in content_words(reply) {
            total += 1;
            known += usize::from(self.vocabulary.contains(&word));
        }
        if total == 0 { 0.5 } else { known as f32 / total as f32 }
    }

    fn voice_match(&self, profile: &StyleProfile) -> Option<f32> {
        let mut gaps: Vec<f64> = Vec::new();
        if let Some(target) = self.formality {
            gaps.push((profile.formality() - target).abs());
        }
        if let Some(target) = self.warmth {
            gaps.push((profile.warmth() - target).abs());
        }
        if let Some(target) = self.energy {
            gaps.push((profile.energy() - target).abs());
        }
        if let Some(target) = self.sentence_length
            && profile.sentences > 0
        {
            let target = f64::from(target.max(1));
            gaps.push(((f64::from(profile.sentence_length_mean) - target).abs() / target).min(1.0));
        }
        match self.emoji {
            Some(EmojiUse::None) => gaps.push(if profile.emoji_rate > 0.0 { 1.0 } else { 0.0 }),
            Some(EmojiUse::Often) => gaps.push(if profile.emoji_rate > 0.0 { 0.0 } else { 0.5 }),
            Some(EmojiUse::Rare) | None => {}
        }
        if gaps.is_empty() {
            return None;
        }
        Some((1.0 - gaps.iter().sum::<f64>() / gaps.len() as f64) as f32)
    }
}

/// Content words: not function words or pronouns, three letters or more, plural `s` dropped.
fn content_words(text: &str) -> impl Iterator<Item = String> + '_ {
    raw_words(text).filter_map(|raw| {
        let word = normalize_word(raw);
        if word.chars().count() < 3 || word.contains('\'') || FUNCTION_WORDS.binary_search(&word.as_str()).is_ok() {
            return None;
        }
        if matches!(
            word.as_str(),
            "you" | "your" | "yours" | "our" | "ours" | "they" | "them" | "their" | "she" | "her"
        ) {
            return None;
        }
        let stem = match word.strip_suffix('s') {
            Some(stem) if stem.len() >= 3 && !stem.ends_with('s') => stem.to_owned(),
            _ => word,
        };
        Some(stem)
    })
}

/// Lowercased words joined by single spaces, for phrase matching that ignores punctuation.
fn comparable(text: &str) -> String {
    raw_words(text).map(normalize_word).collect::<Vec<_>>().join(" ")
}

/// Square roots (so "the" does not outweigh every other habit), scaled to unit length.
fn unit_root(frequencies: &[f32]) -> Vec<f32> {
    let roots: Vec<f32> = frequencies.iter().map(|f| f.sqrt()).collect();
    let norm = roots.iter().map(|r| r * r).sum::<f32>().sqrt();
    if norm == 0.0 { roots } else { roots.iter().map(|r| r / norm).collect() }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>().clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests;
