//! Accounts over HTTP against the whole server (SQLite and PostgreSQL): password login, the login
//! throttle (per client address and per account, with `Retry-After`, and recovery), refresh
//! rotation with reuse detection, logout, agent management across tenants, the audit log, admin
//! account creation, and `twin account create` through the built binary.
//!
//! Requests come from several loopback addresses (127.0.0.x) so the per-address throttle can be
//! told apart from the per-account one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use twin_api::accounts::{AccountRequest, Actor};
use twin_api::auth::{Role, TokenKeys};
use twin_api::settings::Overrides;
use twin_api::startup::ServeOptions;
use twin_api::{Application, Settings};
use twin_engine::ports::{Clock, SystemClock};
use twin_engine::{Slug, UserId};
use twin_store::AccountRole;
use twin_store::testing::{Kind, TestDb};

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::$test(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $test() { super::$test(super::Kind::Postgres).await } )*
        }
    };
}

both!(
    a_login_answers_one_generic_401_and_tells_the_owner_of_failures,
    a_throttled_login_gets_429_without_its_password_being_checked,
    a_throttled_login_goes_through_once_the_delay_has_passed,
    refresh_tokens_rotate_a_reuse_revokes_the_family_and_logout_revokes,
    agents_are_managed_by_their_creator_and_hidden_from_other_tenants,
    admins_create_accounts_and_the_cli_creates_the_first_ones,
);

const PASSWORD: &str = "correct horse battery staple";
/// Throttle delays that outlast any test.
const LONG: Duration = Duration::from_secs(600);

struct App {
    addr: std::net::SocketAddr,
    keys: TokenKeys,
    db: TestDb,
    data_dir: tempfile::TempDir,
    _creators: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The server with creators `demo` and `other`, the login throttle starting at `throttle_base`.
async fn spawn(kind: Kind, throttle_base: Duration) -> App {
    let db = TestDb::unmigrated(kind).await;
    let data_dir = tempfile::tempdir().unwrap();
    let creators = tempfile::tempdir().unwrap();
    let demo = twin_api::bundle::demo();
    let mut other = demo.clone();
    other.profile.slug = Slug::parse("other").unwrap();
    for bundle in [&demo, &other] {
        twin_api::bundle::write_dir(bundle, &creators.path().join(bundle.profile.slug.as_str())).unwrap();
    }
    let overrides = Overrides {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data_dir.path().to_path_buf()),
        database_url: Some(db.url.clone()),
    };
    let mut settings = Settings::defaults(&overrides).unwrap();
    settings.login_throttle_base = throttle_base;
    let options = ServeOptions { demo: false, creators: Some(creators.path().to_path_buf()) };
    let app = Application::build(settings, options).await.expect("the server starts");
    let (addr, keys) = (app.local_addr(), app.keys());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    App { addr, keys, db, data_dir, _creators: creators, _stop: stop }
}

impl App {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates an account straight in the store (as `twin account create` does).
    async fn account(&self, email: &str, role: AccountRole, creator: Option<&str>) -> twin_store::Account {
        let creator = creator.map(|slug| Slug::parse(slug).unwrap());
        let request = AccountRequest { email: email.to_owned(), password: PASSWORD.to_owned(), role, creator };
        let actor = Actor { name: "cli".to_owned(), client_address: None };
        twin_api::accounts::create(&self.db.store, request, &actor, SystemClock.now()).await.unwrap()
    }

    async fn login_from(&self, from: u8, email: &str, password: &str) -> reqwest::Response {
        from_address(from)
            .post(self.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// Logs in from 127.0.0.1 and returns the body of the 200.
    async fn login(&self, email: &str) -> Value {
        let response = self.login_from(1, email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK, "login of {email}");
        response.json().await.unwrap()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut request = from_address(1).post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        read(from_address(1).get(self.url(path)).bearer_auth(token).send().await.unwrap()).await
    }

    async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        read(from_address(1).delete(self.url(path)).bearer_auth(token).send().await.unwrap()).await
    }

    async fn audit(&self, slug: &str, token: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/v1/creators/{slug}/audit?limit=200"), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["entries"].as_array().unwrap().clone()
    }
}

/// A client whose connections come from 127.0.0.`last`.
fn from_address(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e["action"].as_str().unwrap()).collect()
}

