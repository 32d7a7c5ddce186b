//! The dashboard and the widget in headless Chromium, against the whole server: the driver
//! api/tests/browser/dashboard.mjs (playwright-core) signs a creator in, watches a widget user's
//! message arrive live, takes over, answers, releases, approves drafts, tests the twin in the
//! preview, and reads the stats and the embed snippet. See docs/DASHBOARD.md.
//!
//! Needs `node`, Debian's `chromium` and `npm ci --prefix api/tests/browser`. Without them the test
//! says why and passes as skipped, unless `TWIN_REQUIRE_BROWSER=1` (CI), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::response::Html;
use support::Kind;
use twin_api::accounts::{AccountRequest, Actor};
use twin_api::settings::Overrides;
use twin_api::startup::ServeOptions;
use twin_api::{Application, Settings};
use twin_engine::ports::{Clock, SystemClock};
use twin_store::AccountRole;
use twin_store::testing::TestDb;

const EMAIL: &str = "maya@example.com";
const ADMIN: &str = "ops@example.com";
const PASSWORD: &str = "correct horse battery staple";
const TALK_TO_MAYA: &str = r#"
title: Talk to Maya
triggers:
  keywords: ["talk to maya"]
steps:
  - id: ask_maya
    handoff: "I've asked Maya to join; she'll reply here herself."
    timeout: 2h
  - id: done
    end: "Thanks for talking with Maya."
"#;
/// The whole browser scenario; generous for a cold Chromium on a busy 2-core machine.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(300);

/// What running the driver takes: node, a Chromium binary, and playwright-core installed.
struct Tools {
    node: PathBuf,
    chromium: PathBuf,
    driver: PathBuf,
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The tools, or why they are missing.
fn find_tools() -> Result<Tools, String> {
    let node = std::env::var_os("TWIN_NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
    match std::process::Command::new(&node).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Err(format!("`{}` does not run (install Node.js 20 or later)", node.display())),
    }
    let chromium = std::env::var_os("TWIN_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.is_file() {
        return Err(format!("no Chromium at {} (apt-get install chromium, or set TWIN_CHROMIUM)", chromium.display()));
    }
    if !browser_dir().join("node_modules/playwright-core/package.json").is_file() {
        return Err("playwright-core is not installed (npm ci --prefix api/tests/browser)".to_owned());
    }
    Ok(Tools { node, chromium, driver: browser_dir().join("dashboard.mjs") })
}

/// The tools, or `None` after saying why the test is skipped; with `TWIN_REQUIRE_BROWSER=1` a
/// missing tool fails the test instead.
fn tools_or_skip() -> Option<Tools> {
    match find_tools() {
        Ok(tools) => Some(tools),
        Err(why) if std::env::var("TWIN_REQUIRE_BROWSER").is_ok_and(|v| v == "1") => {
            panic!("TWIN_REQUIRE_BROWSER=1 but the browser tests cannot run: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: the browser tests need node, chromium and playwright-core: {why}");
            None
        }
    }
}

/// A creator's own website on its own loopback origin: one page that embeds the widget.
async fn creator_site(listener: tokio::net::TcpListener, twin_url: String) {
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Maya's site</title></head>\
         <body><h1>Calm, focused days</h1><p>Questions? Ask my twin, bottom right.</p>\
         <script src=\"{twin_url}/widget.js\" data-creator=\"demo\" async></script></body></html>"
    );
    let app = axum::Router::new().route("/", axum::routing::get(move || async move { Html(page) }));
    axum::serve(listener, app).await.unwrap();
}

