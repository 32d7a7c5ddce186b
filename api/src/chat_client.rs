//! `twin chat`: a terminal chat over the WebSocket API. Shows the conversation so far, then each
//! reply as it streams; every line you type is sent with a fresh idempotency key.

use std::io::Write as _;

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

/// Messages of earlier history shown when the chat opens.
const HISTORY_SHOWN: u32 = 20;

pub async fn run(base_url: &str, token: &str) -> anyhow::Result<()> {
    let ws_url = websocket_url(base_url)?;
    let mut request = ws_url.as_str().into_client_request().context("bad server address")?;
    request.headers_mut().insert("Authorization", format!("Bearer {token}").parse().context("bad token")?);
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("cannot connect to {ws_url} (is `twin serve` running?)"))?;
    let (mut sink, mut stream) = socket.split();
    sink.send(Message::text(json!({"type": "resume", "after": 0, "limit": 500}).to_string())).await?;

    let mut history: Vec<Value> = Vec::new();
    let mut replaying = true;
    let mut streaming = false;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    eprintln!("connected to {ws_url}; type a message and press Enter (Ctrl-D to quit)");
    loop {
        tokio::select! {
            frame = stream.next() => {
                let Some(frame) = frame else { bail!("the server closed the connection") };
                let text = match frame.context("the connection failed")? {
                    Message::Text(text) => text,
                    Message::Close(close) => bail!("the server closed the connection: {}", close.map(|c| c.reason.to_string()).unwrap_or_default()),
                    _ => continue,
                };
                let frame: Value = serde_json::from_str(&text).context("the server sent something that is not JSON")?;
                match frame["type"].as_str() {
                    Some("message") if replaying => history.push(frame),
                    Some("resumed") if replaying => {
                        if frame["more"].as_bool() == Some(true) {
                            let after = frame["up_to"].as_u64().unwrap_or(0);
                            sink.send(Message::text(json!({"type": "resume", "after": after, "limit": 500}).to_string())).await?;
                        } else {
                            replaying = false;
                            let skip = history.len().saturating_sub(HISTORY_SHOWN as usize);
                            for message in &history[skip..] {
                                print_message(message);
                            }
                        }
                    }
                    Some("delta") => {
                        if !streaming {
                            print!("twin> ");
                            streaming = true;
                        }
                        print!("{}", frame["text"].as_str().unwrap_or_default());
                        let _ = std::io::stdout().flush();
                    }
                    Some("message") if frame["origin"] != "user" => {
                        if streaming {
                            println!();
                            streaming = false;
                        } else {
                            print_message(&frame);
                        }
                    }
                    Some("error") => eprintln!("error ({}): {}", frame["code"].as_str().unwrap_or("?"), frame["message"].as_str().unwrap_or("")),
                    _ => {}
                }
            }
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let text = line.trim();
                if text.is_empty() {
                    continue;
                }
                let frame = json!({"type": "message", "id": Uuid::new_v4().to_string(), "text": text});
                sink.send(Message::text(frame.to_string())).await?;
            }
        }
    }
    let _ = sink.send(Message::Close(None)).await;
    Ok(())
}

fn print_message(message: &Value) {
    let who = match message["origin"].as_str() {
        Some("user") => "you",
        Some(origin) => origin,
        None => "?",
    };
    println!("{who}> {}", message["text"].as_str().unwrap_or_default());
    // Choices of a program question: type the number or the label (the program accepts both).
    if let Some(choices) = message["choices"].as_array() {
        for (n, choice) in choices.iter().enumerate() {
            println!("      {}. {}", n + 1, choice["label"].as_str().unwrap_or_default());
        }
    }
}

/// `http://host:port` → `ws://host:port/v1/chat` (and https → wss).
fn websocket_url(base: &str) -> anyhow::Result<String> {
    let base = base.trim_end_matches('/');
    let rest = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_owned()
    } else {
        format!("ws://{base}")
    };
    Ok(format!("{rest}/v1/chat"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_addresses_become_chat_socket_addresses() {
        assert_eq!(super::websocket_url("http://127.0.0.1:8080").unwrap(), "ws://127.0.0.1:8080/v1/chat");
        assert_eq!(super::websocket_url("https://twin.example/").unwrap(), "wss://twin.example/v1/chat");
        assert_eq!(super::websocket_url("localhost:9").unwrap(), "ws://localhost:9/v1/chat");
    }
}
