//! What the issue-5 reply path adds per reply, timed on the demo material (a measurement, not an
//! assertion; ignored by default):
//!
//! `cargo test --release -p twin-engine --test reply_path_timings -- --ignored --nocapture`

use std::hint::black_box;
use std::time::Instant;

use twin_engine::knowledge::{ExactIndex, HashedEmbedder, Knowledge, KnowledgeDocument, Ranking, Relevance};
use twin_engine::persona::{Persona, StyleReference};

const QUESTION: &str = "How long should one focus block be when I am just starting out?";
const REPLY: &str = "Good question. Start with 25 minutes if focusing feels hard right now, and work up to 50 \
                     or 90 minutes over a few weeks. (from focus-blocks.md) Small steps, every day.";

fn demo_documents() -> Vec<KnowledgeDocument> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../creators/demo/knowledge");
    let mut documents: Vec<KnowledgeDocument> = std::fs::read_dir(dir)
        .expect("the demo knowledge")
        .map(|entry| {
            let path = entry.expect("an entry").path();
            KnowledgeDocument {
                path: path.file_name().expect("a name").to_string_lossy().into_owned(),
                body: std::fs::read_to_string(&path).expect("readable"),
            }
        })
        .collect();
    documents.sort_by(|a, b| a.path.cmp(&b.path));
    documents
}

fn time<T>(name: &str, runs: u32, mut f: impl FnMut() -> T) {
    for _ in 0..runs / 10 {
        black_box(f());
    }
    let started = Instant::now();
    for _ in 0..runs {
        black_box(f());
    }
    println!("{name}: {:.1} µs", started.elapsed().as_secs_f64() * 1e6 / f64::from(runs));
}

#[test]
#[ignore = "a timing, run on demand in release"]
fn reply_path_timings() {
    let documents = demo_documents();
    let knowledge = Knowledge::build(&documents);
    let embedder = HashedEmbedder::default();
    let mut index = ExactIndex::new(embedder.id().dimensions);
    for chunk in knowledge.chunks() {
        index.insert(chunk.key(), &embedder.embed(&chunk.embedding_text())).expect("the embedder's size");
    }
    let reference = StyleReference::new(&Persona::default(), &documents);
    println!("demo knowledge: {} chunks", knowledge.len());

    time("hashed embed of the question", 20_000, || embedder.embed(QUESTION));
    let query = embedder.embed(QUESTION);
    time("exact search, all chunks", 20_000, || index.search(&query, 12));
    let hits = index.search(&query, 12);
    time("relevance + hybrid ranking (BM25 + fusion)", 20_000, || {
        knowledge.relevant(QUESTION, &hits, &Relevance::HASHED);
        knowledge.retrieve_ranked(QUESTION, &hits, 3, Ranking::Hybrid).len()
    });
    time("BM25 alone (what the step did before)", 20_000, || knowledge.search(QUESTION, 3).len());
    time("consistency score of a 40-word reply", 20_000, || reference.score(REPLY).score);
}
