//! Offline stylometry: numbers measured from a text that describe how it is written (sentence
//! and word lengths, punctuation, person, contractions, hedges, imperatives, function words).
//! `analyze` derives a draft voice from them; the consistency score compares a reply with them.
//!
//! Cheap by design: one pass over the text, no model, a few microseconds for a chat reply.

use serde::{Deserialize, Serialize};

/// Function words whose relative frequencies characterise a writer more than the topic does
/// (Mosteller and Wallace; Burrows). Sorted, for binary search. Pronouns are measured apart.
pub(crate) const FUNCTION_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "as", "at", "be", "because", "been", "before", "but",
    "by", "can", "could", "do", "does", "even", "every", "for", "from", "had", "has", "have", "here", "if", "in",
    "into", "is", "it", "just", "may", "might", "more", "most", "must", "no", "not", "of", "on", "once", "one", "only",
    "or", "out", "over", "should", "so", "some", "than", "that", "the", "then", "there", "these", "this", "those",
    "to", "up", "upon", "very", "was", "were", "what", "when", "which", "while", "who", "will", "with", "would",
];

const FIRST_PERSON: &[&str] = &["i", "i'd", "i'll", "i'm", "i've", "me", "mine", "my", "myself"];
const FIRST_PLURAL: &[&str] = &["let's", "our", "ours", "ourselves", "us", "we", "we'd", "we'll", "we're", "we've"];
const SECOND_PERSON: &[&str] =
    &["you", "you'd", "you'll", "you're", "you've", "your", "yours", "yourself", "yourselves"];
const HEDGES: &[&str] = &[
    "apparently",
    "arguably",
    "generally",
    "likely",
    "may",
    "maybe",
    "might",
    "perhaps",
    "possibly",
    "presumably",
    "probably",
    "seem",
    "seems",
    "somewhat",
    "suggest",
    "suggests",
    "tend",
    "tends",
    "typically",
    "usually",
];
/// Words that open an instruction ("Put your phone…", "Never miss twice").
const IMPERATIVE_OPENERS: &[&str] = &[
    "add", "always", "ask", "avoid", "be", "begin", "build", "check", "choose", "close", "cut", "do", "don't", "drink",
    "drop", "focus", "get", "give", "go", "keep", "let", "let's", "look", "make", "move", "never", "notice", "pick",
    "plan", "protect", "put", "remember", "shrink", "start", "stop", "take", "tell", "think", "try", "turn", "use",
    "wait", "walk", "write",
];
/// Words of warmth and care.
const WARM_WORDS: &[&str] = &[
    "care", "enjoy", "feel", "feeling", "gentle", "glad", "happy", "hard", "kind", "kindness", "love", "okay", "proud",
    "rest", "thank", "together", "welcome", "worry",
];
/// Contractions that end in `'s` (most `'s` are possessives and are not counted).
const S_CONTRACTIONS: &[&str] = &["he's", "here's", "it's", "let's", "she's", "that's", "there's", "what's", "who's"];

/// The scalar features, in [`StyleProfile::features`] order; names for docs and debugging.
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "sentence_length_mean",
    "sentence_length_spread",
    "word_length_mean",
    "comma_rate",
    "question_rate",
    "exclamation_rate",
    "emoji_rate",
    "first_person_rate",
    "first_plural_rate",
    "second_person_rate",
    "contraction_rate",
    "hedge_rate",
    "imperative_rate",
    "long_word_rate",
    "caps_rate",
    "warm_rate",
];
pub const FEATURES: usize = 16;

/// How a text is written, in numbers. Rates are per word unless they say per sentence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StyleProfile {
    pub words: usize,
    pub sentences: usize,
    /// Words per sentence: mean and standard deviation.
    pub sentence_length_mean: f32,
    pub sentence_length_spread: f32,
    /// Letters per word.
    pub word_length_mean: f32,
    pub comma_rate: f32,
    /// Questions per sentence.
    pub question_rate: f32,
    /// Exclamations per sentence.
    pub exclamation_rate: f32,
    /// Emoji per sentence.
    pub emoji_rate: f32,
    /// I, me, my.
    pub first_person_rate: f32,
    /// We, us, our, let's.
    pub first_plural_rate: f32,
    /// You, your.
    pub second_person_rate: f32,
    pub contraction_rate: f32,
    /// Maybe, perhaps, might, seems.
    pub hedge_rate: f32,
    /// Sentences that open with an instruction, per sentence.
    pub imperative_rate: f32,
    /// Words of nine letters or more.
    pub long_word_rate: f32,
    /// Words in capitals (two letters or more), i.e. shouting.
    pub caps_rate: f32,
    /// Words of warmth and care.
    pub warm_rate: f32,
    /// Relative frequency of each of [`FUNCTION_WORDS`], in that order.
    pub function_words: Vec<f32>,
}

#[derive(Default)]
struct Counts {
    words: usize,
    letters: usize,
    commas: usize,
    questions: usize,
    exclamations: usize,
    emoji: usize,
    first: usize,
    plural: usize,
    second: usize,
    contractions: usize,
    hedges: usize,
    imperatives: usize,
    long: usize,
    caps: usize,
    warm: usize,
    function_words: Vec<u32>,
    sentence_lengths: Vec<u32>,
}

