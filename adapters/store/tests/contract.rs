//! The store contract: the same tests against SQLite and PostgreSQL, each on a fresh database.

#![allow(clippy::unwrap_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use sqlx::Connection;
use twin_engine::ports::{
    ConversationStore, CreatorStore, LoadLimits, NudgeOutcome, NudgeStore, PutOutcome, Record, ScheduledNudge,
    StoreError, StoredProgram,
};
use twin_engine::{CreatorId, NudgeId, ProgramId, Seq};
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
    the_state_is_written_with_its_version_and_a_stale_state_is_refused,
    a_state_that_does_not_parse_is_corrupt,
    choices_come_back_with_their_message,
    a_changed_program_becomes_a_new_version_and_old_versions_stay,
    put_creator_refuses_two_programs_with_one_id,
    a_scheduled_nudge_is_pending_until_it_is_settled,
    a_nudge_scheduled_and_settled_in_one_commit_ends_settled,
    a_nudge_of_a_conversation_not_stored_is_refused,
    pending_before_is_earliest_first_below_the_horizon_and_limited,
    a_claim_holds_a_nudge_until_its_lease_expires,
    release_claims_drops_every_claim,
    pending_of_sees_one_conversation_of_one_tenant,
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

    assert_eq!(db.store.put_creator(&maya, &docs, &[]).await.unwrap(), PutOutcome::Created);
    let stored = db.store.creator(id).await.unwrap().expect("stored");
    assert_eq!(stored.profile, maya);
    assert_eq!(stored.version, 1);
    let paths: Vec<&str> = stored.documents.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(paths, vec!["Alpha.md", "b/c.md", "zeta.md"], "sorted by path, byte-wise");

    let mut reordered = docs.clone();
    reordered.reverse();
    assert_eq!(db.store.put_creator(&maya, &reordered, &[]).await.unwrap(), PutOutcome::Unchanged);
    assert_eq!(db.store.creator(id).await.unwrap().unwrap().version, 1);

    // One document changed, one removed.
    let changed = vec![document("zeta.md", "# Z\nnow different"), document("Alpha.md", "# A\nfirst")];
    assert_eq!(db.store.put_creator(&maya, &changed, &[]).await.unwrap(), PutOutcome::Updated { version: 2 });
    let stored = db.store.creator(id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.documents, vec![changed[1].clone(), changed[0].clone()]);

    // The profile alone changes.
    let renamed = profile("maya", "Maya C.");
    assert_eq!(db.store.put_creator(&renamed, &changed, &[]).await.unwrap(), PutOutcome::Updated { version: 3 });
    assert_eq!(db.store.put_creator(&renamed, &changed, &[]).await.unwrap(), PutOutcome::Unchanged);
    let stored = db.store.creator(id).await.unwrap().unwrap();
    assert_eq!((stored.profile, stored.version), (renamed.clone(), 3));

    // Every document removed.
    assert_eq!(db.store.put_creator(&renamed, &[], &[]).await.unwrap(), PutOutcome::Updated { version: 4 });
    assert!(db.store.creator(id).await.unwrap().unwrap().documents.is_empty());

    // Another creator is separate.
    assert_eq!(db.store.put_creator(&profile("other", "O"), &docs, &[]).await.unwrap(), PutOutcome::Created);
    assert_eq!(db.store.creator(id).await.unwrap().unwrap().version, 4);
}

async fn put_creator_refuses_two_documents_with_one_path(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya Chen");
    let docs = [document("a.md", "one"), document("a.md", "two")];
    assert!(matches!(db.store.put_creator(&maya, &docs, &[]).await, Err(StoreError::Corrupt(_))));
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
    let (first, second) =
        tokio::join!(db.store.put_creator(&maya, &docs, &[]), db.store.put_creator(&maya, &docs, &[]));
    let mut outcomes = [first.unwrap(), second.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, PutOutcome::Unchanged));
    assert_eq!(outcomes, [PutOutcome::Created, PutOutcome::Unchanged]);
    assert_eq!(db.store.creator(maya.slug.creator_id()).await.unwrap().unwrap().version, 1);
}

