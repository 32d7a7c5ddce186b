//! The real actor tree on in-memory ports, time from a virtual clock.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;

use support::{Harness, IDLE_TTL};
use twin_engine::ports::{ErrorCode, Outbound};
use twin_engine::{Origin, Seq};

#[tokio::test]
async fn a_message_is_acknowledged_and_answered_only_after_each_is_committed() {
    let h = Harness::start().await;
    let key = h.key("u1");
    h.say(&key, "m1", "hello").await;
    h.until("the reply", |h| h.finals(&key).len() == 1).await;

    assert_eq!(h.acks(&key), vec![("m1".to_owned(), 1)]);
    let reply = &h.finals(&key)[0];
    assert_eq!((reply.seq, reply.origin, reply.text.as_str()), (Seq(2), Origin::Twin, "you said: hello"));
    let durable: Vec<_> = h.seen(&key).into_iter().filter_map(|s| s.durable).collect();
    assert!(!durable.is_empty() && durable.iter().all(|d| *d), "every ack and final message was committed first");
    let stored = h.store.messages(key.id());
    assert!(stored[1].consistency.is_some(), "the twin's reply is stored with its consistency score");
    assert!(stored[0].consistency.is_none(), "a user's message is not scored");
    let deltas = h.seen(&key).into_iter().filter(|s| matches!(s.out, Outbound::Delta { .. })).count();
    assert!(deltas >= 1, "the reply streamed previews");
}

#[tokio::test]
async fn concurrent_first_messages_start_exactly_one_actor_and_get_dense_seqs() {
    let h = Harness::start().await;
    let key = h.key("u1");
    h.llm.hold.store(true, Ordering::SeqCst);
    let sends = (0..50).map(|i| {
        let (h, key) = (&h, key.clone());
        async move { h.say(&key, &format!("m{i}"), "hi").await }
    });
    futures::future::join_all(sends).await;
    h.until("50 acks", |h| h.acks(&key).len() == 50).await;
    assert_eq!(h.engine.live_conversations(), 1);
    let mut seqs: Vec<u64> = h.acks(&key).into_iter().map(|(_, s)| s).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    h.llm.release();
}

