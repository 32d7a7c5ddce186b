//! The store side of scale-out: conversation ownership (claims, epochs, fenced commits) and the
//! claims that give each outbox entry and inbox item one worker at a time. The same tests against
//! SQLite and PostgreSQL, each on a fresh database, then PostgreSQL's locking and row-level security.

#![allow(clippy::unwrap_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fixtures::*;
use sqlx::{Executor, PgConnection};
use twin_engine::channel::ChannelKind;
use twin_engine::ports::{
    ChannelStore, ConversationStore, INBOX_LEASE, InboxRow, LoadLimits, NudgeStore, OUTBOX_LEASE, OutboxRow,
    OutboxUpdate, Record, StoreError, lease_until,
};
use twin_engine::{ConversationId, CreatorId, Seq};
use twin_store::testing::{Kind, TestDb};

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
    every_claim_returns_a_larger_epoch,
    a_live_holder_blocks_a_claim_until_it_releases_dies_or_is_forced,
    a_commit_fenced_with_an_old_epoch_is_refused_and_writes_nothing,
    one_stale_fence_refuses_a_whole_batch_of_two_tenants,
    a_claim_of_another_creators_conversation_is_refused,
    erasing_a_user_or_a_creator_removes_their_ownership,
    two_concurrent_outbox_scans_never_return_one_entry,
    an_outbox_claim_ends_with_its_attempt_or_its_lease,
    two_concurrent_inbox_sweeps_never_return_one_item,
);

const T0: i64 = 1_700_000_000_000;
const ALL: LoadLimits = LoadLimits { history: 100, client_ids: 100 };

fn outbox_lease_ms() -> i64 {
    lease_until(at(0), OUTBOX_LEASE).millis()
}

fn inbox_lease_ms() -> i64 {
    lease_until(at(0), INBOX_LEASE).millis()
}

