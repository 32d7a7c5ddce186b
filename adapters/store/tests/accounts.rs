//! Accounts, refresh token families, login failure counts and the audit log: the same tests against
//! SQLite and PostgreSQL, each on a fresh database; then, on PostgreSQL, what `twin_app` with one
//! tenant set can and cannot see.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use sqlx::{Connection, PgConnection};
use twin_engine::{CreatorId, Slug, Timestamp};
use twin_store::testing::{Kind, TestDb};
use twin_store::{AccountRole, AuditEntry, Created, NewAccount, NewRefreshToken, Rotation, Store};
use uuid::Uuid;

macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::$test(super::Kind::Postgres).await } )*
        }
    };
}

contract!(
    an_account_is_stored_lowercased_and_an_email_is_taken_in_any_case,
    credentials_are_found_by_email_and_accounts_only_in_their_tenant,
    disabling_an_agent_revokes_its_refresh_families,
    a_refresh_token_rotates_once_and_its_reuse_revokes_the_family,
    of_two_concurrent_uses_of_one_refresh_token_exactly_one_rotates,
    expired_and_unknown_refresh_tokens_are_invalid_and_logout_revokes,
    login_failures_are_counted_cleared_on_success_and_age_out,
    audit_entries_come_newest_first_by_cursor_and_per_tenant,
);

const T0: i64 = 1_700_000_000_000;
const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + ms)
}

fn creator(slug: &str) -> CreatorId {
    Slug::parse(slug).unwrap().creator_id()
}

fn new_account(email: &str, role: AccountRole, creator: Option<&str>) -> NewAccount {
    NewAccount {
        id: Uuid::new_v4(),
        creator: creator.map(|slug| Slug::parse(slug).unwrap()),
        email: email.to_owned(),
        role,
        password_hash: HASH.to_owned(),
        created_at: at(0),
    }
}

async fn create(store: &Store, email: &str, role: AccountRole, creator: Option<&str>) -> twin_store::Account {
    match store.create_account(&new_account(email, role, creator)).await.unwrap() {
        Created::Account(account) => *account,
        Created::EmailTaken => panic!("{email} is taken"),
    }
}

fn token(hash: &str, issued: i64) -> NewRefreshToken {
    NewRefreshToken { token_hash: hash.to_owned(), issued_at: at(issued), expires_at: at(issued + 60_000) }
}

fn entry(creator: Option<CreatorId>, action: &str, ms: i64) -> AuditEntry {
    AuditEntry {
        creator,
        at: at(ms),
        actor: "cli".to_owned(),
        action: action.to_owned(),
        target: Some("target".to_owned()),
        client_address: Some("127.0.0.1".to_owned()),
        detail: json!({"n": ms}),
    }
}

async fn an_account_is_stored_lowercased_and_an_email_is_taken_in_any_case(kind: Kind) {
    let db = TestDb::new(kind).await;
    let alice = creator("alice");
    let account = create(&db.store, "Ana@Example.COM", AccountRole::Creator, Some("alice")).await;
    assert_eq!(account.email, "ana@example.com");
    assert_eq!((account.creator, account.creator_slug.as_ref().map(Slug::as_str)), (Some(alice), Some("alice")));
    assert_eq!(db.store.account(Some(alice), account.id).await.unwrap(), Some(account));

    // Taken in another case, by another tenant, or by an admin.
    let again = new_account("ANA@example.com", AccountRole::Agent, Some("bob"));
    assert_eq!(db.store.create_account(&again).await.unwrap(), Created::EmailTaken);
    let admin = new_account("ana@example.com", AccountRole::Admin, None);
    assert_eq!(db.store.create_account(&admin).await.unwrap(), Created::EmailTaken);

    // Admins have no tenant and everyone else has one.
    let admin = create(&db.store, "root@example.com", AccountRole::Admin, None).await;
    assert_eq!(db.store.account(None, admin.id).await.unwrap().unwrap().role, AccountRole::Admin);
    assert!(db.store.create_account(&new_account("x@example.com", AccountRole::Admin, Some("alice"))).await.is_err());
    assert!(db.store.create_account(&new_account("y@example.com", AccountRole::Agent, None)).await.is_err());
}

async fn credentials_are_found_by_email_and_accounts_only_in_their_tenant(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (alice, bob) = (creator("alice"), creator("bob"));
    let ana = create(&db.store, "ana@example.com", AccountRole::Creator, Some("alice")).await;
    let found = db.store.credentials("ANA@EXAMPLE.com").await.unwrap().unwrap();
    assert_eq!(found.account, ana);
    assert_eq!(found.password_hash, HASH);
    assert!(db.store.credentials("nobody@example.com").await.unwrap().is_none());

    assert!(db.store.account(Some(bob), ana.id).await.unwrap().is_none());
    assert!(db.store.account(None, ana.id).await.unwrap().is_none(), "a creator is not an admin account");

    let agent = create(&db.store, "agent@example.com", AccountRole::Agent, Some("alice")).await;
    create(&db.store, "other@example.com", AccountRole::Agent, Some("bob")).await;
    assert_eq!(
        db.store.agents(alice).await.unwrap(),
        vec![agent],
        "the creator is not an agent; bob's are not alice's"
    );
}

