//! Several real `twin` processes sharing one PostgreSQL database and the machine's Redis: a
//! cluster on loopback, with clients that write through random nodes and a TCP proxy that can cut
//! one node off from the databases.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use twin_store::testing::TestDb;

use crate::support::process::ServerProcess;

pub const SECRET: &str = "a cluster test secret that is long enough to sign with";
/// Short, so failover tests run quickly: a dead node is replaced after about 1.25 s.
pub const LEASE_MS: u64 = 1000;
pub const REDIS: &str = "redis://127.0.0.1:6379";

pub struct Cluster {
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    /// Node id → its process (None once stopped).
    pub nodes: BTreeMap<String, Option<ServerProcess>>,
    /// The addresses clients may use now (live nodes).
    pub addrs: Arc<Mutex<Vec<String>>>,
}

impl Cluster {
    /// `n` nodes, started one after another, each seeing all `n` before this returns.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, None).await
    }

    /// [`Cluster::start`], the creator's users nudged after `inactivity_after` of silence (at any
    /// hour) when given.
    pub async fn start_with(n: usize, inactivity_after: Option<&str>) -> Self {
        let db = TestDb::unmigrated(twin_store::testing::Kind::Postgres).await;
        let dir = tempfile::tempdir().unwrap();
        plain_creator(&dir.path().join("creators"), inactivity_after);
        let mut cluster = Self { db, dir, nodes: BTreeMap::new(), addrs: Arc::new(Mutex::new(Vec::new())) };
        for i in 1..=n {
            cluster.start_node(&format!("node{i}"), &[]).await;
        }
        cluster.wait_formed().await;
        cluster
    }

    pub async fn start_node(&mut self, id: &str, extra_env: &[(&str, &str)]) {
        let url = self.db.url.clone();
        self.start_node_with(id, &url, REDIS, extra_env).await;
    }

    /// A node reaching the database and Redis through these URLs (a proxy, for partitions); the
    /// cluster is the same as long as the database URL names the same database.
    pub async fn start_node_with(&mut self, id: &str, database_url: &str, redis_url: &str, extra: &[(&str, &str)]) {
        let lease = LEASE_MS.to_string();
        let mut env = vec![
            ("TWIN_REDIS_URL", redis_url),
            ("TWIN_NODE_ID", id),
            ("TWIN_CLUSTER_LEASE_MS", lease.as_str()),
            ("TWIN_JWT_SECRET", SECRET),
        ];
        // The cluster is named by the database URL: a node behind a proxy names the real one.
        let cluster_name = self.cluster_name();
        env.push(("TWIN_CLUSTER", cluster_name.as_str()));
        env.extend_from_slice(extra);
        let creators = self.dir.path().join("creators");
        let args = ["--creators", creators.to_str().unwrap()];
        let process = ServerProcess::start(self.dir.path(), database_url, &args, &env).await;
        self.addrs.lock().unwrap().push(process.addr.clone());
        self.nodes.insert(id.to_owned(), Some(process));
    }

    pub fn cluster_name(&self) -> String {
        let db = self.db.url.rsplit('/').next().unwrap_or("test").to_owned();
        format!("test-{db}")
    }

    pub fn addr(&self, id: &str) -> String {
        self.nodes[id].as_ref().expect("the node runs").addr.clone()
    }

    pub fn live_ids(&self) -> Vec<String> {
        self.nodes.iter().filter(|(_, p)| p.is_some()).map(|(id, _)| id.clone()).collect()
    }

    /// Waits until every running node sees exactly the running nodes.
    pub async fn wait_formed(&self) {
        let expected = self.live_ids();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut all = true;
            for id in &expected {
                let seen = self.view_of(id).await;
                if seen != expected {
                    all = false;
                }
            }
            if all {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster did not form: expected {expected:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The live set a node reports on `/healthz/cluster`.
    pub async fn view_of(&self, id: &str) -> Vec<String> {
        let Some(Some(process)) = self.nodes.get(id) else { return Vec::new() };
        let url = format!("http://{}/healthz/cluster", process.addr);
        let Ok(response) = reqwest::get(url).await else { return Vec::new() };
        let Ok(body) = response.json::<Value>().await else { return Vec::new() };
        let mut nodes: Vec<String> = body["nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        nodes.sort();
        nodes
    }

    /// SIGKILL: the node dies with whatever it held.
    pub async fn kill(&mut self, id: &str) -> Instant {
        let process = self.nodes.get_mut(id).and_then(Option::take).expect("the node runs");
        self.addrs.lock().unwrap().retain(|a| *a != process.addr);
        let at = Instant::now();
        process.kill().await;
        at
    }

    /// SIGTERM, and wait for the process to exit (a graceful stop: it leaves and hands over).
    pub async fn stop(&mut self, id: &str) {
        let mut process = self.nodes.get_mut(id).and_then(Option::take).expect("the node runs");
        self.addrs.lock().unwrap().retain(|a| *a != process.addr);
        let pid = process.child.id().expect("a pid");
        signal(pid, "-TERM");
        let status = tokio::time::timeout(Duration::from_secs(30), process.child.wait()).await;
        assert!(matches!(status, Ok(Ok(s)) if s.success()), "{id} stopped cleanly: {status:?}");
    }

    pub fn pid(&self, id: &str) -> u32 {
        self.nodes[id].as_ref().unwrap().child.id().unwrap()
    }

    /// Prints what every running node logged so far, when `TWIN_TEST_CLUSTER_LOGS` is set (for
    /// looking into a failure or a slow takeover).
    pub fn dump_logs(&mut self) {
        if std::env::var_os("TWIN_TEST_CLUSTER_LOGS").is_none() {
            return;
        }
        for (id, process) in &mut self.nodes {
            let Some(process) = process else { continue };
            while let Ok(line) = process.log.try_recv() {
                eprintln!("[{id}] {line}");
            }
        }
    }

    /// A metric summed over the running nodes (`/metrics`).
    pub async fn metric_sum(&self, name: &str) -> f64 {
        let mut sum = 0.0;
        for process in self.nodes.values().flatten() {
            sum += metric(&process.addr, name).await;
        }
        sum
    }
}

/// The demo creator without its default program, as `plain`: every message gets one reply from the
/// twin (stream `r{seq}`), which makes "answered exactly once" checkable.
fn plain_creator(dir: &std::path::Path, inactivity_after: Option<&str>) {
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../creators/demo");
    let plain = dir.join(CREATOR);
    std::fs::create_dir_all(plain.join("knowledge")).unwrap();
    let profile = std::fs::read_to_string(demo.join("creator.toml")).unwrap();
    let profile: String = profile
        .lines()
        .filter(|line| !line.starts_with("default_program"))
        .map(|line| match inactivity_after {
            Some(after) if line.starts_with("inactivity_after") => format!("inactivity_after = \"{after}\"\n"),
            Some(_) if line.starts_with("quiet_hours") => "quiet_hours = \"off\"\n".to_owned(),
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(plain.join("creator.toml"), profile).unwrap();
    for entry in std::fs::read_dir(demo.join("knowledge")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), plain.join("knowledge").join(entry.file_name())).unwrap();
    }
}

pub const CREATOR: &str = "plain";

impl Drop for Cluster {
    /// Removes the cluster's keys from the shared Redis (every node is gone with the test, so
    /// nobody else would: a dead node's stream is deleted by the live node that drains it).
    fn drop(&mut self) {
        for process in self.nodes.values_mut().flatten() {
            let _ = process.child.start_kill();
        }
        let pattern = format!("twin:c:{}:*", self.cluster_name());
        let script = format!("redis-cli --scan --pattern '{pattern}' | xargs -r redis-cli del >/dev/null");
        let _ = std::process::Command::new("sh").arg("-c").arg(script).status();
    }
}

pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill").arg(signal).arg(pid.to_string()).status().unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// A counter or gauge from a node's `/metrics` (0 when absent).
pub async fn metric(addr: &str, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await else { return 0.0 };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with(name) && !line.starts_with('#'))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn token(user: &str) -> String {
    let keys = twin_api::auth::TokenKeys::from_secret(SECRET.as_bytes(), "twin", "twin");
    let creator = twin_engine::Slug::parse(CREATOR).unwrap().creator_id();
    keys.mint(
        creator,
        &twin_engine::UserId::parse(user).unwrap(),
        twin_api::auth::Role::User,
        Duration::from_secs(3600),
    )
    .unwrap()
}

pub fn conversation_of(user: &str) -> twin_engine::ConversationId {
    let creator = twin_engine::Slug::parse(CREATOR).unwrap().creator_id();
    twin_engine::ConversationId::of(creator, &twin_engine::UserId::parse(user).unwrap())
}

/// The node that owns a user's conversation among `live`, as every node computes it.
pub fn owner_of(user: &str, live: &[String]) -> String {
    twin_engine::placement::owner(conversation_of(user), live).unwrap().clone()
}

/// One message through one node: the ack's seq and the twin's reply's seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    pub ack: u64,
    pub reply: u64,
}

#[derive(Debug)]
pub enum Failure {
    /// The node could not be reached or closed the socket.
    Connection(String),
    /// The server answered with an error frame for the message (e.g. `unavailable`).
    Refused(String),
    /// No ack or no reply in time.
    Timeout,
}

/// Sends one message on a fresh socket to `addr` and waits for its ack and the twin's reply.
pub async fn exchange(addr: &str, user: &str, id: &str, text: &str, within: Duration) -> Result<Exchange, Failure> {
    let url = format!("ws://{addr}/v1/chat?token={}", token(user));
    let connect = tokio::time::timeout(within, tokio_tungstenite::connect_async(url)).await;
    let (mut socket, _) = match connect {
        Ok(Ok(socket)) => socket,
        Ok(Err(error)) => return Err(Failure::Connection(error.to_string())),
        Err(_) => return Err(Failure::Timeout),
    };
    let frame = json!({"type": "message", "id": id, "text": text});
    if let Err(error) = socket.send(Message::text(frame.to_string())).await {
        return Err(Failure::Connection(error.to_string()));
    }
    let outcome = tokio::time::timeout(within, async {
        let mut ack = None;
        loop {
            let Some(Ok(message)) = socket.next().await else {
                return Err(Failure::Connection("closed".to_owned()));
            };
            let Message::Text(text) = message else { continue };
            let frame: Value = serde_json::from_str(&text).unwrap();
            match frame["type"].as_str() {
                Some("ack") if frame["id"] == id => {
                    ack = frame["seq"].as_u64();
                    // A retried message is acknowledged again but answered only once: its reply
                    // may be stored already, so ask for what follows it too.
                    let resume = json!({"type": "resume", "after": ack});
                    if socket.send(Message::text(resume.to_string())).await.is_err() {
                        return Err(Failure::Connection("closed".to_owned()));
                    }
                }
                Some("error") if frame["id"] == id => {
                    return Err(Failure::Refused(frame["message"].as_str().unwrap_or_default().to_owned()));
                }
                Some("message") => {
                    if let Some(ack) = ack
                        && frame["origin"] == "twin"
                        && frame["stream"] == format!("r{ack}")
                    {
                        return Ok(Exchange { ack, reply: frame["seq"].as_u64().unwrap() });
                    }
                }
                _ => {}
            }
        }
    })
    .await;
    let _ = socket.close(None).await;
    outcome.unwrap_or(Err(Failure::Timeout))
}

/// [`exchange`] through `addr`, the same message (same id) again until it goes through, failing the
/// test with `what` and the last failure after `within`.
pub async fn exchange_until(addr: &str, user: &str, id: &str, text: &str, within: Duration, what: &str) -> Exchange {
    let deadline = Instant::now() + within;
    loop {
        match exchange(addr, user, id, text, Duration::from_secs(5)).await {
            Ok(exchange) => return exchange,
            Err(failure) => assert!(Instant::now() < deadline, "{what}: {failure:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the clients of a run saw.
#[derive(Default, Debug)]
pub struct Ledger {
    /// (user, client id) → acknowledged seq.
    pub acked: HashMap<(String, String), u64>,
    /// Exchanges that failed and were retried (with the same client id).
    pub retries: usize,
}

/// Users that write `messages` each, one after another, each message through a random live node;
/// a failed message is retried (same client id) on another node until it is acknowledged and
/// answered. Runs until every message went through.
pub async fn chat_through_random_nodes(
    addrs: Arc<Mutex<Vec<String>>>,
    users: usize,
    messages: usize,
    prefix: &str,
    pause: Duration,
) -> Ledger {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for u in 0..users {
        let (addrs, ledger) = (addrs.clone(), ledger.clone());
        let user = format!("{prefix}{u}");
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for m in 0..messages {
                let id = format!("{user}-m{m}");
                let text = format!("message {m} about focus and habits");
                let deadline = Instant::now() + Duration::from_secs(60);
                let exchange = loop {
                    let addr = {
                        let addrs = addrs.lock().unwrap();
                        addrs[rand::random_range(0..addrs.len())].clone()
                    };
                    match exchange(&addr, &user, &id, &text, Duration::from_secs(5)).await {
                        Ok(exchange) => break exchange,
                        Err(failure) => {
                            assert!(Instant::now() < deadline, "{id} never went through: {failure:?}");
                            ledger.lock().unwrap().retries += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                };
                assert!(exchange.ack > last, "{user}: acks go up ({} after {last})", exchange.ack);
                assert!(exchange.reply > exchange.ack, "{user}: the reply follows its message");
                last = exchange.reply;
                let earlier = ledger.lock().unwrap().acked.insert((user.clone(), id.clone()), exchange.ack);
                if let Some(earlier) = earlier {
                    assert_eq!(earlier, exchange.ack, "{id}: a retry is acknowledged with the same seq");
                }
                tokio::time::sleep(pause).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(ledger).unwrap().into_inner().unwrap()
}

/// A stored message as the checks need it: seq, origin, client id, stream.
type Stored = (i64, String, Option<String>, Option<String>);

/// Checks the store against what clients saw: every acknowledged message is there at its seq,
/// seqs have no gaps, every user message has exactly one reply (no duplicate reply).
pub async fn check_store(db: &TestDb, ledger: &Ledger) {
    let mut connection = db.superuser().await;
    let rows: Vec<(uuid::Uuid, Stored)> =
        sqlx::query_as::<_, (uuid::Uuid, i64, String, Option<String>, Option<String>)>(
            "SELECT conversation_id, seq, origin, client_id, stream FROM messages ORDER BY conversation_id, seq",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap()
        .into_iter()
        .map(|(conversation, seq, origin, client_id, stream)| (conversation, (seq, origin, client_id, stream)))
        .collect();
    let mut by_conversation: HashMap<uuid::Uuid, Vec<Stored>> = HashMap::new();
    for (conversation, message) in rows {
        by_conversation.entry(conversation).or_default().push(message);
    }
    for ((user, id), seq) in &ledger.acked {
        let conversation = conversation_of(user).0;
        let messages = by_conversation.get(&conversation).unwrap_or_else(|| panic!("{user} has no messages"));
        let stored = messages.iter().find(|m| m.2.as_deref() == Some(id.as_str()));
        assert_eq!(stored.map(|m| m.0 as u64), Some(*seq), "{id} is stored at the seq its client saw");
    }
    for (conversation, messages) in &by_conversation {
        for (index, message) in messages.iter().enumerate() {
            assert_eq!(message.0, index as i64 + 1, "{conversation}: seqs have no gaps");
        }
        let mut replies: HashMap<&str, usize> = HashMap::new();
        for message in messages.iter().filter(|m| m.1 == "twin") {
            if let Some(stream) = &message.3 {
                *replies.entry(stream.as_str()).or_default() += 1;
            }
        }
        for message in messages.iter().filter(|m| m.1 == "user") {
            let stream = format!("r{}", message.0);
            assert_eq!(replies.get(stream.as_str()), Some(&1), "{conversation}: message {} answered once", message.0);
        }
    }
}

/// A TCP proxy on loopback that can cut every connection through it and refuse new ones.
pub struct Proxy {
    pub addr: String,
    cut: Arc<AtomicBool>,
    generation: Arc<AtomicUsize>,
}

impl Proxy {
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_owned();
        let (c, g) = (cut.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let (upstream, cut, generation) = (upstream.clone(), c.clone(), g.clone());
                tokio::spawn(async move {
                    let born = generation.load(Ordering::SeqCst);
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let (mut client, mut server) = (client, server);
                    let pipe = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let watch = async {
                        while !cut.load(Ordering::SeqCst) && generation.load(Ordering::SeqCst) == born {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = pipe => {}
                        () = watch => {}
                    }
                });
            }
        });
        Self { addr, cut, generation }
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cut.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
