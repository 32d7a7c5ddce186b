//! The metrics of the model adapters, named and described in one place. Every series carries a
//! `provider` label: the configured display name of the server.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_histogram, histogram};

pub const FIRST_TOKEN_SECONDS: &str = "twin_llm_first_token_seconds";
pub const TOKENS_TOTAL: &str = "twin_llm_tokens_total";
pub const REQUESTS_TOTAL: &str = "twin_llm_requests_total";
pub const EMBED_REQUESTS_TOTAL: &str = "twin_llm_embed_requests_total";
pub const EMBED_TEXTS_TOTAL: &str = "twin_llm_embed_texts_total";

/// Describes the metrics to the installed recorder; the api calls it once at startup.
pub fn describe_metrics() {
    describe_histogram!(
        FIRST_TOKEN_SECONDS,
        metrics::Unit::Seconds,
        "From asking for a reply to its first text, retries included"
    );
    describe_counter!(TOKENS_TOTAL, "Tokens the model server reported, by kind (prompt, completion)");
    describe_counter!(
        REQUESTS_TOTAL,
        "Chat replies by outcome: ok, rate_limited, refused, unavailable, circuit_open, interrupted, cancelled"
    );
    describe_counter!(EMBED_REQUESTS_TOTAL, "Embedding calls by outcome: ok, rate_limited, refused, unavailable");
    describe_counter!(EMBED_TEXTS_TOTAL, "Texts embedded");
}

pub(crate) fn first_token(provider: &str, elapsed: Duration) {
    histogram!(FIRST_TOKEN_SECONDS, "provider" => provider.to_owned()).record(elapsed.as_secs_f64());
}

pub(crate) fn tokens(provider: &str, prompt: u64, completion: u64) {
    counter!(TOKENS_TOTAL, "provider" => provider.to_owned(), "kind" => "prompt").increment(prompt);
    counter!(TOKENS_TOTAL, "provider" => provider.to_owned(), "kind" => "completion").increment(completion);
}

pub(crate) fn request(provider: &str, outcome: &'static str) {
    counter!(REQUESTS_TOTAL, "provider" => provider.to_owned(), "outcome" => outcome).increment(1);
}

pub(crate) fn embed_request(provider: &str, outcome: &'static str, texts: usize) {
    counter!(EMBED_REQUESTS_TOTAL, "provider" => provider.to_owned(), "outcome" => outcome).increment(1);
    if outcome == "ok" {
        counter!(EMBED_TEXTS_TOTAL, "provider" => provider.to_owned()).increment(texts as u64);
    }
}
