//! Twin's vector index adapters: the engine's [`VectorIndex`](twin_engine::ports::VectorIndex) port on
//! Qdrant, reached over gRPC. The application builds a [`QdrantIndex`] at startup and hands it to the
//! knowledge pipeline as `Arc<dyn VectorIndex>`.
//!
//! With the `testing` feature, [`testing`] holds the port's contract, which every implementation of
//! `VectorIndex` runs in its own tests.

mod qdrant;

pub use qdrant::QdrantIndex;

#[cfg(feature = "testing")]
pub mod testing;
