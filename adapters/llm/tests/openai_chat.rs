//! `OpenAiChat` against a fake OpenAI-compatible server replaying real payload shapes.

#[path = "support/fake_openai.rs"]
mod fake_openai;

use std::time::{Duration, Instant};

use fake_openai::{FakeOpenAi, Reply, fixture};
use futures::StreamExt as _;
use twin_engine::ports::{Llm, LlmError};
use twin_engine::prompt::{ReplyRequest, Role, Turn};
use twin_engine::twin::ModelSettings;
use twin_engine::{ConversationId, Slug, StreamId, UserId};
use twin_llm::{ApiKey, BreakerState, MaxTokensField, OpenAiChat, OpenAiConfig, RetryPolicy};

const FIXTURE_TEXT: &str = "Your order ships tomorrow 🚚 — tracking follows.";
const SYSTEM_PROMPT: &str = "You are the digital twin of Maya, focus coach.";
const QUESTION: &str = "Hi, can you tell me when my order ships?";

fn request(model: ModelSettings) -> ReplyRequest {
    let creator = Slug::parse("maya").expect("valid slug").creator_id();
    let user = UserId::parse("u1").expect("valid user id");
    ReplyRequest {
        creator,
        conversation: ConversationId::of(creator, &user),
        stream: StreamId::parse("r1").expect("valid stream id"),
        persona: Default::default(),
        system_prompt: SYSTEM_PROMPT.to_owned(),
        turns: vec![Turn { role: Role::User, text: QUESTION.to_owned() }],
        passages: Vec::new(),
        first_contact: true,
        goal: None,
        model,
    }
}

/// Short pauses so retries take milliseconds. The timeouts stay roomy for a loaded test machine;
/// the tests about timeouts shorten them.
fn config(fake: &FakeOpenAi) -> OpenAiConfig {
    let mut config = OpenAiConfig::new(&fake.base_url, "default-model");
    config.name = "fake".to_owned();
    config.first_token_timeout = Duration::from_secs(3);
    config.idle_timeout = Duration::from_secs(3);
    config.retry = RetryPolicy {
        max_retries: 2,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        max_rate_limit_wait: Duration::from_secs(5),
    };
    config
}

fn chat(config: OpenAiConfig) -> OpenAiChat {
    OpenAiChat::new(config).expect("an HTTP client")
}

/// Every item of the reply: the deltas, and the error that ended it if one did.
async fn collect(chat: &OpenAiChat, request: ReplyRequest) -> (String, Option<LlmError>) {
    let mut stream = chat.reply(request).await.expect("the reply starts");
    let mut text = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(delta) => text.push_str(&delta),
            Err(error) => {
                assert!(stream.next().await.is_none(), "nothing follows an error");
                return (text, Some(error));
            }
        }
    }
    (text, None)
}

fn chunk(content: &str) -> String {
    format!(
        "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
        serde_json::to_string(content).expect("a JSON string")
    )
}

#[tokio::test]
async fn a_normal_stream_yields_the_fixture_text_and_sends_the_creators_settings() {
    let fake = FakeOpenAi::start().await;
    // Pieces of 7 bytes split lines, JSON and the 🚚 between reads.
    fake.script([Reply::sse_in_pieces(&fixture("openai_chat_stream_basic.sse"), 7)]);
    let mut config = config(&fake);
    config.api_key = Some(ApiKey::new("sk-test"));
    let settings = ModelSettings {
        model: Some("gpt-4o-mini".into()),
        temperature: Some(0.3),
        max_reply_tokens: Some(256),
        context_tokens: Some(4096),
    };

    let (text, error) = collect(&chat(config), request(settings)).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, FIXTURE_TEXT);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let sent = &requests[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer sk-test"));
    let body = &sent.body;
    let shape: serde_json::Value =
        serde_json::from_str(&fixture("openai_chat_request_stream.json")).expect("the request fixture");
    assert_eq!(body["model"], shape["model"]);
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], shape["stream_options"]);
    assert_eq!(body["temperature"].as_f64().map(|t| (t * 100.0).round()), Some(30.0));
    assert_eq!(body["max_tokens"], 256);
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages[0]["role"], "system");
    assert!(messages[0]["content"].as_str().expect("content").starts_with(SYSTEM_PROMPT));
    assert_eq!(messages.last().expect("a user turn")["role"], "user");
    // The client's words arrive quoted as data (engine::prompt), never as instructions.
    let last = messages.last().expect("a user turn")["content"].as_str().expect("content");
    assert_eq!(last, format!("<client_message>\n{QUESTION}\n</client_message>"));
}

