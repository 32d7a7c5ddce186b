//! PostgreSQL tenant isolation, with the store connected exactly as the service connects: the URL
//! names the superuser, and the pools switch to `twin_app` / `twin_system`. Each test also shows
//! through a superuser connection that the rows it cannot see are really there, so it would fail
//! if row-level security were missing.

#![allow(clippy::unwrap_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use std::collections::HashSet;

use fixtures::*;
use sqlx::{Executor, PgConnection};
use twin_engine::channel::{ChannelKind, DeliveryState};
use twin_engine::ports::{
    ChannelStore, ConversationStore, CreatorStore, LoadLimits, NudgeOutcome, NudgeStore, OutboxUpdate, Record,
    ScheduledNudge,
};
use twin_engine::{CreatorId, NudgeId, Seq};
use twin_store::testing::{Kind, TestDb};
use uuid::Uuid;

const ALL: LoadLimits = LoadLimits { history: 100, client_ids: 100 };
/// PostgreSQL's insufficient_privilege, raised for a row refused by a policy and a missing grant.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// Two tenants with a creator, a program, a conversation, messages, pending nudges and program
/// steps entered each: alice 3 messages, 2 nudges and 2 steps, bob 2 messages, 1 nudge and 1 step.
async fn two_tenants() -> (TestDb, CreatorId, CreatorId) {
    let db = TestDb::new(Kind::Postgres).await;
    let (a, b) = (creator("alice"), creator("bob"));
    let alice_programs = [program("focus", "alice's program")];
    let bob_programs = [program("focus", "bob's program")];
    db.store
        .put_creator(&profile("alice", "Alice"), &[document("a.md", "alice's notes")], &alice_programs)
        .await
        .unwrap();
    db.store.put_creator(&profile("bob", "Bob"), &[document("b.md", "bob's notes")], &bob_programs).await.unwrap();
    let slice = [
        conversation_record(a, "u1", 1),
        conversation_record(b, "u1", 1),
        record(user_message(a, "u1", 1, "c1")),
        record(twin_message(a, "u1", 2)),
        record(user_message(a, "u1", 3, "c2")),
        record(user_message(b, "u1", 1, "c1")),
        record(twin_message(b, "u1", 2)),
        scheduled(&alice_nudge(1)),
        scheduled(&alice_nudge(2)),
        scheduled(&bob_nudge()),
        step_entered(a, 1),
        step_entered(a, 2),
        step_entered(b, 1),
    ];
    db.store.commit(&slice).await.unwrap();
    (db, a, b)
}

fn step_entered(creator: CreatorId, n: i64) -> Record {
    Record::StepEntered {
        creator,
        conversation: conversation(creator, "u1"),
        program: twin_engine::ProgramId::parse("focus").unwrap(),
        step: twin_engine::StepId::parse("day-1").unwrap(),
        at: at(n),
    }
}

fn alice_nudge(n: u64) -> ScheduledNudge {
    nudge(creator("alice"), "u1", n, 1_000 * n as i64)
}

fn bob_nudge() -> ScheduledNudge {
    nudge(creator("bob"), "u1", 1, 1_500)
}

async fn count(conn: &mut PgConnection, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

async fn set_tenant(conn: &mut PgConnection, creator: CreatorId) {
    sqlx::query("SELECT set_config('app.creator_id', $1, true)")
        .bind(creator.0.to_string())
        .execute(conn)
        .await
        .unwrap();
}

fn sql_state(error: &sqlx::Error) -> Option<String> {
    error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned())
}

#[tokio::test]
async fn the_pool_runs_as_twin_app_on_tables_it_does_not_own() {
    let (db, _, _) = two_tenants().await;
    let pool = db.store.postgres_app_pool().unwrap();
    let user: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(pool).await.unwrap();
    assert_eq!(user, "twin_app");

    let mut su = db.superuser().await;
    let owned_by_roles = count(
        &mut su,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner IN ('twin_app', 'twin_system')",
    )
    .await;
    assert_eq!(owned_by_roles, 0);
    let protected = count(
        &mut su,
        "SELECT count(*) FROM pg_class WHERE relname IN ('creators', 'knowledge_documents', 'conversations', 'messages', \
         'programs', 'nudges', 'knowledge_ingestion', 'knowledge_vectors', 'inbox', 'channel_identities', 'link_codes', \
         'outbox', 'step_entries') AND relkind = 'r' AND relrowsecurity AND relforcerowsecurity",
    )
    .await;
    assert_eq!(protected, 13, "every tenant table has ENABLE and FORCE row level security");
    let roles = count(
        &mut su,
        "SELECT count(*) FROM pg_roles WHERE rolname IN ('twin_app', 'twin_system') \
         AND NOT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls",
    )
    .await;
    assert_eq!(roles, 2);
}