/// Lowercased word with typographic apostrophes made plain.
pub(crate) fn normalize_word(word: &str) -> String {
    word.chars().map(|c| if c == '’' { '\'' } else { c.to_ascii_lowercase() }).collect::<String>().to_lowercase()
}

/// Words of `text`: letters, digits and inner apostrophes.
pub(crate) fn raw_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(|w| w.trim_matches(['\'', '’']))
        .filter(|w| !w.is_empty())
}

pub(crate) fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x1F300..=0x1FAFF | 0x2600..=0x27BF | 0x1F000..=0x1F2FF)
}

/// The sentences of `text`: split at `.`, `!`, `?`, `…` before whitespace and at line breaks;
/// Markdown headings (`# …`) are skipped and list markers dropped, so documents and chat replies
/// measure alike.
pub(crate) fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim_start_matches(['-', '*', '>']).trim_start();
        let mut start = 0;
        let mut chars = line.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let at_end = chars.peek().is_none_or(|&(_, next)| next.is_whitespace() || next == '"');
            if matches!(c, '.' | '!' | '?' | '…') && at_end {
                let end = i + c.len_utf8();
                push_sentence(&mut out, &line[start..end]);
                start = end;
            }
        }
        push_sentence(&mut out, &line[start..]);
    }
    out
}

fn push_sentence<'a>(out: &mut Vec<&'a str>, sentence: &'a str) {
    let sentence = sentence.trim();
    if sentence.chars().any(char::is_alphanumeric) || sentence.chars().any(is_emoji) {
        out.push(sentence);
    }
}

impl StyleProfile {
    /// Measures `text` (a reply, a paragraph, a whole document).
    pub fn measure(text: &str) -> Self {
        let mut c = Counts { function_words: vec![0; FUNCTION_WORDS.len()], ..Counts::default() };
        for sentence in sentences(text) {
            c.commas += sentence.matches([',', ';']).count();
            c.emoji += sentence.chars().filter(|&ch| is_emoji(ch)).count();
            let end =
                sentence.trim_end_matches(|ch: char| ch == '"' || ch == ')' || is_emoji(ch) || ch.is_whitespace());
            if end.ends_with('?') {
                c.questions += 1;
            } else if end.ends_with('!') {
                c.exclamations += 1;
            }
            let mut length = 0;
            for (i, raw) in raw_words(sentence).enumerate() {
                length += 1;
                let word = normalize_word(raw);
                let w = word.as_str();
                c.letters += raw.chars().filter(|ch| ch.is_alphabetic()).count();
                if i == 0 && IMPERATIVE_OPENERS.binary_search(&w).is_ok() {
                    c.imperatives += 1;
                }
                if raw.chars().filter(|ch| ch.is_alphabetic()).count() >= 9 {
                    c.long += 1;
                }
                if raw.chars().count() >= 2 && raw.chars().all(|ch| ch.is_uppercase()) {
                    c.caps += 1;
                }
                if let Ok(index) = FUNCTION_WORDS.binary_search(&w) {
                    c.function_words[index] += 1;
                }
                c.first += usize::from(FIRST_PERSON.binary_search(&w).is_ok());
                c.plural += usize::from(FIRST_PLURAL.binary_search(&w).is_ok());
                c.second += usize::from(SECOND_PERSON.binary_search(&w).is_ok());
                c.hedges += usize::from(HEDGES.binary_search(&w).is_ok());
                c.warm += usize::from(WARM_WORDS.binary_search(&w).is_ok());
                c.contractions += usize::from(is_contraction(w));
            }
            if length > 0 {
                c.sentence_lengths.push(length);
                c.words += length as usize;
            }
        }
        Self::from_counts(c)
    }

    fn from_counts(c: Counts) -> Self {
        let words = c.words.max(1) as f32;
        let sentences = c.sentence_lengths.len();
        let n = sentences.max(1) as f32;
        let mean = c.sentence_lengths.iter().sum::<u32>() as f32 / n;
        let variance = c.sentence_lengths.iter().map(|&l| (l as f32 - mean).powi(2)).sum::<f32>() / n;
        Self {
            words: c.words,
            sentences,
            sentence_length_mean: mean,
            sentence_length_spread: variance.sqrt(),
            word_length_mean: c.letters as f32 / words,
            comma_rate: c.commas as f32 / words,
            question_rate: c.questions as f32 / n,
            exclamation_rate: c.exclamations as f32 / n,
            emoji_rate: c.emoji as f32 / n,
            first_person_rate: c.first as f32 / words,
            first_plural_rate: c.plural as f32 / words,
            second_person_rate: c.second as f32 / words,
            contraction_rate: c.contractions as f32 / words,
            hedge_rate: c.hedges as f32 / words,
            imperative_rate: c.imperatives as f32 / n,
            long_word_rate: c.long as f32 / words,
            caps_rate: c.caps as f32 / words,
            warm_rate: c.warm as f32 / words,
            function_words: c.function_words.iter().map(|&k| k as f32 / words).collect(),
        }
    }