#[tokio::test]
async fn without_creator_settings_the_configured_defaults_are_sent() {
    let fake = FakeOpenAi::start().await;
    fake.script([Reply::sse(fixture("openai_chat_stream_basic.sse"))]);
    let mut config = config(&fake);
    config.max_reply_tokens = 99;

    let (text, _) = collect(&chat(config), request(ModelSettings::default())).await;

    assert_eq!(text, FIXTURE_TEXT);
    let body = &fake.requests()[0].body;
    assert_eq!(body["model"], "default-model");
    assert_eq!(body["max_tokens"], 99);
    assert!(body.get("temperature").is_none(), "no temperature unless one is set: {body}");
    assert!(fake.requests()[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn the_reply_limit_can_go_in_max_completion_tokens_as_openai_now_wants() {
    let fake = FakeOpenAi::start().await;
    fake.script([Reply::sse(fixture("openai_chat_stream_basic.sse"))]);
    let mut config = config(&fake);
    config.max_tokens_field = MaxTokensField::MaxCompletionTokens;
    let settings = ModelSettings { max_reply_tokens: Some(256), ..ModelSettings::default() };

    let (text, _) = collect(&chat(config), request(settings)).await;

    assert_eq!(text, FIXTURE_TEXT);
    let body = &fake.requests()[0].body;
    let shape: serde_json::Value =
        serde_json::from_str(&fixture("openai_chat_request_stream.json")).expect("the request fixture");
    assert_eq!(body["max_completion_tokens"], shape["max_completion_tokens"]);
    assert!(body.get("max_tokens").is_none(), "{body}");
}

#[tokio::test]
async fn comment_lines_crlf_multi_line_data_and_a_usage_only_chunk_are_tolerated() {
    let fake = FakeOpenAi::start().await;
    let body = [
        ": keep-alive\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"}}]}\r\n\r\n",
        ": still thinking\r\n",
        "data: {\"choices\":[{\"index\":0,\r\ndata: \"delta\":{\"content\":\" there\"}}]}\r\n\r\n",
        "data: {\"choices\":[]}\r\n\r\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":38,\"completion_tokens\":2,\"total_tokens\":40}}\r\n\r\n",
        "data: [DONE]\r\n\r\n",
    ]
    .concat();
    fake.script([Reply::sse_in_pieces(&body, 5)]);

    let (text, error) = collect(&chat(config(&fake)), request(ModelSettings::default())).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, "Hello there");
}

#[tokio::test]
async fn chunks_without_id_created_or_model_and_an_eof_after_a_finish_reason_are_fine() {
    let fake = FakeOpenAi::start().await;
    fake.script([Reply::sse(concat!(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Bare\"}}]}\n\n",
        "data: {\"choices\":[{\"delta\":{\"content\":\" chunks\"},\"finish_reason\":\"stop\"}]}\n\n",
    ))]);

    let (text, error) = collect(&chat(config(&fake)), request(ModelSettings::default())).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, "Bare chunks");
}

#[tokio::test]
async fn an_eof_without_done_or_finish_reason_ends_the_reply_with_an_error() {
    let fake = FakeOpenAi::start().await;
    fake.script([Reply::sse([chunk("Half"), chunk(" a")].concat())]);

    let (text, error) = collect(&chat(config(&fake)), request(ModelSettings::default())).await;

    assert_eq!(text, "Half a");
    assert!(matches!(&error, Some(LlmError::Unavailable(m)) if m.contains("cut short")), "{error:?}");
    assert_eq!(fake.requests().len(), 1, "never retried after text was yielded");
}

