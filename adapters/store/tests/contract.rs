//! The store contract: the same tests against SQLite and PostgreSQL, each on a fresh database.

#![allow(clippy::unwrap_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use twin_engine::Seq;
use twin_engine::ports::{ConversationStore, CreatorStore, LoadLimits, PutOutcome, StoreError};
use twin_store::testing::{Kind, TestDb};

/// Runs each named test against both backends.
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
    a_committed_conversation_loads_back,
    history_pages_through_messages_after_a_seq,
    a_stale_version_is_refused_and_nothing_of_its_commit_is_written,
    versions_of_one_conversation_in_one_slice_apply_in_order,
    a_duplicate_client_id_or_seq_is_refused,
    a_message_of_a_conversation_not_stored_is_refused,
    one_commit_writes_the_rows_of_two_tenants_or_none,
    put_creator_creates_leaves_unchanged_and_updates,
    put_creator_refuses_two_documents_with_one_path,
    what_was_never_stored_loads_as_nothing,
    a_conversation_is_invisible_under_another_creator,
    the_store_is_ready_only_after_its_migrations,
    concurrent_commits_of_different_conversations_all_land,
    racing_imports_of_a_new_creator_create_it_once,
);

const ALL: LoadLimits = LoadLimits { history: 100, client_ids: 100 };

async fn a_committed_conversation_loads_back(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let mut untagged = user_message(a, "u1", 5, "unused");
    untagged.client_id = None;
    let messages = vec![
        user_message(a, "u1", 1, "c1"),
        twin_message(a, "u1", 2),
        user_message(a, "u1", 3, "c2"),
        twin_message(a, "u1", 4),
        untagged,
    ];
    let mut records = vec![conversation_record(a, "u1", 1)];
    records.extend(messages.iter().cloned().map(record));
    db.store.commit(&records).await.unwrap();

    let loaded = db.store.load(a, conversation(a, "u1"), LoadLimits { history: 3, client_ids: 1 }).await.unwrap();
    let loaded = loaded.expect("the conversation is stored");
    assert_eq!(loaded.header, header(a, "u1", 1));
    assert_eq!(loaded.last_seq, Seq(5));
    assert_eq!(loaded.recent, messages[2..].to_vec(), "the 3 most recent, oldest first");
    assert_eq!(loaded.client_ids, vec![(messages[2].client_id.clone().unwrap(), Seq(3))]);

    let everything = db.store.load(a, conversation(a, "u1"), ALL).await.unwrap().unwrap();
    assert_eq!(everything.recent, messages);
    let ids: Vec<_> = everything.client_ids.iter().map(|(c, s)| (c.as_str().to_owned(), s.0)).collect();
    assert_eq!(ids, vec![("c1".to_owned(), 1), ("c2".to_owned(), 3)], "user messages with a client id, oldest first");

    let header_only = db.store.load(a, conversation(a, "u1"), LoadLimits { history: 0, client_ids: 0 }).await.unwrap();
    let header_only = header_only.unwrap();
    assert!(header_only.recent.is_empty() && header_only.client_ids.is_empty());
    assert_eq!(header_only.last_seq, Seq(5));
}

async fn history_pages_through_messages_after_a_seq(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let mut records = vec![conversation_record(a, "u1", 1)];
    records.extend((1..=7).map(|seq| record(user_message(a, "u1", seq, &format!("c{seq}")))));
    db.store.commit(&records).await.unwrap();

    let id = conversation(a, "u1");
    let seqs = |page: Vec<twin_engine::Message>| page.iter().map(|m| m.seq.0).collect::<Vec<_>>();
    assert_eq!(seqs(db.store.history(a, id, Seq(0), 3).await.unwrap()), vec![1, 2, 3]);
    assert_eq!(seqs(db.store.history(a, id, Seq(3), 3).await.unwrap()), vec![4, 5, 6]);
    assert_eq!(seqs(db.store.history(a, id, Seq(6), 3).await.unwrap()), vec![7]);
    assert!(db.store.history(a, id, Seq(7), 3).await.unwrap().is_empty());
    assert!(db.store.history(a, id, Seq(0), 0).await.unwrap().is_empty());
    assert!(db.store.history(a, id, Seq(u64::MAX), 10).await.unwrap().is_empty());
}