/// Runs `sql` on the database behind the store's back (PostgreSQL: as the superuser).
async fn tamper(db: &TestDb, sql: &'static str) {
    match db.kind() {
        Kind::Postgres => {
            let mut conn = db.superuser().await;
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        Kind::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
    }
}

fn with_state(creator: CreatorId, user: &str, version: u64, n: u64) -> Record {
    let mut h = header(creator, user, version);
    h.state = busy_state(creator, user, n);
    Record::Conversation(h)
}

async fn the_state_is_written_with_its_version_and_a_stale_state_is_refused(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let id = conversation(a, "u1");
    db.store.commit(&[with_state(a, "u1", 1, 1)]).await.unwrap();
    let loaded = db.store.load(a, id, ALL).await.unwrap().unwrap();
    assert_eq!(loaded.header.state, busy_state(a, "u1", 1), "written on insert");
    assert_ne!(loaded.header.state, Default::default());

    db.store.commit(&[with_state(a, "u1", 2, 2), with_state(a, "u1", 3, 3)]).await.unwrap();
    let loaded = db.store.load(a, id, ALL).await.unwrap().unwrap();
    assert_eq!((loaded.header.version, &loaded.header.state), (3, &busy_state(a, "u1", 3)), "the slice's last state");

    // A writer still at version 2 brings its own state: refused, the stored state stays.
    let stale = db.store.commit(&[with_state(a, "u1", 3, 99)]).await;
    assert!(matches!(stale, Err(StoreError::Conflict { expected: 2, .. })), "{stale:?}");
    let loaded = db.store.load(a, id, ALL).await.unwrap().unwrap();
    assert_eq!((loaded.header.version, loaded.header.state), (3, busy_state(a, "u1", 3)));

    // Back to the default state, at the next version.
    db.store.commit(&[conversation_record(a, "u1", 4)]).await.unwrap();
    assert_eq!(db.store.load(a, id, ALL).await.unwrap().unwrap().header, header(a, "u1", 4));
}

async fn a_state_that_does_not_parse_is_corrupt(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    db.store.commit(&[conversation_record(a, "u1", 1)]).await.unwrap();
    tamper(&db, r#"UPDATE conversations SET state = '{"nudges": "not a list"}'"#).await;
    let loaded = db.store.load(a, conversation(a, "u1"), ALL).await;
    assert!(matches!(loaded, Err(StoreError::Corrupt(_))), "{loaded:?}");
}

async fn choices_come_back_with_their_message(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let messages = vec![user_message(a, "u1", 1, "c1"), question_message(a, "u1", 2), twin_message(a, "u1", 3)];
    let mut records = vec![conversation_record(a, "u1", 1)];
    records.extend(messages.iter().cloned().map(record));
    db.store.commit(&records).await.unwrap();

    let id = conversation(a, "u1");
    let loaded = db.store.load(a, id, ALL).await.unwrap().unwrap();
    assert_eq!(loaded.recent, messages);
    assert_eq!(loaded.recent[1].choices.len(), 2, "in order, with their labels");
    assert_eq!(db.store.history(a, id, Seq(0), 10).await.unwrap(), messages);
}

fn versions(programs: &[StoredProgram]) -> Vec<(&str, u32, &str)> {
    programs.iter().map(|p| (p.id.as_str(), p.version, p.source.as_str())).collect()
}

async fn a_changed_program_becomes_a_new_version_and_old_versions_stay(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya Chen");
    let id = maya.slug.creator_id();
    let docs = [document("a.md", "notes")];
    let week = program("focus-week", "steps: [one]");
    let intro = program("intro", "steps: [hello]");

    let created = db.store.put_creator(&maya, &docs, &[week.clone(), intro.clone()]).await.unwrap();
    assert_eq!(created, PutOutcome::Created);
    let stored = db.store.creator(id).await.unwrap().unwrap();
    assert_eq!(versions(&stored.programs), vec![("focus-week", 1, "steps: [one]"), ("intro", 1, "steps: [hello]")]);

    // The same programs, in another order: nothing changes, no version is added.
    let unchanged = db.store.put_creator(&maya, &docs, &[intro.clone(), week.clone()]).await.unwrap();
    assert_eq!(unchanged, PutOutcome::Unchanged);
    let stored = db.store.creator(id).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.programs.len()), (1, 2));

    // Only one program's source changes: the creator moves on, the program gets version 2.
    let week2 = program("focus-week", "steps: [one, two]");
    let updated = db.store.put_creator(&maya, &docs, &[week2.clone(), intro.clone()]).await.unwrap();
    assert_eq!(updated, PutOutcome::Updated { version: 2 });
    let stored = db.store.creator(id).await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    assert_eq!(stored.documents, docs.to_vec(), "the documents are untouched");
    assert_eq!(
        versions(&stored.programs),
        vec![("focus-week", 1, "steps: [one]"), ("focus-week", 2, "steps: [one, two]"), ("intro", 1, "steps: [hello]")],
        "version 1 is kept for running enrolments; intro is untouched"
    );

    // A program left out of an import is not deleted; going back to an old source is a new version.
    assert_eq!(db.store.put_creator(&maya, &docs, std::slice::from_ref(&week2)).await.unwrap(), PutOutcome::Unchanged);
    assert_eq!(
        db.store.put_creator(&maya, &docs, std::slice::from_ref(&week)).await.unwrap(),
        PutOutcome::Updated { version: 3 }
    );
    let stored = db.store.creator(id).await.unwrap().unwrap();
    let focus_week = ProgramId::parse("focus-week").unwrap();
    let week_versions: Vec<u32> = stored.programs.iter().filter(|p| p.id == focus_week).map(|p| p.version).collect();
    assert_eq!(week_versions, vec![1, 2, 3]);
    assert_eq!(stored.programs[2].source, week.source);
    assert_eq!(stored.programs.len(), 4, "intro is still there");

    // A profile change with the programs unchanged adds no program version.
    let renamed = profile("maya", "Maya C.");
    assert_eq!(
        db.store.put_creator(&renamed, &docs, &[week.clone(), intro.clone()]).await.unwrap(),
        PutOutcome::Updated { version: 4 }
    );
    assert_eq!(db.store.creator(id).await.unwrap().unwrap().programs.len(), 4);

    // Another creator's program of the same id is its own.
    let other = profile("other", "O");
    assert_eq!(db.store.put_creator(&other, &[], std::slice::from_ref(&week2)).await.unwrap(), PutOutcome::Created);
    let theirs = db.store.creator(other.slug.creator_id()).await.unwrap().unwrap();
    assert_eq!(versions(&theirs.programs), vec![("focus-week", 1, "steps: [one, two]")]);
}

