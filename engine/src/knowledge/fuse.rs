//! The per-twin knowledge snapshot and hybrid retrieval: the vector ranking (hits from the
//! `VectorIndex` port) and the BM25 ranking fused by reciprocal rank, plus the rule that says the
//! material has nothing on a question. Built once per knowledge version ([`crate::TwinSnapshot`]).

use std::collections::HashMap;

use super::chunk::{Chunk, ChunkOptions, chunk_document};
use super::lexical::LexicalIndex;
use super::{KnowledgeDocument, Passage};
use crate::ports::{ChunkKey, VectorHit};

/// Reciprocal rank fusion's constant: a rank-r item scores 1 / (RRF_K + r), r from 1. 60 is the
/// value of the original paper (Cormack et al., 2009) and damps the head of either list.
pub const RRF_K: f32 = 60.0;

/// All chunks of a twin's documents, their BM25 index, and the chunk of each current [`ChunkKey`].
#[derive(Debug, Clone, Default)]
pub struct Knowledge {
    chunks: Vec<Chunk>,
    lexical: LexicalIndex,
    /// Only keys of the current content: a vector hit with another hash or ordinal is stale.
    by_key: HashMap<ChunkKey, usize>,
}

/// A chunk found for a query, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrieved<'a> {
    pub chunk: &'a Chunk,
    /// Cosine similarity of the vector hit, or 0 when the vector side did not return this chunk.
    pub score: f32,
    /// BM25 score, or 0 when the chunk shares no term with the query.
    pub lexical: f32,
    /// Reciprocal-rank-fusion score the results are ordered by.
    pub fused: f32,
}

impl Retrieved<'_> {
    pub fn passage(&self) -> Passage {
        self.chunk.passage()
    }
}

/// Which rankings [`Knowledge::retrieve_ranked`] fuses; the alternatives to `Hybrid` exist to
/// measure each side alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    Hybrid,
    Lexical,
    Vector,
}

/// When the knowledge has something on a question: the best (non-stale) vector hit reaches
/// `min_cosine`, or the best BM25 score reaches `min_lexical`. Cosines depend on the embedder, so
/// each embedder has its own calibrated rule (see `engine/tests/retrieval_quality.rs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Relevance {
    pub min_cosine: f32,
    pub min_lexical: f32,
}

impl Relevance {
    /// Calibrated for [`super::HashedEmbedder`] (1024 dimensions) on `engine/tests/data/retrieval`:
    /// best cosine of answerable questions 0.10–0.32 (median 0.17), of off-topic ones 0.04–0.14;
    /// best BM25 of answerable 1.9–9.9 (median 4.0), of off-topic 0 (5 of 10) up to 3.46. This
    /// rule rejects 10/10 off-topic questions and keeps 29/37 answerable ones (78%); a looser
    /// 0.12 / 3.5 keeps 32/37 but lets 3/10 off-topic through. Fitted on the same small set it is
    /// judged on: treat it as a starting point.
    pub const HASHED: Relevance = Relevance { min_cosine: 0.15, min_lexical: 3.5 };

    /// For sentence-transformers models such as all-MiniLM-L6-v2, measured on the same set: best
    /// cosine of answerable questions 0.24–0.70 (median 0.45), of off-topic ones 0.06–0.23. The cut
    /// sits between the two with room on both sides; BM25 ≥ 3.5 keeps a question that shares the
    /// material's rare words.
    pub const SEMANTIC: Relevance = Relevance { min_cosine: 0.30, min_lexical: 3.5 };
}

impl Knowledge {
    pub fn build(documents: &[KnowledgeDocument]) -> Self {
        Self::build_with(documents, &ChunkOptions::default())
    }

    pub fn build_with(documents: &[KnowledgeDocument], options: &ChunkOptions) -> Self {
        let chunks: Vec<Chunk> = documents.iter().flat_map(|d| chunk_document(d, options)).collect();
        let lexical = LexicalIndex::build(&chunks);
        let by_key = chunks.iter().enumerate().map(|(i, c)| (c.key(), i)).collect();
        Self { chunks, lexical, by_key }
    }

    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The current chunk a key names, or `None` if the key is stale (the document changed or went).
    pub fn chunk(&self, key: &ChunkKey) -> Option<&Chunk> {
        self.by_key.get(key).map(|&i| &self.chunks[i])
    }

