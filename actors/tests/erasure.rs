//! GDPR erasure through the engine: the erasure is serialised with the conversation's own events,
//! so nothing the engine holds in memory writes the erased data back, and events that arrive while
//! it runs wait for the fresh conversation that follows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::Ordering;

use support::*;
use twin_actors::EngineError;
use twin_engine::{Event, Origin, Seq};

#[tokio::test]
async fn an_erased_conversation_starts_afresh_and_events_routed_meanwhile_wait_for_it() {
    let h = Harness::start().await;
    let key = h.key("alice");
    h.say(&key, "c0", "first").await;
    h.until("the first reply", |h| h.finals(&key).len() == 1).await;
    // A reply in flight when the erasure starts: the actor holds it and would write it back.
    h.llm.hold.store(true, Ordering::SeqCst);
    h.say(&key, "c1", "second").await;
    h.until("the second message is stored and its reply started", |h| {
        h.acks(&key).contains(&("c1".to_owned(), 3)) && h.llm.started.load(Ordering::SeqCst) == 2
    })
    .await;

    let (started, erasing) = tokio::sync::oneshot::channel::<()>();
    let (finish, finishing) = tokio::sync::oneshot::channel::<()>();
    let store = h.store.clone();
    let engine = h.engine.clone();
    let (erase_key, id) = (key.clone(), key.id());
    let erasure = tokio::spawn(async move {
        engine
            .erase_user(&erase_key, async move {
                started.send(()).unwrap();
                finishing.await.unwrap();
                store.erase(id);
            })
            .await
    });
    erasing.await.unwrap();
    // The old actor is gone and its reply aborted; this event waits in the fenced slot.
    h.say(&key, "c2", "after").await;
    assert!(h.engine.inspect(&key).await.is_none(), "no actor runs while the erasure does");
    assert!(!h.acks(&key).iter().any(|(id, _)| id == "c2"), "held until the erasure ends");
    finish.send(()).unwrap();
    erasure.await.unwrap().unwrap();
    h.llm.release();

    h.until("the waiting message is answered", |h| h.acks(&key).contains(&("c2".to_owned(), 1))).await;
    h.until("its reply", |h| h.store.messages(key.id()).len() == 2).await;
    let stored = h.store.messages(key.id());
    assert_eq!(stored[0].text, "after");
    assert_eq!((stored[0].seq, stored[1].seq), (Seq(1), Seq(2)), "a fresh conversation");
    assert_eq!(stored[1].origin, Origin::Twin);
    assert!(!stored.iter().any(|m| m.text.contains("first") || m.text.contains("second")), "{stored:?}");
    assert_eq!(h.store.header(key.id()).unwrap().version, 1, "created anew, not moved on from the erased one");
}

#[tokio::test]
async fn erasing_a_creator_stops_its_conversations_and_refuses_its_events_meanwhile() {
    let h = Harness::start().await;
    let key = h.key("alice");
    h.say(&key, "c0", "hello").await;
    h.until("the reply", |h| h.finals(&key).len() == 1).await;
    assert!(h.engine.inspect(&key).await.is_some());

    let (started, erasing) = tokio::sync::oneshot::channel::<()>();
    let (finish, finishing) = tokio::sync::oneshot::channel::<()>();
    let (store, engine, creator) = (h.store.clone(), h.engine.clone(), h.creator);
    let erasure = tokio::spawn(async move {
        engine
            .erase_creator(creator, async move {
                started.send(()).unwrap();
                finishing.await.unwrap();
                store.erase_creator(creator);
            })
            .await
    });
    erasing.await.unwrap();
    assert!(h.engine.inspect(&key).await.is_none(), "its conversations are stopped");
    let refused = h.engine.route(&key, Event::Recovered).await;
    assert!(matches!(refused, Err(EngineError::Unavailable(_))), "{refused:?}");
    finish.send(()).unwrap();
    erasure.await.unwrap().unwrap();

    let gone = h.engine.route(&h.key("bob"), Event::Recovered).await;
    assert!(matches!(gone, Err(EngineError::UnknownCreator(_))), "the creator is gone: {gone:?}");
    assert!(h.store.messages(key.id()).is_empty());
}