/// The whole server (SQLite, the built-in responder) on a port chosen up front, so that its public
/// URL — the one the widget snippet names — is the address the browser uses, as `TWIN_PUBLIC_URL`
/// makes it in production.
struct Server {
    url: String,
    db: TestDb,
    _data_dir: tempfile::TempDir,
    _creators: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(bundle: &twin_api::bundle::Bundle) -> Server {
    let db = TestDb::unmigrated(Kind::Sqlite).await;
    let data_dir = tempfile::tempdir().unwrap();
    let creators = tempfile::tempdir().unwrap();
    twin_api::bundle::write_dir(bundle, &creators.path().join(bundle.profile.slug.as_str())).unwrap();
    // A free port, released just before the server binds it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let overrides = Overrides {
        listen: Some(format!("127.0.0.1:{port}")),
        data_dir: Some(data_dir.path().to_path_buf()),
        database_url: Some(db.url.clone()),
    };
    let mut settings = Settings::defaults(&overrides).unwrap();
    settings.public_url.clone_from(&url);
    // One browser sends bursts of requests from one address: limits that never bite.
    let generous: twin_cluster::Rate = "100000/s".parse().unwrap();
    settings.limits.address = generous;
    settings.limits.tenant = generous;
    let options = ServeOptions { demo: false, creators: Some(creators.path().to_path_buf()) };
    let app = Application::build(settings, options).await.expect("the server starts");
    assert_eq!(app.local_addr().port(), port);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Server { url, db, _data_dir: data_dir, _creators: creators, _stop: stop }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creator_watches_takes_over_and_tests_their_twin_in_a_real_browser() {
    let Some(tools) = tools_or_skip() else { return };

    // The site's origin must be among the creator's allowed origins before the server starts.
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_url = format!("http://{}", site.local_addr().unwrap());
    // The demo creator in free chat (so the twin answers every message), its program kept for
    // the preview's program picker but no longer started by a first message.
    let mut demo = twin_api::bundle::demo();
    demo.profile.default_program = None;
    for program in &mut demo.programs {
        program.source = program.source.replace("first_contact: true", "first_contact: false");
    }
    assert!(demo.programs.iter().any(|p| p.source.contains("first_contact: false")), "the demo program changed");
    // A program a user starts by asking for Maya: it hands the conversation to a human.
    demo.programs.push(twin_engine::ports::ProgramSource {
        id: twin_engine::ProgramId::parse("talk-to-maya").unwrap(),
        source: TALK_TO_MAYA.to_owned(),
    });
    demo.profile.allowed_origins = vec![site_url.clone()];
    let app = serve(&demo).await;
    let twin_url = app.url.clone();
    tokio::spawn(creator_site(site, twin_url.clone()));

    // Maya's account, created as `twin account create` does.
    let request = AccountRequest {
        email: EMAIL.to_owned(),
        password: PASSWORD.to_owned(),
        role: AccountRole::Creator,
        creator: Some(twin_engine::Slug::parse("demo").unwrap()),
    };
    let actor = Actor { name: "cli".to_owned(), client_address: None };
    twin_api::accounts::create(&app.db.store, request, &actor, SystemClock.now()).await.unwrap();
    let admin = AccountRequest {
        email: ADMIN.to_owned(),
        password: PASSWORD.to_owned(),
        role: AccountRole::Admin,
        creator: None,
    };
    twin_api::accounts::create(&app.db.store, admin, &actor, SystemClock.now()).await.unwrap();

    let mut driver = tokio::process::Command::new(&tools.node);
    driver
        .arg(&tools.driver)
        .env("TWIN_URL", &twin_url)
        .env("TWIN_SITE_URL", &site_url)
        .env("TWIN_EMAIL", EMAIL)
        .env("TWIN_PASSWORD", PASSWORD)
        .env("TWIN_ADMIN_EMAIL", ADMIN)
        .env("TWIN_CREATOR", "demo")
        .env("TWIN_CHROMIUM", &tools.chromium)
        .current_dir(browser_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let run = tokio::time::timeout(DRIVER_TIMEOUT, driver.output()).await;
    let output = run.expect("the browser driver finishes within its timeout").expect("the driver starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the browser driver failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("all browser checks passed"), "the driver stopped early:\n{stdout}\n{stderr}");
}

/// The dashboard's files come from the binary, each with its type and an ETag, revalidated with a
/// bodiless 304; `/` leads to it; paths outside its fixed file table are 404 problems.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_from_the_binary_with_types_and_etags() {
    use reqwest::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
    let app = support::spawn_app(Kind::Sqlite).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get = |path: &str| client.get(app.url(path)).send();

    for path in ["/", "/dashboard"] {
        let answer = get(path).await.unwrap();
        assert_eq!(answer.status(), 303, "{path}");
        assert_eq!(answer.headers()[LOCATION], "/dashboard/", "{path}");
    }

    let index = get("/dashboard/").await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
    let policy = index.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(index.headers()["cache-control"], "no-cache");
    assert!(index.text().await.unwrap().contains(r#"<script type="module" src="app.js"></script>"#));

    for (file, kind) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("conversation.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let answer = get(&format!("/dashboard/{file}")).await.unwrap();
        assert_eq!(answer.status(), 200, "{file}");
        assert_eq!(answer.headers()[CONTENT_TYPE], kind, "{file}");
        assert_eq!(answer.headers()["x-content-type-options"], "nosniff", "{file}");
        let etag = answer.headers()[ETAG].clone();
        let bytes = answer.bytes().await.unwrap();
        let on_disk = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("web/dashboard").join(file)).unwrap();
        assert_eq!(bytes.as_ref(), on_disk.as_slice(), "{file} is served as written");

        let revalidated = client.get(app.url(&format!("/dashboard/{file}"))).header(IF_NONE_MATCH, &etag).send();
        let revalidated = revalidated.await.unwrap();
        assert_eq!(revalidated.status(), 304, "{file}");
        assert_eq!(revalidated.headers()[ETAG], etag);
        assert!(revalidated.bytes().await.unwrap().is_empty());
        let stale = client.get(app.url(&format!("/dashboard/{file}"))).header(IF_NONE_MATCH, "\"old\"").send();
        assert_eq!(stale.await.unwrap().status(), 200, "{file} with a stale tag");
    }

    for path in
        ["/dashboard/missing.js", "/dashboard/%2e%2e/Cargo.toml", "/dashboard/..%2fCargo.toml", "/dashboard/sub/app.js"]
    {
        let answer = get(path).await.unwrap();
        assert_eq!(answer.status(), 404, "{path}");
        assert_eq!(answer.headers()[CONTENT_TYPE], "application/problem+json", "{path}");
    }
    let post = client.post(app.url("/dashboard/app.js")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}
