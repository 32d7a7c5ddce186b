//! GDPR export and erasure, proven table by table on SQLite and PostgreSQL: rows are counted
//! directly in the database (on PostgreSQL as the superuser, so row-level security cannot hide a
//! leftover), before and after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::BTreeMap;

use fixtures::*;
use sqlx::{Connection, SqliteConnection};
use twin_engine::channel::ChannelKind;
use twin_engine::ports::{
    ChannelStore, ConversationStore, CreatorStore, DocumentStatus, IngestState, KnowledgeStore, LoadLimits,
    NudgeOutcome, Record,
};
use twin_engine::{CreatorId, UserId};
use twin_store::gdpr::CREATOR_TABLES;
use twin_store::testing::{Kind, TestDb};

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Postgres).await } )*
        }
    };
}

both!(
    erasing_a_user_removes_their_rows_from_every_table_and_nothing_else,
    a_users_export_holds_every_row_of_theirs_and_no_one_elses,
    an_unlinked_channel_users_inbox_rows_are_theirs_until_the_identity_is_linked,
    erasing_a_creator_removes_every_row_of_the_tenant_and_nothing_else,
    a_creators_export_holds_the_profile_knowledge_and_every_users_data,
);

const T0: i64 = 1_700_000_000_000;
const EMBEDDER: &str = "hashed-ngrams-v1:4";

fn uid(raw: &str) -> UserId {
    UserId::parse(raw).unwrap()
}

/// An inbox payload as the channel adapters write it: a message from `sender`.
fn message_payload(sender: &str, text: &str) -> String {
    serde_json::json!({
        "dedup_key": "k",
        "event": {
            "kind": "message",
            "from": {"user": sender, "chat": sender, "name": "Someone"},
            "message_id": "m",
            "text": text,
            "content": {"type": "text"},
        }
    })
    .to_string()
}

/// A delivery status report about a send to `recipient`.
fn status_payload(recipient: &str) -> String {
    serde_json::json!({
        "dedup_key": "s",
        "event": {"kind": "status", "recipient": recipient, "provider_message_id": "wamid.1", "state": "delivered",
                  "error": null}
    })
    .to_string()
}

/// A creator with a document (embedded and its ingestion recorded) and a program.
async fn seed_creator(db: &TestDb, slug: &str) -> CreatorId {
    let id = creator(slug);
    let program_source = "id: focus\ntitle: Focus\nsteps: []\n";
    db.store
        .put_creator(&profile(slug, slug), &[document("a.md", "knowledge body")], &[program("focus", program_source)])
        .await
        .unwrap();
    db.store.replace_vectors(id, EMBEDDER, "a.md", "h1", &[(0, vec![0.5; 4]), (1, vec![0.5; 4])]).await.unwrap();
    let status = DocumentStatus {
        document: "a.md".to_owned(),
        content_hash: "h1".to_owned(),
        embedder: EMBEDDER.to_owned(),
        chunker: 1,
        state: IngestState::Ready,
        chunks_done: 2,
        chunks_total: 2,
        error: None,
        updated_at: T0,
    };
    db.store.set_ingestion(id, &status).await.unwrap();
    // The creator's own account, signed in once (a refresh-token family).
    let account = twin_store::NewAccount {
        id: uuid::Uuid::new_v4(),
        creator: Some(twin_engine::Slug::parse(slug).unwrap()),
        email: format!("{slug}@example.com"),
        role: twin_store::AccountRole::Creator,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        created_at: at(T0),
    };
    let twin_store::Created::Account(account) = db.store.create_account(&account).await.unwrap() else {
        panic!("a fresh email")
    };
    let token = twin_store::NewRefreshToken {
        token_hash: format!("{:064x}", id.as_uuid().as_u128()),
        issued_at: at(T0),
        expires_at: at(T0 + 86_400_000),
    };
    db.store.start_refresh_family(&account, &token).await.unwrap();
    id
}