async fn a_login_answers_one_generic_401_and_tells_the_owner_of_failures(kind: Kind) {
    let app = spawn(kind, LONG).await;
    let ana = app.account("Ana@Example.com", AccountRole::Creator, Some("demo")).await;

    let wrong = app.login_from(2, "ana@example.com", "not the password at all").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
    let wrong: Value = wrong.json().await.unwrap();
    let unknown: Value = app.login_from(2, "nobody@example.com", PASSWORD).await.json().await.unwrap();
    assert_eq!(wrong, unknown, "unknown email and wrong password look the same");

    let body = app.login("ANA@example.com").await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["account"]["id"], ana.id.to_string());
    assert_eq!(body["account"]["role"], "creator");
    assert_eq!(body["account"]["creator"], "demo");
    assert_eq!(body["account"]["creator_id"], Slug::parse("demo").unwrap().creator_id().0.to_string());
    let told = &body["failed_attempts_since_last_login"];
    assert_eq!((told["count"].as_u64(), told["last_address"].as_str()), (Some(1), Some("127.0.0.2")));
    let identity = app.keys.verify(body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!((identity.role, identity.subject.as_str()), (Role::Creator, ana.id.to_string().as_str()));

    let token = body["access_token"].as_str().unwrap();
    let (status, me) = app.get("/v1/auth/me", token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["account"]["email"], "ana@example.com");
    assert_eq!(me["failed_attempts_since_last_login"]["count"], 0);
    assert_eq!(me["failed_attempts_before_last_login"]["count"], 1);

    // An end user's token names no account.
    let user = app.keys.mint(ana.creator.unwrap(), &UserId::parse("u1").unwrap(), Role::User, LONG).unwrap();
    assert_eq!(app.get("/v1/auth/me", &user).await.0, StatusCode::FORBIDDEN);

    let entries = app.audit("demo", token).await;
    assert_eq!(actions(&entries), vec!["login.succeeded", "login.failed", "account.created"]);
    assert_eq!(entries[1]["client_address"], "127.0.0.2");
    assert_eq!(entries[1]["target"], ana.id.to_string());
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [PASSWORD, "not the password at all", body["refresh_token"].as_str().unwrap(), token] {
        assert!(!text.contains(secret), "the audit log holds no password or token");
    }
}

