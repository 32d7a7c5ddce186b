//! Exact nearest-neighbour search: every stored vector is scored against the query. Flat storage
//! and a bounded heap keep that at memory speed, which for a creator's knowledge (thousands of
//! chunks) is far below a reply's budget; the in-memory `VectorIndex` adapter and tests use it.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use crate::ports::{ChunkKey, VectorHit};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a vector of {got} dimensions for an index of {expected}")]
pub struct WrongDimensions {
    pub expected: usize,
    pub got: usize,
}

/// Vectors stored L2-normalised (a zero vector stays zero), so a dot product with a normalised
/// query is the true cosine similarity whatever the caller passed in, and a zero vector on either
/// side scores 0.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    dimensions: usize,
    /// Row `i` of `vectors` belongs to `keys[i]`.
    keys: Vec<ChunkKey>,
    /// `keys.len() × dimensions` floats, row after row.
    vectors: Vec<f32>,
    /// Row of each key.
    rows: HashMap<ChunkKey, usize>,
}

impl ExactIndex {
    pub fn new(dimensions: usize) -> Self {
        Self { dimensions, keys: Vec::new(), vectors: Vec::new(), rows: HashMap::new() }
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Stores `vector` (normalised) under `key`, replacing the key's previous vector.
    pub fn insert(&mut self, key: ChunkKey, vector: &[f32]) -> Result<(), WrongDimensions> {
        if vector.len() != self.dimensions {
            return Err(WrongDimensions { expected: self.dimensions, got: vector.len() });
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        let normalised = vector.iter().map(|x| x * scale);
        match self.rows.get(&key) {
            Some(&row) => {
                let slot = &mut self.vectors[row * self.dimensions..(row + 1) * self.dimensions];
                slot.iter_mut().zip(normalised).for_each(|(s, v)| *s = v);
            }
            None => {
                self.rows.insert(key.clone(), self.keys.len());
                self.keys.push(key);
                self.vectors.extend(normalised);
            }
        }
        Ok(())
    }

    /// Replaces every vector of `document` (whatever its content hash) with `vectors`
    /// (ordinal, vector). Nothing changes if any vector has the wrong size.
    pub fn replace_document(
        &mut self,
        document: &str,
        content_hash: &str,
        vectors: &[(u32, Vec<f32>)],
    ) -> Result<(), WrongDimensions> {
        if let Some((_, wrong)) = vectors.iter().find(|(_, v)| v.len() != self.dimensions) {
            return Err(WrongDimensions { expected: self.dimensions, got: wrong.len() });
        }
        self.remove_document(document);
        for (ordinal, vector) in vectors {
            let key =
                ChunkKey { document: document.to_owned(), content_hash: content_hash.to_owned(), ordinal: *ordinal };
            self.insert(key, vector)?;
        }
        Ok(())
    }

    /// Removes every vector of `document`; returns how many.
    pub fn remove_document(&mut self, document: &str) -> usize {
        let doomed: Vec<ChunkKey> = self.keys.iter().filter(|k| k.document == document).cloned().collect();
        doomed.iter().filter(|k| self.remove(k)).count()
    }

    /// Removes one key's vector; false if it was not there.
    pub fn remove(&mut self, key: &ChunkKey) -> bool {
        let Some(row) = self.rows.remove(key) else { return false };
        let last = self.keys.len() - 1;
        let d = self.dimensions;
        if row != last {
            // Move the last row into the hole.
            self.vectors.copy_within(last * d..(last + 1) * d, row * d);
            self.keys.swap(row, last);
            self.rows.insert(self.keys[row].clone(), row);
        }
        self.keys.pop();
        self.vectors.truncate(last * d);
        true
    }

    /// The `limit` stored vectors most similar to `query` by cosine, best first; equal scores in
    /// storage order. A query of the wrong size finds nothing.
    pub fn search(&self, query: &[f32], limit: usize) -> Vec<VectorHit> {
        if query.len() != self.dimensions || limit == 0 || self.dimensions == 0 {
            return Vec::new();
        }
        let norm = query.iter().map(|x| x * x).sum::<f32>().sqrt();
        let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        let query: Vec<f32> = query.iter().map(|x| x * scale).collect();
        // A min-heap of the best `limit` so far: its top is the one to beat.
        let mut best: BinaryHeap<Candidate> = BinaryHeap::with_capacity(limit.min(self.len()) + 1);
        for (row, vector) in self.vectors.chunks_exact(self.dimensions).enumerate() {
            let candidate = Candidate { score: dot(&query, vector), row };
            if best.len() < limit {
                best.push(candidate);
            } else if let Some(mut worst) = best.peek_mut()
                && candidate < *worst
            {
                *worst = candidate;
            }
        }
        best.into_sorted_vec()
            .into_iter()
            .map(|c| VectorHit { key: self.keys[c.row].clone(), score: c.score.clamp(-1.0, 1.0) })
            .collect()
    }
}

/// Ordered so that "less" is better (higher score, then earlier row): the max-heap's top is then
/// the worst kept candidate, and `into_sorted_vec` yields best first.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    row: usize,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        other.score.total_cmp(&self.score).then(self.row.cmp(&other.row))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

/// Dot product with eight independent accumulators, which the compiler turns into SIMD.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(document: &str, ordinal: u32) -> ChunkKey {
        ChunkKey { document: document.into(), content_hash: "h".into(), ordinal }
    }