    /// The scalar features in [`FEATURE_NAMES`] order.
    pub fn features(&self) -> [f32; FEATURES] {
        [
            self.sentence_length_mean,
            self.sentence_length_spread,
            self.word_length_mean,
            self.comma_rate,
            self.question_rate,
            self.exclamation_rate,
            self.emoji_rate,
            self.first_person_rate,
            self.first_plural_rate,
            self.second_person_rate,
            self.contraction_rate,
            self.hedge_rate,
            self.imperative_rate,
            self.long_word_rate,
            self.caps_rate,
            self.warm_rate,
        ]
    }

    /// 0 = chatty, 1 = formal: long sentences and long words up, contractions, "you" and
    /// exclamations down. Calibrated so coaching prose lands low and academic prose high.
    pub fn formality(&self) -> f64 {
        let f = 0.5
            + 0.12 * (f64::from(self.sentence_length_mean) - 16.0) / 6.0
            + 0.25 * (f64::from(self.long_word_rate) - 0.08) / 0.05
            - 0.15 * f64::from(self.contraction_rate) / 0.02
            - 0.12 * (f64::from(self.second_person_rate) - 0.02) / 0.03
            - 0.2 * f64::from(self.exclamation_rate);
        round_tenth(f)
    }

    /// 0 = cool, 1 = warm: talking to "you", words of care, a little "we".
    pub fn warmth(&self) -> f64 {
        let w = 0.25
            + 4.0 * f64::from(self.second_person_rate.min(0.08))
            + 15.0 * f64::from(self.warm_rate.min(0.02))
            + 3.0 * f64::from(self.first_plural_rate.min(0.03))
            + 0.2 * f64::from(self.emoji_rate.min(1.0))
            - 5.0 * f64::from(self.caps_rate.min(0.1));
        round_tenth(w)
    }

    /// 0 = calm, 1 = high-energy: exclamations, capitals, instructions, short sentences.
    pub fn energy(&self) -> f64 {
        let short = if self.sentence_length_mean < 10.0 { 0.1 } else { 0.0 };
        let e = 0.2
            + 0.8 * f64::from(self.exclamation_rate.min(1.0))
            + 0.3 * f64::from(self.imperative_rate.min(1.0))
            + 4.0 * f64::from(self.caps_rate.min(0.1))
            + 0.2 * f64::from(self.emoji_rate.min(1.0))
            + short;
        round_tenth(e)
    }
}

fn is_contraction(word: &str) -> bool {
    if !word.contains('\'') {
        return false;
    }
    ["n't", "'re", "'ll", "'ve", "'d", "'m"].iter().any(|end| word.ends_with(end))
        || S_CONTRACTIONS.binary_search(&word).is_ok()
}

/// Clamped to 0..=1 and rounded to one decimal, the precision a creator reads and edits.
pub(crate) fn round_tenth(x: f64) -> f64 {
    (x.clamp(0.0, 1.0) * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_lists_are_sorted_for_binary_search() {
        for list in [
            FUNCTION_WORDS,
            FIRST_PERSON,
            FIRST_PLURAL,
            SECOND_PERSON,
            HEDGES,
            IMPERATIVE_OPENERS,
            WARM_WORDS,
            S_CONTRACTIONS,
        ] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
    }

    #[test]
    fn a_short_reply_is_measured_sentence_by_sentence() {
        let style = StyleProfile::measure("Put your phone in another room. It's the easiest win! Ready? 🙂");
        assert_eq!(style.sentences, 3);
        assert_eq!(style.words, 11);
        assert!((style.question_rate - 1.0 / 3.0).abs() < 1e-6);
        assert!((style.exclamation_rate - 1.0 / 3.0).abs() < 1e-6);
        assert!((style.imperative_rate - 1.0 / 3.0).abs() < 1e-6);
        assert!(style.emoji_rate > 0.0);
        assert!((style.contraction_rate - 1.0 / 11.0).abs() < 1e-6);
        assert!((style.second_person_rate - 1.0 / 11.0).abs() < 1e-6);
    }

    #[test]
    fn headings_are_skipped_and_list_items_are_sentences() {
        let style = StyleProfile::measure("# Focus blocks\n\n- one task\n- one tab\n\nNo notifications at all.");
        assert_eq!(style.sentences, 3);
        assert_eq!(style.words, 8);
    }

    #[test]
    fn coaching_prose_reads_less_formal_and_warmer_than_academic_prose() {
        let coach = StyleProfile::measure(
            "You don't need a perfect morning. Start with one glass of water, and be kind to yourself when \
             you miss a day. We'll build from there, together.",
        );
        let academic = StyleProfile::measure(
            "The literature on habit formation suggests that contextual stability substantially moderates \
             the relationship between behavioural intentions and subsequent performance. Consequently, \
             interventions emphasising environmental restructuring may demonstrate considerable efficacy.",
        );
        assert!(coach.formality() < academic.formality(), "{} vs {}", coach.formality(), academic.formality());
        assert!(coach.warmth() > academic.warmth(), "{} vs {}", coach.warmth(), academic.warmth());
    }
}