/// A user with a conversation claimed by a node (a message and a reply sent on Telegram, a program
/// step entered), a
/// pending and a fired nudge,
/// a Telegram identity `external` (bound unless `None`), a link code and two inbox rows.
async fn seed_user(db: &TestDb, creator: CreatorId, user: &str, external: &str, bind: bool) {
    let reply = twin_message(creator, user, 2);
    let (pending, fired) = (nudge(creator, user, 1, T0 + 60_000), nudge(creator, user, 2, T0 + 1_000));
    // Run by a node of a cluster: the conversation is claimed and its commit fenced.
    let owner = db.store.claim_owner(creator, conversation(creator, user), "node-1", &[], false).await.unwrap();
    let records = vec![
        Record::Fence { creator, conversation: conversation(creator, user), epoch: owner.unwrap() },
        conversation_record(creator, user, 1),
        record(user_message(creator, user, 1, &format!("c-{user}"))),
        Record::Outbox(outbox_entry(&reply, ChannelKind::Telegram, external)),
        record(reply),
        scheduled(&pending),
        scheduled(&fired),
        Record::StepEntered {
            creator,
            conversation: conversation(creator, user),
            program: twin_engine::ProgramId::parse("focus").unwrap(),
            step: twin_engine::StepId::parse("day-1").unwrap(),
            at: at(T0),
        },
    ];
    db.store.commit(&records).await.unwrap();
    db.store.commit(&[settled(&fired, NudgeOutcome::Fired)]).await.unwrap();
    if bind {
        db.store.bind_identity(creator, ChannelKind::Telegram, external, &uid(user), at(T0)).await.unwrap();
    }
    db.store.put_link_code(creator, &format!("CODE{external}"), &uid(user), at(T0 + 900_000)).await.unwrap();
    let items = vec![
        (format!("tg:update:{external}"), message_payload(external, &format!("hello from {user}"))),
        (format!("wa:status:{external}"), status_payload(external)),
    ];
    db.store.inbox_put(creator, ChannelKind::Telegram, &items, at(T0)).await.unwrap();
}

/// Alice with users u1, u2 and an unlinked Telegram user tg-777; Bob with his own u1, who has the
/// same user id and the same Telegram id as Alice's u1.
async fn seed(db: &TestDb) -> (CreatorId, CreatorId) {
    let (alice, bob) = (seed_creator(db, "alice").await, seed_creator(db, "bob").await);
    seed_user(db, alice, "u1", "1001", true).await;
    seed_user(db, alice, "u2", "1002", true).await;
    seed_user(db, alice, "tg-777", "777", false).await;
    seed_user(db, bob, "u1", "1001", true).await;
    (alice, bob)
}

/// Rows per table of one user, counted directly (no row-level security), by the keys that tie a
/// row to them.
async fn user_rows(db: &TestDb, creator: CreatorId, user: &str, external: &str) -> BTreeMap<&'static str, i64> {
    let conversation = conversation(creator, user).0;
    let queries: [(&'static str, &str, String); 9] = [
        (
            "conversations",
            "SELECT count(*) FROM conversations WHERE creator_id = $1 AND id = $2",
            conversation.to_string(),
        ),
        (
            "messages",
            "SELECT count(*) FROM messages WHERE creator_id = $1 AND conversation_id = $2",
            conversation.to_string(),
        ),
        (
            "nudges",
            "SELECT count(*) FROM nudges WHERE creator_id = $1 AND conversation_id = $2",
            conversation.to_string(),
        ),
        (
            "outbox",
            "SELECT count(*) FROM outbox WHERE creator_id = $1 AND conversation_id = $2",
            conversation.to_string(),
        ),
        (
            "step_entries",
            "SELECT count(*) FROM step_entries WHERE creator_id = $1 AND conversation_id = $2",
            conversation.to_string(),
        ),
        (
            "conversation_owners",
            "SELECT count(*) FROM conversation_owners WHERE creator_id = $1 AND conversation_id = $2",
            conversation.to_string(),
        ),
        (
            "channel_identities",
            "SELECT count(*) FROM channel_identities WHERE creator_id = $1 AND user_id = $2",
            user.to_owned(),
        ),
        ("link_codes", "SELECT count(*) FROM link_codes WHERE creator_id = $1 AND user_id = $2", user.to_owned()),
        // Matched on the payload itself, not on the column the erasure uses.
        ("inbox", "SELECT count(*) FROM inbox WHERE creator_id = $1 AND payload LIKE $2", format!("%\"{external}\"%")),
    ];
    let mut rows = BTreeMap::new();
    for (table, sql, key) in queries {
        rows.insert(
            table,
            count(db, sql, creator, &key, table != "inbox" && table != "channel_identities" && table != "link_codes")
                .await,
        );
    }
    rows
}

