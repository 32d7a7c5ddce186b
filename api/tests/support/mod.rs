//! `spawn_app`: the whole server in-process on port 0, with a fresh database (SQLite or
//! PostgreSQL, connected as production connects), plus a typed chat client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod process;
pub mod providers;

use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
pub use twin_store::testing::Kind;
use twin_store::testing::TestDb;

use twin_api::auth::{Role, TokenKeys};
use twin_api::settings::Overrides;
use twin_api::startup::ServeOptions;
use twin_api::{Application, Settings};
use twin_engine::{Slug, UserId};

/// How long a test waits for any one frame before failing.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub keys: TokenKeys,
    pub data_dir: tempfile::TempDir,
    pub db: TestDb,
    /// Creator bundles imported at every start (`--creators`).
    pub creators: tempfile::TempDir,
    /// Telegram and Graph API bases (fake providers), when the test has them.
    pub provider_bases: Option<(String, String)>,
    /// Changes the test's settings before every start (see `spawn_app_configured`).
    pub configure: Option<fn(&mut Settings)>,
    stop: Option<oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The server with the demo creator (slug `demo`) in free chat: its programs left out, so every
/// message is answered by the twin. The chat protocol tests rely on that.
pub async fn spawn_app(kind: Kind) -> TestApp {
    let mut demo = twin_api::bundle::demo();
    demo.programs.clear();
    demo.profile.default_program = None;
    spawn_app_with(kind, &[demo]).await
}

/// The demo server with its settings changed by `configure` (before every start).
pub async fn spawn_app_configured(kind: Kind, configure: fn(&mut Settings)) -> TestApp {
    let mut demo = twin_api::bundle::demo();
    demo.programs.clear();
    demo.profile.default_program = None;
    let db = TestDb::unmigrated(kind).await;
    let data_dir = tempfile::tempdir().unwrap();
    let creators = tempfile::tempdir().unwrap();
    twin_api::bundle::write_dir(&demo, &creators.path().join(demo.profile.slug.as_str())).unwrap();
    let mut app = TestApp {
        addr: ([127, 0, 0, 1], 0).into(),
        keys: TokenKeys::from_secret(&[0; 32], "x", "x"),
        data_dir,
        creators,
        db,
        provider_bases: None,
        configure: Some(configure),
        stop: None,
        running: None,
    };
    app.start().await;
    app
}

/// The server with these creator bundles.
pub async fn spawn_app_with(kind: Kind, bundles: &[twin_api::bundle::Bundle]) -> TestApp {
    spawn_app_with_providers(kind, bundles, None).await
}

/// The server with these bundles, its Telegram and WhatsApp clients pointed at `providers`.
pub async fn spawn_app_with_providers(
    kind: Kind,
    bundles: &[twin_api::bundle::Bundle],
    providers: Option<&providers::FakeProviders>,
) -> TestApp {
    let db = TestDb::unmigrated(kind).await;
    let data_dir = tempfile::tempdir().unwrap();
    let creators = tempfile::tempdir().unwrap();
    for bundle in bundles {
        twin_api::bundle::write_dir(bundle, &creators.path().join(bundle.profile.slug.as_str())).unwrap();
    }
    let mut app = TestApp {
        addr: ([127, 0, 0, 1], 0).into(),
        keys: TokenKeys::from_secret(&[0; 32], "x", "x"),
        data_dir,
        creators,
        db,
        provider_bases: providers.map(|p| (p.telegram_base(), p.graph_base())),
        configure: None,
        stop: None,
        running: None,
    };
    app.start().await;
    app
}

