//! The REST API's reads and the nudge cancel (`twin_store::admin`), on both backends, each on a
//! fresh database: pages stay in their tenant, cursors neither skip nor repeat, and a cancelled
//! nudge can no longer be claimed while a claimed one cannot be cancelled.

#![allow(clippy::unwrap_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use twin_engine::UserId;
use twin_engine::ports::{ConversationStore, CreatorStore, NudgeStore};
use twin_store::testing::{Kind, TestDb};
use twin_store::{ConversationFilter, NudgeCancel};

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Postgres).await } )*
        }
    };
}

contract!(
    conversation_pages_stay_in_their_tenant_and_follow_their_cursor,
    nudge_pages_and_cancels_stay_in_their_tenant,
    a_claimed_nudge_cannot_be_cancelled_and_a_cancelled_one_cannot_be_claimed,
    creators_are_listed_by_slug_and_found_by_version,
);

/// Alice has users u1..u3 (each with a message and a pending nudge), Bob has u1.
async fn seeded(kind: Kind) -> TestDb {
    let db = TestDb::new(kind).await;
    let (alice, bob) = (creator("alice"), creator("bob"));
    db.store.put_creator(&profile("alice", "Alice"), &[], &[]).await.unwrap();
    db.store.put_creator(&profile("bob", "Bob"), &[], &[]).await.unwrap();
    let mut records = Vec::new();
    for (tenant, user, due) in [(alice, "u1", 1_000), (alice, "u2", 2_000), (alice, "u3", 3_000), (bob, "u1", 500)] {
        records.push(conversation_record(tenant, user, 1));
        records.push(record(user_message(tenant, user, 1, &format!("{user}-c1"))));
        records.push(scheduled(&nudge(tenant, user, 1, due)));
    }
    db.store.commit(&records).await.unwrap();
    db
}

async fn conversation_pages_stay_in_their_tenant_and_follow_their_cursor(kind: Kind) {
    let db = seeded(kind).await;
    let (alice, bob) = (creator("alice"), creator("bob"));
    let first = db.store.conversations_page(alice, &ConversationFilter::ById { after: None }, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest =
        db.store.conversations_page(alice, &ConversationFilter::ById { after: Some(first[1].id) }, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    let mut ids: Vec<_> = first.iter().chain(&rest).map(|c| c.id).collect();
    let sorted = {
        let mut s = ids.clone();
        s.sort();
        s
    };
    assert_eq!(ids, sorted, "pages come in id order");
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(first.iter().chain(&rest).all(|c| c.last_seq.0 == 1 && c.last_activity.is_some()));

    let users = db.store.conversations_page(alice, &ConversationFilter::ByUser { after: None }, 10).await.unwrap();
    let names: Vec<&str> = users.iter().map(|c| c.user.as_str()).collect();
    assert_eq!(names, ["u1", "u2", "u3"]);
    let after = UserId::parse("u1").unwrap();
    let later =
        db.store.conversations_page(alice, &ConversationFilter::ByUser { after: Some(after) }, 10).await.unwrap();
    assert_eq!(later.len(), 2);

    // Bob's u1 is Bob's: found by id only as Bob.
    let bobs = conversation(bob, "u1");
    assert!(db.store.conversations_page(alice, &ConversationFilter::Id(bobs), 1).await.unwrap().is_empty());
    let found = db.store.conversations_page(bob, &ConversationFilter::Id(bobs), 1).await.unwrap();
    assert_eq!(found.len(), 1);
    let alices_u1 =
        db.store.conversations_page(alice, &ConversationFilter::User(UserId::parse("u1").unwrap()), 1).await;
    assert_eq!(alices_u1.unwrap()[0].id, conversation(alice, "u1"));
}

async fn nudge_pages_and_cancels_stay_in_their_tenant(kind: Kind) {
    let db = seeded(kind).await;
    let (alice, bob) = (creator("alice"), creator("bob"));
    let page = db.store.nudges_page(alice, "pending", None, 2).await.unwrap();
    let dues: Vec<i64> = page.iter().map(|n| n.due_at.millis()).collect();
    assert_eq!(dues, [1_000, 2_000]);
    let last = page.last().unwrap();
    let rest = db.store.nudges_page(alice, "pending", Some((last.due_at, last.id)), 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].due_at.millis(), 3_000);

    // Alice cannot cancel Bob's nudge; Bob's stays pending.
    let bobs = nudge(bob, "u1", 1, 500);
    assert_eq!(db.store.cancel_nudge(alice, bobs.id, at(0)).await.unwrap(), NudgeCancel::NotFound);
    assert_eq!(db.store.nudges_page(bob, "pending", None, 10).await.unwrap().len(), 1);

    // Alice cancels her own: it moves from pending to cancelled, and a second cancel finds nothing.
    let own = nudge(alice, "u2", 1, 2_000);
    let cancelled = db.store.cancel_nudge(alice, own.id, at(0)).await.unwrap();
    assert_eq!(cancelled, NudgeCancel::Cancelled { conversation: own.conversation, user: own.user.clone() });
    assert_eq!(db.store.nudges_page(alice, "pending", None, 10).await.unwrap().len(), 2);
    let listed = db.store.nudges_page(alice, "cancelled", None, 10).await.unwrap();
    assert_eq!(listed.iter().map(|n| n.id).collect::<Vec<_>>(), [own.id]);
    assert_eq!(db.store.cancel_nudge(alice, own.id, at(0)).await.unwrap(), NudgeCancel::NotFound);
    // The scheduler no longer sees it.
    let due = db.store.pending_before(at(10_000), at(0), 100).await.unwrap();
    assert!(due.iter().all(|n| n.id != own.id));
}

async fn a_claimed_nudge_cannot_be_cancelled_and_a_cancelled_one_cannot_be_claimed(kind: Kind) {
    let db = seeded(kind).await;
    let alice = creator("alice");
    let claimed = nudge(alice, "u1", 1, 1_000);
    assert_eq!(db.store.claim(&[claimed.id], at(1_000), at(61_000)).await.unwrap().len(), 1);
    assert_eq!(db.store.cancel_nudge(alice, claimed.id, at(2_000)).await.unwrap(), NudgeCancel::InFlight);
    // Once the lease has expired, the claim holds nothing and the cancel goes through.
    assert!(matches!(
        db.store.cancel_nudge(alice, claimed.id, at(62_000)).await.unwrap(),
        NudgeCancel::Cancelled { .. }
    ));

    let other = nudge(alice, "u3", 1, 3_000);
    assert!(matches!(db.store.cancel_nudge(alice, other.id, at(0)).await.unwrap(), NudgeCancel::Cancelled { .. }));
    assert!(db.store.claim(&[other.id], at(3_000), at(63_000)).await.unwrap().is_empty());
}

async fn creators_are_listed_by_slug_and_found_by_version(kind: Kind) {
    let db = seeded(kind).await;
    let page = db.store.creators_page(None, 1).await.unwrap();
    assert_eq!(page, [("alice".to_owned(), 1)]);
    let rest = db.store.creators_page(Some("alice"), 10).await.unwrap();
    assert_eq!(rest, [("bob".to_owned(), 1)]);
    assert_eq!(db.store.creator_version(creator("bob")).await.unwrap(), Some(1));
    assert_eq!(db.store.creator_version(creator("nobody")).await.unwrap(), None);
}