#[tokio::test]
async fn an_error_object_mid_stream_ends_the_reply_with_an_error_after_the_deltas() {
    let fake = FakeOpenAi::start().await;
    let error_line = "data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n";
    fake.script([Reply::sse([chunk("Your"), chunk(" order"), error_line.to_owned()].concat())]);

    let (text, error) = collect(&chat(config(&fake)), request(ModelSettings::default())).await;

    assert_eq!(text, "Your order");
    assert!(
        matches!(&error, Some(LlmError::Unavailable(m)) if m.contains("had an error while processing")),
        "{error:?}"
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_out_and_retried() {
    let fake = FakeOpenAi::start().await;
    fake.script([
        Reply::Status {
            status: 429,
            headers: vec![("retry-after", "1".to_owned())],
            body: fixture("openai_error_429_rate_limit.json"),
        },
        Reply::sse(fixture("openai_chat_stream_basic.sse")),
    ]);
    let started = Instant::now();

    let (text, error) = collect(&chat(config(&fake)), request(ModelSettings::default())).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, FIXTURE_TEXT);
    assert_eq!(fake.requests().len(), 2);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After honoured: {:?}", started.elapsed());
}

#[tokio::test]
async fn rate_limits_beyond_the_retries_are_returned_with_the_wait_the_body_names() {
    let fake = FakeOpenAi::start().await;
    fake.always(Reply::status(429, fixture("openai_error_429_rate_limit.json")));
    let mut config = config(&fake);
    config.retry.max_retries = 1;

    let error = chat(config).reply(request(ModelSettings::default())).await.err();

    assert!(matches!(error, Some(LlmError::RateLimited { retry_after_ms: 385 })), "{error:?}");
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_rate_limit_longer_than_worth_waiting_is_returned_at_once() {
    let fake = FakeOpenAi::start().await;
    fake.always(Reply::Status { status: 429, headers: vec![("retry-after", "120".to_owned())], body: String::new() });

    let error = chat(config(&fake)).reply(request(ModelSettings::default())).await.err();

    assert!(matches!(error, Some(LlmError::RateLimited { retry_after_ms: 120_000 })), "{error:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_slow_first_token_is_retried_then_unavailable() {
    let fake = FakeOpenAi::start().await;
    fake.always(Reply::paced([(Duration::from_secs(5), "data: [DONE]\n\n")]));
    let mut config = config(&fake);
    config.first_token_timeout = Duration::from_millis(200);
    let started = Instant::now();

    let error = chat(config).reply(request(ModelSettings::default())).await.err();

    assert!(matches!(&error, Some(LlmError::Unavailable(m)) if m.contains("no text within")), "{error:?}");
    assert_eq!(fake.requests().len(), 3, "the first attempt and two retries");
    assert!(started.elapsed() < Duration::from_secs(3), "gave up on time: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_keep_alive_does_not_count_as_a_first_token() {
    let fake = FakeOpenAi::start().await;
    fake.script([Reply::paced([(Duration::ZERO, ": keep-alive\n\n"), (Duration::from_secs(5), "data: [DONE]\n\n")])]);
    fake.always(Reply::sse(fixture("openai_chat_stream_basic.sse")));
    let mut config = config(&fake);
    config.first_token_timeout = Duration::from_millis(300);

    let (text, error) = collect(&chat(config), request(ModelSettings::default())).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, FIXTURE_TEXT);
    assert!(fake.requests().len() >= 2, "the silent attempt was retried");
}

#[tokio::test]
async fn a_stall_after_the_first_text_ends_the_reply_with_an_error() {
    let fake = FakeOpenAi::start().await;
    fake.script([Reply::Stream(vec![
        (Duration::ZERO, chunk("Hello").into_bytes()),
        (Duration::from_secs(5), chunk(" later").into_bytes()),
    ])]);
    let mut config = config(&fake);
    config.idle_timeout = Duration::from_millis(200);

    let (text, error) = collect(&chat(config), request(ModelSettings::default())).await;

    assert_eq!(text, "Hello");
    assert!(matches!(&error, Some(LlmError::Unavailable(m)) if m.contains("stalled")), "{error:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_server_error_is_retried_and_the_retry_succeeds() {
    let fake = FakeOpenAi::start().await;
    fake.script([Reply::status(503, "Service Unavailable"), Reply::sse(fixture("openai_chat_stream_basic.sse"))]);

    let (text, error) = collect(&chat(config(&fake)), request(ModelSettings::default())).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, FIXTURE_TEXT);
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_401_is_refused_without_retry() {
    let fake = FakeOpenAi::start().await;
    fake.always(Reply::status(
        401,
        r#"{"error":{"message":"Incorrect API key provided: sk-wrong.","type":"invalid_request_error","code":"invalid_api_key"}}"#,
    ));

    let error = chat(config(&fake)).reply(request(ModelSettings::default())).await.err();

    assert!(matches!(&error, Some(LlmError::Refused(m)) if m.contains("Incorrect API key")), "{error:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn a_server_that_refuses_stream_options_is_asked_again_without_them() {
    let fake = FakeOpenAi::start().await;
    fake.script([
        Reply::status(400, r#"{"error":{"message":"Unrecognized request argument supplied: stream_options"}}"#),
        Reply::sse(fixture("openai_chat_stream_basic.sse")),
        Reply::sse(fixture("openai_chat_stream_basic.sse")),
    ]);
    let chat = chat(config(&fake));

    let (text, error) = collect(&chat, request(ModelSettings::default())).await;
    let (again, _) = collect(&chat, request(ModelSettings::default())).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!((text.as_str(), again.as_str()), (FIXTURE_TEXT, FIXTURE_TEXT));
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests[0].body.get("stream_options").is_some());
    assert!(requests[1].body.get("stream_options").is_none());
    assert!(requests[2].body.get("stream_options").is_none(), "remembered");
}

#[tokio::test]
async fn a_server_that_ignores_stream_and_answers_json_still_gives_the_reply() {
    let fake = FakeOpenAi::start().await;
    fake.script([Reply::json(
        r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"All at once."},"finish_reason":"stop"}]}"#,
    )]);

    let (text, error) = collect(&chat(config(&fake)), request(ModelSettings::default())).await;

    assert!(error.is_none(), "{error:?}");
    assert_eq!(text, "All at once.");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_after_the_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let mut config = OpenAiConfig::new(format!("http://{address}/v1"), "m");
    config.retry.backoff = Duration::from_millis(5);

    let error = chat(config).reply(request(ModelSettings::default())).await.err();

    assert!(matches!(error, Some(LlmError::Unavailable(_))), "{error:?}");
}

#[tokio::test]
async fn the_circuit_opens_after_consecutive_failures_fails_fast_then_lets_a_probe_through() {
    let fake = FakeOpenAi::start().await;
    fake.script((0..3).map(|_| Reply::status(500, "boom")));
    fake.always(Reply::sse(fixture("openai_chat_stream_basic.sse")));
    let mut config = config(&fake);
    config.retry.max_retries = 0;
    config.breaker_threshold = 3;
    config.breaker_cool_down = Duration::from_millis(300);
    let chat = chat(config);

    for _ in 0..3 {
        let error = chat.reply(request(ModelSettings::default())).await.err();
        assert!(matches!(error, Some(LlmError::Unavailable(_))), "{error:?}");
    }
    assert!(matches!(chat.breaker().state(), BreakerState::Open { .. }));
    let error = chat.reply(request(ModelSettings::default())).await.err();
    assert!(matches!(&error, Some(LlmError::Unavailable(m)) if m.contains("circuit open")), "{error:?}");
    assert_eq!(fake.requests().len(), 3, "failing fast sends nothing");

    // After the cool-down one probe goes through, and its success closes the circuit.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        match chat.reply(request(ModelSettings::default())).await {
            Ok(stream) => break stream.map(|d| d.expect("a delta")).collect::<String>().await,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("the circuit never let a probe through: {e}"),
        }
    };
    assert_eq!(text, FIXTURE_TEXT);
    assert_eq!(chat.breaker().state(), BreakerState::Closed { failures: 0 });
}