impl TestApp {
    fn settings(&self) -> Settings {
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(self.data_dir.path().to_path_buf()),
            database_url: Some(self.db.url.clone()),
        };
        let mut settings = Settings::defaults(&overrides).unwrap();
        if let Some((telegram, graph)) = &self.provider_bases {
            settings.telegram_api_base.clone_from(telegram);
            settings.whatsapp_api_base.clone_from(graph);
        }
        // Tests send many requests from one address in a burst: limits that never bite, unless a
        // test configures its own.
        let generous: twin_cluster::Rate = "100000/s".parse().unwrap();
        settings.limits.address = generous;
        settings.limits.tenant = generous;
        if let Some(configure) = self.configure {
            configure(&mut settings);
        }
        settings
    }

    async fn start(&mut self) {
        let options = ServeOptions { demo: false, creators: Some(self.creators.path().to_path_buf()) };
        let app = Application::build(self.settings(), options).await.expect("the server starts");
        self.addr = app.local_addr();
        self.keys = app.keys();
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.running = Some(tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        })));
    }

    /// Graceful stop, then a new server on the same data (a new port).
    pub async fn restart(&mut self) {
        self.stop_gracefully().await;
        self.start().await;
    }

    pub async fn stop_gracefully(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.await.unwrap().expect("the server stops cleanly");
        }
    }

    pub fn token(&self, user: &str) -> String {
        self.token_for("demo", user, Duration::from_secs(600))
    }

    pub fn token_for(&self, creator: &str, user: &str, ttl: Duration) -> String {
        let creator = Slug::parse(creator).unwrap().creator_id();
        self.keys.mint(creator, &UserId::parse(user).unwrap(), Role::User, ttl).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn connect_ws(&self, user: &str) -> Client {
        self.connect_with_token(&self.token(user)).await.expect("the socket opens")
    }

    pub async fn connect_with_token(&self, token: &str) -> Result<Client, StatusCode> {
        let url = format!("ws://{}/v1/chat?token={token}", self.addr);
        connect(url.into_client_request().unwrap()).await
    }

    /// A live-view socket (`/v1/live`) with `token` and extra query (`&creator=…`, `&conversation=…`).
    pub async fn connect_live(&self, token: &str, query: &str) -> Result<Client, StatusCode> {
        let url = format!("ws://{}/v1/live?token={token}{query}", self.addr);
        connect(url.into_client_request().unwrap()).await
    }

    pub async fn connect_with_header(&self, header: (&'static str, &str)) -> Result<Client, StatusCode> {
        let mut request = format!("ws://{}/v1/chat", self.addr).into_client_request().unwrap();
        request.headers_mut().insert(header.0, header.1.parse().unwrap());
        connect(request).await
    }
}

async fn connect(request: tokio_tungstenite::tungstenite::handshake::client::Request) -> Result<Client, StatusCode> {
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(Client { socket }),
        Err(WsError::Http(response)) => Err(response.status()),
        Err(other) => panic!("unexpected connection error: {other}"),
    }
}

pub struct Client {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn send(&mut self, frame: Value) {
        self.socket.send(Message::text(frame.to_string())).await.unwrap();
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    pub async fn say(&mut self, id: &str, text: &str) {
        self.send(json!({"type": "message", "id": id, "text": text})).await;
    }

    /// The next frame from the server, failing the test after [`FRAME_TIMEOUT`].
    pub async fn next(&mut self) -> Frame {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next())
                .await
                .expect("a frame within the timeout")
                .expect("the socket is open");
            match message {
                Ok(Message::Text(text)) => return Frame::Json(serde_json::from_str(&text).unwrap()),
                Ok(Message::Close(frame)) => return Frame::Closed(frame.map(|f| u16::from(f.code))),
                Ok(_) => continue,
                Err(error) => return Frame::Failed(error.to_string()),
            }
        }
    }

    pub async fn next_json(&mut self) -> Value {
        match self.next().await {
            Frame::Json(value) => value,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// Frames until one of type `kind`; returns that one and those before it.
    pub async fn until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut before = Vec::new();
        loop {
            let frame = self.next_json().await;
            if frame["type"] == kind {
                return (frame, before);
            }
            before.push(frame);
        }
    }

    /// The final message of the reply (skipping the deltas) and the deltas' text.
    pub async fn reply(&mut self) -> (Value, String) {
        let mut previews = String::new();
        loop {
            let frame = self.next_json().await;
            match frame["type"].as_str() {
                Some("delta") => previews.push_str(frame["text"].as_str().unwrap()),
                Some("message") if frame["origin"] == "twin" => return (frame, previews),
                _ => panic!("unexpected frame while waiting for a reply: {frame}"),
            }
        }
    }

    /// All messages after `after`, following `more` across batches of `limit`.
    pub async fn resume_all(&mut self, after: u64, limit: u32) -> Vec<Value> {
        let mut messages = Vec::new();
        let mut after = after;
        loop {
            self.send(json!({"type": "resume", "after": after, "limit": limit})).await;
            let (resumed, batch) = self.until("resumed").await;
            messages.extend(batch.into_iter().filter(|f| f["type"] == "message"));
            after = resumed["up_to"].as_u64().unwrap();
            if resumed["more"] == false {
                return messages;
            }
        }
    }
}

#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Closed(Option<u16>),
    Failed(String),
}

/// The `twin` binary built for these tests.
pub fn twin_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_twin"))
}
