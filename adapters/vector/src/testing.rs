//! The `VectorIndex` contract: what every implementation must do, as async functions that panic on
//! a breach. Run it against a fresh index from the implementation's own tests:
//!
//! ```ignore
//! // Cargo.toml: [dev-dependencies] twin-vector = { workspace = true, features = ["testing"] }
//! #[tokio::test]
//! async fn the_embedded_index_keeps_the_vector_index_contract() {
//!     let index = EmbeddedIndex::open(tempdir.path()).expect("open");
//!     twin_vector::testing::vector_index_contract(&index).await;
//! }
//! ```
//!
//! Each case uses fresh random creators and the embedders [`EMBEDDER_A`]/[`EMBEDDER_B`] names, so
//! cases can share one index and run in any order.

use twin_engine::ids::CreatorId;
use twin_engine::ports::{ChunkKey, EmbedderId, IndexError, VectorHit, VectorIndex};
use uuid::Uuid;

/// The contract's embedders: the same size, different names, so only the name keeps them apart.
pub const EMBEDDER_A: &str = "contract-a";
pub const EMBEDDER_B: &str = "contract-b";
/// The dimensions of the contract's vectors.
pub const DIMENSIONS: usize = 4;

/// Every case, one after the other.
pub async fn vector_index_contract(index: &dyn VectorIndex) {
    search_finds_a_documents_chunks_with_cosine_scores_best_first(index).await;
    replacing_a_document_replaces_all_its_chunks(index).await;
    a_creator_only_ever_finds_its_own_chunks(index).await;
    retaining_documents_removes_the_others(index).await;
    a_vector_of_the_wrong_size_is_invalid_and_nothing_is_stored(index).await;
    embedders_are_kept_apart_and_retain_drops_other_embedders(index).await;
    removing_a_creator_removes_its_vectors_of_every_embedder_and_no_one_elses(index).await;
}

pub fn embedder_a() -> EmbedderId {
    EmbedderId::new(EMBEDDER_A, DIMENSIONS)
}

pub fn embedder_b() -> EmbedderId {
    EmbedderId::new(EMBEDDER_B, DIMENSIONS)
}

/// A creator no other test uses.
pub fn fresh_creator() -> CreatorId {
    CreatorId(Uuid::new_v4())
}

