//! The creator's material and retrieval over it: documents cut into chunks ([`chunk`]), a BM25
//! index over the chunks ([`lexical`]), a dependency-free embedder ([`hashed`]), exact cosine
//! search ([`vector`]) and the per-twin snapshot that fuses both rankings ([`fuse`]).
//!
//! Everything here is pure: the conversation step calls [`Knowledge::retrieve`] with whatever
//! vector hits the actors fetched through the [`crate::ports::VectorIndex`] port (or none).
//! [`quality`] measures a retriever against a question set, so every embedder is judged alike.

pub mod chunk;
pub mod fuse;
pub mod hashed;
pub mod lexical;
pub mod quality;
pub mod vector;
pub mod words;

use serde::{Deserialize, Serialize};

pub use chunk::{CHUNKER_VERSION, Chunk, ChunkOptions, chunk_document};
pub use fuse::{Knowledge, Ranking, Relevance, Retrieved};
pub use hashed::HashedEmbedder;
pub use lexical::LexicalIndex;
pub use vector::ExactIndex;
pub use words::tokens;

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
        content_hash(&self.body)
    }
}

/// Hex sha-256 of a stored text. The one definition: the store keys documents (and program
/// sources) by it, and ingestion and vector keys compare against what the store holds.
pub fn content_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A piece of a document small enough to quote in a reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Passage {
    pub source: String,
    /// The heading path above the passage (e.g. `Focus › Phones`), if any.
    pub heading: Option<String>,
    pub text: String,
}

/// Splits a Markdown or plain-text document into paragraphs, each remembering the heading it sits
/// under (headings themselves are not paragraphs). Retrieval cuts [`Chunk`]s; the persona's style
/// statistics are measured per paragraph.
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
