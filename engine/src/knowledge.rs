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

impl KnowledgeDocument {
    /// Hex sha-256 of the body: equal bodies are the same content, whatever their path.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }
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

/// Passages plus the term statistics retrieval needs, built once per knowledge version: an inverted
/// index (term → the passages holding it), so a search costs what the query's terms occur, not
/// passages × terms.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeIndex {
    passages: Vec<Passage>,
    /// Indexed tokens per passage (BM25's document length).
    lengths: Vec<u32>,
    /// For each term, the passages holding it and how often: (passage index, term frequency).
    postings: HashMap<String, Vec<(u32, u32)>>,
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
        let mut lengths = Vec::with_capacity(passages.len());
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        for (index, passage) in passages.iter().enumerate() {
            let mut counts: HashMap<String, u32> = HashMap::new();
            let indexed = match &passage.heading {
                Some(h) => format!("{h} {}", passage.text),
                None => passage.text.clone(),
            };
            for token in tokens(&indexed) {
                *counts.entry(token).or_default() += 1;
            }
            lengths.push(counts.values().sum());
            for (term, tf) in counts {
                postings.entry(term).or_default().push((index as u32, tf));
            }
        }
        let average_length =
            if lengths.is_empty() { 0.0 } else { lengths.iter().sum::<u32>() as f32 / lengths.len() as f32 };
        Self { passages, lengths, postings, average_length }
    }

    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// The best `limit` passages for `query`, best first; passages sharing no word are left out.
    /// Equal scores keep document order.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Scored<'_>> {
        let mut query_terms: Vec<String> = tokens(query).collect();
        query_terms.sort();
        query_terms.dedup();
        let n = self.passages.len() as f32;
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for term in &query_terms {
            let Some(holders) = self.postings.get(term) else { continue };
            let idf = bm25_idf(n, holders.len() as f32);
            for &(index, tf) in holders {
                let length = self.lengths[index as usize] as f32;
                *scores.entry(index).or_default() += idf * bm25_tf(tf as f32, length, self.average_length);
            }
        }
        let mut scored: Vec<(u32, f32)> = scores.into_iter().filter(|(_, score)| *score > 0.0).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(limit);
        scored.into_iter().map(|(index, score)| Scored { passage: &self.passages[index as usize], score }).collect()
    }
}

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// BM25's inverse document frequency of a term held by `holders` of `n` passages (always > 0).
fn bm25_idf(n: f32, holders: f32) -> f32 {
    ((n - holders + 0.5) / (holders + 0.5) + 1.0).ln()
}

/// BM25's saturating term-frequency part, normalised by the passage's length.
fn bm25_tf(tf: f32, length: f32, average_length: f32) -> f32 {
    let norm = 1.0 - B + B * length / average_length.max(1.0);
    tf * (K1 + 1.0) / (tf + K1 * norm)
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

    /// The plain definition: score every passage against every query term.
    fn brute_force(documents: &[KnowledgeDocument], query: &str) -> Vec<(String, f32)> {
        let passages: Vec<Passage> = documents.iter().flat_map(split_document).collect();
        let counts: Vec<HashMap<String, u32>> = passages
            .iter()
            .map(|p| {
                let text = match &p.heading {
                    Some(h) => format!("{h} {}", p.text),
                    None => p.text.clone(),
                };
                let mut c = HashMap::new();
                for t in tokens(&text) {
                    *c.entry(t).or_default() += 1;
                }
                c
            })
            .collect();
        let lengths: Vec<f32> = counts.iter().map(|c| c.values().sum::<u32>() as f32).collect();
        let average = if lengths.is_empty() { 0.0 } else { lengths.iter().sum::<f32>() / lengths.len() as f32 };
        let mut terms: Vec<String> = tokens(query).collect();
        terms.sort();
        terms.dedup();
        let n = passages.len() as f32;
        let mut out = Vec::new();
        for (i, c) in counts.iter().enumerate() {
            let mut score = 0.0;
            for t in &terms {
                if let Some(&tf) = c.get(t) {
                    let df = counts.iter().filter(|c| c.contains_key(t)).count() as f32;
                    score += bm25_idf(n, df) * bm25_tf(tf as f32, lengths[i], average);
                }
            }
            if score > 0.0 {
                out.push((passages[i].text.clone(), score));
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn the_index_scores_every_passage_as_the_plain_definition_does(
            bodies in proptest::collection::vec("(alpha|beta|gamma|delta|focus|sleep|habit| |\\n\\n){0,40}", 0..6),
            query in "(alpha|beta|gamma|delta|focus|sleep|habit| ){0,8}",
        ) {
            let documents: Vec<KnowledgeDocument> =
                bodies.iter().enumerate().map(|(i, b)| doc(&format!("d{i}.md"), b)).collect();
            let index = KnowledgeIndex::build(&documents);
            let mut got: Vec<(String, f32)> =
                index.search(&query, usize::MAX).into_iter().map(|s| (s.passage.text.clone(), s.score)).collect();
            let mut want = brute_force(&documents, &query);
            got.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            want.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            proptest::prop_assert_eq!(got.len(), want.len());
            for ((gt, gs), (wt, ws)) in got.iter().zip(&want) {
                proptest::prop_assert_eq!(gt, wt);
                proptest::prop_assert!((gs - ws).abs() < 1e-4, "{} vs {}", gs, ws);
            }
        }
    }

    #[test]
    fn an_empty_index_finds_nothing() {
        assert!(KnowledgeIndex::build(&[]).search("anything", 3).is_empty());
    }
}