/// Rows per tenant table of a creator (`creators`: its own row).
async fn creator_rows(db: &TestDb, creator: CreatorId) -> BTreeMap<&'static str, i64> {
    let mut rows = BTreeMap::new();
    for table in CREATOR_TABLES.iter().copied() {
        rows.insert(
            table,
            count(db, &format!("SELECT count(*) FROM {table} WHERE creator_id = $1"), creator, "", false).await,
        );
    }
    rows.insert("creators", count(db, "SELECT count(*) FROM creators WHERE id = $1", creator, "", false).await);
    rows
}

/// Runs a count with `$1` = the creator and `$2` = `key` (a uuid when `key_is_id`), as the
/// superuser on PostgreSQL and on a connection of its own on SQLite.
async fn count(db: &TestDb, sql: &str, creator: CreatorId, key: &str, key_is_id: bool) -> i64 {
    let with_key = sql.contains("$2");
    match db.kind() {
        Kind::Postgres => {
            let mut conn = db.superuser().await;
            let mut query = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned())).bind(creator.0);
            if with_key {
                query = if key_is_id {
                    query.bind(uuid::Uuid::parse_str(key).unwrap())
                } else {
                    query.bind(key.to_owned())
                };
            }
            let n = query.fetch_one(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            n
        }
        Kind::Sqlite => {
            let mut conn = SqliteConnection::connect(&db.url).await.unwrap();
            let sql = sql.replace('$', "?");
            let mut query =
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql)).bind(creator.0.hyphenated().to_string());
            if with_key {
                query = query.bind(key.to_owned());
            }
            let n = query.fetch_one(&mut conn).await.unwrap();
            conn.close().await.unwrap();
            n
        }
    }
}

fn seeded_user() -> BTreeMap<&'static str, i64> {
    BTreeMap::from([
        ("conversations", 1),
        ("messages", 2),
        ("nudges", 2),
        ("outbox", 1),
        ("step_entries", 1),
        ("conversation_owners", 1),
        ("channel_identities", 1),
        ("link_codes", 1),
        ("inbox", 2),
    ])
}