async fn disabling_an_agent_revokes_its_refresh_families(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (alice, bob) = (creator("alice"), creator("bob"));
    let agent = create(&db.store, "agent@example.com", AccountRole::Agent, Some("alice")).await;
    let owner = create(&db.store, "ana@example.com", AccountRole::Creator, Some("alice")).await;
    db.store.start_refresh_family(&agent, &token("a1", 0)).await.unwrap();

    assert!(!db.store.disable_agent(bob, agent.id, at(1)).await.unwrap(), "another tenant's agent");
    assert!(!db.store.disable_agent(alice, owner.id, at(1)).await.unwrap(), "not an agent");
    assert!(db.store.disable_agent(alice, agent.id, at(2)).await.unwrap());
    assert!(db.store.disable_agent(alice, agent.id, at(3)).await.unwrap());
    let stored = db.store.account(Some(alice), agent.id).await.unwrap().unwrap();
    assert_eq!(stored.disabled_at, Some(at(2)), "the first time is kept");

    assert_eq!(db.store.rotate_refresh("a1", &token("a2", 4), at(4)).await.unwrap(), Rotation::Invalid);
    // A family started after the disabling (it cannot happen through a login) does not rotate.
    db.store.start_refresh_family(&stored, &token("b1", 5)).await.unwrap();
    assert_eq!(db.store.rotate_refresh("b1", &token("b2", 6), at(6)).await.unwrap(), Rotation::Invalid);
}

async fn a_refresh_token_rotates_once_and_its_reuse_revokes_the_family(kind: Kind) {
    let db = TestDb::new(kind).await;
    let ana = create(&db.store, "ana@example.com", AccountRole::Creator, Some("alice")).await;
    let family = db.store.start_refresh_family(&ana, &token("t1", 0)).await.unwrap();
    let grant = match db.store.rotate_refresh("t1", &token("t2", 1), at(1)).await.unwrap() {
        Rotation::Rotated(grant) => grant,
        other => panic!("expected a rotation, got {other:?}"),
    };
    assert_eq!((grant.account, grant.creator, grant.family), (ana.id, ana.creator, family));
    let grant = match db.store.rotate_refresh("t2", &token("t3", 2), at(2)).await.unwrap() {
        Rotation::Rotated(grant) => grant,
        other => panic!("expected a rotation, got {other:?}"),
    };
    assert_eq!(grant.family, family);

    // t1 again: a reuse. The family is revoked, so the current token t3 no longer works either.
    assert_eq!(db.store.rotate_refresh("t1", &token("x", 3), at(3)).await.unwrap(), Rotation::Reused(grant));
    assert_eq!(db.store.rotate_refresh("t3", &token("t4", 4), at(4)).await.unwrap(), Rotation::Invalid);

    // Another family of the same account is untouched.
    db.store.start_refresh_family(&ana, &token("u1", 5)).await.unwrap();
    assert!(matches!(db.store.rotate_refresh("u1", &token("u2", 6), at(6)).await.unwrap(), Rotation::Rotated(_)));
}

async fn of_two_concurrent_uses_of_one_refresh_token_exactly_one_rotates(kind: Kind) {
    let db = TestDb::new(kind).await;
    let ana = create(&db.store, "ana@example.com", AccountRole::Creator, Some("alice")).await;
    for round in 0..5 {
        let first = format!("r{round}");
        db.store.start_refresh_family(&ana, &token(&first, 0)).await.unwrap();
        let (a, b) = (db.store.clone(), db.store.clone());
        let (next_a, next_b) = (token(&format!("{first}-a"), 1), token(&format!("{first}-b"), 1));
        let (fa, fb) = (first.clone(), first.clone());
        let one = tokio::spawn(async move { a.rotate_refresh(&fa, &next_a, at(1)).await.unwrap() });
        let two = tokio::spawn(async move { b.rotate_refresh(&fb, &next_b, at(1)).await.unwrap() });
        let outcomes = [one.await.unwrap(), two.await.unwrap()];
        let rotated = outcomes.iter().filter(|o| matches!(o, Rotation::Rotated(_))).count();
        let reused = outcomes.iter().filter(|o| matches!(o, Rotation::Reused(_))).count();
        assert_eq!((rotated, reused), (1, 1), "round {round}: {outcomes:?}");
        // The loser was a reuse: the winner's new token is revoked with its family.
        for next in ["a", "b"] {
            let next = format!("{first}-{next}");
            assert_eq!(db.store.rotate_refresh(&next, &token("z", 2), at(2)).await.unwrap(), Rotation::Invalid);
        }
    }
}

