//! The bare echo server: axum's own WebSocket upgrade with the same buffer settings as Twin, and
//! nothing else. What it achieves is the physical limit of this stack on this machine.

use axum::Router;
use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{Message, WebSocket};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use futures::{SinkExt, StreamExt};

/// The same as Twin's chat socket (api/src/routes/chat.rs).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;
const TRANSPORT_LIMIT_BYTES: usize = 1024 * 1024;

pub async fn run(listen: &str) -> anyhow::Result<()> {
    let app = Router::new().route("/v1/chat", get(upgrade));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    // Same announcement shape as twin's log, so the harness finds the address the same way.
    println!("echo server listening address={}", listener.local_addr()?);
    // The same socket option as Twin's listener.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}

async fn upgrade(ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_write_buffer_size(TRANSPORT_LIMIT_BYTES)
        .max_message_size(TRANSPORT_LIMIT_BYTES)
        .max_frame_size(TRANSPORT_LIMIT_BYTES)
        .on_upgrade(echo)
}

async fn echo(socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    while let Some(Ok(message)) = stream.next().await {
        let echoed = matches!(message, Message::Text(_) | Message::Binary(_));
        if matches!(message, Message::Close(_)) || (echoed && sink.send(message).await.is_err()) {
            break;
        }
    }
}
