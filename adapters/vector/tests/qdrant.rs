//! `QdrantIndex` against the fake Qdrant on loopback: the `VectorIndex` contract, and what only
//! the Qdrant adapter promises (collections, payload, tenant filters, batching, errors).

#[path = "support/fake_qdrant.rs"]
mod fake_qdrant;

use fake_qdrant::{Call, FakeQdrant};
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::{Distance, FieldType, Query, QueryPointsBuilder};
use twin_engine::ports::{EmbedderId, IndexError, VectorIndex};
use twin_vector::QdrantIndex;
use twin_vector::testing::{self, embedder_a, fresh_creator, unit};

const PREFIX: &str = "twin_";

async fn fake_and_index() -> (FakeQdrant, QdrantIndex) {
    let fake = FakeQdrant::start().await;
    let index = QdrantIndex::connect(&fake.url(), None, PREFIX).await.expect("connect to the fake");
    (fake, index)
}

/// Every query the fake answered was filtered on the creator it was asked for.
fn assert_queries_were_tenant_filtered(fake: &FakeQdrant) {
    let queries = fake.calls().into_iter().filter(|c| matches!(c, Call::Query { .. })).count();
    assert!(queries > 0, "no query reached the fake");
    assert!(fake.take_unfiltered_queries().is_empty());
}

#[tokio::test]
async fn search_finds_a_documents_chunks_with_cosine_scores_best_first() {
    let (fake, index) = fake_and_index().await;
    testing::search_finds_a_documents_chunks_with_cosine_scores_best_first(&index).await;
    assert_queries_were_tenant_filtered(&fake);
}

#[tokio::test]
async fn replacing_a_document_replaces_all_its_chunks() {
    let (_fake, index) = fake_and_index().await;
    testing::replacing_a_document_replaces_all_its_chunks(&index).await;
}

#[tokio::test]
async fn a_creator_only_ever_finds_its_own_chunks() {
    let (fake, index) = fake_and_index().await;
    testing::a_creator_only_ever_finds_its_own_chunks(&index).await;
    assert_queries_were_tenant_filtered(&fake);
}

#[tokio::test]
async fn retaining_documents_removes_the_others() {
    let (_fake, index) = fake_and_index().await;
    testing::retaining_documents_removes_the_others(&index).await;
}

#[tokio::test]
async fn a_vector_of_the_wrong_size_is_invalid_and_nothing_is_stored() {
    let (fake, index) = fake_and_index().await;
    testing::a_vector_of_the_wrong_size_is_invalid_and_nothing_is_stored(&index).await;
    let upserted: usize =
        fake.calls().iter().map(|c| if let Call::Upsert { points, .. } = c { *points } else { 0 }).sum();
    assert_eq!(upserted, 1, "only the first, valid replace may reach Qdrant");
}

#[tokio::test]
async fn embedders_are_kept_apart_and_retain_drops_other_embedders() {
    let (_fake, index) = fake_and_index().await;
    testing::embedders_are_kept_apart_and_retain_drops_other_embedders(&index).await;
}

#[tokio::test]
async fn the_whole_contract_passes_on_one_index() {
    let (fake, index) = fake_and_index().await;
    testing::vector_index_contract(&index).await;
    assert_queries_were_tenant_filtered(&fake);
}

#[tokio::test]
async fn each_embedder_gets_a_cosine_collection_of_its_size_with_a_tenant_index() {
    let (fake, index) = fake_and_index().await;
    let creator = fresh_creator();
    let small = EmbedderId::new("hashed-ngrams-v1", 4);
    let named = EmbedderId::new("minilm:all-MiniLM-L6-v2", 3);
    index.replace_document(creator, &small, "a.md", "h", &[(0, unit([1.0, 0.0, 0.0, 0.0]))]).await.expect("replace");
    index.replace_document(creator, &named, "a.md", "h", &[(0, vec![0.0, 1.0, 0.0])]).await.expect("replace");
    index.replace_document(creator, &small, "b.md", "h", &[(0, unit([0.0, 1.0, 0.0, 0.0]))]).await.expect("replace");

    let names = fake.collection_names();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"twin_hashed-ngrams-v1_4".to_owned()), "{names:?}");
    let minilm = names.iter().find(|n| n.starts_with("twin_minilm_all-MiniLM-L6-v2_3_")).expect("minilm collection");

    for (name, dimensions) in [("twin_hashed-ngrams-v1_4", 4), (minilm.as_str(), 3)] {
        let collection = fake.collection(name).expect("collection");
        assert_eq!(collection.dimensions, dimensions);
        assert_eq!(collection.distance, Distance::Cosine as i32);
        assert_eq!(collection.payload_indexes.get("creator_id"), Some(&(FieldType::Keyword as i32, true)));
    }
    let creates = fake.calls().into_iter().filter(|c| matches!(c, Call::CreateCollection { .. })).count();
    assert_eq!(creates, 2, "a known collection is not checked or created again");

    // A second index on the same server finds the collection and does not create it again.
    let again = QdrantIndex::connect(&fake.url(), None, PREFIX).await.expect("connect");
    again.replace_document(creator, &small, "c.md", "h", &[(0, unit([0.0, 0.0, 1.0, 0.0]))]).await.expect("replace");
    assert_eq!(fake.collection("twin_hashed-ngrams-v1_4").expect("collection").points.len(), 3);
}