async fn a_stale_version_is_refused_and_nothing_of_its_commit_is_written(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let id = conversation(a, "u1");
    db.store.commit(&[conversation_record(a, "u1", 1), record(user_message(a, "u1", 1, "c1"))]).await.unwrap();
    db.store.commit(&[conversation_record(a, "u1", 2)]).await.unwrap();

    // A writer still at version 1 moves to 2 again, together with a new message.
    let stale = [record(user_message(a, "u1", 2, "c2")), conversation_record(a, "u1", 2)];
    let refused = db.store.commit(&stale).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { conversation, expected: 1 }) if conversation == id),
        "{refused:?}"
    );
    // Creating a conversation that exists is stale too.
    let recreate = db.store.commit(&[conversation_record(a, "u1", 1), record(user_message(a, "u1", 2, "c2"))]).await;
    assert!(matches!(recreate, Err(StoreError::Conflict { expected: 0, .. })), "{recreate:?}");

    let loaded = db.store.load(a, id, ALL).await.unwrap().unwrap();
    assert_eq!(loaded.header.version, 2);
    assert_eq!(loaded.last_seq, Seq(1), "the refused commit's message was not written");
    assert_eq!(loaded.recent.len(), 1);
}

async fn versions_of_one_conversation_in_one_slice_apply_in_order(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let id = conversation(a, "u1");
    let slice = [
        conversation_record(a, "u1", 1),
        record(user_message(a, "u1", 1, "c1")),
        conversation_record(a, "u1", 2),
        conversation_record(a, "u1", 3),
    ];
    db.store.commit(&slice).await.unwrap();
    assert_eq!(db.store.load(a, id, ALL).await.unwrap().unwrap().header.version, 3);

    db.store.commit(&[conversation_record(a, "u1", 4), conversation_record(a, "u1", 5)]).await.unwrap();
    assert_eq!(db.store.load(a, id, ALL).await.unwrap().unwrap().header.version, 5);

    let repeated = db.store.commit(&[conversation_record(a, "u1", 6), conversation_record(a, "u1", 6)]).await;
    assert!(matches!(repeated, Err(StoreError::Conflict { expected: 5, .. })), "{repeated:?}");
    assert_eq!(db.store.load(a, id, ALL).await.unwrap().unwrap().header.version, 5);
}

async fn a_duplicate_client_id_or_seq_is_refused(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let id = conversation(a, "u1");
    db.store.commit(&[conversation_record(a, "u1", 1), record(user_message(a, "u1", 1, "c1"))]).await.unwrap();

    let resent = db.store.commit(&[record(user_message(a, "u1", 2, "c1"))]).await;
    assert!(matches!(resent, Err(StoreError::Conflict { conversation, .. }) if conversation == id), "{resent:?}");
    let same_seq = db.store.commit(&[record(user_message(a, "u1", 1, "c9"))]).await;
    assert!(matches!(same_seq, Err(StoreError::Conflict { .. })), "{same_seq:?}");
    // A good message and a resent one in one slice: neither is written.
    let mixed = [record(user_message(a, "u1", 2, "c2")), record(user_message(a, "u1", 3, "c1"))];
    assert!(matches!(db.store.commit(&mixed).await, Err(StoreError::Conflict { .. })));
    // Two messages with one client id in the same slice.
    let twice = [record(user_message(a, "u1", 2, "c2")), record(user_message(a, "u1", 3, "c2"))];
    assert!(matches!(db.store.commit(&twice).await, Err(StoreError::Conflict { .. })));
    // The same seq twice in one slice.
    let twice = [record(user_message(a, "u1", 2, "c2")), record(user_message(a, "u1", 2, "c3"))];
    assert!(matches!(db.store.commit(&twice).await, Err(StoreError::Conflict { .. })));

    assert_eq!(db.store.load(a, id, ALL).await.unwrap().unwrap().last_seq, Seq(1));
    db.store.commit(&[record(user_message(a, "u1", 2, "c2"))]).await.unwrap();
    assert_eq!(db.store.load(a, id, ALL).await.unwrap().unwrap().last_seq, Seq(2));
}

