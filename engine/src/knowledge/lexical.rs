//! BM25 over chunks (heading path and text), with an inverted index so a search costs what the
//! query's terms occur, not chunks × terms. [`super::Knowledge`] owns one per knowledge version.

use std::collections::HashMap;

use super::chunk::Chunk;
use super::words::terms;

#[derive(Debug, Clone, Default)]
pub struct LexicalIndex {
    /// Indexed terms per chunk (BM25's document length), by chunk index.
    lengths: Vec<u32>,
    /// For each term, the chunks holding it and how often: (chunk index, term frequency).
    postings: HashMap<String, Vec<(u32, u32)>>,
    average_length: f32,
}

/// The text BM25 sees for a chunk: its heading path and its text.
pub fn indexed_text(chunk: &Chunk) -> String {
    match &chunk.heading {
        Some(h) => format!("{h}\n{}", chunk.text),
        None => chunk.text.clone(),
    }
}

impl LexicalIndex {
    pub fn build(chunks: &[Chunk]) -> Self {
        let mut lengths = Vec::with_capacity(chunks.len());
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        for (index, chunk) in chunks.iter().enumerate() {
            let mut counts: HashMap<String, u32> = HashMap::new();
            for term in terms(&indexed_text(chunk)) {
                *counts.entry(term).or_default() += 1;
            }
            lengths.push(counts.values().sum());
            for (term, tf) in counts {
                postings.entry(term).or_default().push((index as u32, tf));
            }
        }
        let average_length =
            if lengths.is_empty() { 0.0 } else { lengths.iter().sum::<u32>() as f32 / lengths.len() as f32 };
        Self { lengths, postings, average_length }
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// The best `limit` chunks for `query` as (chunk index, BM25 score), best first; chunks sharing
    /// no term are left out. Equal scores keep chunk order.
    pub fn search(&self, query: &str, limit: usize) -> Vec<(usize, f32)> {
        let mut query_terms: Vec<String> = terms(query).collect();
        query_terms.sort();
        query_terms.dedup();
        let n = self.lengths.len() as f32;
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for term in &query_terms {
            let Some(holders) = self.postings.get(term) else { continue };
            let idf = bm25_idf(n, holders.len() as f32);
            for &(index, tf) in holders {
                let length = self.lengths[index as usize] as f32;
                *scores.entry(index).or_default() += idf * bm25_tf(tf as f32, length, self.average_length);
            }
        }
        let mut scored: Vec<(usize, f32)> =
            scores.into_iter().filter(|(_, score)| *score > 0.0).map(|(i, s)| (i as usize, s)).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(limit);
        scored
    }
}

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// BM25's inverse document frequency of a term held by `holders` of `n` chunks (always > 0).
fn bm25_idf(n: f32, holders: f32) -> f32 {
    ((n - holders + 0.5) / (holders + 0.5) + 1.0).ln()
}

/// BM25's saturating term-frequency part, normalised by the chunk's length.
fn bm25_tf(tf: f32, length: f32, average_length: f32) -> f32 {
    let norm = 1.0 - B + B * length / average_length.max(1.0);
    tf * (K1 + 1.0) / (tf + K1 * norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::{ChunkOptions, KnowledgeDocument, chunk_document};

    fn chunks(bodies: &[&str]) -> Vec<Chunk> {
        let options = ChunkOptions::default();
        bodies
            .iter()
            .enumerate()
            .flat_map(|(i, b)| {
                chunk_document(&KnowledgeDocument { path: format!("d{i}.md"), body: (*b).into() }, &options)
            })
            .collect()
    }

    #[test]
    fn search_ranks_the_chunk_that_shares_rare_words_first_heading_included() {
        let chunks = chunks(&[
            "# Sleep\nKeep a fixed bedtime and dim the lights an hour before sleep.",
            "# Focus\nWork in ninety minute blocks with the phone in another room.",
            "# Food\nEat protein at breakfast.",
        ]);
        let index = LexicalIndex::build(&chunks);
        let hits = index.search("How do I focus when my phones distract me?", 3);
        assert_eq!(hits[0].0, 1);
        assert!(!index.search("what about food", 3).is_empty(), "the heading is indexed");
        assert!(index.search("quantum chromodynamics", 3).is_empty());
        assert!(LexicalIndex::build(&[]).search("anything", 3).is_empty());
    }

    /// The plain definition: score every chunk against every query term.
    fn brute_force(chunks: &[Chunk], query: &str) -> Vec<(usize, f32)> {
        let counts: Vec<HashMap<String, u32>> = chunks
            .iter()
            .map(|c| {
                let mut counts = HashMap::new();
                for t in terms(&indexed_text(c)) {
                    *counts.entry(t).or_default() += 1;
                }
                counts
            })
            .collect();
        let lengths: Vec<f32> = counts.iter().map(|c| c.values().sum::<u32>() as f32).collect();
        let average = if lengths.is_empty() { 0.0 } else { lengths.iter().sum::<f32>() / lengths.len() as f32 };
        let mut query_terms: Vec<String> = terms(query).collect();
        query_terms.sort();
        query_terms.dedup();
        let n = chunks.len() as f32;
        let mut out = Vec::new();
        for (i, c) in counts.iter().enumerate() {
            let mut score = 0.0;
            for t in &query_terms {
                if let Some(&tf) = c.get(t) {
                    let df = counts.iter().filter(|c| c.contains_key(t)).count() as f32;
                    score += bm25_idf(n, df) * bm25_tf(tf as f32, lengths[i], average);
                }
            }
            if score > 0.0 {
                out.push((i, score));
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn the_index_scores_every_chunk_as_the_plain_definition_does(
            bodies in proptest::collection::vec("(alpha|beta|gamma|delta|focus|sleep|habits|# Sleep\n| |\\n\\n){0,40}", 0..6),
            query in "(alpha|beta|gamma|delta|focus|sleep|habit| ){0,8}",
        ) {
            let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
            let chunks = chunks(&bodies);
            let index = LexicalIndex::build(&chunks);
            let mut got = index.search(&query, usize::MAX);
            let want = brute_force(&chunks, &query);
            got.sort_by_key(|(i, _)| *i);
            proptest::prop_assert_eq!(got.len(), want.len());
            for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                proptest::prop_assert_eq!(gi, wi);
                proptest::prop_assert!((gs - ws).abs() < 1e-4, "{} vs {}", gs, ws);
            }
        }
    }
}
