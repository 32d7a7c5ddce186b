//! The scenarios, one module each; this module holds what they share: the options, and starting
//! the two servers (bare echo, Twin with a bench creator) the same way.

pub mod actors;
pub mod cluster;
pub mod compare;
pub mod connect;
pub mod load;
pub mod nudges;
pub mod webhooks;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use twin_api::auth::{Role, TokenKeys};
use twin_engine::{Slug, UserId};

use crate::process::{self, Server};

/// The bench creator's token secret (passed to the server as TWIN_JWT_SECRET).
const JWT_SECRET: &str = "twin-bench-secret-twin-bench-secret-0123";
const CREATOR: &str = "bench";

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Concurrent connections (each its own user).
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Messages per second per connection; omit to send each as soon as the last is answered.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured time.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Unmeasured time before it.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Source addresses 127.0.0.1 … 127.0.0.N to spread connections over.
    #[arg(long, default_value_t = 4)]
    pub sources: u8,
}

impl LoadArgs {
    pub fn plan(&self) -> crate::client::Plan {
        crate::client::Plan {
            connections: self.connections,
            rate: self.rate,
            duration: self.duration,
            warmup: self.warmup,
            sources: self.sources,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct TwinArgs {
    /// PostgreSQL URL for Twin's store; default SQLite in a temporary data dir.
    #[arg(long)]
    pub database_url: Option<String>,
}

/// A running Twin with the bench creator, and how to address its users.
pub struct TwinUnderTest {
    pub server: Server,
    pub addr: SocketAddr,
    keys: TokenKeys,
    _data: tempfile::TempDir,
}

impl TwinUnderTest {
    /// `streaming` turns the bench creator's `delta` previews on or off.
    pub async fn start(args: &TwinArgs, streaming: bool) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let creators = data.path().join("creators");
        let mut bundle = twin_api::bundle::demo();
        bundle.profile.slug = Slug::parse(CREATOR)?;
        // Free chat: every bench message is answered by the twin, not by a program's welcome.
        bundle.programs.clear();
        bundle.profile.default_program = None;
        bundle.profile.replies.stream_previews = streaming;
        twin_api::bundle::write_dir(&bundle, &creators.join(CREATOR))?;
        let server =
            process::start_twin(&data.path().join("data"), &creators, args.database_url.as_deref(), JWT_SECRET).await?;
        let addr = server.addr.parse().context("twin announced an address that does not parse")?;
        Ok(Self { server, addr, keys: TokenKeys::from_secret(JWT_SECRET.as_bytes(), "twin", "twin"), _data: data })
    }

    /// The chat URL for bench user `i`, with a token minted for it.
    pub fn url(&self, i: usize) -> String {
        let creator = Slug::parse(CREATOR).map(|s| s.creator_id());
        let user = UserId::parse(&format!("bench-user-{i}"));
        let token = match (creator, user) {
            (Ok(creator), Ok(user)) => {
                self.keys.mint(creator, &user, Role::User, Duration::from_secs(24 * 3600)).unwrap_or_default()
            }
            _ => String::new(),
        };
        format!("ws://{}/v1/chat?token={token}", self.addr)
    }
}

/// A running bare echo server.
pub struct EchoUnderTest {
    pub server: Server,
    pub addr: SocketAddr,
}

impl EchoUnderTest {
    pub async fn start() -> anyhow::Result<Self> {
        let server = process::start_echo().await?;
        let addr = server.addr.parse().context("the echo server announced an address that does not parse")?;
        Ok(Self { server, addr })
    }

    pub fn url(&self, _i: usize) -> String {
        format!("ws://{}/v1/chat", self.addr)
    }
}

pub fn progress_bar(label: &str, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix:>14} {elapsed:>4} {pos:>9} answered ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_prefix(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
