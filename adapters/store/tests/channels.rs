//! The channel side of the store (webhook inbox, identities, link codes, outbox), the same tests
//! against SQLite and PostgreSQL, each on a fresh database.

#![allow(clippy::unwrap_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use twin_engine::channel::{ChannelKind, DeliveryState, OutboxBody, OutboxEntry};
use twin_engine::ports::{
    ChannelStore, ConversationStore, CreatorStore, InboxRow, LoadLimits, OutboxRow, OutboxUpdate, Record, StatusChange,
    StoreError,
};
use twin_engine::{CreatorId, Seq, UserId};
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
    an_inbox_item_is_stored_once_and_only_new_items_come_back,
    pending_items_replay_in_arrival_order_across_tenants_until_done,
    an_identity_is_bound_and_rebound_per_creator_and_channel,
    a_link_code_is_used_once_and_an_expired_one_is_gone,
    the_whatsapp_number_routes_to_its_creator,
    a_committed_outbox_entry_is_due_at_its_time_and_not_before,
    due_entries_come_oldest_first_across_tenants_and_limited,
    attempts_move_a_pending_entry_and_a_sent_or_failed_one_stays,
    status_reports_only_move_forward_and_failed_is_final,
    a_status_for_an_unknown_or_pending_send_changes_nothing,
    an_outbox_entry_without_its_message_refuses_the_whole_commit,
);

const T0: i64 = 1_700_000_000_000;

fn items(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, p)| ((*k).to_owned(), (*p).to_owned())).collect()
}

fn user(raw: &str) -> UserId {
    UserId::parse(raw).unwrap()
}

/// Commits `user`'s conversation with a first user message and the twin's replies at `replies`,
/// each with an outbox entry to `chat` on `kind`; returns the entries (created at `T0 + seq`).
async fn commit_sends(
    db: &TestDb,
    creator: CreatorId,
    user: &str,
    replies: &[u64],
    kind: ChannelKind,
) -> Vec<OutboxEntry> {
    let mut records = vec![conversation_record(creator, user, 1), record(user_message(creator, user, 1, "c1"))];
    let mut entries = Vec::new();
    for &seq in replies {
        let message = twin_message(creator, user, seq);
        entries.push(outbox_entry(&message, kind, "4242"));
        records.push(record(message));
    }
    records.extend(entries.iter().cloned().map(Record::Outbox));
    db.store.commit(&records).await.unwrap();
    entries
}

fn pending(entry: &OutboxEntry) -> OutboxRow {
    OutboxRow {
        entry: entry.clone(),
        state: DeliveryState::Pending,
        attempts: 0,
        parts_done: 0,
        next_attempt_at: entry.created_at,
    }
}

/// The due scan of a node that has just started (a single node drops every claim first), so a
/// test can look at what is due more than once.
async fn due_now(db: &TestDb, now: i64, limit: u32) -> Vec<OutboxRow> {
    db.store.outbox_release_claims().await.unwrap();
    db.store.outbox_due(at(now), limit).await.unwrap()
}

/// The inbox replay of a node that has just started: every pending item, claims dropped first.
async fn pending_items(db: &TestDb, limit: u32) -> Vec<InboxRow> {
    db.store.inbox_release_claims().await.unwrap();
    db.store.inbox_pending(at(i64::MAX), at(T0), limit).await.unwrap()
}

async fn stored(db: &TestDb, entry: &OutboxEntry) -> OutboxRow {
    db.store.outbox_entry(entry.creator, entry.conversation, entry.seq).await.unwrap().expect("the entry is stored")
}

