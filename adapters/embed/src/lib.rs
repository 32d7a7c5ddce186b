//! Twin's in-process embedders, implementing [`twin_engine::ports::Embedder`] without any server.
//!
//! [`SentenceBertEmbedder`] runs a sentence-transformers BERT model such as all-MiniLM-L6-v2 from a
//! folder on disk (`scripts/fetch-minilm.sh` puts one in `target/models/`); nothing is downloaded at
//! build or run time.

mod folder;
mod pooling;
mod sentence_bert;

pub use folder::LoadError;
pub use sentence_bert::SentenceBertEmbedder;