#[tokio::test]
async fn tenant_a_cannot_reach_tenant_b_through_the_ports() {
    let (db, a, b) = two_tenants().await;
    let theirs = conversation(b, "u1");
    assert!(db.store.load(a, theirs, ALL).await.unwrap().is_none());
    assert!(db.store.history(a, theirs, Seq(0), 100).await.unwrap().is_empty());
    // Their conversation is there for them.
    assert_eq!(db.store.load(b, theirs, ALL).await.unwrap().unwrap().last_seq, Seq(2));

    // A slice that writes into b's conversation under a's tenant is refused.
    let mut intruder = user_message(b, "u1", 3, "c3");
    intruder.creator = a;
    assert!(db.store.commit(&[record(intruder)]).await.is_err());
    assert_eq!(db.store.load(b, theirs, ALL).await.unwrap().unwrap().last_seq, Seq(2));
}

#[tokio::test]
async fn with_tenant_a_set_a_raw_query_sees_only_a_and_cannot_write_as_b() {
    let (db, a, b) = two_tenants().await;
    let pool = db.store.postgres_app_pool().unwrap();

    let mut tx = pool.begin().await.unwrap();
    set_tenant(&mut tx, a).await;
    assert_eq!(count(&mut tx, "SELECT count(*) FROM messages").await, 3, "only a's messages");
    assert_eq!(count(&mut tx, "SELECT count(*) FROM conversations").await, 1);
    assert_eq!(count(&mut tx, "SELECT count(*) FROM knowledge_documents").await, 1);
    assert_eq!(count(&mut tx, "SELECT count(*) FROM step_entries").await, 2, "only a's steps");
    let creators: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM creators").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(creators, vec![a.0], "b's creator row is invisible");
    let theirs: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE creator_id = $1")
        .bind(b.0)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(theirs, 0);
    let moved = sqlx::query("UPDATE conversations SET version = 99 WHERE id = $1")
        .bind(conversation(b, "u1").0)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 0, "b's conversation cannot be updated");

    let insert = sqlx::query(
        "INSERT INTO messages (conversation_id, seq, creator_id, origin, body, created_at) \
         VALUES ($1, 3, $2, 'user', 'injected', 0)",
    )
    .bind(conversation(b, "u1").0)
    .bind(b.0)
    .execute(&mut *tx)
    .await;
    let error = insert.expect_err("WITH CHECK refuses a row of another tenant");
    assert_eq!(sql_state(&error).as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{error}");
    tx.rollback().await.unwrap();

    // The superuser, who bypasses row-level security, sees both tenants and no injected row.
    let mut su = db.superuser().await;
    assert_eq!(count(&mut su, "SELECT count(*) FROM messages").await, 5);
    assert_eq!(count(&mut su, "SELECT count(*) FROM creators").await, 2);
    assert_eq!(count(&mut su, "SELECT max(version) FROM conversations").await, 1);
}

#[tokio::test]
async fn one_transaction_can_switch_tenants_between_statements() {
    let (db, a, b) = two_tenants().await;
    let pool = db.store.postgres_app_pool().unwrap();
    let mut tx = pool.begin().await.unwrap();
    set_tenant(&mut tx, a).await;
    assert_eq!(count(&mut tx, "SELECT count(*) FROM messages").await, 3);
    set_tenant(&mut tx, b).await;
    assert_eq!(count(&mut tx, "SELECT count(*) FROM messages").await, 2);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn with_no_tenant_set_nothing_is_visible() {
    let (db, a, _) = two_tenants().await;
    // A port call sets the tenant in its own transaction; it must not stay on the connection.
    assert!(db.store.load(a, conversation(a, "u1"), ALL).await.unwrap().is_some());
    let pool = db.store.postgres_app_pool().unwrap();
    let mut conn = pool.acquire().await.unwrap();
    for table in [
        "messages",
        "conversations",
        "creators",
        "knowledge_documents",
        "programs",
        "nudges",
        "inbox",
        "channel_identities",
        "link_codes",
        "outbox",
        "step_entries",
    ] {
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *conn).await.unwrap();
        assert_eq!(n, 0, "{table} with no tenant set");
    }
    let mut su = db.superuser().await;
    assert_eq!(count(&mut su, "SELECT count(*) FROM messages").await, 5, "the rows exist");
}

