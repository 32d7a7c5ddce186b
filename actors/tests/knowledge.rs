//! Knowledge at run time: ingestion into the embedded index (status per document, free
//! re-import, failures recorded and retried) and retrieval for a reply (hybrid, tenant-scoped,
//! honest when nothing matches, lexical when the vector side fails).

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{MemoryStore, knowledge_ports};
use twin_actors::{IngestReport, KnowledgePorts, ingest, retrieve};
use twin_engine::knowledge::{HashedEmbedder, KnowledgeDocument};
use twin_engine::persona::Persona;
use twin_engine::ports::*;
use twin_engine::twin::{CreatorProfile, TwinSnapshot};
use twin_engine::{CreatorId, Slug};

fn demo_documents() -> Vec<KnowledgeDocument> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../creators/demo/knowledge");
    let mut documents: Vec<KnowledgeDocument> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            KnowledgeDocument {
                path: path.file_name().unwrap().to_string_lossy().into_owned(),
                body: std::fs::read_to_string(&path).unwrap(),
            }
        })
        .collect();
    documents.sort_by(|a, b| a.path.cmp(&b.path));
    documents
}

fn profile(slug: &str) -> CreatorProfile {
    CreatorProfile {
        slug: Slug::parse(slug).unwrap(),
        persona: Persona { name: "Maya".into(), ..Persona::default() },
        replies: Default::default(),
        allowed_origins: vec![],
        default_program: None,
        nudges: Default::default(),
        model: Default::default(),
        channels: Default::default(),
        user_tokens: None,
    }
}

async fn stored(store: &MemoryStore, slug: &str, documents: &[KnowledgeDocument]) -> (CreatorId, TwinSnapshot) {
    let profile = profile(slug);
    store.put_creator(&profile, documents, &[]).await.unwrap();
    let (twin, _) = TwinSnapshot::new(profile, documents, &[]);
    (twin.creator, twin)
}

#[tokio::test]
async fn ingestion_embeds_each_document_once_and_records_its_status() {
    let store = Arc::new(MemoryStore::default());
    let ports = knowledge_ports(store.clone());
    let documents = demo_documents();
    let (creator, _) = stored(&store, "demo", &documents).await;

    let mut seen = Vec::new();
    let report = ingest(&ports, creator, &documents, |s| seen.push(s.clone())).await.unwrap();
    assert_eq!(report.embedded, documents.len());
    assert_eq!(report.failed, 0);
    assert!(report.chunks >= documents.len(), "{report:?}");
    let statuses = store.ingestion(creator).await.unwrap();
    assert_eq!(statuses.len(), documents.len());
    assert!(statuses.iter().all(|s| s.state == IngestState::Ready && s.chunks_done == s.chunks_total));
    assert!(seen.iter().any(|s| s.state == IngestState::Embedding), "progress is reported while embedding");
    let vectors = store.vectors(creator, &ports.embedder.id().key()).await.unwrap();
    assert_eq!(vectors.len(), report.chunks);

    // Again, unchanged: free.
    let again = ingest(&ports, creator, &documents, |_| {}).await.unwrap();
    assert_eq!(again, IngestReport { unchanged: documents.len(), ..IngestReport::default() });

    // One document changed, one removed: only the changed one is embedded, the removed one's
    // vectors are gone.
    let mut changed = documents.clone();
    changed[0].body.push_str("\n\n## A new section\n\nTake a short walk between two focus blocks.\n");
    let removed = changed.pop().unwrap();
    store.put_creator(&profile("demo"), &changed, &[]).await.unwrap();
    let report = ingest(&ports, creator, &changed, |_| {}).await.unwrap();
    assert_eq!((report.embedded, report.unchanged), (1, changed.len() - 1));
    let vectors = store.vectors(creator, &ports.embedder.id().key()).await.unwrap();
    assert!(vectors.iter().all(|(key, _)| key.document != removed.path));
}

