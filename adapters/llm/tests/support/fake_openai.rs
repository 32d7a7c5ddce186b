//! A fake OpenAI-compatible server on loopback: replies come from a script (one per request, then
//! a fallback), and every request is recorded for the test to inspect.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use futures::stream;
use serde_json::{Value, json};

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// What the fake answers one request with.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 `text/event-stream`: each piece of body sent after its pause.
    Stream(Vec<(Duration, Vec<u8>)>),
    /// Any status, headers and body at once.
    Status { status: u16, headers: Vec<(&'static str, String)>, body: String },
    /// Embeddings computed from the input by [`fake_vector`], answered in reverse order.
    Embeddings,
}

impl Reply {
    /// A whole SSE body at once.
    pub fn sse(body: impl Into<String>) -> Self {
        Reply::Stream(vec![(Duration::ZERO, body.into().into_bytes())])
    }

    /// SSE pieces, each sent after its pause.
    pub fn paced(pieces: impl IntoIterator<Item = (Duration, &'static str)>) -> Self {
        Reply::Stream(pieces.into_iter().map(|(pause, piece)| (pause, piece.as_bytes().to_vec())).collect())
    }

    /// An SSE body cut into pieces of `size` bytes (splitting characters and lines).
    pub fn sse_in_pieces(body: &str, size: usize) -> Self {
        Reply::Stream(body.as_bytes().chunks(size).map(|p| (Duration::ZERO, p.to_vec())).collect())
    }

    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Reply::Status { status, headers: Vec::new(), body: body.into() }
    }

    pub fn json(body: impl Into<String>) -> Self {
        Reply::Status { status: 200, headers: vec![("content-type", "application/json".into())], body: body.into() }
    }
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    requests: Mutex<Vec<Recorded>>,
}

#[derive(Clone)]
pub struct FakeOpenAi {
    pub base_url: String,
    shared: Arc<Shared>,
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/v1/chat/completions", post(answer))
            .route("/v1/embeddings", post(answer))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("fake server") });
        Self { base_url: format!("http://{address}/v1"), shared }
    }

    /// Answers the next requests with `replies`, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) -> &Self {
        self.shared.script.lock().expect("script").extend(replies);
        self
    }

    /// Answers every request past the script with `reply` (else a 500 saying it was unscripted).
    pub fn always(&self, reply: Reply) -> &Self {
        *self.shared.fallback.lock().expect("fallback") = Some(reply);
        self
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().expect("requests").clone()
    }
}

async fn answer(State(shared): State<Arc<Shared>>, uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.requests.lock().expect("requests").push(Recorded {
        path: uri.path().to_owned(),
        headers,
        body: body.clone(),
    });
    let reply = shared.script.lock().expect("script").pop_front();
    let reply = reply.or_else(|| shared.fallback.lock().expect("fallback").clone());
    let reply = reply.unwrap_or_else(|| Reply::status(500, r#"{"error":{"message":"unscripted request"}}"#));
    match reply {
        Reply::Stream(pieces) => {
            let body = stream::unfold(pieces.into_iter(), |mut pieces| async move {
                let (pause, piece) = pieces.next()?;
                tokio::time::sleep(pause).await;
                Some((Ok::<_, std::io::Error>(piece), pieces))
            });
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(body))
                .expect("a response")
        }
        Reply::Status { status, headers, body } => {
            let mut response = Response::builder().status(StatusCode::from_u16(status).expect("a status"));
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body)).expect("a response")
        }
        Reply::Embeddings => {
            let inputs: Vec<String> = body["input"]
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .rev()
                .map(|(index, text)| json!({"object": "embedding", "index": index, "embedding": fake_vector(text)}))
                .collect();
            let body = json!({"object": "list", "data": data, "model": body["model"]});
            Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("a response")
        }
    }
}

/// A 4-dimensional vector that differs per text and is not normalised.
pub fn fake_vector(text: &str) -> Vec<f32> {
    let len = text.len() as f32;
    let vowels = text.chars().filter(|c| "aeiou".contains(*c)).count() as f32;
    vec![len, vowels + 1.0, 2.0, -3.0]
}
