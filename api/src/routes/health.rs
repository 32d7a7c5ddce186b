//! Liveness, readiness and metrics.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use crate::problem::ApiError;

#[utoipa::path(get, path = "/healthz", tag = "meta", summary = "Liveness",
    responses((status = 200, description = "The process is up", content_type = "text/plain", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the store answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "meta", summary = "Readiness: the store answers and migrations are applied",
    responses(
        (status = 200, description = "Ready", content_type = "text/plain", body = String),
        (status = 503, description = "Not ready", content_type = "application/problem+json", body = super::openapi::Problem),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.store.ready().await.map_err(|e| ApiError::unavailable(format!("the store is not ready: {e}")))?;
    if let Some(cluster) = &state.cluster
        && !cluster.membership().is_member()
    {
        // A load balancer stops sending this node traffic it could only refuse.
        return Err(ApiError::unavailable("this node is not a member of its cluster right now".to_owned()));
    }
    Ok((StatusCode::OK, "ready"))
}

/// This node and the live set it sees (cluster mode); a lone node reports itself only.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// This node's id (`TWIN_NODE_ID`); `null` on a single node without Redis.
    node: Option<String>,
    /// Whether this node's heartbeat is current (always true on a single node).
    member: bool,
    /// The live node ids, sorted.
    nodes: Vec<String>,
}

#[utoipa::path(get, path = "/healthz/cluster", tag = "meta", summary = "This node's view of the cluster",
    responses((status = 200, description = "The live set as this node sees it", body = ClusterView)))]
pub async fn cluster(State(state): State<AppState>) -> axum::Json<ClusterView> {
    let view = match &state.cluster {
        None => ClusterView { node: None, member: true, nodes: Vec::new() },
        Some(cluster) => {
            let membership = cluster.membership();
            ClusterView {
                node: Some(membership.node().to_owned()),
                member: membership.is_member(),
                nodes: membership.current().nodes.to_vec(),
            }
        }
    };
    axum::Json(view)
}

#[utoipa::path(get, path = "/metrics", tag = "meta", summary = "Prometheus metrics",
    responses((status = 200, description = "Text exposition format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
