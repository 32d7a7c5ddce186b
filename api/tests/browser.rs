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
use support::{Kind, spawn_app_with};
use twin_api::accounts::{AccountRequest, Actor};
use twin_engine::ports::{Clock, SystemClock};
use twin_store::AccountRole;

const EMAIL: &str = "maya@example.com";
const PASSWORD: &str = "correct horse battery staple";
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_creator_watches_takes_over_and_tests_their_twin_in_a_real_browser() {
    let Some(tools) = tools_or_skip() else { return };

    // The site's origin must be among the creator's allowed origins before the server starts.
    let site = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site_url = format!("http://{}", site.local_addr().unwrap());
    // The demo creator in free chat (so the twin answers every message), its programs kept for
    // the preview's program picker.
    let mut demo = twin_api::bundle::demo();
    demo.profile.default_program = None;
    demo.profile.allowed_origins = vec![site_url.clone()];
    let app = spawn_app_with(Kind::Sqlite, &[demo]).await;
    let twin_url = app.url("");
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

    let mut driver = tokio::process::Command::new(&tools.node);
    driver
        .arg(&tools.driver)
        .env("TWIN_URL", &twin_url)
        .env("TWIN_SITE_URL", &site_url)
        .env("TWIN_EMAIL", EMAIL)
        .env("TWIN_PASSWORD", PASSWORD)
        .env("TWIN_CREATOR", "demo")
        .env("TWIN_CHROMIUM", &tools.chromium)
        // Only while the widget is not served: the site page then chats over a raw socket.
        .env("TWIN_USER_TOKEN", app.token_for("demo", "site-visitor", Duration::from_secs(1800)))
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
