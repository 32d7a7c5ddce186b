//! A creator platform's published public keys (`[user_tokens] jwks_url`), fetched when first
//! needed and kept: fetched again when older than [`MAX_AGE`], or when a token names a key id the
//! set lacks, but never more than once per [`MIN_REFETCH`] (a stream of tokens with made-up key
//! ids must not turn into a stream of requests to the creator's platform).

use std::time::{Duration, Instant};

use futures::StreamExt;
use jsonwebtoken::jwk::{Jwk, JwkSet};

/// Keys older than this are fetched again before use.
pub const MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// At most one fetch per this long.
pub const MIN_REFETCH: Duration = Duration::from_secs(60);
/// The largest key set read; a real one is a few KiB.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    state: tokio::sync::Mutex<Fetched>,
}

#[derive(Default)]
struct Fetched {
    keys: Option<JwkSet>,
    /// When the keys were last fetched (or a fetch last failed).
    at: Option<Instant>,
}

impl RemoteJwks {
    pub fn new(url: String, http: reqwest::Client) -> Self {
        Self { url, http, state: tokio::sync::Mutex::new(Fetched::default()) }
    }

    /// The key a token names: by `kid`, or the only key of a set of one when the token has none.
    /// `Err` carries the reason, for the debug log.
    pub async fn key(&self, kid: Option<&str>) -> Result<Jwk, String> {
        // One fetch at a time: concurrent tokens wait for it rather than each fetching.
        let mut state = self.state.lock().await;
        let stale = state.at.is_none_or(|at| at.elapsed() >= MAX_AGE);
        if stale || state.keys.is_none() {
            self.refresh(&mut state).await;
        }
        if let Some(key) = state.keys.as_ref().and_then(|keys| pick(keys, kid)) {
            return Ok(key);
        }
        // A key id we do not know may be a key the platform just added.
        if kid.is_some() && state.at.is_none_or(|at| at.elapsed() >= MIN_REFETCH) {
            self.refresh(&mut state).await;
            if let Some(key) = state.keys.as_ref().and_then(|keys| pick(keys, kid)) {
                return Ok(key);
            }
        }
        match (&state.keys, kid) {
            (None, _) => Err(format!("the keys at {} could not be fetched", self.url)),
            (Some(_), Some(kid)) => Err(format!("no key {kid:?} at {}", self.url)),
            (Some(_), None) => Err(format!("the token has no kid and {} has several keys", self.url)),
        }
    }

    async fn refresh(&self, state: &mut Fetched) {
        // Failed fetches count too: a platform that is down is asked once a minute, not per token.
        if state.at.is_some_and(|at| at.elapsed() < MIN_REFETCH) {
            return;
        }
        state.at = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => state.keys = Some(keys),
            // Keep the keys we had: the platform being down must not lock its users out.
            Err(error) => tracing::warn!(url = %self.url, %error, "cannot fetch a creator platform's token keys"),
        }
    }

    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        let response = self.http.get(&self.url).timeout(FETCH_TIMEOUT).send().await?.error_for_status()?;
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            anyhow::bail!("the key set is larger than {MAX_JWKS_BYTES} bytes");
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk?);
            if body.len() > MAX_JWKS_BYTES {
                anyhow::bail!("the key set is larger than {MAX_JWKS_BYTES} bytes");
            }
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

fn pick(keys: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => keys.find(kid).cloned(),
        None => match keys.keys.as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        },
    }
}