async fn a_throttled_login_gets_429_without_its_password_being_checked(kind: Kind) {
    let app = spawn(kind, LONG).await;
    app.account("ana@example.com", AccountRole::Creator, Some("demo")).await;

    // One address spraying: after its 3 free failures, even the right password waits.
    for _ in 0..3 {
        assert_eq!(app.login_from(2, "ana@example.com", "wrong password 123").await.status(), StatusCode::UNAUTHORIZED);
    }
    let throttled = app.login_from(2, "ana@example.com", PASSWORD).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = throttled.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=600).contains(&retry), "Retry-After {retry}");
    // Another email from the same address is slowed too.
    assert_eq!(app.login_from(2, "nobody@example.com", "x").await.status(), StatusCode::TOO_MANY_REQUESTS);

    // The owner, from elsewhere, with the right password: not locked out, and told.
    let body: Value = app.login_from(3, "ana@example.com", PASSWORD).await.json().await.unwrap();
    assert_eq!(body["failed_attempts_since_last_login"]["count"], 3);
    assert_eq!(body["failed_attempts_since_last_login"]["last_address"], "127.0.0.2");
    let token = body["access_token"].as_str().unwrap().to_owned();

    // Failures spread over addresses (none over its own limit) slow the account down: after its 5
    // free failures every address waits, the password unchecked.
    for (from, times) in [(4, 2), (5, 2), (6, 1)] {
        for _ in 0..times {
            let status = app.login_from(from, "ana@example.com", "wrong password 456").await.status();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }
    let throttled = app.login_from(7, "ana@example.com", PASSWORD).await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(app.login_from(8, "other@example.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);

    let entries = app.audit("demo", &token).await;
    let throttles: Vec<&str> = entries
        .iter()
        .filter(|e| e["action"] == "login.throttled")
        .map(|e| e["detail"]["scope"].as_str().unwrap())
        .collect();
    assert_eq!(throttles, vec!["account", "address"], "each throttle of ana's account is audited");
}

async fn a_throttled_login_goes_through_once_the_delay_has_passed(kind: Kind) {
    let app = spawn(kind, Duration::from_millis(300)).await;
    app.account("ana@example.com", AccountRole::Creator, Some("demo")).await;
    for _ in 0..4 {
        let status = app.login_from(2, "ana@example.com", "wrong password 123").await.status();
        assert!(matches!(status, StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS), "{status}");
    }
    // Growing but bounded delays: waiting as told gets the owner in.
    let mut waits = 0;
    loop {
        let response = app.login_from(2, "ana@example.com", PASSWORD).await;
        if response.status() == StatusCode::OK {
            break;
        }
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry <= 2, "a 300 ms base delay asks for {retry} s");
        waits += 1;
        assert!(waits <= 3, "still throttled after waiting as told {waits} times");
        tokio::time::sleep(Duration::from_secs(retry)).await;
    }
}

async fn refresh_tokens_rotate_a_reuse_revokes_the_family_and_logout_revokes(kind: Kind) {
    let app = spawn(kind, LONG).await;
    app.account("ana@example.com", AccountRole::Creator, Some("demo")).await;
    let first = app.login("ana@example.com").await;
    let r1 = first["refresh_token"].as_str().unwrap();

    let (status, second) = app.post("/v1/auth/refresh", None, json!({"refresh_token": r1})).await;
    assert_eq!(status, StatusCode::OK);
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2);
    let access = second["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/auth/me", access).await.0, StatusCode::OK);

    // r1 again: a reuse. Refused, and the family is revoked, so the current r2 is dead too.
    let (status, problem) = app.post("/v1/auth/refresh", None, json!({"refresh_token": r1})).await;
    assert_eq!((status, problem["status"].as_u64()), (StatusCode::UNAUTHORIZED, Some(401)));
    assert_eq!(app.post("/v1/auth/refresh", None, json!({"refresh_token": r2})).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.post("/v1/auth/refresh", None, json!({"refresh_token": "made-up"})).await.0,
        StatusCode::UNAUTHORIZED
    );

    let third = app.login("ana@example.com").await;
    let r3 = third["refresh_token"].as_str().unwrap();
    assert_eq!(app.post("/v1/auth/logout", None, json!({"refresh_token": r3})).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.post("/v1/auth/refresh", None, json!({"refresh_token": r3})).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.post("/v1/auth/logout", None, json!({"refresh_token": r3})).await.0, StatusCode::NO_CONTENT);
    assert_eq!(app.post("/v1/auth/logout", None, json!({"nope": 1})).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let token = third["access_token"].as_str().unwrap();
    let entries = app.audit("demo", token).await;
    let seen = actions(&entries);
    assert_eq!(seen.iter().filter(|a| **a == "refresh.reused").count(), 1, "{seen:?}");
    assert_eq!(seen.iter().filter(|a| **a == "logout").count(), 2, "each logout of a known token: {seen:?}");
}

