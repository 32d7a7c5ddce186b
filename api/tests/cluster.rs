//! Several `twin serve` processes over one PostgreSQL database and one Redis (cluster mode): users
//! whose messages hit random nodes, a node killed under load, a node paused and one cut off from
//! the databases, and a rolling restart. After each, the store must hold every acknowledged
//! message at the seq its client saw, with no gap and no message answered twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster_support;
mod support;

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use cluster_support::{
    Cluster, LEASE_MS, Proxy, chat_through_random_nodes, check_store, exchange, exchange_until, owner_of,
};

/// How long a takeover or a rejoin may take before a test fails (20 leases).
const WITHIN: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_serve_users_through_any_node_with_one_actor_per_conversation() {
    let cluster = Cluster::start(3).await;
    let ledger = chat_through_random_nodes(cluster.addrs.clone(), 12, 6, "random", Duration::ZERO).await;
    assert_eq!(ledger.acked.len(), 72);
    assert_eq!(ledger.retries, 0, "nothing failed while the cluster was stable");
    check_store(&cluster.db, &ledger).await;
    // One actor per conversation across the cluster: each of the 12 was started once, somewhere.
    let spawns = cluster.metric_sum("twin_conversation_spawns_total").await;
    assert_eq!(spawns, 12.0, "each conversation started once in the whole cluster");
    let forwards = cluster.metric_sum("twin_cluster_forwards_total").await;
    assert!(forwards > 0.0, "messages that reached a node other than the owner were forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_conversations_move_to_the_others_and_nothing_acknowledged_is_lost() {
    let mut cluster = Cluster::start(3).await;
    let addrs = cluster.addrs.clone();
    let load = tokio::spawn(chat_through_random_nodes(addrs, 9, 12, "kill", Duration::from_millis(50)));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = cluster.kill("node2").await;
    // The killed node's conversations are served again once the others drop it from the live set.
    let user = (0..100).map(|u| format!("probe{u}")).find(|u| owner_of(u, &cluster_ids(3)) == "node2").unwrap();
    let node1 = cluster.addr("node1");
    let mut attempt = 0;
    let failover = loop {
        attempt += 1;
        let id = format!("{user}-probe{attempt}");
        match exchange(&node1, &user, &id, "are you there?", Duration::from_secs(5)).await {
            Ok(_) => break killed_at.elapsed(),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        assert!(killed_at.elapsed() < Duration::from_secs(20), "the probe never went through");
    };
    eprintln!("failover: a conversation of the killed node answered again after {failover:?} (lease {LEASE_MS} ms)");
    assert!(failover < Duration::from_millis(LEASE_MS * 5), "failover took {failover:?}");
    let ledger = load.await.unwrap();
    cluster.wait_formed().await;
    check_store(&cluster.db, &ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_nothing() {
    let mut cluster = Cluster::start(3).await;
    let addrs = cluster.addrs.clone();
    let load = tokio::spawn(chat_through_random_nodes(addrs, 6, 30, "roll", Duration::from_millis(100)));
    for (old, new) in [("node1", "node4"), ("node2", "node5"), ("node3", "node6")] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        cluster.stop(old).await;
        cluster.start_node(new, &[]).await;
        cluster.wait_formed().await;
    }
    let ledger = load.await.unwrap();
    check_store(&cluster.db, &ledger).await;
    eprintln!("rolling restart: {} messages, {} retried", ledger.acked.len(), ledger.retries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_is_replaced_and_its_late_writes_are_refused() {
    let cluster = Cluster::start(3).await;
    let ids = cluster_ids(3);
    let user = (0..100).map(|u| format!("pause{u}")).find(|u| owner_of(u, &ids) == "node3").unwrap();
    let node3 = cluster.addr("node3");
    exchange(&node3, &user, "before", "hello", Duration::from_secs(5)).await.unwrap();
    // A socket on node3, connected before the pause: what it sends waits in the kernel.
    let url = format!("ws://{node3}/v1/chat?token={}", cluster_support::token(&user));
    let (mut stale, _) = tokio_tungstenite::connect_async(url).await.unwrap();

    // node3 freezes (a long GC pause, a stopped VM) holding the conversation in memory.
    let pid = cluster.pid("node3");
    cluster_support::signal(pid, "-STOP");
    let paused_at = Instant::now();
    let late = json!({"type": "message", "id": "late", "text": "written to a frozen node"});
    stale.send(Message::text(late.to_string())).await.unwrap();
    let node1 = cluster.addr("node1");
    let during =
        exchange_until(&node1, &user, "during", "still there?", WITHIN, "nobody took the conversation over").await;
    eprintln!("pause: another node answered after {:?}", paused_at.elapsed());

    // It wakes up with the conversation in memory and reads the late message: whatever it tries
    // to write under its old claim is refused (fenced), so the message is refused, not acked.
    cluster_support::signal(pid, "-CONT");
    let answer = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(Ok(frame)) = stale.next().await {
            let Message::Text(text) = frame else { continue };
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["id"] == "late" {
                return frame;
            }
        }
        panic!("the socket closed without an answer to the late message");
    })
    .await
    .expect("the late message is answered");
    assert_eq!(answer["type"], "error", "a node that lost the conversation must not acknowledge: {answer}");
    let fenced = cluster_support::metric(&node3, "twin_cluster_fenced_commits_total").await;
    // Which refusal depends on what the woken node does first: commit with its old claim (the
    // store refuses it: fenced) or notice its lapsed membership (it routes nothing).
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(
        fenced >= 1.0 || message.contains("not a member"),
        "refused for a reason other than fencing or membership: {answer}"
    );
    eprintln!("pause: the woken node's late message was refused ({answer}); fenced commits on it: {fenced}");

    // Once it has rejoined, the client's retry (same id) goes through, exactly once.
    let text = "written to a frozen node";
    let after = exchange_until(&node3, &user, "late", text, WITHIN, "node3 never served again").await;
    assert!(after.ack > during.reply);
    cluster.wait_formed().await;
    let mut ledger = cluster_support::Ledger::default();
    ledger.acked.insert((user.clone(), "during".to_owned()), during.ack);
    ledger.acked.insert((user.clone(), "late".to_owned()), after.ack);
    check_store(&cluster.db, &ledger).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_redis_and_postgres_stops_owning_and_recovers_when_the_link_returns() {
    let mut cluster = Cluster::start(2).await;
    let redis = Proxy::start("127.0.0.1:6379").await;
    let postgres = Proxy::start("127.0.0.1:5432").await;
    let database = cluster.db.url.replace("127.0.0.1:5432", &postgres.addr);
    let redis_url = format!("redis://{}", redis.addr);
    cluster.start_node_with("node3", &database, &redis_url, &[]).await;
    cluster.wait_formed().await;
    let ids = cluster_ids(3);
    let user = (0..100).map(|u| format!("cut{u}")).find(|u| owner_of(u, &ids) == "node3").unwrap();
    let node3 = cluster.addr("node3");
    let node1 = cluster.addr("node1");
    exchange(&node1, &user, "before", "hello", Duration::from_secs(5)).await.unwrap();

    redis.cut();
    postgres.cut();
    let cut_at = Instant::now();
    // The proxy notices within 20 ms; a message sent before that is still node3's to handle.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The others take its conversations over once its lease has run out...
    let during = exchange_until(&node1, &user, "during", "anyone?", WITHIN, "nobody took the conversation over").await;
    eprintln!("partition: another node answered after {:?}", cut_at.elapsed());
    cluster.dump_logs();
    // ...and the cut-off node refuses work instead of answering from a stale view.
    let refused = exchange(&node3, &user, "refused", "and you?", Duration::from_secs(3)).await;
    assert!(refused.is_err(), "a node without Redis and PostgreSQL must not serve: {refused:?}");
    let ready = reqwest::get(format!("http://{node3}/readyz")).await.unwrap().status();
    assert_eq!(ready.as_u16(), 503, "the cut-off node says it is not ready");

    redis.restore();
    postgres.restore();
    cluster.wait_formed().await;
    let after =
        exchange_until(&node3, &user, "after", "back?", Duration::from_secs(30), "node3 never served again").await;
    assert!(after.ack > during.reply);
    let mut ledger = cluster_support::Ledger::default();
    ledger.acked.insert((user.clone(), "during".to_owned()), during.ack);
    ledger.acked.insert((user.clone(), "after".to_owned()), after.ack);
    check_store(&cluster.db, &ledger).await;
}

fn cluster_ids(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("node{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_human_writing_through_another_node_reaches_the_user_s_sockets_on_every_node() {
    let cluster = Cluster::start(2).await;
    let user = (0..100).map(|u| format!("human{u}")).find(|u| owner_of(u, &cluster_ids(2)) == "node2").unwrap();
    let (node1, node2) = (cluster.addr("node1"), cluster.addr("node2"));
    exchange(&node2, &user, "hello", "hello", Duration::from_secs(5)).await.unwrap();
    // The user has a socket on the owner and one on the other node.
    let mut sockets = Vec::new();
    for addr in [&node1, &node2] {
        let url = format!("ws://{addr}/v1/chat?token={}", cluster_support::token(&user));
        sockets.push(tokio_tungstenite::connect_async(url).await.unwrap().0);
    }

    // The creator writes through node1, which does not own the conversation: the command is
    // forwarded to node2 and answered once its message is committed.
    let creator = twin_engine::Slug::parse(cluster_support::CREATOR).unwrap().creator_id();
    let keys = twin_api::auth::TokenKeys::from_secret(cluster_support::SECRET.as_bytes(), "twin", "twin");
    let staff = keys
        .mint(
            creator,
            &twin_engine::UserId::parse("maya").unwrap(),
            twin_api::auth::Role::Creator,
            Duration::from_secs(600),
        )
        .unwrap();
    let conversation = cluster_support::conversation_of(&user).0;
    let url = format!("http://{node1}/v1/creators/{}/conversations/{conversation}/messages", cluster_support::CREATOR);
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(staff)
        .json(&json!({"text": "Maya here, how is the week going?", "client_id": "h1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201, "{:?}", response.text().await);
    let sent: Value = response.json().await.unwrap();
    let seq = sent["seq"].as_u64().unwrap();

    for (index, socket) in sockets.iter_mut().enumerate() {
        let frame = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(frame)) = socket.next().await {
                let Message::Text(text) = frame else { continue };
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "message" && frame["origin"] == "human" {
                    return frame;
                }
            }
            panic!("socket {index} closed");
        })
        .await
        .unwrap_or_else(|_| panic!("socket {index} never got the human's message"));
        assert_eq!(frame["seq"].as_u64(), Some(seq));
        assert_eq!(frame["text"], "Maya here, how is the week going?");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nudges_of_a_killed_node_fire_once_on_the_others() {
    let mut cluster = Cluster::start_with(3, Some("4s")).await;
    let users: Vec<String> = (0..9).map(|u| format!("nudged{u}")).collect();
    for (index, user) in users.iter().enumerate() {
        let addr = cluster.addr(&format!("node{}", index % 3 + 1));
        exchange(&addr, user, "hello", "hello", Duration::from_secs(5)).await.unwrap();
    }
    let owned_by_killed = users.iter().filter(|u| owner_of(u, &cluster_ids(3)) == "node2").count();
    assert!(owned_by_killed > 0, "some conversation belongs to the node about to die");
    // node2 dies before its users' inactivity nudges fall due; they are in the nudge table, and
    // the survivors' schedulers claim them (once each) and route them to the new owners.
    cluster.kill("node2").await;
    let mut connection = cluster.db.superuser().await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let nudged: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
            "SELECT conversation_id, count(*) FROM messages WHERE origin = 'nudge' GROUP BY conversation_id",
        )
        .fetch_all(&mut connection)
        .await
        .unwrap();
        assert!(nudged.iter().all(|(_, n)| *n == 1), "a nudge fired twice: {nudged:?}");
        if nudged.len() == users.len() {
            break;
        }
        assert!(Instant::now() < deadline, "only {} of {} users were nudged", nudged.len(), users.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // And no second one follows (a stale claim, a replayed stream entry).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let twice: Option<(uuid::Uuid,)> = sqlx::query_as(
        "SELECT conversation_id FROM messages WHERE origin = 'nudge' GROUP BY conversation_id HAVING count(*) > 1",
    )
    .fetch_optional(&mut connection)
    .await
    .unwrap();
    assert_eq!(twice, None, "every user is nudged exactly once");
}
