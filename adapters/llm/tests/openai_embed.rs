//! `OpenAiEmbedder` against a fake OpenAI-compatible server.

#[path = "support/fake_openai.rs"]
mod fake_openai;

use std::time::Duration;

use fake_openai::{FakeOpenAi, Reply, fake_vector, fixture};
use twin_engine::ports::{EmbedError, Embedder, EmbedderId};
use twin_llm::{EmbedConfig, OpenAiEmbedder, RetryPolicy};

fn config(fake: &FakeOpenAi, max_batch: usize) -> EmbedConfig {
    let mut config = EmbedConfig::new(&fake.base_url, "text-embedding-3-small");
    config.max_batch = max_batch;
    config.retry = RetryPolicy {
        max_retries: 2,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_rate_limit_wait: Duration::from_secs(5),
    };
    config
}

fn normalised(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn assert_close(actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 1e-5, "{actual:?} != {expected:?}");
    }
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|t| (*t).to_owned()).collect()
}

#[tokio::test]
async fn connect_probes_the_dimensions_and_embed_batches_orders_and_normalises() {
    let fake = FakeOpenAi::start().await;
    fake.always(Reply::Embeddings);

    let embedder = OpenAiEmbedder::connect(config(&fake, 2)).await.expect("connects");
    assert_eq!(embedder.id(), &EmbedderId::new("openai:text-embedding-3-small", 4));
    assert_eq!(embedder.max_batch(), 2);

    let inputs = texts(&["one", "two words", "", "a longer sentence here", "five", "six!"]);
    let vectors = embedder.embed(&inputs).await.expect("embeds");

    assert_eq!(vectors.len(), inputs.len());
    for (text, vector) in inputs.iter().zip(&vectors) {
        if text.is_empty() {
            assert_eq!(vector, &vec![0.0; 4], "nothing to embed");
        } else {
            assert_close(vector, &normalised(fake_vector(text)));
        }
    }
    let requests = fake.requests();
    let sizes: Vec<usize> = requests.iter().map(|r| r.body["input"].as_array().map_or(0, Vec::len)).collect();
    assert_eq!(sizes, vec![1, 2, 2, 1], "the probe, then batches of at most 2 without the empty text");
    assert!(requests.iter().all(|r| r.path == "/v1/embeddings" && r.body["model"] == "text-embedding-3-small"));
}

#[tokio::test]
async fn the_fixture_response_is_read_in_index_order_and_normalised() {
    let fake = FakeOpenAi::start().await;
    let parsed: serde_json::Value =
        serde_json::from_str(&fixture("openai_embeddings_response.json")).expect("fixture JSON");
    // The probe gets the first vector alone; the real call gets both, out of order.
    let mut probe = parsed.clone();
    probe["data"].as_array_mut().expect("data").truncate(1);
    let mut reversed = parsed.clone();
    reversed["data"].as_array_mut().expect("data").reverse();
    fake.script([Reply::json(probe.to_string()), Reply::json(reversed.to_string())]);
    let mut config = config(&fake, 32);
    config.dimensions = Some(8);

    let embedder = OpenAiEmbedder::connect(config).await.expect("connects");
    assert_eq!(embedder.id().dimensions, 8);
    let request: serde_json::Value =
        serde_json::from_str(&fixture("openai_embeddings_request.json")).expect("fixture JSON");
    let inputs: Vec<String> = serde_json::from_value(request["input"].clone()).expect("inputs");
    let vectors = embedder.embed(&inputs).await.expect("embeds");

    for (i, vector) in vectors.iter().enumerate() {
        let expected: Vec<f32> = serde_json::from_value(parsed["data"][i]["embedding"].clone()).expect("floats");
        assert_close(vector, &normalised(expected));
    }
    let sent = &fake.requests()[1].body;
    assert_eq!(sent["input"], request["input"]);
    assert_eq!(sent["dimensions"], 8);
    assert_eq!(sent["encoding_format"], "float");
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_and_a_bad_request_is_refused_without_retry() {
    let fake = FakeOpenAi::start().await;
    fake.script([
        Reply::Embeddings,
        Reply::Status { status: 429, headers: vec![("retry-after-ms", "20".to_owned())], body: String::new() },
        Reply::Embeddings,
        Reply::status(400, r#"{"error":{"message":"This model's maximum context length is 8192 tokens"}}"#),
    ]);
    let embedder = OpenAiEmbedder::connect(config(&fake, 8)).await.expect("connects");

    let vectors = embedder.embed(&texts(&["hello"])).await.expect("embeds after the rate limit");
    assert_close(&vectors[0], &normalised(fake_vector("hello")));
    assert_eq!(fake.requests().len(), 3);

    let error = embedder.embed(&texts(&["far too long"])).await.err();
    assert!(matches!(&error, Some(EmbedError::Refused(m)) if m.contains("maximum context length")), "{error:?}");
    assert_eq!(fake.requests().len(), 4, "a refusal is not retried");
}

#[tokio::test]
async fn an_embedder_that_keeps_failing_is_unavailable_after_bounded_retries() {
    let fake = FakeOpenAi::start().await;
    fake.script([Reply::Embeddings]);
    fake.always(Reply::status(502, "Bad Gateway"));
    let embedder = OpenAiEmbedder::connect(config(&fake, 8)).await.expect("connects");

    let error = embedder.embed(&texts(&["hello"])).await.err();

    assert!(matches!(error, Some(EmbedError::Unavailable(_))), "{error:?}");
    assert_eq!(fake.requests().len(), 1 + 3, "the probe, then one attempt and two retries");
}

#[tokio::test]
async fn connect_fails_when_the_server_refuses_the_probe() {
    let fake = FakeOpenAi::start().await;
    fake.always(Reply::status(404, r#"{"error":"model \"nope\" not found, try pulling it first"}"#));

    let error = OpenAiEmbedder::connect(config(&fake, 8)).await.err();

    assert!(matches!(&error, Some(EmbedError::Refused(m)) if m.contains("not found")), "{error:?}");
}