#[test]
fn the_usage_chunk_the_first_token_and_the_outcome_are_measured() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        // One thread, so every task of the test records into the local recorder.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            let fake = FakeOpenAi::start().await;
            let usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":38,\"completion_tokens\":7}}\n\n";
            let body = fixture("openai_chat_stream_basic.sse").replace("data: [DONE]", &format!("{usage}data: [DONE]"));
            fake.script([Reply::sse(body), Reply::status(401, "no")]);
            let chat = chat(config(&fake));
            let (text, error) = collect(&chat, request(ModelSettings::default())).await;
            assert!(error.is_none(), "{error:?}");
            assert_eq!(text, FIXTURE_TEXT);
            assert!(chat.reply(request(ModelSettings::default())).await.is_err());
        });
    });

    /// A metric's name, labels and value.
    type Sample = (String, Vec<(String, String)>, DebugValue);
    let metrics: Vec<Sample> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key.labels().map(|l| (l.key().to_owned(), l.value().to_owned())).collect();
            (key.name().to_owned(), labels, value)
        })
        .collect();
    let counter = |name: &str, label: (&str, &str)| {
        metrics
            .iter()
            .find(|(n, labels, _)| n == name && labels.iter().any(|(k, v)| (k.as_str(), v.as_str()) == label))
            .map(|(_, _, value)| value)
    };
    assert_eq!(counter("twin_llm_tokens_total", ("kind", "prompt")), Some(&DebugValue::Counter(38)));
    assert_eq!(counter("twin_llm_tokens_total", ("kind", "completion")), Some(&DebugValue::Counter(7)));
    assert_eq!(counter("twin_llm_requests_total", ("outcome", "ok")), Some(&DebugValue::Counter(1)));
    assert_eq!(counter("twin_llm_requests_total", ("outcome", "refused")), Some(&DebugValue::Counter(1)));
    let first_token = counter("twin_llm_first_token_seconds", ("provider", "fake"));
    assert!(matches!(first_token, Some(DebugValue::Histogram(values)) if values.len() == 1), "{first_token:?}");
}
