//! The load client, the same code for the echo baseline and for Twin: N connections, each sending
//! one message at a time, either as fast as replies come back (closed loop) or at a fixed rate.
//!
//! At a fixed rate, latency is measured from when a message was *due*, not from when it was sent,
//! so a stalled server cannot hide its stall by slowing the client (coordinated omission, as wrk2).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::Value;
use tokio::net::TcpSocket;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// What a message's answer looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Any text frame back is the answer.
    Echo,
    /// Twin's chat: an `ack`, maybe `delta`s, then the final `message` from the twin.
    Chat,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub connections: usize,
    /// Messages per second per connection; `None` sends the next as soon as the answer arrives.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Answers in this first stretch are not recorded (connections warming up).
    pub warmup: Duration,
    /// Spread connections over 127.0.0.1 … 127.0.0.N as source addresses.
    pub sources: u8,
}

/// Latencies in microseconds.
pub struct Outcome {
    pub completed: u64,
    /// Every message sent, warm-up included (answered or not).
    pub sent: u64,
    pub measured_for: Duration,
    pub round_trip: Histogram<u64>,
    pub ack: Histogram<u64>,
    pub first_delta: Histogram<u64>,
    pub errors: u64,
}

impl Outcome {
    fn empty(measured_for: Duration) -> Self {
        Self {
            completed: 0,
            sent: 0,
            measured_for,
            round_trip: histogram(),
            ack: histogram(),
            first_delta: histogram(),
            errors: 0,
        }
    }

    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.measured_for.as_secs_f64().max(1e-9)
    }

    /// Adds another connection's figures to these.
    pub fn add(&mut self, other: &Outcome) -> anyhow::Result<()> {
        self.completed += other.completed;
        self.sent += other.sent;
        self.errors += other.errors;
        self.round_trip.add(&other.round_trip)?;
        self.ack.add(&other.ack)?;
        self.first_delta.add(&other.first_delta)?;
        Ok(())
    }

    /// The figures of several connections together.
    pub fn merged<'a>(measured_for: Duration, each: impl IntoIterator<Item = &'a Outcome>) -> anyhow::Result<Self> {
        let mut all = Self::empty(measured_for);
        for one in each {
            all.add(one)?;
        }
        Ok(all)
    }
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 100 s, 3 significant digits. The bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// A socket's buffers: as small as the server's, so the client does not dominate memory.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096)
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens one WebSocket to `url` from source address 127.0.0.`source`.
pub async fn connect(addr: SocketAddr, url: &str, source: u8) -> anyhow::Result<Socket> {
    let socket = TcpSocket::new_v4()?;
    if addr.ip().is_loopback() {
        socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, source.max(1)), 0)))?;
    }
    let stream = socket.connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let request = url.into_client_request()?;
    let (socket, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(client_config()))
        .await
        .context("the WebSocket handshake failed")?;
    Ok(socket)
}

/// Runs the plan against `addr`; `url_for(i)` is connection i's URL (each its own user).
pub async fn run(
    addr: SocketAddr,
    url_for: impl Fn(usize) -> String,
    protocol: Protocol,
    plan: &Plan,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Outcome> {
    let each = run_each(|i| (addr, url_for(i)), protocol, plan, progress).await?;
    Outcome::merged(plan.duration, &each)
}

/// Runs the plan with connection i on `target_for(i)` (a server address and the URL to open
/// there); the figures of each connection, in order.
pub async fn run_each(
    target_for: impl Fn(usize) -> (SocketAddr, String),
    protocol: Protocol,
    plan: &Plan,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Vec<Outcome>> {
    let completed = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(200);
    let mut sockets = Vec::with_capacity(plan.connections);
    for i in 0..plan.connections {
        let source = 1 + (i % plan.sources.max(1) as usize) as u8;
        let (addr, url) = target_for(i);
        sockets.push(connect(addr, &url, source).await?);
    }
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(i, socket)| {
            let plan = plan.clone();
            let completed = completed.clone();
            tokio::spawn(async move { drive(socket, i, protocol, &plan, start, &completed).await })
        })
        .collect();

    let end = start + plan.warmup + plan.duration;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
        progress.set_position(completed.load(Ordering::Relaxed));
    }
    let mut each = Vec::with_capacity(tasks.len());
    for task in tasks {
        each.push(task.await.context("a client task panicked")?);
    }
    progress.set_position(completed.load(Ordering::Relaxed));
    Ok(each)
}

/// One connection's loop.
async fn drive(
    mut socket: Socket,
    index: usize,
    protocol: Protocol,
    plan: &Plan,
    start: Instant,
    completed: &AtomicU64,
) -> Outcome {
    let mut outcome = Outcome::empty(plan.duration);
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let period = plan.rate.map(|r| Duration::from_secs_f64(1.0 / r.max(1e-6)));
    // Spread the connections' first sends over one period so they do not all fire at once.
    let mut due = start + period.map_or(Duration::ZERO, |p| p.mul_f64((index % 1000) as f64 / 1000.0));
    let mut n: u64 = 0;
    while due < end {
        if period.is_some() {
            tokio::time::sleep_until(due).await;
        } else {
            due = Instant::now();
        }
        n += 1;
        let id = format!("b{index}-{n}");
        let text = QUESTIONS[(n as usize + index) % QUESTIONS.len()];
        let frame = serde_json::json!({"type": "message", "id": id, "text": text}).to_string();
        if socket.send(Message::text(frame)).await.is_err() {
            outcome.errors += 1;
            break;
        }
        outcome.sent += 1;
        match answer(&mut socket, protocol, &id).await {
            Ok(timings) => {
                let now = Instant::now();
                if due >= measure_from && now <= end + Duration::from_secs(5) {
                    let _ = outcome.round_trip.record(micros(now - due));
                    if let Some(ack) = timings.ack {
                        let _ = outcome.ack.record(micros(ack - due));
                    }
                    if let Some(delta) = timings.first_delta {
                        let _ = outcome.first_delta.record(micros(delta - due));
                    }
                    outcome.completed += 1;
                    completed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                outcome.errors += 1;
                break;
            }
        }
        if let Some(period) = period {
            due += period;
        }
    }
    let _ = socket.close(None).await;
    outcome
}

struct Timings {
    ack: Option<Instant>,
    first_delta: Option<Instant>,
}

/// Waits for the answer to message `id`.
async fn answer(socket: &mut Socket, protocol: Protocol, id: &str) -> anyhow::Result<Timings> {
    let mut timings = Timings { ack: None, first_delta: None };
    loop {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .context("no answer within 30 s")?
            .context("the server closed the connection")??;
        let Message::Text(text) = message else { continue };
        if protocol == Protocol::Echo {
            return Ok(timings);
        }
        let frame: Value = serde_json::from_str(&text)?;
        match frame["type"].as_str() {
            Some("ack") if frame["id"] == id => timings.ack = Some(Instant::now()),
            Some("delta") if timings.first_delta.is_none() => timings.first_delta = Some(Instant::now()),
            Some("message") if frame["origin"] == "twin" => return Ok(timings),
            Some("error") => anyhow::bail!("error frame: {frame}"),
            _ => {}
        }
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().clamp(1, u128::from(u64::MAX)) as u64
}

/// What the simulated users ask (the demo twin's material covers these).
pub const QUESTIONS: &[&str] = &[
    "How do I protect my focus when my phone keeps distracting me?",
    "What should my morning routine look like?",
    "How do I stack a new habit onto an old one?",
    "I missed three days of my plan, how do I get back on track?",
    "How much sleep do I need and how do I wind down?",
];