async fn a_message_of_a_conversation_not_stored_is_refused(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let orphan = db.store.commit(&[record(user_message(a, "nobody", 1, "c1"))]).await;
    assert!(matches!(orphan, Err(StoreError::Conflict { expected: 0, .. })), "{orphan:?}");

    // A message claiming tenant b inside a's conversation is refused as well.
    db.store.commit(&[conversation_record(a, "u1", 1)]).await.unwrap();
    let mut foreign = user_message(a, "u1", 1, "c1");
    foreign.creator = b;
    assert!(matches!(db.store.commit(&[record(foreign)]).await, Err(StoreError::Conflict { .. })));
    assert_eq!(db.store.load(a, conversation(a, "u1"), ALL).await.unwrap().unwrap().last_seq, Seq(0));
}

async fn one_commit_writes_the_rows_of_two_tenants_or_none(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let slice = [
        conversation_record(a, "u1", 1),
        conversation_record(b, "u1", 1),
        record(user_message(a, "u1", 1, "c1")),
        record(user_message(b, "u1", 1, "c1")),
        record(twin_message(a, "u1", 2)),
    ];
    db.store.commit(&slice).await.unwrap();
    let la = db.store.load(a, conversation(a, "u1"), ALL).await.unwrap().unwrap();
    let lb = db.store.load(b, conversation(b, "u1"), ALL).await.unwrap().unwrap();
    assert_eq!((la.last_seq, lb.last_seq), (Seq(2), Seq(1)));
    assert!(la.recent.iter().all(|m| m.creator == a) && lb.recent.iter().all(|m| m.creator == b));

    // b's rows come first and are fine; a's stale version refuses the whole slice.
    let slice = [record(user_message(b, "u1", 2, "c2")), conversation_record(a, "u1", 3)];
    assert!(matches!(db.store.commit(&slice).await, Err(StoreError::Conflict { .. })));
    assert_eq!(db.store.load(b, conversation(b, "u1"), ALL).await.unwrap().unwrap().last_seq, Seq(1));
}

async fn put_creator_creates_leaves_unchanged_and_updates(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya Chen");
    let id = maya.slug.creator_id();
    let docs = vec![document("zeta.md", "# Z\nlast"), document("Alpha.md", "# A\nfirst"), document("b/c.md", "nested")];

    assert_eq!(db.store.put_creator(&maya, &docs).await.unwrap(), PutOutcome::Created);
    let stored = db.store.creator(id).await.unwrap().expect("stored");
    assert_eq!(stored.profile, maya);
    assert_eq!(stored.version, 1);
    let paths: Vec<&str> = stored.documents.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, vec!["Alpha.md", "b/c.md", "zeta.md"], "sorted by path, byte-wise");

    let mut reordered = docs.clone();
    reordered.reverse();
    assert_eq!(db.store.put_creator(&maya, &reordered).await.unwrap(), PutOutcome::Unchanged);
    assert_eq!(db.store.creator(id).await.unwrap().unwrap().version, 1);

    // One document changed, one removed.
    let changed = vec![document("zeta.md", "# Z\nnow different"), document("Alpha.md", "# A\nfirst")];
    assert_eq!(db.store.put_creator(&maya, &changed).await.unwrap(), PutOutcome::Updated { version: 2 });
    let stored = db.store.creator(id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.documents, vec![changed[1].clone(), changed[0].clone()]);

    // The profile alone changes.
    let renamed = profile("maya", "Maya C.");
    assert_eq!(db.store.put_creator(&renamed, &changed).await.unwrap(), PutOutcome::Updated { version: 3 });
    assert_eq!(db.store.put_creator(&renamed, &changed).await.unwrap(), PutOutcome::Unchanged);
    let stored = db.store.creator(id).await.unwrap().unwrap();
    assert_eq!((stored.profile, stored.version), (renamed.clone(), 3));

    // Every document removed.
    assert_eq!(db.store.put_creator(&renamed, &[]).await.unwrap(), PutOutcome::Updated { version: 4 });
    assert!(db.store.creator(id).await.unwrap().unwrap().documents.is_empty());

    // Another creator is separate.
    assert_eq!(db.store.put_creator(&profile("other", "O"), &docs).await.unwrap(), PutOutcome::Created);
    assert_eq!(db.store.creator(id).await.unwrap().unwrap().version, 4);
}

