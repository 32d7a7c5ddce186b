//! `SentenceBertEmbedder` against the real all-MiniLM-L6-v2 folder named by `TWIN_EMBED_MODEL_PATH`
//! (`TWIN_EMBED_MODEL_PATH=$(scripts/fetch-minilm.sh)`).
//!
//! Without that variable at build time the tests are marked ignored (`build.rs`), so runners list them
//! as skipped with the reason; run anyway (`--run-ignored all`), each prints why it skips. With
//! `TWIN_REQUIRE_MODEL=1` (set in CI) they are never skipped: a missing model fails them, so CI
//! cannot go green without running them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use twin_embed::SentenceBertEmbedder;
use twin_engine::ports::Embedder;

const PROCRASTINATING: &str = "How do I stop procrastinating?";
const BEAT_PROCRASTINATION: &str = "Tips to beat procrastination";
const PARIS: &str = "The capital of France is Paris";

/// (anchor, a paraphrase of it, an unrelated sentence).
const TRIPLES: [(&str, &str, &str); 5] = [
    (PROCRASTINATING, BEAT_PROCRASTINATION, PARIS),
    ("What is your refund policy?", "Can I get my money back after buying the course?", "My favourite colour is green"),
    ("I can't sleep at night", "I have trouble falling asleep", "How do I cook pasta?"),
    (
        "How many sets should I do per workout?",
        "What's a good number of sets for each exercise in a session?",
        "The stock market fell today",
    ),
    ("The cat sat on the mat", "A cat was sitting on a rug", "Quantum computers use qubits"),
];

/// Cosines of all-MiniLM-L6-v2 from an independent implementation: the same weights and
/// tokenizer.json run through a plain numpy BERT forward pass in float64, mean pooling, L2 norm
/// (no candle involved).
const REFERENCE_COSINES: [(&str, &str, f32); 11] = [
    (PROCRASTINATING, BEAT_PROCRASTINATION, 0.8943),
    (PROCRASTINATING, PARIS, 0.0795),
    ("What is your refund policy?", "Can I get my money back after buying the course?", 0.4272),
    ("What is your refund policy?", "My favourite colour is green", 0.0515),
    ("I can't sleep at night", "I have trouble falling asleep", 0.7282),
    ("I can't sleep at night", "How do I cook pasta?", 0.2005),
    ("How many sets should I do per workout?", "What's a good number of sets for each exercise in a session?", 0.7384),
    ("How many sets should I do per workout?", "The stock market fell today", -0.0923),
    ("The cat sat on the mat", "A cat was sitting on a rug", 0.7398),
    ("The cat sat on the mat", "Quantum computers use qubits", -0.0080),
    (PROCRASTINATING, "", 0.0349),
];

/// The first eight components of three vectors, from the same numpy reference.
const REFERENCE_PREFIXES: [(&str, [f32; 8]); 3] = [
    (PROCRASTINATING, [0.030694, 0.006378, -0.012109, 0.018204, 0.06372, 0.001345, 0.021926, 0.010206]),
    (PARIS, [0.10203, 0.02831, 0.027158, -0.036275, 0.082822, -0.059756, 0.005772, -0.007958]),
    ("", [-0.118838, 0.048299, -0.002548, -0.011011, 0.051951, 0.010292, 0.115433, 0.000701]),
];

/// The model, or `None` (with a printed reason) when the test has to be skipped.
fn model() -> Option<SentenceBertEmbedder> {
    let required = std::env::var("TWIN_REQUIRE_MODEL").is_ok_and(|value| value == "1");
    let Some(path) = std::env::var_os("TWIN_EMBED_MODEL_PATH").map(PathBuf::from) else {
        assert!(!required, "TWIN_REQUIRE_MODEL=1 but TWIN_EMBED_MODEL_PATH is unset; run scripts/fetch-minilm.sh");
        eprintln!(
            "SKIPPED: TWIN_EMBED_MODEL_PATH is unset, so the real-model tests do not run. \
             Run `TWIN_EMBED_MODEL_PATH=$(scripts/fetch-minilm.sh) cargo nextest run -p twin-embed`."
        );
        return None;
    };
    // A path that is set but wrong is a mistake, never a reason to skip.
    Some(SentenceBertEmbedder::load(&path).unwrap_or_else(|err| panic!("cannot load {}: {err}", path.display())))
}

async fn embed(model: &SentenceBertEmbedder, texts: &[&str]) -> Vec<Vec<f32>> {
    let texts: Vec<String> = texts.iter().map(|text| text.to_string()).collect();
    let vectors = model.embed(&texts).await.expect("the texts are embedded");
    assert_eq!(vectors.len(), texts.len(), "one vector per text");
    vectors
}