fn nothing(of: &BTreeMap<&'static str, i64>) -> BTreeMap<&'static str, i64> {
    of.keys().map(|k| (*k, 0)).collect()
}

async fn erasing_a_user_removes_their_rows_from_every_table_and_nothing_else(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (alice, bob) = seed(&db).await;
    assert_eq!(user_rows(&db, alice, "u1", "1001").await, seeded_user(), "seeded as expected");
    let alice_before = creator_rows(&db, alice).await;
    let bob_before = creator_rows(&db, bob).await;

    let report = db.store.erase_user(alice, &uid("u1")).await.unwrap();

    assert_eq!(user_rows(&db, alice, "u1", "1001").await, nothing(&seeded_user()), "every row of the user is gone");
    for (table, rows) in seeded_user() {
        assert_eq!(report.removed(table), rows as u64, "the report counts {table}");
    }
    assert_eq!(report.total(), 12);
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("u1") && !json.contains("1001"), "the report holds no personal data: {json}");

    assert_eq!(user_rows(&db, alice, "u2", "1002").await, seeded_user(), "another user of the creator is intact");
    let mut unlinked = seeded_user();
    unlinked.insert("channel_identities", 0);
    assert_eq!(user_rows(&db, alice, "tg-777", "777").await, unlinked, "so is the unlinked user");
    assert_eq!(user_rows(&db, bob, "u1", "1001").await, seeded_user(), "the same user id of another creator is intact");
    assert_eq!(creator_rows(&db, bob).await, bob_before, "the other creator is intact");
    let alice_after = creator_rows(&db, alice).await;
    for (table, before) in &alice_before {
        assert_eq!(alice_after[table], before - report.removed(table) as i64, "{table}: only the user's rows went");
    }
    assert_eq!(alice_after["knowledge_documents"], 1, "the creator's knowledge stays");

    let again = db.store.erase_user(alice, &uid("u1")).await.unwrap();
    assert_eq!(again.total(), 0, "erasing again removes nothing");
    assert!(db.store.export_user(alice, &uid("u1")).await.unwrap().is_empty());
    // A fresh conversation can start under the same id.
    db.store.commit(&[conversation_record(alice, "u1", 1)]).await.unwrap();
    let loaded = db
        .store
        .load(alice, conversation(alice, "u1"), LoadLimits { history: 10, client_ids: 10 })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.header.version, 1);
    assert!(loaded.recent.is_empty(), "nothing of the erased history comes back");
}

async fn a_users_export_holds_every_row_of_theirs_and_no_one_elses(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (alice, bob) = seed(&db).await;
    let export = db.store.export_user(alice, &uid("u1")).await.unwrap();
    assert_eq!(export.creator, alice.0);
    assert_eq!(export.user, "u1");
    let conversation_row = export.conversation.as_ref().expect("the conversation");
    assert_eq!(conversation_row.id, conversation(alice, "u1").0);
    assert!(conversation_row.state.is_object(), "the durable state, as stored");
    let texts: Vec<&str> = export.messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(texts, vec!["user says 1", "twin answers «2» with ünïcode"]);
    assert_eq!(export.messages[1].consistency, Some(742));
    let mut statuses: Vec<&str> = export.nudges.iter().map(|n| n.status.as_str()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec!["fired", "pending"], "pending and settled nudges");
    assert_eq!(export.outbox.len(), 1);
    assert_eq!(export.outbox[0].chat, "1001");
    assert_eq!(export.outbox[0].body["text"], "twin answers «2» with ünïcode");
    assert_eq!(export.step_entries.len(), 1);
    assert_eq!((export.step_entries[0].program.as_str(), export.step_entries[0].step.as_str()), ("focus", "day-1"));
    assert_eq!(export.identities.len(), 1);
    assert_eq!(
        (export.identities[0].channel.as_str(), export.identities[0].external_id.as_str()),
        ("telegram", "1001")
    );
    assert_eq!(export.link_codes.len(), 1);
    assert_eq!(export.link_codes[0].code, "CODE1001");
    assert_eq!(export.inbox.len(), 2, "the message and the status report about them");
    assert_eq!(export.inbox[0].payload["event"]["text"], "hello from u1");
    assert!(export.inbox.iter().all(|row| row.sender.as_deref() == Some("1001")));
    assert!(export.uploaded_knowledge.is_empty(), "end users upload no knowledge");
    let json = serde_json::to_string(&export).unwrap();
    assert!(!json.contains("1002") && !json.contains("hello from u2"), "nothing of another user");

    let bobs = db.store.export_user(bob, &uid("u1")).await.unwrap();
    assert_eq!(bobs.messages.len(), 2);
    assert!(bobs.messages.iter().all(|m| m.conversation == conversation(bob, "u1").0), "only Bob's tenant");
    assert!(db.store.export_user(bob, &uid("u2")).await.unwrap().is_empty(), "another tenant's user is unknown here");
    assert!(db.store.export_user(alice, &uid("nobody")).await.unwrap().is_empty());
}