/// `v` scaled to length 1, as an embedder returns it.
pub fn unit(v: [f32; DIMENSIONS]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn key(document: &str, content_hash: &str, ordinal: u32) -> ChunkKey {
    ChunkKey { document: document.to_owned(), content_hash: content_hash.to_owned(), ordinal }
}

fn keys(hits: &[VectorHit]) -> Vec<ChunkKey> {
    hits.iter().map(|h| h.key.clone()).collect()
}

async fn replace(index: &dyn VectorIndex, creator: CreatorId, embedder: &EmbedderId, doc: &str, hash: &str, n: usize) {
    let vectors: Vec<(u32, Vec<f32>)> =
        (0..n).map(|i| (i as u32, unit([1.0, i as f32 + 1.0, 0.5, -(i as f32)]))).collect();
    index.replace_document(creator, embedder, doc, hash, &vectors).await.expect("replace_document");
}

async fn search_all(index: &dyn VectorIndex, creator: CreatorId, embedder: &EmbedderId) -> Vec<VectorHit> {
    index.search(creator, embedder, &unit([1.0, 1.0, 1.0, 1.0]), 100).await.expect("search")
}

/// Three chunks at known angles from the query come back in cosine order with cosine scores; the
/// limit keeps the best.
pub async fn search_finds_a_documents_chunks_with_cosine_scores_best_first(index: &dyn VectorIndex) {
    let (creator, embedder) = (fresh_creator(), embedder_a());
    let query = unit([1.0, 0.0, 0.0, 0.0]);
    let vectors = vec![
        (0, unit([0.0, 1.0, 0.0, 0.0])),  // orthogonal: 0
        (1, unit([1.0, 0.2, 0.0, 0.0])),  // close
        (2, unit([1.0, 1.0, 1.0, 0.0])),  // further
        (3, unit([-1.0, 0.1, 0.0, 0.0])), // opposite
    ];
    index.replace_document(creator, &embedder, "guide.md", "h1", &vectors).await.expect("replace_document");

    let hits = index.search(creator, &embedder, &query, 10).await.expect("search");
    assert_eq!(
        keys(&hits),
        vec![key("guide.md", "h1", 1), key("guide.md", "h1", 2), key("guide.md", "h1", 0), key("guide.md", "h1", 3)],
        "hits best first: {hits:?}"
    );
    for hit in &hits {
        let expected = cosine(&query, &vectors[hit.key.ordinal as usize].1);
        assert!((hit.score - expected).abs() < 1e-4, "score {} of {:?}, cosine is {expected}", hit.score, hit.key);
    }

    let best_two = index.search(creator, &embedder, &query, 2).await.expect("search");
    assert_eq!(keys(&best_two), vec![key("guide.md", "h1", 1), key("guide.md", "h1", 2)]);
}

/// A second replace leaves only the new chunks (old ordinals and the old hash gone), and other
/// documents untouched.
pub async fn replacing_a_document_replaces_all_its_chunks(index: &dyn VectorIndex) {
    let (creator, embedder) = (fresh_creator(), embedder_a());
    replace(index, creator, &embedder, "a.md", "old", 3).await;
    replace(index, creator, &embedder, "b.md", "b1", 1).await;
    replace(index, creator, &embedder, "a.md", "new", 1).await;

    let mut found = keys(&search_all(index, creator, &embedder).await);
    found.sort_by(|x, y| (&x.document, x.ordinal).cmp(&(&y.document, y.ordinal)));
    assert_eq!(found, vec![key("a.md", "new", 0), key("b.md", "b1", 0)]);

    index.replace_document(creator, &embedder, "a.md", "gone", &[]).await.expect("replace with nothing");
    assert_eq!(keys(&search_all(index, creator, &embedder).await), vec![key("b.md", "b1", 0)]);
}

/// Two creators with identical vectors: each search returns only its creator's chunks, and a
/// creator with nothing indexed finds nothing.
pub async fn a_creator_only_ever_finds_its_own_chunks(index: &dyn VectorIndex) {
    let (ann, bob, carol, embedder) = (fresh_creator(), fresh_creator(), fresh_creator(), embedder_a());
    replace(index, ann, &embedder, "ann.md", "h", 2).await;
    replace(index, bob, &embedder, "bob.md", "h", 2).await;

    let docs = |hits: Vec<VectorHit>| hits.into_iter().map(|h| h.key.document).collect::<Vec<_>>();
    assert_eq!(docs(search_all(index, ann, &embedder).await), vec!["ann.md", "ann.md"]);
    assert_eq!(docs(search_all(index, bob, &embedder).await), vec!["bob.md", "bob.md"]);
    assert!(search_all(index, carol, &embedder).await.is_empty());

    // Bob's retain and replace touch only Bob.
    index.retain_documents(bob, &embedder, &[]).await.expect("retain");
    index.replace_document(bob, &embedder, "ann.md", "h", &[]).await.expect("replace");
    assert!(search_all(index, bob, &embedder).await.is_empty());
    assert_eq!(docs(search_all(index, ann, &embedder).await), vec!["ann.md", "ann.md"]);
}

/// `retain_documents` keeps the listed documents and removes the rest; with nothing listed,
/// everything goes.
pub async fn retaining_documents_removes_the_others(index: &dyn VectorIndex) {
    let (creator, embedder) = (fresh_creator(), embedder_a());
    for doc in ["a.md", "b.md", "c.md"] {
        replace(index, creator, &embedder, doc, "h", 2).await;
    }
    index.retain_documents(creator, &embedder, &["a.md".to_owned(), "c.md".to_owned()]).await.expect("retain");
    let mut docs: Vec<String> =
        search_all(index, creator, &embedder).await.into_iter().map(|h| h.key.document).collect();
    docs.sort();
    assert_eq!(docs, vec!["a.md", "a.md", "c.md", "c.md"]);

    index.retain_documents(creator, &embedder, &[]).await.expect("retain nothing");
    assert!(search_all(index, creator, &embedder).await.is_empty());
}

/// A vector or query whose length is not the embedder's is refused as `Invalid`, and a refused
/// replace stores nothing (not even its well-sized vectors) and keeps the document's old chunks.
pub async fn a_vector_of_the_wrong_size_is_invalid_and_nothing_is_stored(index: &dyn VectorIndex) {
    let (creator, embedder) = (fresh_creator(), embedder_a());
    replace(index, creator, &embedder, "a.md", "old", 1).await;

    let vectors = vec![(0, unit([1.0, 0.0, 0.0, 0.0])), (1, vec![1.0, 0.0, 0.0])];
    let refused = index.replace_document(creator, &embedder, "a.md", "new", &vectors).await;
    assert!(matches!(refused, Err(IndexError::Invalid(_))), "{refused:?}");
    let fresh = index.replace_document(creator, &embedder, "b.md", "new", &vectors).await;
    assert!(matches!(fresh, Err(IndexError::Invalid(_))), "{fresh:?}");
    assert_eq!(keys(&search_all(index, creator, &embedder).await), vec![key("a.md", "old", 0)]);

    let query = index.search(creator, &embedder, &[1.0; DIMENSIONS + 1], 5).await;
    assert!(matches!(query, Err(IndexError::Invalid(_))), "{query:?}");
}

/// Vectors of one embedder are never found through another, even of the same size; retaining
/// under the current embedder drops the creator's vectors of every other embedder.
pub async fn embedders_are_kept_apart_and_retain_drops_other_embedders(index: &dyn VectorIndex) {
    let (creator, a, b) = (fresh_creator(), embedder_a(), embedder_b());
    replace(index, creator, &a, "a.md", "h", 2).await;
    replace(index, creator, &b, "b.md", "h", 1).await;

    assert_eq!(keys(&search_all(index, creator, &b).await), vec![key("b.md", "h", 0)]);
    let through_a: Vec<String> = search_all(index, creator, &a).await.into_iter().map(|h| h.key.document).collect();
    assert_eq!(through_a, vec!["a.md", "a.md"]);

    // The creator switched to embedder B and re-embedded b.md: A's vectors go.
    let other = fresh_creator();
    replace(index, other, &a, "a.md", "h", 1).await;
    index.retain_documents(creator, &b, &["a.md".to_owned(), "b.md".to_owned()]).await.expect("retain");
    assert!(search_all(index, creator, &a).await.is_empty(), "embedder A's vectors survived a retain under B");
    assert_eq!(keys(&search_all(index, creator, &b).await), vec![key("b.md", "h", 0)]);
    assert_eq!(search_all(index, other, &a).await.len(), 1, "another creator's vectors of A must stay");
}

/// `remove_creator` (GDPR erasure) removes the creator's vectors of every embedder; another
/// creator's vectors stay.
pub async fn removing_a_creator_removes_its_vectors_of_every_embedder_and_no_one_elses(index: &dyn VectorIndex) {
    let (creator, other, a, b) = (fresh_creator(), fresh_creator(), embedder_a(), embedder_b());
    replace(index, creator, &a, "a.md", "h", 2).await;
    replace(index, creator, &b, "b.md", "h", 1).await;
    replace(index, other, &a, "a.md", "h", 1).await;

    index.remove_creator(creator).await.expect("remove_creator");
    assert!(search_all(index, creator, &a).await.is_empty(), "embedder A's vectors survived");
    assert!(search_all(index, creator, &b).await.is_empty(), "embedder B's vectors survived");
    assert_eq!(search_all(index, other, &a).await.len(), 1, "another creator's vectors must stay");
    index.remove_creator(fresh_creator()).await.expect("a creator with no vectors");
}