async fn agents_are_managed_by_their_creator_and_hidden_from_other_tenants(kind: Kind) {
    let app = spawn(kind, LONG).await;
    app.account("ana@example.com", AccountRole::Creator, Some("demo")).await;
    app.account("bob@example.com", AccountRole::Creator, Some("other")).await;
    let ana = app.login("ana@example.com").await["access_token"].as_str().unwrap().to_owned();
    let bob = app.login("bob@example.com").await["access_token"].as_str().unwrap().to_owned();

    let agents = "/v1/creators/demo/agents";
    let short = json!({"email": "agent@example.com", "password": "short"});
    assert_eq!(app.post(agents, Some(&ana), short).await.0, StatusCode::BAD_REQUEST);
    let (status, agent) =
        app.post(agents, Some(&ana), json!({"email": "Agent@example.com", "password": PASSWORD})).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    assert_eq!((agent["role"].as_str(), agent["email"].as_str()), (Some("agent"), Some("agent@example.com")));
    let agent_id = agent["id"].as_str().unwrap().to_owned();
    let again = json!({"email": "agent@EXAMPLE.com", "password": PASSWORD});
    assert_eq!(app.post(agents, Some(&ana), again).await.0, StatusCode::CONFLICT);
    let (status, list) = app.get(agents, &ana).await;
    assert_eq!((status, list["agents"].as_array().unwrap().len()), (StatusCode::OK, 1));

    // The agent logs in, but may not manage agents or read the audit log.
    let login = app.login("agent@example.com").await;
    let agent_token = login["access_token"].as_str().unwrap().to_owned();
    let agent_refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let more = json!({"email": "more@example.com", "password": PASSWORD});
    assert_eq!(app.post(agents, Some(&agent_token), more).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/v1/creators/demo/audit", &agent_token).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/v1/auth/me", &agent_token).await.1["account"]["role"], "agent");

    // Another tenant: the 404 of a creator or agent that does not exist.
    let (status, hidden) = app.get(agents, &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/v1/creators/demo/audit", &bob).await.0, StatusCode::NOT_FOUND);
    let (_, missing) = app.get("/v1/creators/nobody/agents", &bob).await;
    assert_eq!(hidden.to_string().replace("demo", "SLUG"), missing.to_string().replace("nobody", "SLUG"));
    assert_eq!(app.delete(&format!("{agents}/{agent_id}"), &bob).await.0, StatusCode::NOT_FOUND);
    let (status, theirs) = app.delete(&format!("/v1/creators/other/agents/{agent_id}"), &bob).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let (_, never) = app.delete(&format!("/v1/creators/other/agents/{unknown}"), &bob).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        theirs["detail"].as_str().unwrap().replace(&agent_id, "ID"),
        never["detail"].as_str().unwrap().replace(&unknown, "ID")
    );
    let (_, list) = app.get("/v1/creators/other/agents", &bob).await;
    assert_eq!(list["agents"].as_array().unwrap().len(), 0);

    // An end user of demo never reaches creator paths.
    let user =
        app.keys.mint(Slug::parse("demo").unwrap().creator_id(), &UserId::parse("u1").unwrap(), Role::User, LONG);
    assert_eq!(app.get(agents, &user.unwrap()).await.0, StatusCode::FORBIDDEN);

    // Disabled: its refresh family is revoked and it can no longer log in.
    assert_eq!(app.delete(&format!("{agents}/{agent_id}"), &ana).await.0, StatusCode::NO_CONTENT);
    let refresh = json!({"refresh_token": agent_refresh});
    assert_eq!(app.post("/v1/auth/refresh", None, refresh).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login_from(1, "agent@example.com", PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    let (_, list) = app.get(agents, &ana).await;
    assert!(list["agents"][0]["disabled_at"].is_i64());

    let entries = app.audit("demo", &ana).await;
    let seen = actions(&entries);
    assert!(seen.contains(&"account.disabled") && seen.contains(&"account.created"), "{seen:?}");
    assert!(app.audit("other", &bob).await.iter().all(|e| e["target"] != agent_id.as_str()), "nothing of demo's");
}

/// Runs `twin account create` with `args` against the app's store, `stdin` as its input.
async fn cli(app: &App, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut command = tokio::process::Command::new(support::twin_binary());
    command
        .args(["account", "create"])
        .args(args)
        .arg("--data-dir")
        .arg(app.data_dir.path())
        .args(["--database-url", &app.db.url])
        .env("TWIN_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.success(), text(output.stdout), text(output.stderr))
}

async fn admins_create_accounts_and_the_cli_creates_the_first_ones(kind: Kind) {
    let app = spawn(kind, LONG).await;
    let stdin = format!("{PASSWORD}\n");
    let (ok, out, err) =
        cli(&app, &["--email", "root@example.com", "--role", "admin", "--password-stdin"], Some(&stdin)).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("created admin account root@example.com"), "{out}");

    // Refusals: one sentence each, non-zero exit.
    let refusals: [(&[&str], &str); 4] = [
        (&["--email", "ROOT@example.com", "--role", "admin", "--password-stdin"], "exists already"),
        (
            &["--email", "x@example.com", "--role", "creator", "--creator", "nobody", "--password-stdin"],
            "no creator nobody",
        ),
        (&["--email", "y@example.com", "--role", "agent", "--password-stdin"], "needs --creator"),
        (&["--email", "z@example.com", "--role", "admin", "--password-stdin"], "at least 12 characters"),
    ];
    for (args, sentence) in refusals {
        let input = if sentence.contains("12") { "short\n" } else { stdin.as_str() };
        let (ok, _, err) = cli(&app, args, Some(input)).await;
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(sentence) && err.lines().count() == 1, "{args:?}: {err}");
    }

    // Without --password-stdin a password is generated and shown once; it logs in.
    let (ok, out, err) =
        cli(&app, &["--email", "ana@example.com", "--role", "creator", "--creator", "demo"], None).await;
    assert!(ok, "{out}{err}");
    let generated = out.lines().find_map(|l| l.strip_prefix("password (shown once): ")).unwrap().to_owned();
    assert_eq!(app.login_from(1, "ana@example.com", &generated).await.status(), StatusCode::OK);

    let root = app.login("root@example.com").await;
    assert_eq!(root["account"]["role"], "admin");
    assert!(root["account"]["creator"].is_null());
    let admin = root["access_token"].as_str().unwrap();
    assert_eq!(app.get("/v1/auth/me", admin).await.1["account"]["email"], "root@example.com");

    let bob = json!({"email": "bob@example.com", "password": PASSWORD, "role": "creator", "creator": "other"});
    let (status, created) = app.post("/v1/accounts", Some(admin), bob.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(app.post("/v1/accounts", Some(admin), bob).await.0, StatusCode::CONFLICT);
    let nobody = json!({"email": "n@example.com", "password": PASSWORD, "role": "creator", "creator": "nobody"});
    assert_eq!(app.post("/v1/accounts", Some(admin), nobody).await.0, StatusCode::BAD_REQUEST);
    let agent = json!({"email": "a@example.com", "password": PASSWORD, "role": "agent", "creator": "other"});
    assert_eq!(app.post("/v1/accounts", Some(admin), agent).await.0, StatusCode::BAD_REQUEST);

    // Only admins; an admin reaches every creator's agents and audit log.
    let bob_token = app.login("bob@example.com").await["access_token"].as_str().unwrap().to_owned();
    let carol = json!({"email": "c@example.com", "password": PASSWORD, "role": "admin"});
    assert_eq!(app.post("/v1/accounts", Some(&bob_token), carol.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.post("/v1/accounts", None, carol).await.0, StatusCode::UNAUTHORIZED);
    let agent = json!({"email": "agent@example.com", "password": PASSWORD});
    assert_eq!(app.post("/v1/creators/other/agents", Some(admin), agent).await.0, StatusCode::CREATED);
    let entries = app.audit("other", admin).await;
    let seen = actions(&entries);
    assert_eq!(seen.iter().filter(|a| **a == "account.created").count(), 2, "{seen:?}");
}