async fn put_creator_refuses_two_programs_with_one_id(kind: Kind) {
    let db = TestDb::new(kind).await;
    let maya = profile("maya", "Maya Chen");
    let twice = [program("p", "one"), program("p", "two")];
    assert!(matches!(db.store.put_creator(&maya, &[], &twice).await, Err(StoreError::Corrupt(_))));
    assert!(db.store.creator(maya.slug.creator_id()).await.unwrap().is_none(), "nothing half-written");

    db.store.put_creator(&maya, &[], &[program("p", "one")]).await.unwrap();
    assert!(matches!(db.store.put_creator(&maya, &[], &twice).await, Err(StoreError::Corrupt(_))));
    assert_eq!(db.store.creator(maya.slug.creator_id()).await.unwrap().unwrap().programs.len(), 1);
}

fn ids(nudges: &[ScheduledNudge]) -> Vec<NudgeId> {
    nudges.iter().map(|n| n.id).collect()
}

const NOW: i64 = 1_700_000_000_000;
const FAR: i64 = i64::MAX;

async fn a_scheduled_nudge_is_pending_until_it_is_settled(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let id = conversation(a, "u1");
    let first = nudge(a, "u1", 1, NOW + 60_000);
    // The nudge comes before its conversation in the slice: the store writes conversations first.
    db.store.commit(&[scheduled(&first), conversation_record(a, "u1", 1)]).await.unwrap();

    assert_eq!(db.store.pending_before(at(FAR), at(NOW), 10).await.unwrap(), vec![first.clone()], "every field");
    let at_due = db.store.pending_before(first.due_at, at(NOW), 10).await.unwrap();
    assert!(at_due.is_empty(), "due_at < horizon");
    assert_eq!(db.store.pending_of(a, id).await.unwrap(), vec![first.clone()]);

    // Scheduling the same id again (a replayed step) changes nothing.
    let mut moved = first.clone();
    moved.due_at = at(NOW + 1);
    db.store.commit(&[Record::NudgeScheduled(moved), conversation_record(a, "u1", 2)]).await.unwrap();
    assert_eq!(db.store.pending_of(a, id).await.unwrap(), vec![first.clone()]);

    // Settled with the state that resulted: no longer pending.
    db.store.commit(&[conversation_record(a, "u1", 3), settled(&first, NudgeOutcome::Fired)]).await.unwrap();
    assert!(db.store.pending_before(at(FAR), at(NOW), 10).await.unwrap().is_empty());
    assert!(db.store.pending_of(a, id).await.unwrap().is_empty());
    assert!(db.store.claim(&[first.id], at(NOW), at(NOW + 1000)).await.unwrap().is_empty(), "a settled nudge");

    // Settling again, scheduling again: idempotent, it stays settled.
    db.store.commit(&[settled(&first, NudgeOutcome::Cancelled), scheduled(&first)]).await.unwrap();
    assert!(db.store.pending_of(a, id).await.unwrap().is_empty());

    // A settle refused with its conversation's stale version leaves the nudge pending.
    let second = nudge(a, "u1", 2, NOW + 120_000);
    db.store.commit(&[scheduled(&second)]).await.unwrap();
    let stale = db.store.commit(&[settled(&second, NudgeOutcome::Skipped), conversation_record(a, "u1", 3)]).await;
    assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");
    assert_eq!(db.store.pending_of(a, id).await.unwrap(), vec![second]);
}

