//! Rate limits of the REST API: per client address before authentication (so token guessing and
//! floods are slowed whoever they claim to be), and per tenant after it (so one creator's scripts
//! cannot starve the others). Budgets live in Redis when `TWIN_REDIS_URL` is set, so every node
//! counts against the same one, and in this process otherwise (`twin_cluster::limits`).
//!
//! The widget's ticket endpoint has a budget of its own per address, much smaller (every ticket may
//! start a new visitor).
//!
//! Keys: `twin:rl:addr:{ip}`, `twin:rl:ticket:{ip}` and `twin:{creator}:rl:api` (the tenant's keys
//! carry the tenant).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use twin_cluster::{Decision, Limiter, LocalLimiter, Rate, RedisLimiter};
use twin_engine::CreatorId;

use crate::problem::ApiError;
use crate::routes::AppState;
use crate::settings::LimitSettings;

#[derive(Clone)]
pub struct Limits {
    limiter: Arc<dyn Limiter>,
    address: Rate,
    tenant: Rate,
    tickets: Rate,
    trusted_proxies: Arc<[IpAddr]>,
}

impl Limits {
    /// Redis-backed when `redis_url` is given (it must answer at start), in-process otherwise.
    pub async fn connect(settings: &LimitSettings, redis_url: Option<&str>) -> anyhow::Result<Self> {
        let limiter: Arc<dyn Limiter> = match redis_url {
            Some(url) => {
                let limiter = RedisLimiter::connect(url).await.context("cannot reach Redis (TWIN_REDIS_URL)")?;
                tracing::info!("rate limits: shared through Redis");
                Arc::new(limiter)
            }
            None => Arc::new(LocalLimiter::default()),
        };
        Ok(Self::with(limiter, settings))
    }

    pub fn with(limiter: Arc<dyn Limiter>, settings: &LimitSettings) -> Self {
        Self {
            limiter,
            address: settings.address,
            tenant: settings.tenant,
            tickets: settings.tickets,
            trusted_proxies: settings.trusted_proxies.clone().into(),
        }
    }

    /// Counts one request of `address`; 429 when it is over its budget.
    pub async fn address(&self, address: IpAddr) -> Result<(), ApiError> {
        self.check(&format!("twin:rl:addr:{address}"), self.address).await
    }

    /// Counts one widget ticket asked for by `address`; 429 when it is over its budget.
    pub async fn tickets(&self, address: IpAddr) -> Result<(), ApiError> {
        self.check(&format!("twin:rl:ticket:{address}"), self.tickets).await
    }

    /// Counts one authenticated request of `creator`'s tenant; 429 when it is over its budget.
    pub async fn tenant(&self, creator: CreatorId) -> Result<(), ApiError> {
        self.check(&format!("twin:{}:rl:api", creator.as_uuid()), self.tenant).await
    }

    async fn check(&self, key: &str, rate: Rate) -> Result<(), ApiError> {
        match self.limiter.check(key, rate).await {
            Decision::Allowed => Ok(()),
            Decision::Limited { retry_after } => {
                metrics::counter!("twin_rate_limited_total").increment(1);
                Err(ApiError::rate_limited(retry_after))
            }
        }
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the last address in
    /// `X-Forwarded-For` that is not one of the trusted proxies.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let hops: Vec<IpAddr> =
            forwarded.flat_map(|v| v.split(',')).filter_map(|hop| hop.trim().parse::<IpAddr>().ok()).collect();
        hops.into_iter().rev().find(|hop| !self.trusted_proxies.contains(hop)).unwrap_or(peer)
    }
}

/// The address a request came from: the peer, or behind a trusted proxy the forwarded client
/// ([`Limits::client_address`]), so a load balancer's address does not carry every client's
/// failures. `None` when the server was called without connection info (a router in a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(state, parts)))
    }
}

impl ClientAddress {
    /// The address as stored and counted; `unknown` when the server does not know it.
    pub fn text(&self) -> String {
        self.0.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}

fn client_address(state: &AppState, parts: &Parts) -> Option<IpAddr> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    Some(state.limits.client_address(peer, &parts.headers))
}

/// Middleware: the per-address budget of the REST API. Health, metrics, the published documents,
/// chat sockets and provider webhooks are not counted (sockets and webhooks have their own
/// protections, and a load balancer's address would otherwise carry every webhook).
pub async fn by_address(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    if !is_rest(request.uri().path()) {
        return Ok(next.run(request).await);
    }
    let (parts, body) = request.into_parts();
    // Without connection info (a router called directly in a test): the unspecified address.
    let address = client_address(&state, &parts).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    state.limits.address(address).await?;
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// Whether a path is part of the REST API (every `/v1/…` path but the exceptions above).
fn is_rest(path: &str) -> bool {
    const NOT_REST: [&str; 6] = [
        "/v1/chat",
        "/v1/live",
        "/v1/openapi.json",
        "/v1/auth/jwks.json",
        "/v1/channels/telegram/",
        "/v1/channels/whatsapp/",
    ];
    path.starts_with("/v1/") && !NOT_REST.iter().any(|p| path.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(trusted: &[&str]) -> Limits {
        let settings = LimitSettings {
            address: "1/s".parse().unwrap_or_else(|e| panic!("{e}")),
            tenant: "1/s".parse().unwrap_or_else(|e| panic!("{e}")),
            tickets: "1/s".parse().unwrap_or_else(|e| panic!("{e}")),
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap_or_else(|e| panic!("{e}"))).collect(),
        };
        Limits::with(Arc::new(LocalLimiter::default()), &settings)
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap_or_else(|e| panic!("{e}")));
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let untrusting = limits(&[]);
        assert_eq!(untrusting.client_address(ip("10.0.0.1"), &forwarded("1.2.3.4")), ip("10.0.0.1"));

        let behind_lb = limits(&["10.0.0.1", "10.0.0.2"]);
        assert_eq!(behind_lb.client_address(ip("10.0.0.1"), &forwarded("1.2.3.4")), ip("1.2.3.4"));
        // A client cannot pick its address by sending its own header: the last untrusted hop wins.
        assert_eq!(behind_lb.client_address(ip("10.0.0.1"), &forwarded("6.6.6.6, 1.2.3.4, 10.0.0.2")), ip("1.2.3.4"));
        // Garbage or a missing header: the proxy's address.
        assert_eq!(behind_lb.client_address(ip("10.0.0.1"), &forwarded("not-an-ip")), ip("10.0.0.1"));
        assert_eq!(behind_lb.client_address(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
    }

    #[test]
    fn only_rest_paths_count() {
        for rest in ["/v1/creators", "/v1/creators/a/conversations", "/v1/channels/link-code", "/v1/auth/login"] {
            assert!(is_rest(rest), "{rest}");
        }
        for other in [
            "/healthz",
            "/metrics",
            "/v1/chat",
            "/v1/openapi.json",
            "/v1/auth/jwks.json",
            "/.well-known/jwks.json",
            "/v1/channels/telegram/a/webhook",
            "/v1/channels/whatsapp/webhook",
        ] {
            assert!(!is_rest(other), "{other}");
        }
    }

    #[tokio::test]
    async fn over_budget_is_a_429_with_retry_after() {
        let limits = limits(&[]);
        assert!(limits.address(ip("1.2.3.4")).await.is_ok());
        let error = limits.address(ip("1.2.3.4")).await.expect_err("the second request in a second");
        assert_eq!(error.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!(limits.address(ip("1.2.3.5")).await.is_ok(), "another address has its own budget");
    }
}
