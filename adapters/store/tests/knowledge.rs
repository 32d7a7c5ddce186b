//! The knowledge side of the store (ingestion status, vectors) and the embedded vector index, on
//! both backends, each on a fresh database.

#![allow(clippy::unwrap_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use std::sync::Arc;

use fixtures::*;
use twin_engine::ports::{
    CreatorStore, DocumentStatus, EmbedderId, IndexError, IngestState, KnowledgeStore, VectorIndex,
};
use twin_store::EmbeddedIndex;
use twin_store::testing::{Kind, TestDb};

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Postgres).await } )*
        }
    };
}

contract!(
    an_ingestion_status_round_trips_and_follows_its_document,
    an_unchanged_import_keeps_statuses_and_vectors,
    vectors_are_replaced_per_document_and_retained_by_embedder,
    the_embedded_index_ranks_by_cosine_and_keeps_tenants_apart,
    the_embedded_index_refuses_vectors_of_the_wrong_size,
);

fn status(document: &str, hash: &str, state: IngestState, done: u32) -> DocumentStatus {
    DocumentStatus {
        document: document.into(),
        content_hash: hash.into(),
        embedder: "hashed/4".into(),
        chunker: 1,
        state,
        chunks_done: done,
        chunks_total: 3,
        error: (state == IngestState::Failed).then(|| "the embedder timed out".to_owned()),
        updated_at: 1_700_000_000_000,
    }
}

async fn an_ingestion_status_round_trips_and_follows_its_document(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya");
    let id = maya.slug.creator_id();
    let docs = vec![document("a.md", "alpha"), document("b.md", "beta")];
    db.store.put_creator(&maya, &docs, &[]).await.unwrap();

    let a = status("a.md", "h1", IngestState::Embedding, 1);
    db.store.set_ingestion(id, &a).await.unwrap();
    db.store.set_ingestion(id, &status("b.md", "h2", IngestState::Failed, 0)).await.unwrap();
    let ready = status("a.md", "h1", IngestState::Ready, 3);
    db.store.set_ingestion(id, &ready).await.unwrap();
    // A document the creator does not have is ignored, not an error.
    db.store.set_ingestion(id, &status("ghost.md", "h3", IngestState::Ready, 3)).await.unwrap();

    let got = db.store.ingestion(id).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], ready, "the latest status of a document wins");
    assert_eq!(got[1].state, IngestState::Failed);
    assert_eq!(got[1].error.as_deref(), Some("the embedder timed out"));
    assert!(db.store.ingestion(creator("other")).await.unwrap().is_empty(), "another tenant sees nothing");

    // Removing b.md from the creator removes its status.
    db.store.put_creator(&maya, &docs[..1], &[]).await.unwrap();
    let got = db.store.ingestion(id).await.unwrap();
    assert_eq!(got.iter().map(|s| s.document.as_str()).collect::<Vec<_>>(), vec!["a.md"]);
}

async fn an_unchanged_import_keeps_statuses_and_vectors(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya");
    let id = maya.slug.creator_id();
    let docs = vec![document("a.md", "alpha"), document("b.md", "beta")];
    db.store.put_creator(&maya, &docs, &[]).await.unwrap();
    db.store.set_ingestion(id, &status("a.md", "h1", IngestState::Ready, 3)).await.unwrap();
    db.store.replace_vectors(id, "hashed/4", "a.md", "h1", &[(0, vec![1.0, 0.0, 0.0, 0.0])]).await.unwrap();

    // b.md changes and the profile too: a.md's row is left alone, so its status and vectors stay.
    let changed = vec![document("a.md", "alpha"), document("b.md", "beta, changed")];
    db.store.put_creator(&profile("maya", "Maya C."), &changed, &[]).await.unwrap();
    assert_eq!(db.store.ingestion(id).await.unwrap().len(), 1);
    assert_eq!(db.store.vectors(id, "hashed/4").await.unwrap().len(), 1);
}

