//! A fake Telegram Bot API and WhatsApp Graph API on loopback, answering with the real payload
//! shapes (`adapters/channels/tests/fixtures`), recording every call, and scriptable: a test can
//! make the next calls fail (429, 403, 500) or hang (the provider took the message and never
//! answered, as when the server dies mid-call).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const TELEGRAM_TOKEN: &str = "7012345678:AAFakeTokenForTests";
pub const WHATSAPP_TOKEN: &str = "EAAFakeWhatsAppToken";

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// `sendMessage`, `answerCallbackQuery`, … for Telegram; `messages` for WhatsApp.
    pub method: String,
    pub body: Value,
    pub authorization: Option<String>,
    /// The message id the fake answered with (`wamid.…`, Telegram's `message_id`).
    pub provider_id: Option<String>,
}

/// What the fake does with the next call (of any method) instead of answering ok.
#[derive(Debug, Clone)]
pub enum Scripted {
    Respond(u16, Value),
    /// Record the call and never answer.
    Hang,
}

#[derive(Clone, Default)]
struct Shared {
    calls: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    next_id: Arc<AtomicU64>,
}

pub struct FakeProviders {
    pub addr: SocketAddr,
    shared: Shared,
}

impl FakeProviders {
    pub async fn start() -> Self {
        let shared = Shared { next_id: Arc::new(AtomicU64::new(1000)), ..Shared::default() };
        let app = Router::new()
            .route("/telegram/{bot}/{method}", axum::routing::post(telegram))
            .route("/graph/{phone}/messages", axum::routing::post(graph))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared }
    }

    pub fn telegram_base(&self) -> String {
        format!("http://{}/telegram", self.addr)
    }

    pub fn graph_base(&self) -> String {
        format!("http://{}/graph", self.addr)
    }

    pub fn script(&self, steps: impl IntoIterator<Item = Scripted>) {
        self.shared.script.lock().unwrap().extend(steps);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Calls of one method (`sendMessage`, `messages`), in order.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.method == method).collect()
    }

    /// Waits until at least `n` calls of `method` arrived; returns them. Fails after `within`.
    pub async fn wait_for(&self, method: &str, n: usize, within: Duration) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let calls = self.calls_of(method);
            if calls.len() >= n {
                return calls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} `{method}` calls within {within:?}, got {}: {calls:#?}",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The texts the twin sent on Telegram, in order.
    pub fn telegram_texts(&self) -> Vec<String> {
        self.calls_of("sendMessage").iter().map(|c| c.body["text"].as_str().unwrap_or_default().to_owned()).collect()
    }
}

async fn telegram(
    State(shared): State<Shared>,
    Path((bot, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorized = bot == format!("bot{TELEGRAM_TOKEN}");
    let index = record(&shared, &method, &body, &headers);
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
            .into_response();
    }
    if let Some(response) = scripted(&shared).await {
        return response;
    }
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    answered_with(&shared, index, id.to_string());
    let result = match method.as_str() {
        "sendMessage" => json!({
            "message_id": id,
            "from": {"id": 7012345678u64, "is_bot": true, "first_name": "Acme Helper", "username": "acme_helper_bot"},
            "chat": {"id": body["chat_id"], "type": "private"},
            "date": 1751898400,
            "text": body["text"],
        }),
        _ => json!(true),
    };
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

async fn graph(
    State(shared): State<Shared>,
    Path(_phone): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let index = record(&shared, "messages", &body, &headers);
    let authorized =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {WHATSAPP_TOKEN}"));
    if !authorized {
        let error = json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}});
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    if let Some(response) = scripted(&shared).await {
        return response;
    }
    if body["status"] == "read" {
        return axum::Json(json!({"success": true})).into_response();
    }
    let id = format!("wamid.fake{}", shared.next_id.fetch_add(1, Ordering::SeqCst));
    answered_with(&shared, index, id.clone());
    axum::Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": body["to"], "wa_id": body["to"]}],
        "messages": [{"id": id}],
    }))
    .into_response()
}

/// Records a call; returns its index (to note the id it is answered with).
fn record(shared: &Shared, method: &str, body: &Value, headers: &HeaderMap) -> usize {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut calls = shared.calls.lock().unwrap();
    calls.push(Call { method: method.to_owned(), body: body.clone(), authorization, provider_id: None });
    calls.len() - 1
}

fn answered_with(shared: &Shared, index: usize, id: String) {
    shared.calls.lock().unwrap()[index].provider_id = Some(id);
}

async fn scripted(shared: &Shared) -> Option<Response> {
    let step = shared.script.lock().unwrap().pop_front()?;
    match step {
        Scripted::Respond(status, body) => {
            Some((StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response())
        }
        Scripted::Hang => {
            std::future::pending::<()>().await;
            None
        }
    }
}

/// A fixture of `adapters/channels/tests/fixtures`, as JSON.
pub fn fixture(path: &str) -> Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapters/channels/tests/fixtures").join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

/// HMAC-SHA256 signature header of a WhatsApp body, as Meta signs it.
pub fn whatsapp_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