fn nodes(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn fence(creator: CreatorId, user: &str, epoch: u64) -> Record {
    Record::Fence { creator, conversation: conversation(creator, user), epoch }
}

async fn claim(db: &TestDb, creator: CreatorId, user: &str, node: &str, live: &[&str], force: bool) -> Option<u64> {
    db.store.claim_owner(creator, conversation(creator, user), node, &nodes(live), force).await.unwrap()
}

/// A commit of `user`'s conversation at `version` with the message `seq`, fenced with `epoch`.
fn fenced_turn(creator: CreatorId, user: &str, epoch: u64, version: u64, seq: u64) -> Vec<Record> {
    vec![
        fence(creator, user, epoch),
        conversation_record(creator, user, version),
        record(user_message(creator, user, seq, &format!("c{seq}"))),
    ]
}

async fn every_claim_returns_a_larger_epoch(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let first = claim(&db, a, "u1", "n1", &["n1"], false).await.expect("nobody holds it");
    let again = claim(&db, a, "u1", "n1", &["n1"], false).await.expect("its own holder may claim again");
    assert!(again > first, "{again} > {first}");
    let other = claim(&db, a, "u2", "n2", &["n1", "n2"], false).await.unwrap();
    let third = claim(&db, a, "u1", "n2", &[], false).await.unwrap();
    assert!(third > again && third != other, "{third} after {again}, apart from {other}");
    // Only the last epoch commits.
    let stale = db.store.commit(&fenced_turn(a, "u1", again, 1, 1)).await;
    assert!(matches!(stale, Err(StoreError::Fenced { epoch, .. }) if epoch == again), "{stale:?}");
    db.store.commit(&fenced_turn(a, "u1", third, 1, 1)).await.unwrap();
}

async fn a_live_holder_blocks_a_claim_until_it_releases_dies_or_is_forced(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let both = ["n1", "n2"];
    let e1 = claim(&db, a, "u1", "n1", &both, false).await.unwrap();
    assert_eq!(claim(&db, a, "u1", "n2", &both, false).await, None, "n1 is live and holds it");
    // Refused means unchanged: n1's epoch still commits.
    db.store.commit(&fenced_turn(a, "u1", e1, 1, 1)).await.unwrap();

    // n1 left the live set (it died): it no longer blocks.
    let e2 = claim(&db, a, "u1", "n2", &["n2"], false).await.expect("a dead holder never blocks");
    assert!(e2 > e1);
    assert_eq!(claim(&db, a, "u1", "n1", &both, false).await, None, "now n2 holds it");

    // A release with a stale epoch changes nothing; with the current one it frees the conversation
    // but keeps the epoch, so the releasing writer stays fenced.
    db.store.release_owner(a, conversation(a, "u1"), e1).await.unwrap();
    assert_eq!(claim(&db, a, "u1", "n1", &both, false).await, None, "a stale release leaves n2 holding it");
    db.store.release_owner(a, conversation(a, "u1"), e2).await.unwrap();
    let refused = db.store.commit(&fenced_turn(a, "u1", e1, 2, 2)).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
    let e3 = claim(&db, a, "u1", "n1", &both, false).await.expect("released: anyone may claim it");
    assert!(e3 > e2);

    // Force takes it from a live holder (an operator's handover).
    assert_eq!(claim(&db, a, "u1", "n2", &both, false).await, None);
    let e4 = claim(&db, a, "u1", "n2", &both, true).await.expect("forced");
    assert!(e4 > e3);
    let refused = db.store.commit(&fenced_turn(a, "u1", e3, 2, 2)).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
    db.store.commit(&fenced_turn(a, "u1", e4, 2, 2)).await.unwrap();
}

async fn a_commit_fenced_with_an_old_epoch_is_refused_and_writes_nothing(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let old = claim(&db, a, "u1", "n1", &["n1"], false).await.unwrap();
    db.store.commit(&fenced_turn(a, "u1", old, 1, 1)).await.unwrap();
    let new = claim(&db, a, "u1", "n2", &["n2"], false).await.unwrap();

    // The old owner's next turn, with a nudge and an outbox entry: none of it lands.
    let reply = twin_message(a, "u1", 2);
    let mut stale = fenced_turn(a, "u1", old, 2, 2);
    stale.pop();
    stale.extend([
        record(reply.clone()),
        Record::Outbox(outbox_entry(&reply, ChannelKind::Telegram, "4242")),
        scheduled(&nudge(a, "u1", 1, T0)),
    ]);
    let refused = db.store.commit(&stale).await.unwrap_err();
    let id = conversation(a, "u1");
    assert!(matches!(refused, StoreError::Fenced { conversation, epoch } if conversation == id && epoch == old));
    assert_eq!(
        refused.to_string(),
        format!("conversation {id} is owned by another node now (this writer held epoch {old})")
    );
    let stored = db.store.load(a, id, ALL).await.unwrap().unwrap();
    assert_eq!((stored.header.version, stored.last_seq), (1, Seq(1)), "state and messages unchanged");
    assert!(db.store.outbox_entry(a, id, Seq(2)).await.unwrap().is_none(), "no outbox entry");
    assert!(db.store.pending_of(a, id).await.unwrap().is_empty(), "no nudge");

    // The new owner's commit of the same turn lands.
    let mut current = stale.clone();
    current[0] = fence(a, "u1", new);
    db.store.commit(&current).await.unwrap();
    let stored = db.store.load(a, id, ALL).await.unwrap().unwrap();
    assert_eq!((stored.header.version, stored.last_seq), (2, Seq(2)));

    // A fence for a conversation nobody claimed is refused too, and a commit without fences (a
    // single node) is not checked at all.
    let unclaimed = db.store.commit(&fenced_turn(a, "u2", new, 1, 1)).await;
    assert!(matches!(unclaimed, Err(StoreError::Fenced { .. })), "{unclaimed:?}");
    db.store.commit(&fenced_turn(a, "u2", new, 1, 1)[1..]).await.unwrap();
}

async fn one_stale_fence_refuses_a_whole_batch_of_two_tenants(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let ea = claim(&db, a, "u1", "n1", &["n1"], false).await.unwrap();
    let eb = claim(&db, b, "u1", "n1", &["n1"], false).await.unwrap();
    let eb2 = claim(&db, b, "u1", "n2", &["n2"], false).await.unwrap();
    // A group commit: a's turn is current, b's is stale.
    let mut batch = fenced_turn(a, "u1", ea, 1, 1);
    batch.extend(fenced_turn(b, "u1", eb, 1, 1));
    let refused = db.store.commit(&batch).await;
    assert!(
        matches!(refused, Err(StoreError::Fenced { conversation, epoch }) if conversation == conversation_of(b) && epoch == eb),
        "{refused:?}"
    );
    assert!(db.store.load(a, conversation(a, "u1"), ALL).await.unwrap().is_none(), "nothing of a's turn either");
    assert!(db.store.load(b, conversation(b, "u1"), ALL).await.unwrap().is_none());
    // Retried one by one (what the group-commit writer does), only the stale one fails.
    db.store.commit(&fenced_turn(a, "u1", ea, 1, 1)).await.unwrap();
    db.store.commit(&fenced_turn(b, "u1", eb2, 1, 1)).await.unwrap();
}

fn conversation_of(creator: CreatorId) -> ConversationId {
    conversation(creator, "u1")
}

async fn a_claim_of_another_creators_conversation_is_refused(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let ea = claim(&db, a, "u1", "n1", &["n1", "n2"], false).await.unwrap();
    let theirs = conversation(a, "u1");
    let refused = db.store.claim_owner(b, theirs, "n2", &nodes(&["n1", "n2"]), true).await;
    assert!(matches!(refused, Err(StoreError::Corrupt(_))), "{refused:?}");
    // b can neither release a's conversation nor fence it.
    db.store.release_owner(b, theirs, ea).await.unwrap();
    assert_eq!(claim(&db, a, "u1", "n2", &["n1", "n2"], false).await, None, "n1 still holds it");
    let foreign = Record::Fence { creator: b, conversation: theirs, epoch: ea };
    let refused = db.store.commit(&[foreign]).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
    db.store.commit(&fenced_turn(a, "u1", ea, 1, 1)).await.unwrap();
}

async fn erasing_a_user_or_a_creator_removes_their_ownership(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let user = twin_engine::UserId::parse("u1").unwrap();
    let e1 = claim(&db, a, "u1", "n1", &["n1"], false).await.unwrap();
    db.store.commit(&fenced_turn(a, "u1", e1, 1, 1)).await.unwrap();
    let report = db.store.erase_user(a, &user).await.unwrap();
    assert_eq!(report.removed("conversation_owners"), 1);
    // The former owner's next commit is refused: the conversation has no owner now.
    let refused = db.store.commit(&fenced_turn(a, "u1", e1, 1, 1)).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
    // Claimed again, it never gets an epoch a stale writer may still hold.
    let e2 = claim(&db, a, "u1", "n1", &["n1"], false).await.unwrap();
    assert!(e2 > e1, "{e2} > {e1}");

    let e3 = claim(&db, a, "u2", "n1", &["n1"], false).await.unwrap();
    let report = db.store.erase_creator(a).await.unwrap();
    assert_eq!(report.removed("conversation_owners"), 2, "u1's and u2's");
    let refused = db.store.commit(&[fence(a, "u2", e3)]).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
}

/// Commits one twin reply with an outbox entry in each of `count` conversations of `creator`.
async fn commit_sends(db: &TestDb, creator: CreatorId, count: usize) {
    let mut records = Vec::new();
    for n in 0..count {
        let user = format!("u{n}");
        let reply = twin_message(creator, &user, 2);
        records.extend([
            conversation_record(creator, &user, 1),
            record(user_message(creator, &user, 1, "c1")),
            record(reply.clone()),
            Record::Outbox(outbox_entry(&reply, ChannelKind::Telegram, "4242")),
        ]);
    }
    db.store.commit(&records).await.unwrap();
}

async fn two_concurrent_outbox_scans_never_return_one_entry(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    commit_sends(&db, a, 12).await;
    commit_sends(&db, b, 12).await;
    let now = at(T0 + 10);
    for _ in 0..3 {
        let (one, two) = tokio::join!(db.store.outbox_due(now, 15), db.store.outbox_due(now, 15));
        let (one, two) = (one.unwrap(), two.unwrap());
        let keys = |rows: &[OutboxRow]| -> HashSet<(ConversationId, Seq)> {
            rows.iter().map(|r| (r.entry.conversation, r.entry.seq)).collect()
        };
        let (k1, k2) = (keys(&one), keys(&two));
        assert!(k1.is_disjoint(&k2), "one entry went to both scans");
        assert_eq!(k1.len() + k2.len(), 24, "every due entry went to one of them ({} + {})", k1.len(), k2.len());
        assert!(db.store.outbox_due(now, 100).await.unwrap().is_empty(), "all claimed");
        db.store.outbox_release_claims().await.unwrap();
    }
}

async fn an_outbox_claim_ends_with_its_attempt_or_its_lease(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    commit_sends(&db, a, 3).await;
    let now = T0 + 10;
    let claimed = db.store.outbox_due(at(now), 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(db.store.outbox_due(at(now + 1_000), 10).await.unwrap().is_empty(), "held by the first scan");

    // A retry due at once ends the claim; a part sent renews it; a dead sender's claim lapses.
    let [retried, parted, abandoned] = [&claimed[0].entry, &claimed[1].entry, &claimed[2].entry];
    let retry = OutboxUpdate::Retry { attempts: 1, at: at(now + 1), error: "timeout".to_owned() };
    db.store.outbox_update(a, retried.conversation, retried.seq, &retry, at(now + 1)).await.unwrap();
    let part = OutboxUpdate::PartSent { parts_done: 1, provider_message_id: None };
    let renewed_at = now + outbox_lease_ms() / 2;
    db.store.outbox_update(a, parted.conversation, parted.seq, &part, at(renewed_at)).await.unwrap();
    let due = db.store.outbox_due(at(now + 2), 10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.entry.conversation).collect::<Vec<_>>(), [retried.conversation]);

    // Past the first lease: the abandoned entry comes back (its claim is not held forever), the
    // one whose part went out later is still held, until its renewed lease passes too.
    let after_lease = now + outbox_lease_ms() + 1;
    let due = db.store.outbox_due(at(after_lease), 10).await.unwrap();
    assert_eq!(due.iter().map(|r| r.entry.conversation).collect::<Vec<_>>(), [abandoned.conversation]);
    let due = db.store.outbox_due(at(renewed_at + outbox_lease_ms() + 1), 10).await.unwrap();
    let got: HashSet<ConversationId> = due.iter().map(|r| r.entry.conversation).collect();
    assert!(got.contains(&parted.conversation), "{got:?}");

    // A sent entry lets the next one of its conversation go, unclaimed.
    let later = twin_message(a, "u0", 3);
    db.store
        .commit(&[record(later.clone()), Record::Outbox(outbox_entry(&later, ChannelKind::Telegram, "4242"))])
        .await
        .unwrap();
    db.store.outbox_release_claims().await.unwrap();
    let first = db.store.outbox_due(at(T0 + 10_000_000), 10).await.unwrap();
    let u0 = first.iter().find(|r| r.entry.conversation == later.conversation).unwrap();
    assert_eq!(u0.entry.seq, Seq(2), "the earlier entry goes first");
    assert!(db.store.outbox_due(at(T0 + 10_000_001), 10).await.unwrap().is_empty(), "the later one waits behind it");
    let sent = OutboxUpdate::Sent { provider_message_id: None };
    db.store.outbox_update(a, later.conversation, Seq(2), &sent, at(T0 + 10_000_002)).await.unwrap();
    let next = db.store.outbox_due(at(T0 + 10_000_003), 10).await.unwrap();
    assert_eq!(
        next.iter().map(|r| (r.entry.conversation, r.entry.seq)).collect::<Vec<_>>(),
        [(later.conversation, Seq(3))]
    );
}

async fn two_concurrent_inbox_sweeps_never_return_one_item(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    for (creator, n) in [(a, 0), (b, 1), (a, 2), (b, 3)] {
        let keys: Vec<(String, String)> = (0..5).map(|i| (format!("k{n}-{i}"), "{}".to_owned())).collect();
        db.store.inbox_put(creator, ChannelKind::Telegram, &keys, at(T0 + n)).await.unwrap();
    }
    let late = [("late".to_owned(), "{}".to_owned())];
    let late = db.store.inbox_put(a, ChannelKind::Telegram, &late, at(T0 + 100)).await.unwrap().remove(0);
    let now = at(T0 + 1_000);
    let by = at(T0 + 10);
    let (one, two) = tokio::join!(db.store.inbox_pending(by, now, 15), db.store.inbox_pending(by, now, 15));
    let (one, two) = (one.unwrap(), two.unwrap());
    let ids = |rows: &[InboxRow]| -> HashSet<i64> { rows.iter().map(|r| r.id).collect() };
    assert!(ids(&one).is_disjoint(&ids(&two)), "one item went to both sweeps");
    assert_eq!(one.len() + two.len(), 20, "every item received by then, and not the late one");
    assert!(one.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert!(db.store.inbox_pending(by, now, 100).await.unwrap().is_empty(), "all claimed");
    assert_eq!(db.store.inbox_pending(at(T0 + 100), now, 100).await.unwrap(), vec![late.clone()]);

    // An item fed and done is gone for good; the others come back once their lease passes.
    db.store.inbox_done(one[0].creator, one[0].id, now).await.unwrap();
    let after_lease = now.plus_millis(inbox_lease_ms() + 1);
    let back = db.store.inbox_pending(at(i64::MAX), after_lease, 100).await.unwrap();
    assert_eq!(back.len(), 20, "19 swept before and the late one");
    assert!(!ids(&back).contains(&one[0].id));
    assert_eq!(db.store.inbox_release_claims().await.unwrap(), 20);
    assert_eq!(db.store.inbox_pending(at(i64::MAX), now, 100).await.unwrap().len(), 20, "released at start");
}

// PostgreSQL: how a claim and the commits in flight serialise, and tenant isolation.

/// Waits (polling, with a deadline) until a session of this database waits for a lock.
async fn until_a_session_waits_for_a_lock(su: &mut PgConnection) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *su)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "nobody waits for a lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_claim_waits_for_a_commit_in_flight_then_the_old_epoch_is_refused() {
    let db = TestDb::new(Kind::Postgres).await;
    let a = creator("alice");
    let old = claim(&db, a, "u1", "n1", &["n1"], false).await.unwrap();
    // A commit of n1 that checked its fence and has not ended: it holds the row FOR SHARE, as the
    // store's commit does between its fence check and its end.
    let mut in_flight = db.store.postgres_app_pool().unwrap().begin().await.unwrap();
    sqlx::query("SELECT set_config('app.creator_id', $1, true)")
        .bind(a.0.to_string())
        .execute(&mut *in_flight)
        .await
        .unwrap();
    let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM conversation_owners WHERE conversation_id = $1 FOR SHARE")
        .bind(conversation(a, "u1").0)
        .fetch_one(&mut *in_flight)
        .await
        .unwrap();
    assert_eq!(u64::try_from(epoch).unwrap(), old);

    let store = db.store.clone();
    let taking = tokio::spawn(async move {
        store.claim_owner(a, conversation(a, "u1"), "n2", &nodes(&["n2"]), false).await.unwrap()
    });
    let mut su = db.superuser().await;
    until_a_session_waits_for_a_lock(&mut su).await;
    assert!(!taking.is_finished(), "the claim waits for the commit in flight");
    in_flight.commit().await.unwrap();
    let new = taking.await.unwrap().expect("claimed once the commit ended");
    assert!(new > old);
    let refused = db.store.commit(&fenced_turn(a, "u1", old, 1, 1)).await;
    assert!(matches!(refused, Err(StoreError::Fenced { .. })), "{refused:?}");
}