async fn an_unlinked_channel_users_inbox_rows_are_theirs_until_the_identity_is_linked(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (alice, _) = seed(&db).await;
    let export = db.store.export_user(alice, &uid("tg-777")).await.unwrap();
    assert_eq!(export.inbox.len(), 2, "tg-777 speaks for Telegram user 777");
    assert!(export.identities.is_empty());

    // Once 777 is linked to u2, its items are u2's: erasing tg-777 leaves them.
    db.store.bind_identity(alice, ChannelKind::Telegram, "777", &uid("u2"), at(T0 + 5)).await.unwrap();
    assert!(db.store.export_user(alice, &uid("tg-777")).await.unwrap().inbox.is_empty());
    assert_eq!(db.store.export_user(alice, &uid("u2")).await.unwrap().inbox.len(), 4);
    let report = db.store.erase_user(alice, &uid("tg-777")).await.unwrap();
    assert_eq!(report.removed("inbox"), 0);
    assert_eq!(report.removed("messages"), 2, "its own conversation goes");
    let report = db.store.erase_user(alice, &uid("u2")).await.unwrap();
    assert_eq!(report.removed("inbox"), 4, "both identities' items");
    assert_eq!(report.removed("channel_identities"), 2);
}

async fn erasing_a_creator_removes_every_row_of_the_tenant_and_nothing_else(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (alice, bob) = seed(&db).await;
    let before = creator_rows(&db, alice).await;
    assert!(before.values().all(|rows| *rows > 0), "every table is seeded: {before:?}");
    let bob_before = creator_rows(&db, bob).await;

    let report = db.store.erase_creator(alice).await.unwrap();

    let after = creator_rows(&db, alice).await;
    assert!(after.values().all(|rows| *rows == 0), "nothing of the tenant is left: {after:?}");
    for (table, rows) in &before {
        assert_eq!(report.removed(table), *rows as u64, "the report counts {table}");
    }
    assert_eq!(creator_rows(&db, bob).await, bob_before, "the other creator is intact");
    assert!(db.store.creator(alice).await.unwrap().is_none());
    assert!(db.store.export_creator(alice).await.unwrap().is_none());
    assert!(db.store.vectors(alice, EMBEDDER).await.unwrap().is_empty());
    assert_eq!(db.store.vectors(bob, EMBEDDER).await.unwrap().len(), 2);
    // The slug can be imported again, as a new creator.
    db.store.put_creator(&profile("alice", "alice"), &[], &[]).await.unwrap();
    assert_eq!(db.store.creator(alice).await.unwrap().unwrap().version, 1);
}

async fn a_creators_export_holds_the_profile_knowledge_and_every_users_data(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (alice, bob) = seed(&db).await;
    let export = db.store.export_creator(alice).await.unwrap().expect("alice exists");
    assert_eq!(export.slug, "alice");
    assert_eq!(export.profile["slug"], "alice");
    assert_eq!(export.documents.len(), 1);
    assert_eq!(export.documents[0].body, "knowledge body");
    assert_eq!(export.programs.len(), 1);
    assert_eq!(export.ingestion.len(), 1);
    assert_eq!(export.vectors.len(), 2);
    assert_eq!(export.vectors[0].dimensions, 4);
    let counts = creator_rows(&db, alice).await;
    assert_eq!(export.conversations.len() as i64, counts["conversations"]);
    assert_eq!(export.messages.len() as i64, counts["messages"]);
    assert_eq!(export.nudges.len() as i64, counts["nudges"]);
    assert_eq!(export.outbox.len() as i64, counts["outbox"]);
    assert_eq!(export.step_entries.len() as i64, counts["step_entries"]);
    assert_eq!(export.inbox.len() as i64, counts["inbox"]);
    assert_eq!(export.identities.len() as i64, counts["channel_identities"]);
    assert_eq!(export.link_codes.len() as i64, counts["link_codes"]);
    let users: Vec<&str> = export.conversations.iter().map(|c| c.user.as_str()).collect();
    assert_eq!(users, vec!["tg-777", "u1", "u2"]);
    assert!(export.messages.iter().all(|m| m.conversation != conversation(bob, "u1").0), "no other tenant's rows");
}
