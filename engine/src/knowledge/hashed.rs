//! An embedder that needs nothing: signed feature hashing of word unigrams, word bigrams and
//! character 3–5-grams into a fixed number of dimensions.
//!
//! It knows no synonyms (so "scrolling" does not meet "screen"), but character n-grams give it
//! morphology and typo tolerance BM25 lacks. It is the default embedder for tests, demos and
//! bundles without an embedding service, and the floor a neural embedder must beat.

use super::words::{is_stop_word, stem, words};
use crate::ports::{EmbedError, Embedder, EmbedderId};

pub const HASHED_EMBEDDER_NAME: &str = "hashed-ngrams-v1";
pub const HASHED_DEFAULT_DIMENSIONS: usize = 1024;

/// Weights of the feature families, before sublinear term frequency (1 + ln tf).
const UNIGRAM: f32 = 1.0;
/// Stop words still count a little: "how to" vs "why to" is not nothing, but almost.
const STOP_UNIGRAM: f32 = 0.1;
const BIGRAM: f32 = 0.5;
/// Per n-gram; a 7-letter word has 15 of them, so its n-grams weigh about as much as the word.
const CHAR_NGRAM: f32 = 0.25;

#[derive(Debug, Clone)]
pub struct HashedEmbedder {
    id: EmbedderId,
}

impl Default for HashedEmbedder {
    fn default() -> Self {
        Self::new(HASHED_DEFAULT_DIMENSIONS)
    }
}

impl HashedEmbedder {
    /// `dimensions` ≥ 1; 512 or 1024 keep collisions rare for chunk-sized texts.
    pub fn new(dimensions: usize) -> Self {
        Self { id: EmbedderId::new(HASHED_EMBEDDER_NAME, dimensions.max(1)) }
    }

    pub fn id(&self) -> &EmbedderId {
        &self.id
    }

    /// The L2-normalised vector of `text`; all zeros for a text without words.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut features: std::collections::HashMap<u64, (f32, f32)> = std::collections::HashMap::new();
        let mut add = |hash: u64, weight: f32| {
            let entry = features.entry(hash).or_insert((weight, 0.0));
            entry.0 = entry.0.max(weight);
            entry.1 += 1.0;
        };
        let mut previous: Option<String> = None;
        for word in words(text) {
            if is_stop_word(&word) || word.chars().count() < 2 {
                add(hash(b'w', &[&stem(&word)]), STOP_UNIGRAM);
                continue;
            }
            let stemmed = stem(&word);
            add(hash(b'w', &[&stemmed]), UNIGRAM);
            if let Some(previous) = &previous {
                add(hash(b'b', &[previous, " ", &stemmed]), BIGRAM);
            }
            let marked: Vec<char> = format!("<{word}>").chars().collect();
            for n in 3..=5 {
                for gram in marked.windows(n) {
                    let gram: String = gram.iter().collect();
                    add(hash(b'c', &[&gram]), CHAR_NGRAM);
                }
            }
            previous = Some(stemmed);
        }
        let dimensions = self.id.dimensions;
        let mut vector = vec![0.0f32; dimensions];
        // Sorted so the float sums are the same whatever order the map iterates in.
        let mut features: Vec<(u64, (f32, f32))> = features.into_iter().collect();
        features.sort_by_key(|(h, _)| *h);
        for (hash, (weight, tf)) in features {
            let value = weight * (1.0 + tf.ln());
            let slot = (hash % dimensions as u64) as usize;
            vector[slot] += if hash >> 63 == 1 { -value } else { value };
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|x| *x /= norm);
        }
        vector
    }
}

#[async_trait::async_trait]
impl Embedder for HashedEmbedder {
    fn id(&self) -> &EmbedderId {
        &self.id
    }

    fn max_batch(&self) -> usize {
        1024
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| HashedEmbedder::embed(self, t)).collect())
    }
}

/// FNV-1a (64-bit) of a family tag and the parts, finished with splitmix64's mixer so every bit
/// (the slot uses the low bits, the sign the top one) depends on every input byte. Fixed
/// constants: the same text hashes alike on every run and platform.
fn hash(family: u8, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in std::iter::once(family).chain(parts.iter().flat_map(|p| p.bytes())) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_are_unit_length_and_stable() {
        let embedder = HashedEmbedder::new(512);
        let v = embedder.embed("Put your phone in another room while you work.");
        assert_eq!(v.len(), 512);
        assert!((cosine(&v, &v) - 1.0).abs() < 1e-5);
        assert_eq!(v, embedder.embed("Put your phone in another room while you work."));
        // Pinned so that a change of hashing (which invalidates stored vectors) is noticed:
        // bump HASHED_EMBEDDER_NAME with it.
        assert_eq!(hash(b'w', &["phone"]), 0x9454_a2c4_6718_2f10, "{:#x}", hash(b'w', &["phone"]));
        assert_eq!(embedder.id().key(), "hashed-ngrams-v1/512");
    }

    #[test]
    fn a_text_without_words_is_the_zero_vector() {
        assert!(HashedEmbedder::default().embed(" ... !? ").iter().all(|x| *x == 0.0));
    }

    #[test]
    fn related_texts_are_closer_than_unrelated_ones() {
        let e = HashedEmbedder::default();
        let query = e.embed("my phones keep distracting me");
        let near = e.embed("Your phone is the biggest distraction: put it in another room.");
        let far = e.embed("Eat a breakfast with protein, such as eggs or yoghurt.");
        assert!(cosine(&query, &near) > cosine(&query, &far) + 0.1);
    }

    #[test]
    fn the_port_gives_the_same_vectors() {
        let e = HashedEmbedder::new(64);
        let texts = vec!["one".to_owned(), "two words".to_owned()];
        let got = futures::executor::block_on(Embedder::embed(&e, &texts)).expect("never fails");
        assert_eq!(got, vec![e.embed("one"), e.embed("two words")]);
    }
}