async fn expired_and_unknown_refresh_tokens_are_invalid_and_logout_revokes(kind: Kind) {
    let db = TestDb::new(kind).await;
    let ana = create(&db.store, "ana@example.com", AccountRole::Creator, Some("alice")).await;
    db.store.start_refresh_family(&ana, &token("e1", 0)).await.unwrap();
    assert_eq!(db.store.rotate_refresh("e1", &token("e2", 0), at(60_000)).await.unwrap(), Rotation::Invalid);
    assert_eq!(db.store.rotate_refresh("nope", &token("n2", 0), at(1)).await.unwrap(), Rotation::Invalid);

    let family = db.store.start_refresh_family(&ana, &token("l1", 0)).await.unwrap();
    let grant = db.store.revoke_refresh_family("l1", at(1)).await.unwrap().unwrap();
    assert_eq!((grant.account, grant.family), (ana.id, family));
    assert_eq!(db.store.rotate_refresh("l1", &token("l2", 2), at(2)).await.unwrap(), Rotation::Invalid);
    assert!(db.store.revoke_refresh_family("nope", at(3)).await.unwrap().is_none());

    // Admin families (no tenant) rotate too.
    let root = create(&db.store, "root@example.com", AccountRole::Admin, None).await;
    db.store.start_refresh_family(&root, &token("m1", 0)).await.unwrap();
    let Rotation::Rotated(grant) = db.store.rotate_refresh("m1", &token("m2", 1), at(1)).await.unwrap() else {
        panic!("an admin's token rotates");
    };
    assert_eq!((grant.account, grant.creator), (root.id, None));
}

async fn login_failures_are_counted_cleared_on_success_and_age_out(kind: Kind) {
    let db = TestDb::new(kind).await;
    let ana = create(&db.store, "ana@example.com", AccountRole::Creator, Some("alice")).await;
    let forget = at(-3_600_000);
    db.store.record_login_failure(Some(ana.id), "10.0.0.1", at(1), forget).await.unwrap();
    db.store.record_login_failure(Some(ana.id), "10.0.0.2", at(2), forget).await.unwrap();
    db.store.record_login_failure(None, "10.0.0.2", at(3), forget).await.unwrap();

    let failures = db.store.credentials("ana@example.com").await.unwrap().unwrap().account.failures;
    assert_eq!(
        (failures.count, failures.last_at, failures.last_address.as_deref()),
        (2, Some(at(2)), Some("10.0.0.2"))
    );
    let address = db.store.address_failures("10.0.0.2").await.unwrap();
    assert_eq!((address.count, address.last_at), (2, Some(at(3))));
    assert_eq!(db.store.address_failures("10.0.0.9").await.unwrap().count, 0);

    let cleared = db.store.record_login_success(ana.id, at(4)).await.unwrap();
    assert_eq!(cleared, failures);
    let stored = db.store.account(ana.creator, ana.id).await.unwrap().unwrap();
    assert_eq!(stored.failures.count, 0);
    assert_eq!(stored.failures_before_last_login, failures);
    assert_eq!(stored.last_login_at, Some(at(4)));
    assert_eq!(db.store.address_failures("10.0.0.2").await.unwrap().count, 2, "an address only ages out");

    // A failure long after the last one starts the counts over.
    db.store.record_login_failure(Some(ana.id), "10.0.0.2", at(10_000_000), at(5)).await.unwrap();
    assert_eq!(db.store.address_failures("10.0.0.2").await.unwrap().count, 1);
    db.store.record_login_failure(Some(ana.id), "10.0.0.2", at(10_000_001), at(5)).await.unwrap();
    let stored = db.store.account(ana.creator, ana.id).await.unwrap().unwrap();
    assert_eq!(stored.failures.count, 2);
}

async fn audit_entries_come_newest_first_by_cursor_and_per_tenant(kind: Kind) {
    let db = TestDb::new(kind).await;
    let (alice, bob) = (creator("alice"), creator("bob"));
    for ms in 0..5 {
        db.store.audit(&entry(Some(alice), "login.succeeded", ms)).await.unwrap();
    }
    db.store.audit(&entry(Some(bob), "login.failed", 10)).await.unwrap();
    db.store.audit(&entry(None, "account.created", 11)).await.unwrap();

    let page = db.store.audit_entries(alice, None, 3).await.unwrap();
    let times: Vec<Timestamp> = page.iter().map(|r| r.entry.at).collect();
    assert_eq!(times, vec![at(4), at(3), at(2)]);
    assert_eq!(page[0].entry, entry(Some(alice), "login.succeeded", 4));
    let rest = db.store.audit_entries(alice, Some(page[2].id), 3).await.unwrap();
    let times: Vec<Timestamp> = rest.iter().map(|r| r.entry.at).collect();
    assert_eq!(times, vec![at(1), at(0)]);

    let bobs = db.store.audit_entries(bob, None, 10).await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].entry.action, "login.failed");
}