#[tokio::test]
async fn a_commit_waits_for_a_claim_in_flight_then_sees_its_epoch() {
    let db = TestDb::new(Kind::Postgres).await;
    let a = creator("alice");
    let old = claim(&db, a, "u1", "n1", &["n1"], false).await.unwrap();
    // A claim of n2 that moved the epoch and has not committed yet.
    let mut claiming = db.store.postgres_app_pool().unwrap().begin().await.unwrap();
    sqlx::query("SELECT set_config('app.creator_id', $1, true)")
        .bind(a.0.to_string())
        .execute(&mut *claiming)
        .await
        .unwrap();
    let new: i64 = sqlx::query_scalar(
        "UPDATE conversation_owners SET epoch = nextval('conversation_owner_epochs'), node = 'n2' \
         WHERE conversation_id = $1 RETURNING epoch",
    )
    .bind(conversation(a, "u1").0)
    .fetch_one(&mut *claiming)
    .await
    .unwrap();

    let store = db.store.clone();
    let committing = tokio::spawn(async move { store.commit(&fenced_turn(a, "u1", old, 1, 1)).await });
    let mut su = db.superuser().await;
    until_a_session_waits_for_a_lock(&mut su).await;
    assert!(!committing.is_finished(), "the fence check waits for the claim in flight");
    claiming.commit().await.unwrap();
    let refused = committing.await.unwrap();
    assert!(matches!(refused, Err(StoreError::Fenced { epoch, .. }) if epoch == old), "{refused:?}");
    assert!(db.store.load(a, conversation(a, "u1"), ALL).await.unwrap().is_none());
    db.store.commit(&fenced_turn(a, "u1", u64::try_from(new).unwrap(), 1, 1)).await.unwrap();
}