#[tokio::test]
async fn twin_system_reads_every_creator_but_no_conversation_or_message() {
    let (db, _, _) = two_tenants().await;
    db.store.ready().await.expect("readiness is checked as twin_system");

    let mut conn = db.superuser().await;
    conn.execute("SET ROLE twin_system").await.unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM creators").await, 2, "creators across tenants");
    for sql in ["SELECT count(*) FROM messages", "SELECT count(*) FROM conversations"] {
        let denied = sqlx::query(sql).execute(&mut conn).await.expect_err("no grant on tenant data");
        assert_eq!(sql_state(&denied).as_deref(), Some(INSUFFICIENT_PRIVILEGE));
    }
    let write = sqlx::query("UPDATE creators SET version = version + 1").execute(&mut conn).await;
    assert_eq!(sql_state(&write.expect_err("read only")).as_deref(), Some(INSUFFICIENT_PRIVILEGE));
}

#[tokio::test]
async fn migrations_run_concurrently_in_many_databases() {
    let dbs = futures::future::join_all((0..4).map(|_| TestDb::unmigrated(Kind::Postgres))).await;
    let results = futures::future::join_all(dbs.iter().map(|db| db.store.migrate())).await;
    for result in results {
        result.expect("each database migrates while the others do");
    }
    for db in &dbs {
        db.store.ready().await.unwrap();
    }
}