/// `twin_app` with tenant A set, in raw SQL: B's agents, audit entries and refresh tokens are out
/// of sight and out of reach, and no tenant reads a password hash.
#[tokio::test]
async fn postgres_tenant_a_sees_neither_b_s_accounts_nor_audit_nor_any_password_hash() {
    let db = TestDb::new(Kind::Postgres).await;
    let (alice, bob) = (creator("alice"), creator("bob"));
    let a_agent = create(&db.store, "a@example.com", AccountRole::Agent, Some("alice")).await;
    let b_agent = create(&db.store, "b@example.com", AccountRole::Agent, Some("bob")).await;
    db.store.start_refresh_family(&b_agent, &token("bt", 0)).await.unwrap();
    db.store.audit(&entry(Some(alice), "login.failed", 0)).await.unwrap();
    db.store.audit(&entry(Some(bob), "login.failed", 0)).await.unwrap();
    db.store.audit(&entry(None, "account.created", 0)).await.unwrap();

    let pool = db.store.postgres_app_pool().unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.creator_id', $1, true)")
        .bind(alice.0.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let accounts: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM accounts").fetch_all(&mut *tx).await.unwrap();
    assert_eq!(accounts, vec![a_agent.id]);
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(audit, 1);
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(tokens, 0);
    let disabled = sqlx::query("UPDATE accounts SET disabled_at = 1 WHERE id = $1")
        .bind(b_agent.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(disabled.rows_affected(), 0);
    tx.commit().await.unwrap();

    // Writing into B as A is refused by the policy's check.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.creator_id', $1, true)")
        .bind(alice.0.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let forged = sqlx::query("INSERT INTO audit_log (creator_id, at, actor, action) VALUES ($1, 0, 'x', 'forged')")
        .bind(bob.0)
        .execute(&mut *tx)
        .await;
    assert!(forged.is_err(), "a row of another tenant cannot be written");
    drop(tx);

    let mut tx = pool.begin().await.unwrap();
    let hash = sqlx::query("SELECT password_hash FROM accounts").execute(&mut *tx).await;
    assert!(hash.is_err(), "twin_app has no privilege on password_hash");
    drop(tx);

    // What is really stored (the superuser bypasses row-level security).
    let mut conn: PgConnection = db.superuser().await;
    let all: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log").fetch_one(&mut conn).await.unwrap();
    assert_eq!(all, 3);
    conn.close().await.unwrap();
}

/// `twin_system` reaches only what a login, a refresh and an admin-level audit need: it cannot read
/// the audit log, create a tenant's account, or change an account's email, role, hash or tenant.
#[tokio::test]
async fn postgres_twin_system_only_counts_logins_and_rotates_tokens() {
    let db = TestDb::new(Kind::Postgres).await;
    let alice = creator("alice");
    let ana = create(&db.store, "ana@example.com", AccountRole::Creator, Some("alice")).await;
    db.store.audit(&entry(Some(alice), "login.failed", 0)).await.unwrap();

    let mut conn: PgConnection = db.superuser().await;
    sqlx::query("SET ROLE twin_system").execute(&mut conn).await.unwrap();
    let refused = [
        "SELECT count(*) FROM audit_log",
        "UPDATE accounts SET email = 'eve@example.com'",
        "UPDATE accounts SET role = 'admin', creator_id = NULL",
        "UPDATE accounts SET password_hash = 'x'",
        "UPDATE accounts SET disabled_at = 1",
        "DELETE FROM refresh_tokens",
        "DELETE FROM login_throttles",
        "SELECT count(*) FROM conversations",
    ];
    for sql in refused {
        assert!(sqlx::query(sql).execute(&mut conn).await.is_err(), "twin_system may not: {sql}");
    }
    let tenant_account = sqlx::query(
        "INSERT INTO accounts (id, creator_id, email, role, password_hash, created_at) \
         VALUES ($1, $2, 'x@example.com', 'agent', 'h', 0)",
    )
    .bind(Uuid::new_v4())
    .bind(alice.0)
    .execute(&mut conn)
    .await;
    assert!(tenant_account.is_err(), "twin_system creates admins only");
    let counted = sqlx::query("UPDATE accounts SET failed_count = failed_count + 1 WHERE id = $1")
        .bind(ana.id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(counted.rows_affected(), 1);
    conn.close().await.unwrap();
}