async fn vectors_are_replaced_per_document_and_retained_by_embedder(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya");
    let id = maya.slug.creator_id();
    let docs = vec![document("a.md", "alpha"), document("b.md", "beta")];
    db.store.put_creator(&maya, &docs, &[]).await.unwrap();
    db.store.put_creator(&profile("ana", "Ana"), &docs, &[]).await.unwrap();

    let v = |x: f32| vec![x, 0.5, -0.25, 0.0];
    db.store.replace_vectors(id, "e/4", "a.md", "h1", &[(0, v(1.0)), (1, v(2.0)), (2, v(3.0))]).await.unwrap();
    db.store.replace_vectors(id, "e/4", "b.md", "h2", &[(0, v(4.0))]).await.unwrap();
    db.store.replace_vectors(creator("ana"), "e/4", "a.md", "h9", &[(0, v(9.0))]).await.unwrap();
    // a.md again, now two chunks of a new content: the third is gone.
    db.store.replace_vectors(id, "e/4", "a.md", "h1b", &[(0, v(5.0)), (1, v(6.0))]).await.unwrap();

    let got = db.store.vectors(id, "e/4").await.unwrap();
    let keys: Vec<(&str, &str, u32)> =
        got.iter().map(|(k, _)| (k.document.as_str(), k.content_hash.as_str(), k.ordinal)).collect();
    assert_eq!(keys, vec![("a.md", "h1b", 0), ("a.md", "h1b", 1), ("b.md", "h2", 0)]);
    assert_eq!(got[1].1, v(6.0), "vectors come back bit for bit");
    assert!(db.store.vectors(id, "other/4").await.unwrap().is_empty(), "another embedder's vectors are apart");

    db.store.retain_vectors(id, "e/4", &["b.md".to_owned()]).await.unwrap();
    let got = db.store.vectors(id, "e/4").await.unwrap();
    assert_eq!(got.iter().map(|(k, _)| k.document.as_str()).collect::<Vec<_>>(), vec!["b.md"]);
    assert_eq!(db.store.vectors(creator("ana"), "e/4").await.unwrap().len(), 1, "another tenant is untouched");

    // A new embedder: retaining for it drops every vector of the old one.
    db.store.retain_vectors(id, "new/4", &["b.md".to_owned()]).await.unwrap();
    assert!(db.store.vectors(id, "e/4").await.unwrap().is_empty());
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

async fn the_embedded_index_ranks_by_cosine_and_keeps_tenants_apart(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya");
    let ana = profile("ana", "Ana");
    let docs = vec![document("a.md", "alpha"), document("b.md", "beta")];
    db.store.put_creator(&maya, &docs, &[]).await.unwrap();
    db.store.put_creator(&ana, &docs, &[]).await.unwrap();
    let store: Arc<dyn KnowledgeStore> = Arc::new(db.store.clone());
    let index = EmbeddedIndex::new(store.clone());
    let e = EmbedderId::new("test", 3);
    let (m, a) = (maya.slug.creator_id(), ana.slug.creator_id());

    index
        .replace_document(m, &e, "a.md", "h1", &[(0, normalised(&[1.0, 0.0, 0.0])), (1, normalised(&[1.0, 1.0, 0.0]))])
        .await
        .unwrap();
    index.replace_document(m, &e, "b.md", "h2", &[(0, normalised(&[0.0, 0.0, 1.0]))]).await.unwrap();
    // Ana holds the exact query vector; Maya must never see it.
    index.replace_document(a, &e, "a.md", "h9", &[(0, normalised(&[0.9, 0.1, 0.0]))]).await.unwrap();

    let query = normalised(&[0.9, 0.1, 0.0]);
    let hits = index.search(m, &e, &query, 10).await.unwrap();
    let got: Vec<(&str, u32)> = hits.iter().map(|h| (h.key.document.as_str(), h.key.ordinal)).collect();
    assert_eq!(got, vec![("a.md", 0), ("a.md", 1), ("b.md", 0)], "best first");
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    assert!((hits[0].score - cos(&query, &normalised(&[1.0, 0.0, 0.0]))).abs() < 1e-6, "the score is the cosine");
    assert!(hits[2].score.abs() < 1e-6, "an orthogonal chunk scores 0");
    assert_eq!(index.search(m, &e, &query, 1).await.unwrap().len(), 1, "the limit holds");

    let theirs = index.search(a, &e, &query, 10).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].key.content_hash, "h9");

    // A replaced document is searched as replaced (the cache does not serve the old vectors), and a
    // fresh index over the same store finds what was persisted.
    index.replace_document(m, &e, "b.md", "h3", &[(0, query.clone())]).await.unwrap();
    let hits = EmbeddedIndex::new(store).search(m, &e, &query, 1).await.unwrap();
    assert_eq!((hits[0].key.document.as_str(), hits[0].key.content_hash.as_str()), ("b.md", "h3"));
    assert!((hits[0].score - 1.0).abs() < 1e-6);

    index.retain_documents(m, &e, &["a.md".to_owned()]).await.unwrap();
    let hits = index.search(m, &e, &query, 10).await.unwrap();
    assert!(hits.iter().all(|h| h.key.document == "a.md"), "a removed document is never found");
}

async fn the_embedded_index_refuses_vectors_of_the_wrong_size(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya");
    db.store.put_creator(&maya, &[document("a.md", "alpha")], &[]).await.unwrap();
    let index = EmbeddedIndex::new(Arc::new(db.store.clone()));
    let e = EmbedderId::new("test", 3);
    let id = maya.slug.creator_id();
    let wrong = index.replace_document(id, &e, "a.md", "h", &[(0, vec![1.0, 0.0])]).await;
    assert!(matches!(wrong, Err(IndexError::Invalid(_))), "{wrong:?}");
    assert!(db.store.vectors(id, &e.key()).await.unwrap().is_empty(), "nothing was stored");
    assert!(matches!(index.search(id, &e, &[1.0], 3).await, Err(IndexError::Invalid(_))));
}