async fn an_inbox_item_is_stored_once_and_only_new_items_come_back(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let first = db
        .store
        .inbox_put(
            a,
            ChannelKind::Telegram,
            &items(&[("tg:update:1", r#"{"n":1}"#), ("tg:update:2", r#"{"n":2}"#), ("tg:update:1", r#"{"again":1}"#)]),
            at(T0),
        )
        .await
        .unwrap();
    let keys: Vec<&str> = first.iter().map(|r| r.dedup_key.as_str()).collect();
    assert_eq!(keys, vec!["tg:update:1", "tg:update:2"], "a key given twice in one call is stored once");
    assert_eq!(first[0].payload, r#"{"n":1}"#, "the first payload of a key is kept");
    assert!(first[0].id < first[1].id, "in the given order");
    assert!(first.iter().all(|r| r.creator == a && r.channel == ChannelKind::Telegram));

    let second = db
        .store
        .inbox_put(
            a,
            ChannelKind::Telegram,
            &items(&[("tg:update:2", "{}"), ("tg:update:3", r#"{"n":3}"#)]),
            at(T0 + 1),
        )
        .await
        .unwrap();
    assert_eq!(second.iter().map(|r| r.dedup_key.as_str()).collect::<Vec<_>>(), vec!["tg:update:3"]);
    assert!(second[0].id > first[1].id);
    let again = db.store.inbox_put(a, ChannelKind::Telegram, &items(&[("tg:update:1", "{}")]), at(T0 + 2)).await;
    assert!(again.unwrap().is_empty(), "a redelivered webhook is a no-op");
    assert!(db.store.inbox_put(a, ChannelKind::Telegram, &[], at(T0 + 2)).await.unwrap().is_empty());

    // The same key on another channel or of another creator is another item.
    let other_channel = db.store.inbox_put(a, ChannelKind::WhatsApp, &items(&[("tg:update:1", "{}")]), at(T0)).await;
    assert_eq!(other_channel.unwrap().len(), 1);
    let other_creator = db.store.inbox_put(b, ChannelKind::Telegram, &items(&[("tg:update:1", "{}")]), at(T0)).await;
    assert_eq!(other_creator.unwrap()[0].creator, b);

    assert_eq!(pending_items(&db, 100).await.len(), 5, "each stored once");
}

async fn pending_items_replay_in_arrival_order_across_tenants_until_done(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let mut put = Vec::new();
    for (creator, key) in [(a, "k1"), (b, "k1"), (a, "k2"), (b, "k2")] {
        let row = db.store.inbox_put(creator, ChannelKind::WhatsApp, &items(&[(key, key)]), at(T0)).await.unwrap();
        put.extend(row);
    }
    assert_eq!(pending_items(&db, 100).await, put, "oldest first, across tenants");
    assert_eq!(pending_items(&db, 2).await, put[..2].to_vec());
    assert!(pending_items(&db, 0).await.is_empty());

    db.store.inbox_done(a, put[0].id, at(T0 + 1)).await.unwrap();
    db.store.inbox_done(a, put[0].id, at(T0 + 2)).await.unwrap();
    // Another creator cannot mark a's item done.
    db.store.inbox_done(b, put[2].id, at(T0 + 1)).await.unwrap();
    assert_eq!(pending_items(&db, 100).await, put[1..].to_vec());
    for row in &put[1..] {
        db.store.inbox_done(row.creator, row.id, at(T0 + 3)).await.unwrap();
    }
    assert!(pending_items(&db, 100).await.is_empty());
    // A processed item is still known: its redelivery stays a no-op.
    assert!(
        db.store.inbox_put(a, ChannelKind::WhatsApp, &items(&[("k1", "k1")]), at(T0 + 4)).await.unwrap().is_empty()
    );
}

async fn an_identity_is_bound_and_rebound_per_creator_and_channel(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    assert_eq!(db.store.identity(a, ChannelKind::Telegram, "777").await.unwrap(), None);

    db.store.bind_identity(a, ChannelKind::Telegram, "777", &user("tg-777"), at(T0)).await.unwrap();
    assert_eq!(db.store.identity(a, ChannelKind::Telegram, "777").await.unwrap(), Some(user("tg-777")));
    // Linked to a web user later: the binding is replaced.
    db.store.bind_identity(a, ChannelKind::Telegram, "777", &user("web-1"), at(T0 + 1)).await.unwrap();
    assert_eq!(db.store.identity(a, ChannelKind::Telegram, "777").await.unwrap(), Some(user("web-1")));

    assert_eq!(db.store.identity(a, ChannelKind::WhatsApp, "777").await.unwrap(), None, "per channel");
    assert_eq!(db.store.identity(b, ChannelKind::Telegram, "777").await.unwrap(), None, "per creator");
    db.store.bind_identity(b, ChannelKind::Telegram, "777", &user("bobs-user"), at(T0)).await.unwrap();
    assert_eq!(db.store.identity(a, ChannelKind::Telegram, "777").await.unwrap(), Some(user("web-1")));
    assert_eq!(db.store.identity(b, ChannelKind::Telegram, "777").await.unwrap(), Some(user("bobs-user")));
}

async fn a_link_code_is_used_once_and_an_expired_one_is_gone(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    db.store.put_link_code(a, "ABC123", &user("web-1"), at(T0 + 600_000)).await.unwrap();
    assert_eq!(db.store.take_link_code(b, "ABC123", at(T0)).await.unwrap(), None, "another creator's code");
    assert_eq!(db.store.take_link_code(a, "ABC123", at(T0)).await.unwrap(), Some(user("web-1")));
    assert_eq!(db.store.take_link_code(a, "ABC123", at(T0)).await.unwrap(), None, "single use");

    // Reissued: the new user and expiry replace the old ones.
    db.store.put_link_code(a, "XYZ", &user("web-1"), at(T0 + 10)).await.unwrap();
    db.store.put_link_code(a, "XYZ", &user("web-2"), at(T0 + 20)).await.unwrap();
    assert_eq!(db.store.take_link_code(a, "XYZ", at(T0 + 19)).await.unwrap(), Some(user("web-2")));

    // Expired at its expiry time; taking it deletes it, so it stays gone.
    db.store.put_link_code(a, "OLD", &user("web-3"), at(T0 + 20)).await.unwrap();
    assert_eq!(db.store.take_link_code(a, "OLD", at(T0 + 20)).await.unwrap(), None);
    assert_eq!(db.store.take_link_code(a, "OLD", at(T0)).await.unwrap(), None, "an expired code is deleted");
    assert_eq!(db.store.take_link_code(a, "never-issued", at(T0)).await.unwrap(), None);
}

async fn the_whatsapp_number_routes_to_its_creator(kind: Kind) {
    let db = TestDb::new(kind).await;
    db.store.put_creator(&whatsapp_profile("alice", "1111"), &[], &[]).await.unwrap();
    db.store.put_creator(&whatsapp_profile("bob", "2222"), &[], &[]).await.unwrap();
    db.store.put_creator(&profile("carol", "Carol"), &[], &[]).await.unwrap();

    assert_eq!(db.store.whatsapp_creator("1111").await.unwrap(), Some(creator("alice")));
    assert_eq!(db.store.whatsapp_creator("2222").await.unwrap(), Some(creator("bob")));
    assert_eq!(db.store.whatsapp_creator("3333").await.unwrap(), None);
    assert_eq!(db.store.whatsapp_creator("").await.unwrap(), None);

    // Bob moves to a new number: the old one no longer routes to him.
    db.store.put_creator(&whatsapp_profile("bob", "4444"), &[], &[]).await.unwrap();
    assert_eq!(db.store.whatsapp_creator("2222").await.unwrap(), None);
    assert_eq!(db.store.whatsapp_creator("4444").await.unwrap(), Some(creator("bob")));

    // Two creators configured with one number: refused rather than routed to either.
    db.store.put_creator(&whatsapp_profile("dave", "1111"), &[], &[]).await.unwrap();
    let ambiguous = db.store.whatsapp_creator("1111").await;
    assert!(matches!(ambiguous, Err(StoreError::Corrupt(_))), "{ambiguous:?}");
}

async fn a_committed_outbox_entry_is_due_at_its_time_and_not_before(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let question = question_message(a, "u1", 3);
    let records = [
        conversation_record(a, "u1", 1),
        record(user_message(a, "u1", 1, "c1")),
        record(twin_message(a, "u1", 2)),
        record(question.clone()),
    ];
    let reply = outbox_entry(&twin_message(a, "u1", 2), ChannelKind::Telegram, "4242");
    let mut template = outbox_entry(&question, ChannelKind::WhatsApp, "4915112345678");
    template.body = OutboxBody::Template { name: "checkin".to_owned(), language: "en_US".to_owned() };
    let mut with_outbox = records.to_vec();
    with_outbox.extend([Record::Outbox(reply.clone()), Record::Outbox(template.clone())]);
    db.store.commit(&with_outbox).await.unwrap();

    assert!(due_now(&db, T0 + 1, 10).await.is_empty(), "not before its time");
    assert_eq!(due_now(&db, T0 + 2, 10).await, vec![pending(&reply)]);
    assert_eq!(
        due_now(&db, T0 + 60_000, 10).await,
        vec![pending(&reply)],
        "the later entry of the conversation waits for the earlier one"
    );
    assert_eq!(stored(&db, &template).await, pending(&template), "a template body round-trips");
    let loaded = db.store.load(a, conversation(a, "u1"), LoadLimits { history: 10, client_ids: 10 }).await.unwrap();
    assert_eq!(loaded.unwrap().last_seq, Seq(3), "the messages are committed with their entries");

    // The same entry committed again (a replayed commit) leaves the stored one as it is.
    let update = OutboxUpdate::Sent { provider_message_id: Some("m-2".to_owned()) };
    db.store.outbox_update(a, reply.conversation, reply.seq, &update, at(T0 + 5)).await.unwrap();
    db.store.commit(&[Record::Outbox(reply.clone())]).await.unwrap();
    assert_eq!(stored(&db, &reply).await.state, DeliveryState::Sent);
    assert_eq!(due_now(&db, T0 + 60_000, 10).await, vec![pending(&template)]);
    assert_eq!(db.store.outbox_entry(a, reply.conversation, Seq(9)).await.unwrap(), None);
    assert_eq!(db.store.outbox_entry(creator("bob"), reply.conversation, reply.seq).await.unwrap(), None);
}

async fn due_entries_come_oldest_first_across_tenants_and_limited(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let alice = commit_sends(&db, a, "u1", &[2, 5], ChannelKind::Telegram).await;
    let bob = commit_sends(&db, b, "u1", &[3, 4], ChannelKind::WhatsApp).await;
    // Only each conversation's earliest pending entry is due: messages go out in order.
    let due = due_now(&db, T0 + 100, 10).await;
    let order: Vec<OutboxRow> = [&alice[0], &bob[0]].into_iter().map(pending).collect();
    assert_eq!(due, order);
    assert_eq!(due_now(&db, T0 + 100, 1).await, order[..1].to_vec());

    // A retry moves an entry behind the others, and what follows it in its conversation waits.
    let retry = OutboxUpdate::Retry { attempts: 1, at: at(T0 + 50), error: "timeout".to_owned() };
    db.store.outbox_update(a, alice[0].conversation, alice[0].seq, &retry, at(T0 + 10)).await.unwrap();
    let due_at = |now: i64| {
        let store = db.store.clone();
        async move {
            store.outbox_release_claims().await.unwrap();
            let rows = store.outbox_due(at(now), 10).await.unwrap();
            rows.iter().map(|r| (r.entry.creator, r.entry.seq.0)).collect::<Vec<(CreatorId, u64)>>()
        }
    };
    assert_eq!(due_at(T0 + 20).await, vec![(b, 3)], "alice's 5 waits for her 2");
    assert_eq!(due_at(T0 + 100).await, vec![(b, 3), (a, 2)]);
    let sent = OutboxUpdate::Sent { provider_message_id: None };
    db.store.outbox_update(b, bob[0].conversation, bob[0].seq, &sent, at(T0 + 101)).await.unwrap();
    assert_eq!(due_at(T0 + 102).await, vec![(b, 4), (a, 2)]);
}

async fn attempts_move_a_pending_entry_and_a_sent_or_failed_one_stays(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let entries = commit_sends(&db, a, "u1", &[2, 3], ChannelKind::Telegram).await;
    let (first, second) = (&entries[0], &entries[1]);
    let update = |entry: &OutboxEntry, update: OutboxUpdate, now: i64| {
        let (store, entry) = (db.store.clone(), entry.clone());
        async move { store.outbox_update(entry.creator, entry.conversation, entry.seq, &update, at(now)).await.unwrap() }
    };

    update(first, OutboxUpdate::PartSent { parts_done: 1, provider_message_id: Some("11".to_owned()) }, T0 + 10).await;
    let row = stored(&db, first).await;
    assert_eq!((row.state, row.parts_done, row.attempts), (DeliveryState::Pending, 1, 0), "more parts follow");
    let due = due_now(&db, T0 + 10, 10).await;
    assert_eq!(due.iter().map(|r| r.entry.seq).collect::<Vec<_>>(), [first.seq], "still due, and before the next");

    update(first, OutboxUpdate::Retry { attempts: 1, at: at(T0 + 1_000), error: "429".to_owned() }, T0 + 11).await;
    let row = stored(&db, first).await;
    assert_eq!((row.state, row.attempts, row.parts_done), (DeliveryState::Pending, 1, 1), "parts done are kept");
    assert_eq!(row.next_attempt_at, at(T0 + 1_000));
    assert!(due_now(&db, T0 + 999, 10).await.is_empty(), "the next waits for it");

    update(first, OutboxUpdate::PartSent { parts_done: 2, provider_message_id: None }, T0 + 1_000).await;
    update(first, OutboxUpdate::Sent { provider_message_id: Some("12".to_owned()) }, T0 + 1_001).await;
    let sent = stored(&db, first).await;
    assert_eq!((sent.state, sent.parts_done, sent.attempts), (DeliveryState::Sent, 2, 1));
    assert_eq!(due_now(&db, T0 + 10_000, 10).await, vec![pending(second)], "a sent entry is done");

    // Late news for a sent entry changes nothing.
    update(first, OutboxUpdate::Retry { attempts: 2, at: at(T0 + 5_000), error: "late".to_owned() }, T0 + 1_002).await;
    update(first, OutboxUpdate::Failed { error: "late".to_owned() }, T0 + 1_003).await;
    update(first, OutboxUpdate::PartSent { parts_done: 9, provider_message_id: None }, T0 + 1_004).await;
    assert_eq!(stored(&db, first).await, sent);

    update(second, OutboxUpdate::Failed { error: "chat not found".to_owned() }, T0 + 20).await;
    let failed = stored(&db, second).await;
    assert_eq!(failed.state, DeliveryState::Failed);
    update(second, OutboxUpdate::Sent { provider_message_id: Some("13".to_owned()) }, T0 + 21).await;
    assert_eq!(stored(&db, second).await, failed, "failed is final");
    assert!(due_now(&db, T0 + 10_000, 10).await.is_empty());

    // Another creator's update does not reach the entry.
    let intruder = OutboxUpdate::Failed { error: "x".to_owned() };
    let third = commit_sends(&db, a, "u2", &[2], ChannelKind::Telegram).await.remove(0);
    db.store.outbox_update(creator("bob"), third.conversation, third.seq, &intruder, at(T0)).await.unwrap();
    assert_eq!(stored(&db, &third).await, pending(&third));
}

async fn status_reports_only_move_forward_and_failed_is_final(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let entry = commit_sends(&db, a, "u1", &[2], ChannelKind::WhatsApp).await.remove(0);
    let other = commit_sends(&db, b, "u1", &[2], ChannelKind::WhatsApp).await.remove(0);
    let sent = |id: &str| OutboxUpdate::Sent { provider_message_id: Some(id.to_owned()) };
    db.store.outbox_update(a, entry.conversation, entry.seq, &sent("wamid.A"), at(T0 + 10)).await.unwrap();
    db.store.outbox_update(b, other.conversation, other.seq, &sent("wamid.B"), at(T0 + 10)).await.unwrap();
    let status = |state: DeliveryState, error: Option<&'static str>| {
        let store = db.store.clone();
        async move { store.outbox_status(a, ChannelKind::WhatsApp, "wamid.A", state, error, at(T0 + 20)).await.unwrap() }
    };
    let change = |state| Some(StatusChange { creator: a, conversation: entry.conversation, seq: entry.seq, state });

    // `read` arrives before `delivered`: the late `delivered` changes nothing.
    assert_eq!(status(DeliveryState::Read, None).await, change(DeliveryState::Read));
    assert_eq!(status(DeliveryState::Delivered, None).await, None);
    assert_eq!(status(DeliveryState::Read, None).await, None, "a repeat is no change");
    assert_eq!(stored(&db, &entry).await.state, DeliveryState::Read);

    assert_eq!(status(DeliveryState::Failed, Some("131047")).await, change(DeliveryState::Failed));
    assert_eq!(status(DeliveryState::Read, None).await, None, "failed is final");
    assert_eq!(status(DeliveryState::Failed, Some("other")).await, None);
    assert_eq!(stored(&db, &entry).await.state, DeliveryState::Failed);

    // The other tenant's entry was not touched; the channel is part of the id.
    assert_eq!(stored(&db, &other).await.state, DeliveryState::Sent);
    let telegram = db.store.outbox_status(b, ChannelKind::Telegram, "wamid.B", DeliveryState::Read, None, at(T0)).await;
    assert_eq!(telegram.unwrap(), None);
    // A report naming another tenant's message (a creator's signed webhook with bob's id) is ignored.
    let forged = db.store.outbox_status(a, ChannelKind::WhatsApp, "wamid.B", DeliveryState::Read, None, at(T0)).await;
    assert_eq!(forged.unwrap(), None);
    assert_eq!(stored(&db, &other).await.state, DeliveryState::Sent);
    let delivered =
        db.store.outbox_status(b, ChannelKind::WhatsApp, "wamid.B", DeliveryState::Delivered, None, at(T0)).await;
    assert_eq!(
        delivered.unwrap(),
        Some(StatusChange {
            creator: b,
            conversation: other.conversation,
            seq: other.seq,
            state: DeliveryState::Delivered
        })
    );
}

async fn a_status_for_an_unknown_or_pending_send_changes_nothing(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let entry = commit_sends(&db, a, "u1", &[2], ChannelKind::WhatsApp).await.remove(0);
    let unknown =
        db.store.outbox_status(a, ChannelKind::WhatsApp, "wamid.nope", DeliveryState::Read, None, at(T0)).await;
    assert_eq!(unknown.unwrap(), None);

    // The first part went out, the rest has not: a report about that part leaves the entry pending,
    // so the remaining parts are still sent.
    let part = OutboxUpdate::PartSent { parts_done: 1, provider_message_id: Some("wamid.part1".to_owned()) };
    db.store.outbox_update(a, entry.conversation, entry.seq, &part, at(T0 + 1)).await.unwrap();
    let report =
        db.store.outbox_status(a, ChannelKind::WhatsApp, "wamid.part1", DeliveryState::Failed, Some("e"), at(T0)).await;
    assert_eq!(report.unwrap(), None);
    let row = stored(&db, &entry).await;
    assert_eq!((row.state, row.parts_done), (DeliveryState::Pending, 1));
}

async fn an_outbox_entry_without_its_message_refuses_the_whole_commit(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let unsent = twin_message(a, "u1", 2);
    let slice = [
        conversation_record(a, "u1", 1),
        record(user_message(a, "u1", 1, "c1")),
        Record::Outbox(outbox_entry(&unsent, ChannelKind::Telegram, "4242")),
    ];
    let refused = db.store.commit(&slice).await;
    assert!(matches!(refused, Err(StoreError::Corrupt(_))), "an entry needs its stored message: {refused:?}");
    let limits = LoadLimits { history: 10, client_ids: 10 };
    assert!(db.store.load(a, conversation(a, "u1"), limits).await.unwrap().is_none(), "nothing of the commit");
    assert!(due_now(&db, i64::MAX, 10).await.is_empty());

    // An entry that claims another tenant for a's stored message is refused too.
    let entries = commit_sends(&db, a, "u1", &[2], ChannelKind::Telegram).await;
    db.store.commit(&[record(twin_message(a, "u1", 3))]).await.unwrap();
    let mut foreign = outbox_entry(&twin_message(a, "u1", 3), ChannelKind::Telegram, "4242");
    foreign.creator = b;
    let foreign = db.store.commit(&[Record::Outbox(foreign)]).await;
    assert!(matches!(foreign, Err(StoreError::Corrupt(_))), "{foreign:?}");
    assert_eq!(due_now(&db, i64::MAX, 10).await, vec![pending(&entries[0])]);
}