#[tokio::test]
async fn with_tenant_a_set_b_s_nudges_and_programs_cannot_be_seen_or_changed() {
    let (db, a, b) = two_tenants().await;
    let pool = db.store.postgres_app_pool().unwrap();
    let theirs = bob_nudge();

    let mut tx = pool.begin().await.unwrap();
    set_tenant(&mut tx, a).await;
    assert_eq!(count(&mut tx, "SELECT count(*) FROM nudges").await, 2, "only a's nudges");
    let sources: Vec<String> = sqlx::query_scalar("SELECT source FROM programs").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(sources, vec!["alice's program".to_owned()], "only a's programs");
    let settled = sqlx::query("UPDATE nudges SET status = 'cancelled', settled_at = 0 WHERE id = $1")
        .bind(theirs.id.0)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(settled.rows_affected(), 0, "b's nudge cannot be settled");

    // Writing rows of b is refused by WITH CHECK, inside a savepoint so the transaction goes on.
    for sql in [
        "INSERT INTO programs (creator_id, program_id, version, source, content_hash) VALUES ($1, 'x', 1, 's', 'h')",
        "INSERT INTO nudges (id, creator_id, conversation_id, user_id, due_at) \
         SELECT gen_random_uuid(), $1, id, user_id, 0 FROM conversations LIMIT 1",
    ] {
        tx.execute("SAVEPOINT attempt").await.unwrap();
        let refused = sqlx::query(sql).bind(b.0).execute(&mut *tx).await.expect_err("a row of another tenant");
        assert_eq!(sql_state(&refused).as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{refused}");
        tx.execute("ROLLBACK TO SAVEPOINT attempt").await.unwrap();
    }
    // No UPDATE or DELETE of program versions is granted at all.
    let rewrite = sqlx::query("UPDATE programs SET source = 'changed'").execute(&mut *tx).await;
    assert_eq!(sql_state(&rewrite.expect_err("immutable")).as_deref(), Some(INSUFFICIENT_PRIVILEGE));
    tx.rollback().await.unwrap();

    // Through the port: a settle under a's tenant does not reach b's nudge.
    let intruder = twin_engine::ports::Record::NudgeSettled { creator: a, id: theirs.id, outcome: NudgeOutcome::Fired };
    db.store.commit(&[intruder]).await.unwrap();
    assert_eq!(db.store.pending_of(b, conversation(b, "u1")).await.unwrap(), vec![theirs.clone()]);
    assert!(db.store.pending_of(a, conversation(b, "u1")).await.unwrap().is_empty());

    // The superuser sees both tenants' rows, and b's nudge still pending.
    let mut su = db.superuser().await;
    assert_eq!(count(&mut su, "SELECT count(*) FROM nudges WHERE status = 'pending'").await, 3);
    assert_eq!(count(&mut su, "SELECT count(*) FROM programs").await, 2);
}

#[tokio::test]
async fn twin_system_sees_pending_nudges_and_changes_only_their_claim() {
    let (db, _, _) = two_tenants().await;
    // One of alice's nudges is settled: twin_system no longer sees it.
    db.store.commit(&[settled(&alice_nudge(2), NudgeOutcome::Fired)]).await.unwrap();
    let due = db.store.pending_before(at(i64::MAX), at(0), 10).await.unwrap();
    assert_eq!(due, vec![alice_nudge(1), bob_nudge()], "across tenants, as twin_system");

    let mut conn = db.superuser().await;
    conn.execute("SET ROLE twin_system").await.unwrap();
    assert_eq!(count(&mut conn, "SELECT count(*) FROM nudges").await, 2, "pending ones only");
    let claimed = sqlx::query("UPDATE nudges SET claimed_until = 5").execute(&mut conn).await.unwrap();
    assert_eq!(claimed.rows_affected(), 2, "the claim of every pending nudge");
    for sql in [
        "UPDATE nudges SET status = 'cancelled'",
        "UPDATE nudges SET due_at = 0",
        "DELETE FROM nudges",
        "SELECT count(*) FROM nudges WHERE settled_at IS NULL",
        "SELECT count(*) FROM programs",
        "INSERT INTO nudges (id, creator_id, conversation_id, user_id, due_at) \
         VALUES (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'u', 0)",
    ] {
        let denied = sqlx::query(sql).execute(&mut conn).await.expect_err(sql);
        assert_eq!(sql_state(&denied).as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{sql}: {denied}");
    }

    let mut su = db.superuser().await;
    assert_eq!(count(&mut su, "SELECT count(*) FROM nudges WHERE claimed_until IS NOT NULL").await, 2);
    assert_eq!(count(&mut su, "SELECT count(*) FROM nudges WHERE status = 'fired'").await, 1, "untouched");
}

#[tokio::test]
async fn racing_claims_take_each_nudge_exactly_once() {
    let db = TestDb::new(Kind::Postgres).await;
    let a = creator("alice");
    let users: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    let mut slice: Vec<_> = users.iter().map(|u| conversation_record(a, u, 1)).collect();
    let nudges: Vec<ScheduledNudge> =
        users.iter().flat_map(|u| (1..=20).map(move |n| nudge(a, u, n, n as i64))).collect();
    slice.extend(nudges.iter().map(scheduled));
    db.store.commit(&slice).await.unwrap();
    let all: Vec<NudgeId> = nudges.iter().map(|n| n.id).collect();

    // Rounds of two claimers on the same ids, in opposite orders and small batches, so their row
    // locks meet; each round's lease expires before the next round's `now`.
    for round in 0..5_i64 {
        let (now, lease) = (1_000 * (round + 1), 1_000 * (round + 1) + 500);
        let claimers = [false, true].map(|reverse| {
            let store = db.store.clone();
            let mut ids = all.clone();
            if reverse {
                ids.reverse();
            }
            tokio::spawn(async move {
                let mut claimed = Vec::new();
                for batch in ids.chunks(16) {
                    claimed.extend(store.claim(batch, at(now), at(lease)).await.unwrap().into_iter().map(|n| n.id));
                }
                claimed
            })
        });
        let [first, second] = claimers;
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        let first_set: HashSet<NudgeId> = first.iter().copied().collect();
        let second_set: HashSet<NudgeId> = second.iter().copied().collect();
        assert_eq!(first_set.len(), first.len(), "no id twice to one claimer");
        assert_eq!(second_set.len(), second.len());
        assert!(first_set.is_disjoint(&second_set), "round {round}: an id claimed by both");
        assert_eq!(first.len() + second.len(), all.len(), "round {round}: every id claimed");
    }
}

/// `two_tenants` plus channel rows of each: one inbox item, identity, link code and outbox entry
/// (sending their twin message at seq 2) per tenant.
async fn two_tenants_on_channels() -> (TestDb, CreatorId, CreatorId) {
    let (db, a, b) = two_tenants().await;
    for (creator, user) in [(a, "alice-user"), (b, "bob-user")] {
        let items = [("tg:update:1".to_owned(), format!("{{\"from\":\"{user}\"}}"))];
        assert_eq!(db.store.inbox_put(creator, ChannelKind::Telegram, &items, at(1)).await.unwrap().len(), 1);
        let user = twin_engine::UserId::parse(user).unwrap();
        db.store.bind_identity(creator, ChannelKind::Telegram, "777", &user, at(1)).await.unwrap();
        db.store.put_link_code(creator, "CODE", &user, at(1_000)).await.unwrap();
        let entry = outbox_entry(&twin_message(creator, "u1", 2), ChannelKind::Telegram, "777");
        db.store.commit(&[Record::Outbox(entry)]).await.unwrap();
    }
    (db, a, b)
}

#[tokio::test]
async fn with_tenant_a_set_b_s_channel_rows_cannot_be_seen_or_written() {
    let (db, a, b) = two_tenants_on_channels().await;
    let pool = db.store.postgres_app_pool().unwrap();

    let mut tx = pool.begin().await.unwrap();
    set_tenant(&mut tx, a).await;
    for table in ["inbox", "channel_identities", "link_codes", "outbox"] {
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *tx).await.unwrap();
        assert_eq!(n, 1, "only a's row of {table}");
    }
    let payloads: Vec<String> = sqlx::query_scalar("SELECT payload FROM inbox").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(payloads, vec![r#"{"from":"alice-user"}"#.to_owned()]);
    for sql in [
        "UPDATE inbox SET processed_at = 5 WHERE creator_id = $1",
        "UPDATE channel_identities SET user_id = 'hijacked' WHERE creator_id = $1",
        "UPDATE link_codes SET expires_at = 0 WHERE creator_id = $1",
        "DELETE FROM link_codes WHERE creator_id = $1",
        "UPDATE outbox SET state = 'failed' WHERE creator_id = $1",
        // DELETE is granted for GDPR erasure (0011); the tenant policies keep it to a's rows.
        "DELETE FROM outbox WHERE creator_id = $1",
        "DELETE FROM inbox WHERE creator_id = $1",
        "DELETE FROM channel_identities WHERE creator_id = $1",
        "DELETE FROM messages WHERE creator_id = $1",
        "DELETE FROM nudges WHERE creator_id = $1",
        "DELETE FROM conversations WHERE creator_id = $1",
        "DELETE FROM programs WHERE creator_id = $1",
        "DELETE FROM creators WHERE id = $1",
    ] {
        let done = sqlx::query(sql).bind(b.0).execute(&mut *tx).await.unwrap();
        assert_eq!(done.rows_affected(), 0, "{sql}: b's rows are out of reach");
    }

    // Rows of b are refused by WITH CHECK; what is not granted is refused outright.
    for sql in [
        "INSERT INTO inbox (creator_id, channel, dedup_key, payload, received_at) \
         VALUES ($1, 'telegram', 'tg:update:9', '{}', 0)",
        "INSERT INTO channel_identities (creator_id, channel, external_id, user_id, created_at) \
         VALUES ($1, 'telegram', '888', 'u', 0)",
        "INSERT INTO link_codes (creator_id, code, user_id, expires_at) VALUES ($1, 'MINE', 'u', 9)",
        "INSERT INTO outbox (creator_id, conversation_id, seq, channel, chat, body, next_attempt_at, created_at, \
         updated_at) SELECT $1, conversation_id, seq, 'telegram', '777', '{}'::jsonb, 0, 0, 0 FROM messages WHERE seq = 1",
        "UPDATE outbox SET body = '{}'::jsonb WHERE creator_id <> $1",
        "UPDATE inbox SET payload = '{}' WHERE creator_id <> $1",
    ] {
        tx.execute("SAVEPOINT attempt").await.unwrap();
        let refused = sqlx::query(sql).bind(b.0).execute(&mut *tx).await.expect_err(sql);
        assert_eq!(sql_state(&refused).as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{sql}: {refused}");
        tx.execute("ROLLBACK TO SAVEPOINT attempt").await.unwrap();
    }
    tx.rollback().await.unwrap();

    // Through the ports, a's tenant reaches none of b's rows.
    let theirs = conversation(b, "u1");
    assert_eq!(db.store.outbox_entry(a, theirs, Seq(2)).await.unwrap(), None);
    let intruder = OutboxUpdate::Failed { error: "x".to_owned() };
    db.store.outbox_update(a, theirs, Seq(2), &intruder, at(5)).await.unwrap();
    assert_eq!(db.store.outbox_entry(b, theirs, Seq(2)).await.unwrap().unwrap().state, DeliveryState::Pending);
    assert_eq!(db.store.take_link_code(a, "CODE", at(0)).await.unwrap().unwrap().as_str(), "alice-user");
    assert_eq!(db.store.take_link_code(b, "CODE", at(0)).await.unwrap().unwrap().as_str(), "bob-user");

    // The superuser sees both tenants' rows, b's untouched.
    let mut su = db.superuser().await;
    assert_eq!(count(&mut su, "SELECT count(*) FROM inbox WHERE processed_at IS NULL").await, 2);
    assert_eq!(count(&mut su, "SELECT count(*) FROM channel_identities WHERE user_id <> 'hijacked'").await, 2);
    assert_eq!(count(&mut su, "SELECT count(*) FROM outbox WHERE state = 'pending'").await, 2);
}

#[tokio::test]
async fn twin_system_sees_only_the_keys_of_pending_channel_rows() {
    let (db, a, b) = two_tenants_on_channels().await;
    // Across tenants through the ports: keys as twin_system, the rest as each tenant.
    let inbox = db.store.inbox_pending(at(i64::MAX), at(0), 10).await.unwrap();
    assert_eq!(inbox.iter().map(|r| r.creator).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(inbox[1].payload, r#"{"from":"bob-user"}"#);
    assert_eq!(db.store.outbox_due(at(i64::MAX), 10).await.unwrap().len(), 2);

    // a's item is processed; a's entry is sent (it has a provider id); b's entry failed.
    db.store.inbox_done(a, inbox[0].id, at(2)).await.unwrap();
    let sent = OutboxUpdate::Sent { provider_message_id: Some("99".to_owned()) };
    db.store.outbox_update(a, conversation(a, "u1"), Seq(2), &sent, at(2)).await.unwrap();
    let failed = OutboxUpdate::Failed { error: "blocked".to_owned() };
    db.store.outbox_update(b, conversation(b, "u1"), Seq(2), &failed, at(2)).await.unwrap();

    let mut conn = db.superuser().await;
    conn.execute("SET ROLE twin_system").await.unwrap();
    let pending: Vec<Uuid> = sqlx::query_scalar("SELECT creator_id FROM inbox").fetch_all(&mut conn).await.unwrap();
    assert_eq!(pending, vec![b.0], "pending items only");
    let outbox: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT creator_id, state FROM outbox").fetch_all(&mut conn).await.unwrap();
    assert_eq!(outbox, vec![(a.0, "sent".to_owned())], "by provider id; the failed entry has none and is not pending");
    for sql in [
        "SELECT payload FROM inbox",
        "SELECT dedup_key FROM inbox",
        "SELECT body FROM outbox",
        "SELECT chat FROM outbox",
        "SELECT error FROM outbox",
        "SELECT count(*) FROM channel_identities",
        "SELECT count(*) FROM link_codes",
        "UPDATE inbox SET processed_at = 1",
        "UPDATE outbox SET state = 'read'",
        "DELETE FROM inbox",
        "DELETE FROM outbox",
        "INSERT INTO inbox (creator_id, channel, dedup_key, payload, received_at) \
         VALUES (gen_random_uuid(), 'telegram', 'k', '{}', 0)",
    ] {
        let denied = sqlx::query(sql).execute(&mut conn).await.expect_err(sql);
        assert_eq!(sql_state(&denied).as_deref(), Some(INSUFFICIENT_PRIVILEGE), "{sql}: {denied}");
    }
}