async fn put_creator_refuses_two_documents_with_one_path(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya Chen");
    let docs = [document("a.md", "one"), document("a.md", "two")];
    assert!(matches!(db.store.put_creator(&maya, &docs).await, Err(StoreError::Corrupt(_))));
    assert!(db.store.creator(maya.slug.creator_id()).await.unwrap().is_none());
}

async fn what_was_never_stored_loads_as_nothing(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    assert!(db.store.load(a, conversation(a, "ghost"), ALL).await.unwrap().is_none());
    assert!(db.store.history(a, conversation(a, "ghost"), Seq(0), 10).await.unwrap().is_empty());
    assert!(db.store.creator(a).await.unwrap().is_none());
    db.store.commit(&[]).await.unwrap();
}

async fn a_conversation_is_invisible_under_another_creator(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    db.store.commit(&[conversation_record(a, "u1", 1), record(user_message(a, "u1", 1, "c1"))]).await.unwrap();
    let id = conversation(a, "u1");
    assert!(db.store.load(b, id, ALL).await.unwrap().is_none());
    assert!(db.store.history(b, id, Seq(0), 10).await.unwrap().is_empty());
    assert!(db.store.load(a, id, ALL).await.unwrap().is_some());
}

async fn the_store_is_ready_only_after_its_migrations(kind: Kind) {
    let db = TestDb::unmigrated(kind).await;
    assert!(matches!(db.store.ready().await, Err(StoreError::Unavailable(_))));
    db.store.migrate().await.unwrap();
    db.store.ready().await.unwrap();
    db.store.migrate().await.expect("migrating again changes nothing");
    db.store.ready().await.unwrap();
    assert_eq!(db.store.backend(), if kind == Kind::Sqlite { "sqlite" } else { "postgres" });
}

async fn concurrent_commits_of_different_conversations_all_land(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let users: Vec<String> = (0..8).map(|i| format!("u{i}")).collect();
    let commits = users.iter().map(|user| {
        let store = db.store.clone();
        let slice = vec![
            conversation_record(a, user, 1),
            record(user_message(a, user, 1, "c1")),
            record(twin_message(a, user, 2)),
        ];
        tokio::spawn(async move { store.commit(&slice).await })
    });
    for outcome in futures::future::join_all(commits).await {
        outcome.unwrap().expect("a writer waits for the other instead of failing");
    }
    for user in &users {
        assert_eq!(db.store.load(a, conversation(a, user), ALL).await.unwrap().unwrap().last_seq, Seq(2));
    }
}

async fn racing_imports_of_a_new_creator_create_it_once(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya Chen");
    let docs = [document("a.md", "one")];
    let (first, second) = tokio::join!(db.store.put_creator(&maya, &docs), db.store.put_creator(&maya, &docs));
    let mut outcomes = [first.unwrap(), second.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, PutOutcome::Unchanged));
    assert_eq!(outcomes, [PutOutcome::Created, PutOutcome::Unchanged]);
    assert_eq!(db.store.creator(maya.slug.creator_id()).await.unwrap().unwrap().version, 1);
}