#[tokio::test]
async fn a_retried_client_id_gets_the_same_ack_and_one_reply() {
    let h = Harness::start().await;
    let key = h.key("u1");
    h.say(&key, "m1", "hello").await;
    h.until("the reply", |h| h.finals(&key).len() == 1).await;
    h.say(&key, "m1", "hello").await;
    h.until("the second ack", |h| h.acks(&key).len() == 2).await;
    assert_eq!(h.acks(&key), vec![("m1".to_owned(), 1), ("m1".to_owned(), 1)]);
    assert_eq!(h.store.messages(key.id()).len(), 2, "one user message, one reply");
    assert_eq!(h.llm.started.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_idle_conversation_passivates_and_the_next_message_rehydrates_it() {
    let h = Harness::start().await;
    let key = h.key("u1");
    h.say(&key, "m1", "hello").await;
    h.until("the reply", |h| h.finals(&key).len() == 1).await;

    h.engine.sweep_idle();
    assert_eq!(h.engine.live_conversations(), 1, "not idle yet by the virtual clock");
    h.clock.advance_millis(IDLE_TTL.as_millis() as i64 + 1);
    h.engine.sweep_idle();
    h.until("passivation", |h| h.engine.live_conversations() == 0).await;

    h.say(&key, "m2", "again").await;
    h.until("the second reply", |h| h.finals(&key).len() == 2).await;
    assert_eq!(h.acks(&key).last(), Some(&("m2".to_owned(), 3)), "seq continues from the store");
    assert_eq!(h.finals(&key)[1].seq, Seq(4));
    // The retry of a message from before passivation is still recognised.
    h.say(&key, "m1", "hello").await;
    h.until("the ack of the retry", |h| h.acks(&key).len() == 3).await;
    assert_eq!(h.acks(&key)[2], ("m1".to_owned(), 1));
}

#[tokio::test]
async fn events_routed_during_passivation_are_never_lost() {
    let h = Harness::start().await;
    let key = h.key("u1");
    let mut sent = 0;
    for round in 0..30 {
        h.say(&key, &format!("warm{round}"), "x").await;
        sent += 1;
        h.until("replies", |h| h.finals(&key).len() == sent).await;
        h.clock.advance_millis(IDLE_TTL.as_millis() as i64 + 1);
        // Race the hand-over: the sweep and new messages at the same moment.
        h.engine.sweep_idle();
        h.say(&key, &format!("race{round}"), "y").await;
        sent += 1;
        h.until("replies after the race", |h| h.finals(&key).len() == sent).await;
    }
    assert_eq!(h.acks(&key).len(), sent);
    let stored = h.store.messages(key.id());
    assert_eq!(stored.len(), sent * 2);
    assert!(stored.iter().enumerate().all(|(i, m)| m.seq == Seq(i as u64 + 1)), "seqs are dense");
}

#[tokio::test]
async fn a_crashed_conversation_restarts_from_the_store_and_answers_what_it_owed() {
    let h = Harness::start().await;
    let key = h.key("u1");
    h.llm.hold.store(true, Ordering::SeqCst);
    h.say(&key, "m1", "are you there?").await;
    h.until("the ack", |h| h.acks(&key).len() == 1).await;
    assert!(h.engine.crash_conversation(&key, "injected"));
    h.llm.release();
    h.until("the owed reply", |h| h.finals(&key).len() == 1).await;
    assert_eq!(h.finals(&key)[0].seq, Seq(2));
    h.say(&key, "m2", "and now?").await;
    h.until("the next reply", |h| h.finals(&key).len() == 2).await;
    assert_eq!(h.engine.live_conversations(), 1);
    assert_eq!(h.store.messages(key.id()).len(), 4);
}

#[tokio::test]
async fn a_failed_commit_is_reported_and_the_retry_is_stored_once() {
    let h = Harness::start().await;
    let key = h.key("u1");
    h.store.fail_commits.store(1, Ordering::SeqCst);
    h.say(&key, "m1", "hello").await;
    h.until("an error", |h| h.seen(&key).iter().any(|s| matches!(s.out, Outbound::Error { .. }))).await;
    let error = h.seen(&key).into_iter().find(|s| matches!(s.out, Outbound::Error { .. })).unwrap();
    assert!(
        matches!(error.out, Outbound::Error { code: ErrorCode::Unavailable, client_id: Some(ref c), .. } if c.as_str() == "m1")
    );
    assert!(h.acks(&key).is_empty(), "no ack for what was not committed");

    h.say(&key, "m1", "hello").await;
    h.until("the reply", |h| h.finals(&key).len() == 1).await;
    assert_eq!(h.acks(&key), vec![("m1".to_owned(), 1)]);
}

#[tokio::test]
async fn a_failed_reply_is_reported_and_nothing_is_stored_for_it() {
    let h = Harness::start().await;
    let key = h.key("u1");
    h.llm.fail.store(true, Ordering::SeqCst);
    h.say(&key, "m1", "hello").await;
    h.until("an error", |h| {
        h.seen(&key).iter().any(|s| matches!(s.out, Outbound::Error { code: ErrorCode::Unavailable, .. }))
    })
    .await;
    assert_eq!(h.store.messages(key.id()).len(), 1);
    assert!(h.engine.inspect(&key).await.unwrap().pending_reply.is_none());
}

#[tokio::test]
async fn an_unknown_creator_is_refused() {
    let h = Harness::start().await;
    let key = twin_actors::ConversationKey {
        creator: twin_engine::Slug::parse("nobody").unwrap().creator_id(),
        user: twin_engine::UserId::parse("u1").unwrap(),
    };
    let event = twin_engine::Event::UserMessage {
        client_id: twin_engine::ClientMsgId::parse("m1").unwrap(),
        text: "hi".into(),
        session: None,
        channel: None,
    };
    assert!(matches!(h.engine.route(&key, event).await, Err(twin_actors::EngineError::UnknownCreator(_))));
    assert_eq!(h.engine.live_conversations(), 0);
}

#[tokio::test]
async fn shutdown_lets_conversations_finish_and_flushes_the_writer() {
    let h = Harness::start().await;
    let keys: Vec<_> = (0..20).map(|i| h.key(&format!("u{i}"))).collect();
    for key in &keys {
        h.say(key, "m1", "hello").await;
    }
    h.engine.shutdown(std::time::Duration::from_secs(5)).await;
    for key in &keys {
        assert!(h.store.committed(key.id(), Seq(1)), "the routed message was committed before shutdown returned");
    }
    assert!(h.engine.route(&keys[0], twin_engine::Event::Recovered).await.is_err());
}

#[tokio::test]
async fn the_engine_reports_itself_failed_when_a_top_level_actor_dies() {
    let h = Harness::start().await;
    let failed = tokio::spawn({
        let engine = h.engine.clone();
        async move { engine.failed().await }
    });
    h.engine.crash_writer();
    let reason = tokio::time::timeout(std::time::Duration::from_secs(10), failed).await.unwrap().unwrap();
    assert!(reason.contains("stopped"), "{reason}");
}

#[tokio::test]
async fn a_reply_whose_commit_failed_is_written_again_after_recovery() {
    let h = Harness::start().await;
    let key = h.key("u1");
    h.llm.hold.store(true, Ordering::SeqCst);
    h.say(&key, "m1", "hello").await;
    h.until("the ack", |h| h.acks(&key).len() == 1).await;
    h.store.fail_commits.store(1, Ordering::SeqCst);
    h.llm.release();
    h.until("the reply after recovery", |h| h.finals(&key).len() == 1).await;
    let told = h
        .seen(&key)
        .iter()
        .any(|s| matches!(&s.out, Outbound::Error { code: ErrorCode::Unavailable, client_id: None, .. }));
    assert!(told, "the user learned that the first reply was not saved");
    assert_eq!(h.finals(&key)[0].seq, Seq(2));
    assert!(h.seen(&key).iter().all(|s| s.durable != Some(false)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_commits_in_flight_every_conversation_stays_dense_and_every_ack_durable() {
    let store = support::MemoryStore::default();
    store.concurrent.store(4, Ordering::SeqCst);
    let h = Harness::start_with(store).await;
    let keys: Vec<_> = (0..40).map(|i| h.key(&format!("u{i}"))).collect();
    for round in 0..5 {
        let sends = keys.iter().map(|key| {
            let h = &h;
            async move { h.say(key, &format!("m{round}"), "hello").await }
        });
        futures::future::join_all(sends).await;
        h.until("every reply of the round", |h| keys.iter().all(|k| h.finals(k).len() == round + 1)).await;
    }
    for key in &keys {
        let stored = h.store.messages(key.id());
        assert_eq!(stored.len(), 10);
        assert!(stored.iter().enumerate().all(|(i, m)| m.seq == Seq(i as u64 + 1)));
        assert!(h.seen(key).iter().all(|s| s.durable != Some(false)), "nothing shown before its commit");
    }
}