async fn a_nudge_scheduled_and_settled_in_one_commit_ends_settled(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let (kept, dropped) = (nudge(a, "u1", 1, NOW), nudge(a, "u1", 2, NOW + 1));
    let slice = [
        settled(&dropped, NudgeOutcome::Cancelled),
        scheduled(&kept),
        scheduled(&dropped),
        conversation_record(a, "u1", 1),
    ];
    db.store.commit(&slice).await.unwrap();
    assert_eq!(db.store.pending_of(a, conversation(a, "u1")).await.unwrap(), vec![kept]);
}

async fn a_nudge_of_a_conversation_not_stored_is_refused(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let orphan = db.store.commit(&[conversation_record(a, "u1", 1), scheduled(&nudge(a, "ghost", 1, NOW))]).await;
    assert!(matches!(orphan, Err(StoreError::Conflict { expected: 0, .. })), "{orphan:?}");
    assert!(db.store.load(a, conversation(a, "u1"), ALL).await.unwrap().is_none(), "nothing of the slice");

    // A nudge claiming tenant b for a's conversation is refused as well.
    db.store.commit(&[conversation_record(a, "u1", 1)]).await.unwrap();
    let mut foreign = nudge(a, "u1", 1, NOW);
    foreign.creator = b;
    assert!(matches!(db.store.commit(&[scheduled(&foreign)]).await, Err(StoreError::Conflict { .. })));
    assert!(db.store.pending_before(at(FAR), at(NOW), 10).await.unwrap().is_empty());
}

async fn pending_before_is_earliest_first_below_the_horizon_and_limited(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let n = [nudge(a, "u1", 1, NOW + 30), nudge(b, "u1", 1, NOW + 10), nudge(a, "u2", 1, NOW + 20)];
    let mut slice =
        vec![conversation_record(a, "u1", 1), conversation_record(b, "u1", 1), conversation_record(a, "u2", 1)];
    slice.extend(n.iter().map(scheduled));
    db.store.commit(&slice).await.unwrap();

    let all = db.store.pending_before(at(FAR), at(NOW), 10).await.unwrap();
    assert_eq!(ids(&all), vec![n[1].id, n[2].id, n[0].id], "across tenants, earliest first");
    let first_two = db.store.pending_before(at(FAR), at(NOW), 2).await.unwrap();
    assert_eq!(ids(&first_two), vec![n[1].id, n[2].id]);
    let below = db.store.pending_before(at(NOW + 30), at(NOW), 10).await.unwrap();
    assert_eq!(ids(&below), vec![n[1].id, n[2].id], "the horizon is exclusive");
    assert!(db.store.pending_before(at(FAR), at(NOW), 0).await.unwrap().is_empty());
}