    /// The best `limit` chunks for `query`, fusing `vector_hits` (best first, as the vector index
    /// returns them; stale ones are ignored) with the BM25 ranking. With no vector hits this is
    /// lexical retrieval.
    pub fn retrieve(&self, query: &str, vector_hits: &[VectorHit], limit: usize) -> Vec<Retrieved<'_>> {
        self.retrieve_ranked(query, vector_hits, limit, Ranking::Hybrid)
    }

    /// Lexical retrieval alone, for callers without vector hits.
    pub fn search(&self, query: &str, limit: usize) -> Vec<Retrieved<'_>> {
        self.retrieve_ranked(query, &[], limit, Ranking::Lexical)
    }

    pub fn retrieve_ranked(
        &self,
        query: &str,
        vector_hits: &[VectorHit],
        limit: usize,
        ranking: Ranking,
    ) -> Vec<Retrieved<'_>> {
        // chunk index → (cosine, bm25, fused)
        let mut found: HashMap<usize, (f32, f32, f32)> = HashMap::new();
        if ranking != Ranking::Lexical {
            for (rank, (index, cosine)) in self.vector_ranking(vector_hits).into_iter().enumerate() {
                let entry = found.entry(index).or_default();
                entry.0 = cosine;
                entry.2 += 1.0 / (RRF_K + rank as f32 + 1.0);
            }
        }
        if ranking != Ranking::Vector {
            for (rank, (index, bm25)) in self.lexical.search(query, usize::MAX).into_iter().enumerate() {
                let entry = found.entry(index).or_default();
                entry.1 = bm25;
                entry.2 += 1.0 / (RRF_K + rank as f32 + 1.0);
            }
        }
        let mut results: Vec<(usize, (f32, f32, f32))> = found.into_iter().collect();
        results.sort_by(|(ia, a), (ib, b)| {
            b.2.total_cmp(&a.2).then(b.0.total_cmp(&a.0)).then(b.1.total_cmp(&a.1)).then(ia.cmp(ib))
        });
        results.truncate(limit);
        results
            .into_iter()
            .map(|(i, (score, lexical, fused))| Retrieved { chunk: &self.chunks[i], score, lexical, fused })
            .collect()
    }

    /// Whether the knowledge has anything on `query` by `rule` (see [`Relevance`]).
    pub fn relevant(&self, query: &str, vector_hits: &[VectorHit], rule: &Relevance) -> bool {
        let best_cosine = self.vector_ranking(vector_hits).first().map_or(0.0, |(_, c)| *c);
        let best_lexical = self.lexical.search(query, 1).first().map_or(0.0, |(_, s)| *s);
        best_cosine >= rule.min_cosine || best_lexical >= rule.min_lexical
    }

    /// Current hits as (chunk index, cosine), best first, each chunk once.
    fn vector_ranking(&self, hits: &[VectorHit]) -> Vec<(usize, f32)> {
        let mut ranked: Vec<(usize, f32)> =
            hits.iter().filter_map(|hit| self.by_key.get(&hit.key).map(|&i| (i, hit.score))).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut seen = std::collections::HashSet::new();
        ranked.retain(|(i, _)| seen.insert(*i));
        ranked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knowledge() -> Knowledge {
        Knowledge::build(&[
            KnowledgeDocument {
                path: "sleep.md".into(),
                body: "# Sleep\nKeep a fixed bedtime.\n# Naps\nNap briefly.".into(),
            },
            KnowledgeDocument { path: "focus.md".into(), body: "# Focus\nPut the phone away.".into() },
        ])
    }

    fn hit(k: &Knowledge, document: &str, ordinal: u32, score: f32) -> VectorHit {
        let chunk = k.chunks().iter().find(|c| c.document == document && c.ordinal == ordinal).expect("exists");
        VectorHit { key: chunk.key(), score }
    }

    #[test]
    fn fusion_rewards_chunks_both_rankings_agree_on() {
        let k = knowledge();
        let hits = [hit(&k, "focus.md", 0, 0.9), hit(&k, "sleep.md", 1, 0.8), hit(&k, "sleep.md", 0, 0.7)];
        let got = k.retrieve("bedtime", &hits, 3);
        let order: Vec<(&str, u32)> = got.iter().map(|r| (r.chunk.document.as_str(), r.chunk.ordinal)).collect();
        // sleep.md#0: vector rank 3 + lexical rank 1 beats focus.md#0: vector rank 1 alone.
        assert_eq!(order, vec![("sleep.md", 0), ("focus.md", 0), ("sleep.md", 1)]);
        assert!((got[0].fused - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
        assert_eq!((got[0].score, got[1].lexical), (0.7, 0.0));
        assert!(got[0].lexical > 0.0);
    }

    #[test]
    fn stale_hits_are_ignored() {
        let k = knowledge();
        let mut stale = hit(&k, "focus.md", 0, 0.99);
        stale.key.content_hash = "an older version".into();
        let mut gone = hit(&k, "focus.md", 0, 0.98);
        gone.key.ordinal = 7;
        let got = k.retrieve("nothing shared", &[stale.clone(), gone, hit(&k, "sleep.md", 1, 0.2)], 5);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].chunk.heading.as_deref(), Some("Naps"));
        assert!(!k.relevant("nothing shared", &[stale], &Relevance { min_cosine: 0.5, min_lexical: 100.0 }));
    }

    #[test]
    fn relevance_takes_either_side() {
        let k = knowledge();
        let rule = Relevance { min_cosine: 0.5, min_lexical: 0.1 };
        assert!(k.relevant("bedtime", &[], &rule));
        assert!(k.relevant("unrelated", &[hit(&k, "sleep.md", 0, 0.6)], &rule));
        assert!(!k.relevant("unrelated", &[hit(&k, "sleep.md", 0, 0.4)], &rule));
    }

    #[test]
    fn lexical_search_and_passages() {
        let k = knowledge();
        let got = k.search("phone", 3);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].passage(),
            Passage { source: "focus.md".into(), heading: Some("Focus".into()), text: "Put the phone away.".into() }
        );
    }
}