/// Fails every embedding of texts containing "FAIL".
struct Flaky {
    inner: HashedEmbedder,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Embedder for Flaky {
    fn id(&self) -> &EmbedderId {
        self.inner.id()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if texts.iter().any(|t| t.contains("FAIL")) {
            return Err(EmbedError::Unavailable("the embedding server is down".into()));
        }
        Ok(texts.iter().map(|t| self.inner.embed(t)).collect())
    }
}

#[tokio::test]
async fn a_failing_document_is_recorded_and_the_others_go_on() {
    let store = Arc::new(MemoryStore::default());
    let flaky = Arc::new(Flaky { inner: HashedEmbedder::default(), calls: AtomicUsize::new(0) });
    let ports = KnowledgePorts { embedder: flaky.clone(), ..knowledge_ports(store.clone()) };
    let documents = vec![
        KnowledgeDocument { path: "a.md".into(), body: "# Sleep\n\nKeep a fixed wake-up time.".into() },
        KnowledgeDocument { path: "b.md".into(), body: "# Broken\n\nThis one says FAIL.".into() },
    ];
    let (creator, _) = stored(&store, "demo", &documents).await;
    let report = ingest(&ports, creator, &documents, |_| {}).await.unwrap();
    assert_eq!((report.embedded, report.failed), (1, 1));
    let statuses = store.ingestion(creator).await.unwrap();
    let broken = statuses.iter().find(|s| s.document == "b.md").unwrap();
    assert_eq!(broken.state, IngestState::Failed);
    assert!(broken.error.as_deref().unwrap().contains("down"));

    // The next run retries the failed document only.
    let before = flaky.calls.load(Ordering::SeqCst);
    let report = ingest(&ports, creator, &documents, |_| {}).await.unwrap();
    assert_eq!((report.unchanged, report.failed), (1, 1));
    assert_eq!(flaky.calls.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn retrieval_finds_the_answer_and_says_nothing_when_the_material_has_none() {
    let store = Arc::new(MemoryStore::default());
    let ports = knowledge_ports(store.clone());
    let documents = demo_documents();
    let (creator, twin) = stored(&store, "demo", &documents).await;
    ingest(&ports, creator, &documents, |_| {}).await.unwrap();

    let passages = retrieve(&ports, &twin, "How long should one focus block be when I start?", 3).await;
    assert!(!passages.is_empty());
    assert_eq!(passages[0].source, "focus-blocks.md", "{passages:?}");

    let nothing = retrieve(&ports, &twin, "What is the best way to file my quarterly taxes?", 3).await;
    assert!(nothing.is_empty(), "an off-topic question retrieves nothing: {nothing:?}");
}

#[tokio::test]
async fn a_creator_never_retrieves_another_creators_material() {
    let store = Arc::new(MemoryStore::default());
    let ports = knowledge_ports(store.clone());
    let maya_docs = demo_documents();
    let secret = vec![KnowledgeDocument {
        path: "secret.md".into(),
        body: "# Focus blocks\n\nAna's private method: a focus block is exactly 37 minutes with a red lamp on.".into(),
    }];
    let (maya, maya_twin) = stored(&store, "maya", &maya_docs).await;
    let (ana, _) = stored(&store, "ana", &secret).await;
    ingest(&ports, maya, &maya_docs, |_| {}).await.unwrap();
    ingest(&ports, ana, &secret, |_| {}).await.unwrap();

    // The query is Ana's text word for word; Maya's twin must still only see Maya's chunks.
    let query = "a focus block is exactly 37 minutes with a red lamp on";
    let vector = ports.embedder.embed(&[query.to_owned()]).await.unwrap().remove(0);
    let hits = ports.index.search(maya, ports.embedder.id(), &vector, 100).await.unwrap();
    assert!(hits.iter().all(|h| h.key.document != "secret.md"));
    let passages = retrieve(&ports, &maya_twin, query, 10).await;
    assert!(passages.iter().all(|p| p.source != "secret.md" && !p.text.contains("red lamp")));
}

/// An index that is always down.
struct DownIndex;

#[async_trait::async_trait]
impl VectorIndex for DownIndex {
    async fn replace_document(
        &self,
        _: CreatorId,
        _: &EmbedderId,
        _: &str,
        _: &str,
        _: &[(u32, Vec<f32>)],
    ) -> Result<(), IndexError> {
        Err(IndexError::Unavailable("connection refused".into()))
    }

    async fn retain_documents(&self, _: CreatorId, _: &EmbedderId, _: &[String]) -> Result<(), IndexError> {
        Err(IndexError::Unavailable("connection refused".into()))
    }

    async fn remove_creator(&self, _: CreatorId) -> Result<(), IndexError> {
        Err(IndexError::Unavailable("connection refused".into()))
    }

    async fn search(&self, _: CreatorId, _: &EmbedderId, _: &[f32], _: usize) -> Result<Vec<VectorHit>, IndexError> {
        Err(IndexError::Unavailable("connection refused".into()))
    }
}

#[tokio::test]
async fn a_broken_vector_index_falls_back_to_lexical_retrieval() {
    let store = Arc::new(MemoryStore::default());
    let ports = KnowledgePorts { index: Arc::new(DownIndex), ..knowledge_ports(store.clone()) };
    let documents = demo_documents();
    let (creator, twin) = stored(&store, "demo", &documents).await;
    let report = ingest(&ports, creator, &documents, |_| {}).await.unwrap();
    assert_eq!(report.failed, documents.len(), "every document fails to reach the index");

    let passages = retrieve(&ports, &twin, "Where should my phone be during a focus block?", 3).await;
    assert_eq!(passages.first().map(|p| p.source.as_str()), Some("focus-blocks.md"), "{passages:?}");
}

#[tokio::test]
async fn the_embedded_index_passes_the_vector_index_contract_qdrant_passes() {
    let index = twin_store::EmbeddedIndex::new(Arc::new(MemoryStore::default()));
    twin_vector::testing::vector_index_contract(&index).await;
}
