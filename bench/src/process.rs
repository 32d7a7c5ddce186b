//! Servers under test run as child processes, so their memory is their own (`/proc/<pid>`): the
//! `twin` binary next to this one, or this binary's own hidden `echo-server`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct Server {
    child: Child,
    pub addr: String,
    /// The server's WARN and ERROR lines, over its whole life.
    pub log: Arc<Mutex<Log>>,
}

/// WARN and ERROR lines a server printed: counts, and the first few distinct ones.
#[derive(Debug, Default)]
pub struct Log {
    pub warnings: u64,
    pub errors: u64,
    pub samples: Vec<String>,
}

/// `line` without terminal colour sequences (`ESC [ … m`).
fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Distinct lines kept per server.
const LOG_SAMPLES: usize = 20;

impl Log {
    fn note(&mut self, line: &str) {
        if line.contains("ERROR") {
            self.errors += 1;
        } else if line.contains("WARN") {
            self.warnings += 1;
        } else {
            return;
        }
        // Without colours and the timestamp, so repeats of one message count as one sample.
        let plain = strip_ansi(line);
        let text = plain.split_once(' ').map_or(plain.as_str(), |(_, rest)| rest).trim();
        let text: String = text.chars().take(300).collect();
        if self.samples.len() < LOG_SAMPLES && !self.samples.contains(&text) {
            self.samples.push(text);
        }
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Resident memory of the server process, in bytes.
    pub fn rss(&self) -> anyhow::Result<u64> {
        rss_of(self.pid())
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Resident memory of a process, in bytes, from `/proc/<pid>/status`.
pub fn rss_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("cannot read the process status")?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in the process status")?;
    Ok(kib * 1024)
}

pub fn own_rss() -> anyhow::Result<u64> {
    rss_of(std::process::id())
}

/// The `twin` binary: `TWIN_BIN`, else next to this executable (both live in target/<profile>/).
pub fn twin_binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("TWIN_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("twin");
    if !path.exists() {
        bail!("{} not found: build it first (`cargo build --release -p twin-api`) or set TWIN_BIN", path.display());
    }
    Ok(path)
}

/// Starts `twin serve` on a free loopback port with the given data dir, creators and database.
pub async fn start_twin(
    data_dir: &Path,
    creators: &Path,
    database_url: Option<&str>,
    jwt_secret: &str,
) -> anyhow::Result<Server> {
    start_twin_with(data_dir, creators, database_url, jwt_secret, &[]).await
}

/// [`start_twin`] with extra environment variables.
pub async fn start_twin_with(
    data_dir: &Path,
    creators: &Path,
    database_url: Option<&str>,
    jwt_secret: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<Server> {
    let mut command = Command::new(twin_binary()?);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--creators")
        .arg(creators)
        .env("TWIN_JWT_SECRET", jwt_secret)
        .env("TWIN_LOG", "warn,twin_api::startup=info");
    if let Some(url) = database_url {
        command.args(["--database-url", url]);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    start(command, "address=").await
}

/// Starts this binary's bare echo server.
pub async fn start_echo() -> anyhow::Result<Server> {
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["echo-server", "--listen", "127.0.0.1:0"]);
    start(command, "address=").await
}

/// Spawns a server and waits for the line announcing its address (on stdout or stderr).
async fn start(mut command: Command, marker: &'static str) -> anyhow::Result<Server> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the server process")?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let stdout = child.stdout.take().context("no stdout")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let log = Arc::new(Mutex::new(Log::default()));
    forward(stdout, marker, tx.clone(), log.clone());
    forward(stderr, marker, tx, log.clone());
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = rx.recv().await {
            if let Some(rest) = line.split(marker).nth(1) {
                return Ok(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
            eprintln!("server: {line}");
        }
        bail!("the server exited before it listened")
    })
    .await
    .context("the server did not listen within a minute")??;
    Ok(Server { child, addr, log })
}

/// Reads a pipe to its end (so it never fills), passing on the lines worth showing.
fn forward(
    pipe: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    marker: &'static str,
    tx: tokio::sync::mpsc::UnboundedSender<String>,
    log: Arc<Mutex<Log>>,
) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.lock().unwrap_or_else(PoisonError::into_inner).note(&line);
            if line.contains(marker) || line.contains("ERROR") || line.contains("WARN") {
                let _ = tx.send(line);
            }
        }
    });
}
