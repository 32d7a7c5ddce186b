//! The live fan-out against the Redis server on this machine (`TWIN_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`): two fan-outs with different node ids stand for two nodes, each with
//! its own recording sink standing for its LiveHub. Every test uses fresh creators, so tests
//! running at the same time (every node hears every creator) do not see each other's events.
//! The restart test runs its own `redis-server` on a free port when the binary is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use twin_cluster::{LiveConfig, RedisLive};
use twin_engine::ports::{LiveEvent, LiveEventKind, LivePublisher};
use twin_engine::{ConversationId, CreatorId, StreamId};
use uuid::Uuid;

fn redis_url() -> String {
    std::env::var("TWIN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A node's LiveHub, recording what it was given.
#[derive(Default)]
struct Recorder(Mutex<Vec<LiveEvent>>);

impl LivePublisher for Recorder {
    fn publish(&self, event: LiveEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    /// The texts of the deltas of `creator`, in the order they came.
    fn texts(&self, creator: CreatorId) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.creator == creator)
            .map(|e| match &e.kind {
                LiveEventKind::Delta { text, .. } => text.clone(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// Waits until `creator`'s deltas include `text`.
    async fn wait_for(&self, creator: CreatorId, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.texts(creator).iter().any(|t| t == text) {
            assert!(Instant::now() < deadline, "{text:?} never arrived; got {:?}", self.texts(creator));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn delta(creator: CreatorId, text: &str) -> LiveEvent {
    LiveEvent {
        creator,
        conversation: ConversationId(Uuid::new_v4()),
        kind: LiveEventKind::Delta { stream: StreamId::parse("r1").unwrap(), text: text.to_owned() },
    }
}

fn fresh_creator() -> CreatorId {
    CreatorId(Uuid::new_v4())
}

async fn node(url: &str, name: &str) -> (RedisLive, Arc<Recorder>) {
    let sink = Arc::new(Recorder::default());
    let node_id = format!("{name}-{}", Uuid::new_v4());
    let live = RedisLive::connect(url, node_id, sink.clone(), LiveConfig::default()).await.expect("Redis answers");
    (live, sink)
}

#[tokio::test]
async fn an_event_reaches_the_other_node_once_and_is_not_echoed_back() {
    let url = redis_url();
    let (a, a_sink) = node(&url, "a").await;
    let (b, b_sink) = node(&url, "b").await;
    let creator = fresh_creator();

    a.publish(delta(creator, "hello"));
    b_sink.wait_for(creator, "hello").await;
    // B publishes only after A's event went through Redis, so Redis delivered A's own event back
    // to A before B's marker: when the marker is at A, any echo would be too.
    b.publish(delta(creator, "marker"));
    a_sink.wait_for(creator, "marker").await;
    a_sink.wait_for(creator, "hello").await;
    b_sink.wait_for(creator, "marker").await;

    assert_eq!(a_sink.texts(creator), ["hello", "marker"], "A: its own event once, B's once");
    assert_eq!(b_sink.texts(creator), ["hello", "marker"], "B: A's event once, its own once");
    assert_eq!(a.stats().dropped + b.stats().dropped, 0);
    assert!(b.stats().received >= 1);
}

#[tokio::test]
async fn events_of_different_creators_keep_their_order() {
    let url = redis_url();
    let (a, a_sink) = node(&url, "a").await;
    let (_b, b_sink) = node(&url, "b").await;
    let (x, y) = (fresh_creator(), fresh_creator());

    let sent: Vec<String> = (0..500).map(|n| n.to_string()).collect();
    for (n, text) in sent.iter().enumerate() {
        a.publish(delta(if n % 3 == 0 { x } else { y }, text));
        if n % 50 == 0 {
            tokio::task::yield_now().await; // let the publisher run between bursts, as a busy node would
        }
    }
    let of = |creator: CreatorId| -> Vec<String> {
        sent.iter().enumerate().filter(|(n, _)| (*n % 3 == 0) == (creator == x)).map(|(_, t)| t.clone()).collect()
    };
    b_sink.wait_for(x, "498").await;
    b_sink.wait_for(y, "499").await;
    assert_eq!(b_sink.texts(x), of(x), "creator x in order, each once");
    assert_eq!(b_sink.texts(y), of(y), "creator y in order, each once");
    assert_eq!(a_sink.texts(x), of(x));
    assert_eq!(a.stats().dropped, 0);
}

#[tokio::test]
async fn a_full_queue_drops_for_the_other_nodes_but_never_for_local_watchers() {
    let sink = Arc::new(Recorder::default());
    let config = LiveConfig { queue: 4, ..LiveConfig::default() };
    let live = RedisLive::connect(&redis_url(), format!("q-{}", Uuid::new_v4()), sink.clone(), config)
        .await
        .expect("Redis answers");
    let creator = fresh_creator();
    // A current-thread test runtime: the publishing task cannot drain while this loop runs.
    for n in 0..100 {
        live.publish(delta(creator, &n.to_string()));
    }
    assert_eq!(sink.texts(creator).len(), 100, "the local sink gets every event");
    assert_eq!(live.stats().dropped, 96, "beyond the queue, dropped and counted");
}

/// A `redis-server` of this test's own on a free port, stopped on drop.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> Option<Self> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .ok()?;
        Some(Self { port, child })
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn the_fan_out_survives_a_redis_restart() {
    // `--no-capture` shows the fan-out saying it lost Redis and reconnected.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let port = free_port();
    let Some(server) = OwnRedis::start(port) else {
        eprintln!("skipped: no redis-server binary to restart");
        return;
    };
    server.wait_ready().await;
    let url = format!("redis://127.0.0.1:{port}");
    let (a, _a_sink) = node(&url, "a").await;
    let (_b, b_sink) = node(&url, "b").await;
    let creator = fresh_creator();
    a.publish(delta(creator, "before"));
    b_sink.wait_for(creator, "before").await;

    drop(server);
    let server = OwnRedis::start(port).expect("starts again");
    server.wait_ready().await;
    // Publish until one gets through: the connections come back with backoff, and B subscribes
    // again; what is published before that is lost to B (and counted), never delivered twice.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        n += 1;
        a.publish(delta(creator, &format!("after-{n}")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        if b_sink.texts(creator).iter().any(|t| t.starts_with("after-")) {
            break;
        }
        assert!(Instant::now() < deadline, "nothing arrived after the restart");
    }
    a.publish(delta(creator, "last"));
    b_sink.wait_for(creator, "last").await;
    let got = b_sink.texts(creator);
    let mut unique = got.clone();
    unique.dedup();
    assert_eq!(got, unique, "nothing twice");
    assert_eq!(got.first().map(String::as_str), Some("before"));
}
