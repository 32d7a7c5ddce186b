//! The creator's material, cut into passages, and lexical retrieval over it.
//!
//! A first, honest retrieval: passages are paragraphs under their heading, scored by BM25 over
//! lowercased word tokens with a small stop-word list. The vector index replaces it later; the
//! shape (query in, ranked passages with scores out) stays.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One source document of the creator's bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnowledgeDocument {
    /// Path inside the bundle's `knowledge/` folder, e.g. `focus.md`.
    pub path: String,
    pub body: String,
}

/// A piece of a document small enough to quote in a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passage {
    pub source: String,
    /// The nearest heading above the passage, if any.
    pub heading: Option<String>,
    pub text: String,
}

/// A passage and how well it matched a query (BM25; larger is better, 0 means no shared word).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored<'a> {
    pub passage: &'a Passage,
    pub score: f32,
}

/// Passages plus the term statistics retrieval needs, built once per knowledge version.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeIndex {
    passages: Vec<Passage>,
    terms: Vec<HashMap<String, u32>>,
    lengths: Vec<u32>,
    document_frequency: HashMap<String, u32>,
    average_length: f32,
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "do", "does", "for", "from", "how", "i", "if", "in",
    "is", "it", "its", "me", "my", "of", "on", "or", "so", "that", "the", "this", "to", "was", "what", "when", "where",
    "which", "who", "why", "will", "with", "you", "your", "we", "our", "should", "would", "could", "about", "have",
    "has", "am", "not", "no",
];

/// Lowercased word tokens without stop words; very short tokens are dropped.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| w.chars().count() > 1 && !STOP_WORDS.contains(&w.as_str()))
}

/// Splits a Markdown or plain-text document into passages: one per paragraph, each remembering the
/// heading it sits under. Headings themselves are not passages.
pub fn split_document(doc: &KnowledgeDocument) -> Vec<Passage> {
    let mut passages = Vec::new();
    let mut heading: Option<String> = None;
    let mut paragraph = String::new();
    let mut flush = |paragraph: &mut String, heading: &Option<String>| {
        let text = paragraph.trim();
        if !text.is_empty() {
            passages.push(Passage { source: doc.path.clone(), heading: heading.clone(), text: text.to_owned() });
        }
        paragraph.clear();
    };
    for line in doc.body.lines() {
        let trimmed = line.trim();
        if let Some(title) = trimmed.strip_prefix('#') {
            flush(&mut paragraph, &heading);
            heading = Some(title.trim_start_matches('#').trim().to_owned());
        } else if trimmed.is_empty() {
            flush(&mut paragraph, &heading);
        } else {
            if !paragraph.is_empty() {
                paragraph.push(' ');
            }
            paragraph.push_str(trimmed.trim_start_matches(['-', '*']).trim_start());
        }
    }
    flush(&mut paragraph, &heading);
    passages
}

impl KnowledgeIndex {
    pub fn build(documents: &[KnowledgeDocument]) -> Self {
        let passages: Vec<Passage> = documents.iter().flat_map(split_document).collect();
        let mut terms = Vec::with_capacity(passages.len());
        let mut lengths = Vec::with_capacity(passages.len());
        let mut document_frequency: HashMap<String, u32> = HashMap::new();
        for passage in &passages {
            let mut counts: HashMap<String, u32> = HashMap::new();
            let indexed = match &passage.heading {
                Some(h) => format!("{h} {}", passage.text),
                None => passage.text.clone(),
            };
            for token in tokens(&indexed) {
                *counts.entry(token).or_default() += 1;
            }
            for term in counts.keys() {
                *document_frequency.entry(term.clone()).or_default() += 1;
            }
            lengths.push(counts.values().sum());
            terms.push(counts);
        }
        let average_length =
            if lengths.is_empty() { 0.0 } else { lengths.iter().sum::<u32>() as f32 / lengths.len() as f32 };
        Self { passages, terms, lengths, document_frequency, average_length }
    }

    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// The best `limit` passages for `query`, best first; passages sharing no word are left out.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Scored<'_>> {
        const K1: f32 = 1.2;
        const B: f32 = 0.75;
        let mut query_terms: Vec<String> = tokens(query).collect();
        query_terms.sort();
        query_terms.dedup();
        let n = self.passages.len() as f32;
        let mut scored: Vec<Scored<'_>> = self
            .passages
            .iter()
            .enumerate()
            .filter_map(|(i, passage)| {
                let mut score = 0.0f32;
                for term in &query_terms {
                    let Some(&tf) = self.terms[i].get(term) else { continue };
                    let df = self.document_frequency.get(term).copied().unwrap_or(0) as f32;
                    let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                    let tf = tf as f32;
                    let norm = 1.0 - B + B * self.lengths[i] as f32 / self.average_length.max(1.0);
                    score += idf * tf * (K1 + 1.0) / (tf + K1 * norm);
                }
                (score > 0.0).then_some(Scored { passage, score })
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score));
        scored.truncate(limit);
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str, body: &str) -> KnowledgeDocument {
        KnowledgeDocument { path: path.into(), body: body.into() }
    }

    #[test]
    fn a_document_splits_into_paragraphs_under_their_heading() {
        let passages =
            split_document(&doc("a.md", "# Sleep\nGo to bed\nat ten.\n\nNo screens.\n## Focus\n- One task."));
        let got: Vec<_> = passages.iter().map(|p| (p.heading.as_deref(), p.text.as_str())).collect();
        assert_eq!(
            got,
            vec![(Some("Sleep"), "Go to bed at ten."), (Some("Sleep"), "No screens."), (Some("Focus"), "One task.")]
        );
    }

    #[test]
    fn search_ranks_the_passage_that_shares_rare_words_first() {
        let index = KnowledgeIndex::build(&[
            doc("sleep.md", "# Sleep\nKeep a fixed bedtime and dim the lights an hour before sleep."),
            doc("focus.md", "# Focus\nWork in ninety minute blocks with the phone in another room."),
            doc("food.md", "# Food\nEat protein at breakfast."),
        ]);
        let hits = index.search("How do I focus when my phone distracts me?", 3);
        assert_eq!(hits[0].passage.source, "focus.md");
        assert!(hits.iter().all(|h| h.score > 0.0));
        assert!(index.search("quantum chromodynamics", 3).is_empty());
    }

    #[test]
    fn an_empty_index_finds_nothing() {
        assert!(KnowledgeIndex::build(&[]).search("anything", 3).is_empty());
    }
}