async fn a_claim_holds_a_nudge_until_its_lease_expires(kind: Kind) {
    let db = TestDb::new(kind).await;
    let a = creator("alice");
    let n: Vec<ScheduledNudge> = (1..=3).map(|i| nudge(a, "u1", i, NOW + 10 * i as i64)).collect();
    let mut slice = vec![conversation_record(a, "u1", 1)];
    slice.extend(n.iter().map(scheduled));
    db.store.commit(&slice).await.unwrap();

    let lease = NOW + 5_000;
    // Asked for latest first, returned earliest first; an unknown id is ignored.
    let unknown = nudge(a, "u1", 99, NOW).id;
    let claimed = db.store.claim(&[n[1].id, unknown, n[0].id], at(NOW), at(lease)).await.unwrap();
    assert_eq!(claimed, vec![n[0].clone(), n[1].clone()]);
    assert!(db.store.claim(&[], at(NOW), at(lease)).await.unwrap().is_empty());

    // Held: neither claimed again nor offered until the lease has expired.
    let again = db.store.claim(&[n[0].id, n[1].id, n[2].id], at(NOW + 1), at(lease + 1)).await.unwrap();
    assert_eq!(ids(&again), vec![n[2].id], "only the unclaimed one");
    let at_expiry = db.store.claim(&[n[0].id], at(lease), at(lease + 5_000)).await.unwrap();
    assert!(at_expiry.is_empty(), "a lease holds up to and including its end");
    assert!(db.store.pending_before(at(FAR), at(lease), 10).await.unwrap().is_empty());
    assert_eq!(ids(&db.store.pending_before(at(FAR), at(lease + 1), 10).await.unwrap()), vec![n[0].id, n[1].id]);
    assert_eq!(db.store.pending_of(a, conversation(a, "u1")).await.unwrap(), n, "claimed nudges are still pending");

    let expired = db.store.claim(&[n[0].id, n[1].id], at(lease + 1), at(lease + 5_000)).await.unwrap();
    assert_eq!(ids(&expired), vec![n[0].id, n[1].id], "an expired claim can be taken again");

    // Settling ends the claim with the nudge.
    db.store.commit(&[settled(&n[0], NudgeOutcome::Fired)]).await.unwrap();
    assert!(db.store.claim(&[n[0].id], at(FAR - 1), at(FAR)).await.unwrap().is_empty());
}

async fn release_claims_drops_every_claim(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let n = [nudge(a, "u1", 1, NOW), nudge(b, "u1", 1, NOW + 1), nudge(a, "u1", 2, NOW + 2)];
    let mut slice = vec![conversation_record(a, "u1", 1), conversation_record(b, "u1", 1)];
    slice.extend(n.iter().map(scheduled));
    db.store.commit(&slice).await.unwrap();
    let lease = NOW + 60_000;
    assert_eq!(db.store.claim(&[n[0].id, n[1].id], at(NOW), at(lease)).await.unwrap().len(), 2);
    assert_eq!(ids(&db.store.pending_before(at(FAR), at(NOW), 10).await.unwrap()), vec![n[2].id]);

    assert_eq!(db.store.release_claims().await.unwrap(), 2, "the claims of both tenants");
    assert_eq!(ids(&db.store.pending_before(at(FAR), at(NOW), 10).await.unwrap()), vec![n[0].id, n[1].id, n[2].id]);
    assert_eq!(db.store.claim(&[n[0].id], at(NOW), at(lease)).await.unwrap().len(), 1, "claimable at once");
    db.store.commit(&[settled(&n[0], NudgeOutcome::Skipped)]).await.unwrap();
    assert_eq!(db.store.release_claims().await.unwrap(), 0, "a settled nudge holds no claim");
}

async fn pending_of_sees_one_conversation_of_one_tenant(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let (a1, a2, b1) = (nudge(a, "u1", 1, NOW + 2), nudge(a, "u2", 1, NOW), nudge(b, "u1", 1, NOW + 1));
    let a1_sooner = nudge(a, "u1", 2, NOW + 1);
    let slice = [
        conversation_record(a, "u1", 1),
        conversation_record(a, "u2", 1),
        conversation_record(b, "u1", 1),
        scheduled(&a1),
        scheduled(&a2),
        scheduled(&b1),
        scheduled(&a1_sooner),
    ];
    db.store.commit(&slice).await.unwrap();
    assert_eq!(db.store.pending_of(a, conversation(a, "u1")).await.unwrap(), vec![a1_sooner, a1.clone()]);
    assert_eq!(db.store.pending_of(b, conversation(b, "u1")).await.unwrap(), vec![b1]);
    assert!(db.store.pending_of(b, conversation(a, "u1")).await.unwrap().is_empty(), "a's conversation under b");

    // b settling a's nudge settles nothing.
    let intruder = Record::NudgeSettled { creator: b, id: a1.id, outcome: NudgeOutcome::Cancelled };
    db.store.commit(&[intruder]).await.unwrap();
    assert_eq!(db.store.pending_of(a, conversation(a, "u1")).await.unwrap().len(), 2);
}
