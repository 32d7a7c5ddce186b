//! Kill the server process (SIGKILL) while messages flow: after a restart every acknowledged
//! message is there with the seq its client saw, and no seq a client saw is reused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::Kind;
use support::process::ServerProcess;
use tokio_tungstenite::tungstenite::Message;
use twin_store::testing::TestDb;

const CLIENTS: usize = 8;
/// Acks to collect (over all clients) before the kill.
const ACKS_BEFORE_KILL: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_message_through_sigkill() {
    every_acknowledged_message_survives_sigkill(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_acknowledged_message_through_sigkill() {
    every_acknowledged_message_survives_sigkill(Kind::Postgres).await;
}

async fn start(data_dir: &std::path::Path, database_url: &str) -> ServerProcess {
    ServerProcess::start(data_dir, database_url, &["--demo"], &[]).await
}

fn token(data_dir: &std::path::Path, user: &str) -> String {
    // The development key ring the server keeps in its data dir.
    let keys = twin_api::auth::TokenKeys::from_settings(
        &twin_api::Settings::defaults(&twin_api::settings::Overrides {
            data_dir: Some(data_dir.to_path_buf()),
            ..Default::default()
        })
        .unwrap(),
    )
    .unwrap();
    let creator = twin_engine::Slug::parse("demo").unwrap().creator_id();
    keys.mint(creator, &twin_engine::UserId::parse(user).unwrap(), twin_api::auth::Role::User, Duration::from_secs(600))
        .unwrap()
}

/// What one client saw: its acks (client id → seq) and every durable message frame by seq.
#[derive(Default, Debug)]
struct Seen {
    acks: HashMap<String, u64>,
    messages: HashMap<u64, Value>,
}

/// Sends messages one after another until the connection dies, recording what it saw.
async fn chatter(addr: String, token: String, user: usize) -> Seen {
    let url = format!("ws://{addr}/v1/chat?token={token}");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut seen = Seen::default();
    let mut n = 0;
    'outer: loop {
        let id = format!("u{user}-m{n}");
        n += 1;
        let frame = json!({"type": "message", "id": id, "text": format!("focus question {n}")});
        if socket.send(Message::text(frame.to_string())).await.is_err() {
            break;
        }
        loop {
            let Some(Ok(Message::Text(text))) = socket.next().await else { break 'outer };
            let frame: Value = serde_json::from_str(&text).unwrap();
            match frame["type"].as_str() {
                Some("ack") => {
                    seen.acks.insert(frame["id"].as_str().unwrap().to_owned(), frame["seq"].as_u64().unwrap());
                    if frame["id"] == id.as_str() {
                        continue 'outer;
                    }
                }
                Some("message") => {
                    seen.messages.insert(frame["seq"].as_u64().unwrap(), frame);
                }
                _ => {}
            }
        }
    }
    seen
}

async fn every_acknowledged_message_survives_sigkill(kind: Kind) {
    let db = TestDb::unmigrated(kind).await;
    let data_dir = tempfile::tempdir().unwrap();
    let server = start(data_dir.path(), &db.url).await;

    let tasks: Vec<_> = (0..CLIENTS)
        .map(|user| tokio::spawn(chatter(server.addr.clone(), token(data_dir.path(), &format!("user{user}")), user)))
        .collect();
    // Kill once enough has been acknowledged, by polling the store (acks imply commits).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let count = count_messages(&db).await;
        if count >= ACKS_BEFORE_KILL {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {count} messages stored in a minute");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().await;
    let mut seen = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap());
    }
    let total_acks: usize = seen.iter().map(|s| s.acks.len()).sum();
    assert!(total_acks >= CLIENTS, "clients were acknowledged before the kill");

    let server = start(data_dir.path(), &db.url).await;
    for (user, seen) in seen.iter().enumerate() {
        let url = format!("ws://{}/v1/chat?token={}", server.addr, token(data_dir.path(), &format!("user{user}")));
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let history = resume_all(&mut socket).await;
        let by_seq: HashMap<u64, &Value> = history.iter().map(|m| (m["seq"].as_u64().unwrap(), m)).collect();
        let seqs: Vec<u64> = history.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "user{user}: seqs are dense");
        for (id, seq) in &seen.acks {
            let stored = by_seq.get(seq).unwrap_or_else(|| panic!("user{user}: acked {id} at {seq} is missing"));
            assert_eq!(stored["id"], id.as_str(), "user{user}: seq {seq} holds the acked message");
        }
        for (seq, frame) in &seen.messages {
            let stored = by_seq.get(seq).unwrap_or_else(|| panic!("user{user}: message at {seq} is missing"));
            assert_eq!(stored["text"], frame["text"], "user{user}: seq {seq} was not reused");
        }
        // The next message continues after everything stored.
        socket.send(Message::text(json!({"type": "message", "id": "after", "text": "hi"}).to_string())).await.unwrap();
        let ack = loop {
            let Some(Ok(Message::Text(text))) = socket.next().await else { panic!("socket closed") };
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["type"] == "ack" {
                break frame;
            }
        };
        assert!(ack["seq"].as_u64().unwrap() > seqs.len() as u64);
    }
}

async fn resume_all(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut after = 0;
    loop {
        socket.send(Message::text(json!({"type": "resume", "after": after, "limit": 200}).to_string())).await.unwrap();
        loop {
            let Some(Ok(Message::Text(text))) = socket.next().await else { panic!("socket closed during resume") };
            let frame: Value = serde_json::from_str(&text).unwrap();
            match frame["type"].as_str() {
                Some("message") if frame["seq"].as_u64().unwrap() > after => messages.push(frame),
                Some("resumed") => {
                    after = frame["up_to"].as_u64().unwrap();
                    if frame["more"] == false {
                        return messages;
                    }
                    break;
                }
                _ => {}
            }
        }
    }
}

/// Messages stored so far, counted through the store's own connection.
async fn count_messages(db: &TestDb) -> usize {
    match db.kind() {
        Kind::Postgres => {
            use sqlx::Connection;
            let mut admin = db.superuser().await;
            let count: i64 =
                sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&mut admin).await.unwrap_or(0);
            let _ = admin.close().await;
            count as usize
        }
        Kind::Sqlite => {
            use sqlx::Connection;
            let Ok(mut conn) = sqlx::SqliteConnection::connect(&db.url).await else { return 0 };
            let count: i64 =
                sqlx::query_scalar("SELECT count(*) FROM messages").fetch_one(&mut conn).await.unwrap_or(0);
            let _ = conn.close().await;
            count as usize
        }
    }
}