#[tokio::test]
async fn a_point_carries_the_chunk_key_and_its_creator_under_a_deterministic_id() {
    let (fake, index) = fake_and_index().await;
    let creator = fresh_creator();
    let vectors = [(0, unit([1.0, 0.0, 0.0, 0.0])), (5, unit([0.0, 1.0, 0.0, 0.0]))];
    index.replace_document(creator, &embedder_a(), "faq/pricing.md", "abc", &vectors).await.expect("replace");
    let first = fake.collection("twin_contract-a_4").expect("collection").points;
    index.replace_document(creator, &embedder_a(), "faq/pricing.md", "def", &vectors).await.expect("replace");
    let second = fake.collection("twin_contract-a_4").expect("collection").points;

    assert_eq!(first.keys().collect::<Vec<_>>(), second.keys().collect::<Vec<_>>(), "same ids on re-upsert");
    let text = |kind: Option<&Kind>| match kind {
        Some(Kind::StringValue(s)) => s.clone(),
        other => panic!("not a string: {other:?}"),
    };
    let mut ordinals = Vec::new();
    for (id, point) in &second {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "point id {id} is a uuid");
        let field = |name: &str| point.payload.get(name).and_then(|v| v.kind.as_ref());
        assert_eq!(text(field("creator_id")), creator.to_string());
        assert_eq!(text(field("document")), "faq/pricing.md");
        assert_eq!(text(field("content_hash")), "def");
        match field("ordinal") {
            Some(Kind::IntegerValue(n)) => ordinals.push(*n),
            other => panic!("ordinal is not an integer: {other:?}"),
        }
    }
    ordinals.sort();
    assert_eq!(ordinals, vec![0, 5]);
}

#[tokio::test]
async fn every_query_and_every_delete_names_the_creator() {
    let (fake, index) = fake_and_index().await;
    let (ann, bob) = (fresh_creator(), fresh_creator());
    for creator in [ann, bob] {
        index.replace_document(creator, &embedder_a(), "a.md", "h", &[(0, unit([1.0; 4]))]).await.expect("replace");
        index.search(creator, &embedder_a(), &unit([1.0; 4]), 3).await.expect("search");
        index.retain_documents(creator, &embedder_a(), &[]).await.expect("retain");
    }
    let calls = fake.calls();
    let queried: Vec<String> = calls
        .iter()
        .filter_map(|c| if let Call::Query { creator, .. } = c { Some(creator.clone()) } else { None })
        .collect();
    assert!(queried.contains(&ann.to_string()) && queried.contains(&bob.to_string()), "{queried:?}");
    for call in &calls {
        if let Call::DeleteByFilter { creator, .. } = call {
            assert!(creator.is_some(), "a delete without a creator_id filter: {call:?}");
        }
    }
    assert_queries_were_tenant_filtered(&fake);
}

/// The fake's guard itself: a query without the tenant filter is refused and recorded (so the
/// checks above can fail).
#[tokio::test]
async fn the_fake_refuses_a_query_without_a_creator_filter() {
    let (fake, index) = fake_and_index().await;
    index.search(fresh_creator(), &embedder_a(), &unit([1.0; 4]), 3).await.expect("a filtered search");
    let client = qdrant_client::Qdrant::from_url(&fake.url()).skip_compatibility_check().build().expect("client");
    let unfiltered = client
        .query(QueryPointsBuilder::new("twin_contract-a_4").query(Query::new_nearest(unit([1.0; 4]))).limit(3))
        .await;
    assert!(unfiltered.is_err(), "the fake answered an unfiltered query");
    assert_eq!(fake.take_unfiltered_queries().len(), 1);
}

#[tokio::test]
async fn a_large_document_is_upserted_in_batches_and_waited_for() {
    let (fake, index) = fake_and_index().await;
    let creator = fresh_creator();
    let vectors: Vec<(u32, Vec<f32>)> = (0..600).map(|i| (i, unit([1.0, i as f32, 0.0, 1.0]))).collect();
    index.replace_document(creator, &embedder_a(), "big.md", "h", &vectors).await.expect("replace");

    let upserts: Vec<(usize, bool)> = fake
        .calls()
        .iter()
        .filter_map(|c| if let Call::Upsert { points, wait, .. } = c { Some((*points, *wait)) } else { None })
        .collect();
    assert_eq!(upserts, vec![(256, true), (256, true), (88, true)]);
    let hits = index.search(creator, &embedder_a(), &unit([1.0, 0.0, 0.0, 1.0]), 1000).await.expect("search");
    assert_eq!(hits.len(), 600);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let refused = QdrantIndex::connect(&format!("http://{closed}"), None, PREFIX).await;
    assert!(matches!(refused, Err(IndexError::Unavailable(_))), "{:?}", refused.err());
}

#[tokio::test]
async fn a_server_that_stops_makes_calls_unavailable() {
    let (fake, index) = fake_and_index().await;
    drop(fake);
    let searched = index.search(fresh_creator(), &embedder_a(), &unit([1.0; 4]), 3).await;
    assert!(matches!(searched, Err(IndexError::Unavailable(_))), "{searched:?}");
}

#[tokio::test]
async fn the_api_key_is_sent_with_every_call() {
    let fake = FakeQdrant::start_with_api_key(Some("s3cret")).await;
    let wrong = QdrantIndex::connect(&fake.url(), Some("nope".into()), PREFIX).await;
    assert!(matches!(wrong, Err(IndexError::Unavailable(_))), "{:?}", wrong.err());

    let index = QdrantIndex::connect(&fake.url(), Some("s3cret".into()), PREFIX).await.expect("connect");
    let creator = fresh_creator();
    index.replace_document(creator, &embedder_a(), "a.md", "h", &[(0, unit([1.0; 4]))]).await.expect("replace");
    assert_eq!(index.search(creator, &embedder_a(), &unit([1.0; 4]), 3).await.expect("search").len(), 1);
}