async fn embed_one(model: &SentenceBertEmbedder, text: &str) -> Vec<f32> {
    embed(model, &[text]).await.remove(0)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    // The vectors are unit length, so the dot product is the cosine.
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(vector: &[f32]) -> f32 {
    vector.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[tokio::test]
#[cfg_attr(no_embed_model, ignore = "TWIN_EMBED_MODEL_PATH is unset; scripts/fetch-minilm.sh fetches the model")]
async fn vectors_have_the_models_384_dimensions_and_unit_length() {
    let Some(model) = model() else { return };
    assert_eq!(model.id().dimensions, 384);
    assert!(model.id().name.starts_with("st:"), "{:?}", model.id());
    assert_eq!(model.max_batch(), 32);

    let vectors = embed(&model, &[PROCRASTINATING, PARIS, "ok", "🙂 émojis and accents, ça va?"]).await;
    for vector in &vectors {
        assert_eq!(vector.len(), 384);
        assert!((norm(vector) - 1.0).abs() < 1e-5, "norm {}", norm(vector));
    }
}

#[tokio::test]
#[cfg_attr(no_embed_model, ignore = "TWIN_EMBED_MODEL_PATH is unset; scripts/fetch-minilm.sh fetches the model")]
async fn a_paraphrase_is_closer_than_an_unrelated_sentence() {
    let Some(model) = model() else { return };
    for (anchor, paraphrase, unrelated) in TRIPLES {
        let vectors = embed(&model, &[anchor, paraphrase, unrelated]).await;
        let close = cosine(&vectors[0], &vectors[1]);
        let far = cosine(&vectors[0], &vectors[2]);
        assert!(close > far + 0.2, "{anchor:?}: paraphrase {close:.4}, unrelated {far:.4}");
    }
}

#[tokio::test]
#[cfg_attr(no_embed_model, ignore = "TWIN_EMBED_MODEL_PATH is unset; scripts/fetch-minilm.sh fetches the model")]
async fn procrastination_questions_match_and_paris_does_not() {
    let Some(model) = model() else { return };
    let vectors = embed(&model, &[PROCRASTINATING, BEAT_PROCRASTINATION, PARIS]).await;
    let paraphrase = cosine(&vectors[0], &vectors[1]);
    let unrelated = cosine(&vectors[0], &vectors[2]);
    // Measured 0.8943 and 0.0795.
    assert!(paraphrase > 0.85, "paraphrase {paraphrase:.4}");
    assert!(unrelated < 0.15, "unrelated {unrelated:.4}");
}

#[tokio::test]
#[cfg_attr(no_embed_model, ignore = "TWIN_EMBED_MODEL_PATH is unset; scripts/fetch-minilm.sh fetches the model")]
async fn vectors_match_an_independent_reference_implementation() {
    let Some(model) = model() else { return };
    for (a, b, expected) in REFERENCE_COSINES {
        let actual = cosine(&embed_one(&model, a).await, &embed_one(&model, b).await);
        assert!((actual - expected).abs() < 1e-3, "cos({a:?}, {b:?}) = {actual:.5}, reference {expected:.4}");
    }
    for (text, expected) in REFERENCE_PREFIXES {
        let actual = embed_one(&model, text).await;
        let difference = max_difference(&actual[..8], &expected);
        assert!(difference < 1e-4, "{text:?}: {:?} against reference {expected:?}", &actual[..8]);
    }
}

#[tokio::test]
#[cfg_attr(no_embed_model, ignore = "TWIN_EMBED_MODEL_PATH is unset; scripts/fetch-minilm.sh fetches the model")]
async fn a_batch_gives_the_same_vectors_as_one_text_at_a_time() {
    let Some(model) = model() else { return };
    // Very different lengths, so the short texts are padded in the batch.
    let long =
        "Consistency beats intensity: train three times a week, sleep eight hours and eat enough protein. ".repeat(5);
    let texts = [PROCRASTINATING, "", "ok", long.as_str(), PARIS, "I have trouble falling asleep"];
    let batched = embed(&model, &texts).await;
    for (text, in_batch) in texts.iter().zip(&batched) {
        let alone = embed_one(&model, text).await;
        let difference = max_difference(&alone, in_batch);
        assert!(difference < 1e-4, "{text:?} differs by {difference} between a batch and alone");
    }
}

#[tokio::test]
#[cfg_attr(no_embed_model, ignore = "TWIN_EMBED_MODEL_PATH is unset; scripts/fetch-minilm.sh fetches the model")]
async fn more_texts_than_max_batch_are_all_embedded_in_order() {
    let Some(model) = model() else { return };
    let texts: Vec<String> = (0..40).map(|i| format!("Question number {i} about training")).collect();
    let vectors = model.embed(&texts).await.expect("embedded");
    assert_eq!(vectors.len(), 40);
    let last = embed_one(&model, &texts[39]).await;
    assert!(max_difference(&vectors[39], &last) < 1e-4, "the 40th vector belongs to the 40th text");
    assert!(model.embed(&[]).await.expect("nothing to embed").is_empty());
}

#[tokio::test]
#[cfg_attr(no_embed_model, ignore = "TWIN_EMBED_MODEL_PATH is unset; scripts/fetch-minilm.sh fetches the model")]
async fn a_text_longer_than_the_model_takes_is_cut_to_its_first_256_word_pieces() {
    let Some(model) = model() else { return };
    let words: Vec<String> = (0..2000).map(|i| format!("word{i}")).collect();
    let long = words.join(" ");
    let longer = format!("{long} and then a completely different ending about Paris and France");
    let vectors = embed(&model, &[&long, &longer]).await;
    assert!((norm(&vectors[0]) - 1.0).abs() < 1e-5);
    // Both are cut long before they differ, so the model saw the same word pieces.
    assert!(max_difference(&vectors[0], &vectors[1]) < 1e-5, "the text was not cut");
}

#[tokio::test]
#[cfg_attr(no_embed_model, ignore = "TWIN_EMBED_MODEL_PATH is unset; scripts/fetch-minilm.sh fetches the model")]
async fn an_empty_text_gets_a_unit_vector() {
    let Some(model) = model() else { return };
    let vector = embed_one(&model, "").await;
    assert_eq!(vector.len(), 384);
    assert!((norm(&vector) - 1.0).abs() < 1e-5, "norm {}", norm(&vector));
    assert!(vector.iter().all(|x| x.is_finite()));
}

#[tokio::test(flavor = "current_thread")]
#[cfg_attr(no_embed_model, ignore = "TWIN_EMBED_MODEL_PATH is unset; scripts/fetch-minilm.sh fetches the model")]
async fn embedding_leaves_the_async_runtime_free() {
    let Some(model) = model() else { return };
    // On a one-thread runtime this task only runs if `embed` yields while the model works.
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            loop {
                ticks.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    let texts: Vec<String> = TRIPLES.iter().map(|(anchor, _, _)| anchor.repeat(10)).collect();
    model.embed(&texts).await.expect("embedded");
    let during = ticks.load(Ordering::Relaxed);
    ticker.abort();
    assert!(during > 0, "the runtime was blocked while the model ran");
}

#[tokio::test]
#[cfg_attr(no_embed_model, ignore = "TWIN_EMBED_MODEL_PATH is unset; scripts/fetch-minilm.sh fetches the model")]
async fn concurrent_callers_all_get_their_own_vectors() {
    let Some(model) = model() else { return };
    let model = Arc::new(model);
    let calls: Vec<_> = TRIPLES
        .iter()
        .map(|(anchor, paraphrase, _)| {
            let model = Arc::clone(&model);
            let texts = vec![anchor.to_string(), paraphrase.to_string()];
            tokio::spawn(async move { (texts.clone(), model.embed(&texts).await.expect("embedded")) })
        })
        .collect();
    for call in calls {
        let (texts, vectors) = call.await.expect("the call finished");
        let alone = embed_one(&model, &texts[0]).await;
        assert!(max_difference(&vectors[0], &alone) < 1e-4, "{:?} got another caller's vector", texts[0]);
    }
}

/// Prints milliseconds per sentence, batched and one at a time. Run with
/// `cargo test [--release] -p twin-embed -- --ignored --nocapture speed`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn speed() {
    let Some(model) = model() else { return };
    let sentences: Vec<String> = (0..64)
        .map(|i| format!("Sentence {i}: how should I plan my week of training, meals and sleep to keep going?"))
        .collect();
    model.embed(&sentences[..32]).await.expect("warm-up");

    let started = Instant::now();
    for batch in sentences.chunks(32) {
        model.embed(batch).await.expect("embedded");
    }
    let batched = started.elapsed().as_secs_f64() * 1000.0 / sentences.len() as f64;

    let started = Instant::now();
    for sentence in &sentences[..32] {
        model.embed(std::slice::from_ref(sentence)).await.expect("embedded");
    }
    let single = started.elapsed().as_secs_f64() * 1000.0 / 32.0;

    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("{profile}: {batched:.2} ms per sentence in batches of 32, {single:.2} ms per sentence alone");
}