    /// The definition, in f64: cos(a, b) = a·b / (|a||b|), 0 when either is zero.
    fn cosine(a: &[f32], b: &[f32]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        let na = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na * nb) }
    }

    proptest! {
        #[test]
        fn search_returns_the_true_top_k_by_cosine(
            vectors in proptest::collection::vec(proptest::collection::vec(-4i8..5, 11), 0..40),
            query in proptest::collection::vec(-4i8..5, 11),
            limit in 0usize..12,
        ) {
            let as_f32 = |v: &Vec<i8>| v.iter().map(|x| f32::from(*x)).collect::<Vec<f32>>();
            let mut index = ExactIndex::new(11);
            for (i, v) in vectors.iter().enumerate() {
                index.insert(key("d", i as u32), &as_f32(v)).expect("right size");
            }
            let query = as_f32(&query);
            let hits = index.search(&query, limit);
            let mut want: Vec<f64> = vectors.iter().map(|v| cosine(&as_f32(v), &query)).collect();
            want.sort_by(|a, b| b.total_cmp(a));
            want.truncate(limit);
            prop_assert_eq!(hits.len(), want.len());
            for (hit, want) in hits.iter().zip(&want) {
                prop_assert!((f64::from(hit.score) - want).abs() < 1e-5, "{} vs {}", hit.score, want);
                let own = cosine(&as_f32(&vectors[hit.key.ordinal as usize]), &query);
                prop_assert!((f64::from(hit.score) - own).abs() < 1e-5);
            }
        }

        #[test]
        fn removal_keeps_every_other_vector_findable(
            count in 1usize..30,
            removed in proptest::collection::vec(0usize..30, 0..10),
        ) {
            let mut index = ExactIndex::new(4);
            for i in 0..count {
                let document = format!("d{}", i % 3);
                index.insert(key(&document, i as u32), &[i as f32 + 1.0, 1.0, 0.0, -(i as f32)]).expect("right size");
            }
            let mut kept: Vec<usize> = (0..count).collect();
            for r in removed {
                let document = format!("d{}", r % 3);
                prop_assert_eq!(index.remove(&key(&document, r as u32)), kept.contains(&r));
                kept.retain(|k| *k != r);
            }
            prop_assert_eq!(index.len(), kept.len());
            for i in kept {
                let hits = index.search(&[i as f32 + 1.0, 1.0, 0.0, -(i as f32)], 1);
                prop_assert_eq!(hits[0].key.ordinal as usize, i);
                prop_assert!((hits[0].score - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn replacing_a_document_drops_its_old_vectors_and_zero_vectors_score_zero() {
        let mut index = ExactIndex::new(2);
        index.replace_document("a.md", "old", &[(0, vec![1.0, 0.0]), (1, vec![0.0, 1.0])]).expect("right size");
        index.replace_document("b.md", "b", &[(0, vec![0.0, 0.0])]).expect("right size");
        index.replace_document("a.md", "new", &[(0, vec![3.0, 4.0])]).expect("right size");
        let hits = index.search(&[3.0, 4.0], 10);
        assert_eq!(hits.len(), 2);
        assert_eq!((hits[0].key.content_hash.as_str(), hits[0].key.ordinal), ("new", 0));
        assert!((hits[0].score - 1.0).abs() < 1e-6);
        assert_eq!(hits[1].score, 0.0);
        assert_eq!(
            index.replace_document("a.md", "x", &[(0, vec![1.0])]),
            Err(WrongDimensions { expected: 2, got: 1 })
        );
        assert_eq!(index.len(), 2, "a refused replacement changes nothing");
        assert_eq!(index.remove_document("a.md"), 1);
        assert!(index.search(&[0.0, 0.0], 5).iter().all(|h| h.score == 0.0));
    }

    /// `cargo test --release -p twin-engine exact_search_timing -- --ignored --nocapture`
    #[test]
    #[ignore = "a timing, not a check: run in release"]
    fn exact_search_timing_over_100k_vectors_of_384_dimensions() {
        let (count, dimensions) = (100_000, 384);
        let mut index = ExactIndex::new(dimensions);
        let mut state: u64 = 7;
        let mut next = || {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for i in 0..count {
            let v: Vec<f32> = (0..dimensions).map(|_| next()).collect();
            index.insert(key("d", i), &v).expect("right size");
        }
        let queries: Vec<Vec<f32>> = (0..20).map(|_| (0..dimensions).map(|_| next()).collect()).collect();
        let started = std::time::Instant::now();
        let mut found = 0;
        for q in &queries {
            found += index.search(q, 10).len();
        }
        let per_query = started.elapsed() / queries.len() as u32;
        println!("exact search, {count} × {dimensions}, top 10: {per_query:?} per query");
        assert_eq!(found, 200);
    }
}
