//! Logging (tracing) and the Prometheus recorder, set up once per process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

pub const WS_SESSIONS_ACTIVE: &str = "twin_ws_sessions_active";
pub const WS_FRAMES_IN: &str = "twin_ws_frames_in_total";
pub const WS_FRAME_ERRORS: &str = "twin_ws_frame_errors_total";
pub const HTTP_AUTH_FAILURES: &str = "twin_http_auth_failures_total";

/// `filter` overrides `TWIN_LOG`; the default is `info`.
pub fn init_tracing(filter: Option<&str>) {
    let filter =
        filter.map(str::to_owned).or_else(|| std::env::var("TWIN_LOG").ok()).unwrap_or_else(|| "info".to_owned());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The process-wide metrics recorder (installed on first use; tests start many servers in one
/// process and share it).
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            metrics::describe_gauge!(WS_SESSIONS_ACTIVE, "WebSocket chat sessions open.");
            metrics::describe_counter!(WS_FRAMES_IN, "Text frames received on chat sockets.");
            metrics::describe_counter!(WS_FRAME_ERRORS, "Client frames refused with an error frame.");
            metrics::describe_counter!(HTTP_AUTH_FAILURES, "Requests refused for a missing or bad token.");
            twin_llm::telemetry::describe_metrics();
            handle
        })
        .clone()
}