/// PostgreSQL's insufficient_privilege, raised for a row refused by a policy and a missing grant.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

fn sql_state(error: &sqlx::Error) -> Option<String> {
    error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned())
}

#[tokio::test]
async fn as_twin_app_another_tenant_can_neither_see_nor_claim_an_owner_row() {
    let db = TestDb::new(Kind::Postgres).await;
    let (a, b) = (creator("alice"), creator("bob"));
    claim(&db, a, "u1", "n1", &["n1"], false).await.unwrap();
    claim(&db, b, "u1", "n1", &["n1"], false).await.unwrap();
    let theirs = conversation(a, "u1");

    let mut tx = db.store.postgres_app_pool().unwrap().begin().await.unwrap();
    sqlx::query("SELECT set_config('app.creator_id', $1, true)").bind(b.0.to_string()).execute(&mut *tx).await.unwrap();
    let seen: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT creator_id FROM conversation_owners").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(seen, vec![b.0], "b sees its own row only");
    let moved =
        sqlx::query("UPDATE conversation_owners SET epoch = epoch + 1, node = 'evil' WHERE conversation_id = $1")
            .bind(theirs.0)
            .execute(&mut *tx)
            .await
            .unwrap();
    assert_eq!(moved.rows_affected(), 0, "a's row is out of reach");
    tx.execute("SAVEPOINT attempt").await.unwrap();
    let planted = sqlx::query(
        "INSERT INTO conversation_owners (creator_id, conversation_id, epoch, node) VALUES ($1, gen_random_uuid(), 1, 'x')",
    )
    .bind(a.0)
    .execute(&mut *tx)
    .await
    .expect_err("a row of another tenant");
    assert_eq!(sql_state(&planted).as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{planted}");
    tx.execute("ROLLBACK TO SAVEPOINT attempt").await.unwrap();
    let upsert = sqlx::query(
        "INSERT INTO conversation_owners (creator_id, conversation_id, epoch, node) VALUES ($1, $2, 99, 'evil') \
         ON CONFLICT (conversation_id) DO UPDATE SET epoch = excluded.epoch, node = excluded.node",
    )
    .bind(b.0)
    .bind(theirs.0)
    .execute(&mut *tx)
    .await
    .expect_err("an upsert onto a's row");
    assert_eq!(sql_state(&upsert).as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{upsert}");
    tx.rollback().await.unwrap();

    // twin_system has no business with ownership.
    let mut system = db.superuser().await;
    system.execute("SET ROLE twin_system").await.unwrap();
    let denied = sqlx::query("SELECT count(*) FROM conversation_owners").execute(&mut system).await.unwrap_err();
    assert_eq!(sql_state(&denied).as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{denied}");

    // The superuser sees a's row as a's claim left it.
    let mut su = db.superuser().await;
    let rows: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT creator_id, node FROM conversation_owners WHERE conversation_id = $1")
            .bind(theirs.0)
            .fetch_all(&mut su)
            .await
            .unwrap();
    assert_eq!(rows, vec![(a.0, "n1".to_owned())]);
}

#[tokio::test]
async fn twin_system_claims_queue_rows_but_changes_nothing_else() {
    let db = TestDb::new(Kind::Postgres).await;
    let a = creator("alice");
    commit_sends(&db, a, 1).await;
    db.store.inbox_put(a, ChannelKind::Telegram, &[("k".to_owned(), "{}".to_owned())], at(T0)).await.unwrap();
    assert_eq!(db.store.outbox_due(at(T0 + 10), 10).await.unwrap().len(), 1);
    assert_eq!(db.store.inbox_pending(at(T0), at(T0), 10).await.unwrap().len(), 1);

    let mut system = db.superuser().await;
    system.execute("SET ROLE twin_system").await.unwrap();
    let claims: Vec<Option<i64>> =
        sqlx::query_scalar("SELECT claimed_until FROM outbox").fetch_all(&mut system).await.unwrap();
    assert_eq!(claims, vec![Some(T0 + 10 + outbox_lease_ms())]);
    for sql in [
        "UPDATE outbox SET next_attempt_at = 0",
        "UPDATE outbox SET state = 'failed'",
        "UPDATE inbox SET processed_at = 1",
        "UPDATE inbox SET received_at = 0",
        "SELECT payload FROM inbox",
        "SELECT body FROM outbox",
    ] {
        let denied = sqlx::query(sql).execute(&mut system).await.expect_err(sql);
        assert_eq!(sql_state(&denied).as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{sql}: {denied}");
    }
    // A claim cannot outlive its row's pending state: a sent entry is out of the policy's reach.
    let sent = OutboxUpdate::Sent { provider_message_id: Some("1".to_owned()) };
    db.store.outbox_update(a, conversation(a, "u0"), Seq(2), &sent, at(T0 + 11)).await.unwrap();
    let touched = sqlx::query("UPDATE outbox SET claimed_until = 1").execute(&mut system).await.unwrap();
    assert_eq!(touched.rows_affected(), 0);
}
