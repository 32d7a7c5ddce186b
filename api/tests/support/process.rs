//! The real `twin` binary as a child process, for tests that kill it (SIGKILL) and start it again.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub struct ServerProcess {
    pub child: Child,
    pub addr: String,
    /// Every log line after the listening one.
    pub log: mpsc::UnboundedReceiver<String>,
}

impl ServerProcess {
    /// `twin serve` on a free loopback port with these extra arguments and environment.
    pub async fn start(data_dir: &Path, database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(super::twin_binary());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--database-url", database_url])
            .args(args)
            .env("TWIN_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("twin starts");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("the log is readable") {
                if let Some(rest) = line.split("address=").nth(1) {
                    return rest.split_whitespace().next().expect("an address").to_owned();
                }
            }
            panic!("twin exited before listening");
        })
        .await
        .expect("twin listens within a minute");
        // Keep draining the log so the pipe never fills; tests may read it.
        let (tx, log) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        Self { child, addr, log }
    }

    /// Waits for a log line containing `needle`, failing the test after `within`.
    pub async fn wait_for_log(&mut self, needle: &str, within: Duration) -> String {
        tokio::time::timeout(within, async {
            while let Some(line) = self.log.recv().await {
                if line.contains(needle) {
                    return line;
                }
            }
            panic!("twin exited before logging {needle:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("no log line with {needle:?} within {within:?}"))
    }

    /// SIGKILL, and wait until the process is gone.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("the process can be killed");
        self.child.wait().await.expect("the process exits");
    }
}
