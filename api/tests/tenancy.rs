//! The cross-tenant suite, against PostgreSQL connected as production connects (the service pools
//! run as `twin_app` / `twin_system`, so row-level security holds): two creators, `alpha` (A) and
//! `beta` (B), with conversations, messages, programs, knowledge and pending nudges. Tokens of A
//! (roles `creator` and `agent`) try every B endpoint by slug, and A's endpoints with B's ids:
//! every attempt is a 404 whose body is that of a truly missing resource, and A's lists never
//! hold B's rows. End-user tokens get 403 on every creator endpoint. Nothing of B changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "rest/common.rs"]
mod common;
mod support;

use common::{Answer, call, chat_once, creator, encode, get, json, pending_nudges, staff};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Kind, TestApp, spawn_app_with};
use twin_api::auth::Role;
use twin_engine::ProgramId;
use twin_engine::ports::ProgramSource;

const NIL: &str = "00000000-0000-0000-0000-000000000000";

/// Every creator endpoint of `slug`, with ids filled in: `(method, path, body)`.
fn endpoints(slug: &str, conversation: &str, user: &str, nudge: &str, document: &str, program: &str) -> Vec<Call> {
    let base = format!("/v1/creators/{slug}");
    let yaml = Some(("application/yaml", common::PROGRAM.as_bytes().to_vec()));
    let text = Some(("text/markdown", b"# Planted\n".to_vec()));
    let document = encode(document);
    vec![
        (Method::GET, base.clone(), None),
        (Method::PATCH, base.clone(), json(&json!({"allowed_origins": ["https://evil.example"]}))),
        (Method::GET, format!("{base}/knowledge"), None),
        (Method::GET, format!("{base}/knowledge/{document}"), None),
        (Method::PUT, format!("{base}/knowledge/{document}"), text),
        (Method::DELETE, format!("{base}/knowledge/{document}"), None),
        (Method::GET, format!("{base}/programs"), None),
        (Method::GET, format!("{base}/programs/{program}"), None),
        (Method::POST, format!("{base}/programs/validate"), yaml.clone()),
        (Method::PUT, format!("{base}/programs/{program}"), yaml),
        (Method::GET, format!("{base}/users"), None),
        (Method::GET, format!("{base}/users/{user}"), None),
        (Method::POST, format!("{base}/users/{user}/enrolments"), json(&json!({"program": program}))),
        (Method::GET, format!("{base}/conversations"), None),
        (Method::GET, format!("{base}/conversations/{conversation}"), None),
        (Method::GET, format!("{base}/conversations/{conversation}/messages"), None),
        (Method::GET, format!("{base}/nudges"), None),
        (Method::DELETE, format!("{base}/nudges/{nudge}"), None),
        (Method::GET, format!("{base}/stats"), None),
        (Method::GET, format!("{base}/channels"), None),
        (Method::PUT, format!("{base}/channels/telegram"), json(&json!({"bot_token": "123:planted"}))),
        (Method::DELETE, format!("{base}/channels/telegram"), None),
        (Method::DELETE, format!("{base}/channels/whatsapp"), None),
        (Method::GET, format!("{base}/agents"), None),
        (
            Method::POST,
            format!("{base}/agents"),
            json(&json!({"email": "mole@evil.example", "password": "long enough password"})),
        ),
        (Method::GET, format!("{base}/audit"), None),
        (Method::GET, format!("{base}/users/{user}/export"), None),
        (Method::DELETE, format!("{base}/users/{user}"), None),
        (Method::GET, format!("{base}/export"), None),
        (Method::DELETE, format!("{base}?confirm={slug}"), None),
    ]
}

type Call = (Method, String, Option<(&'static str, Vec<u8>)>);

/// `answer` with every occurrence of `from` in its detail replaced, to compare with the answer
/// about another (missing) name.
fn renamed(mut answer: Answer, from: &str, to: &str) -> Answer {
    if let Some(detail) = answer.body.get("detail").and_then(Value::as_str) {
        answer.body["detail"] = Value::String(detail.replace(from, to));
    }
    answer
}

struct Tenant {
    conversations: Vec<String>,
    nudges: Vec<String>,
}

async fn tenant(app: &TestApp, slug: &str, users: &[&str]) -> Tenant {
    for user in users {
        chat_once(app, slug, user).await;
    }
    let owner = staff(app, slug, Role::Creator);
    let nudges = pending_nudges(app, slug, &owner, users.len()).await;
    let listed = get(app, &format!("/v1/creators/{slug}/conversations"), &owner).await;
    let ids = |items: &Value| -> Vec<String> {
        items.as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
    };
    Tenant { conversations: ids(&listed.body["items"]), nudges: ids(&Value::Array(nudges)) }
}

#[tokio::test]
async fn a_token_of_one_tenant_reaches_nothing_of_another_and_learns_nothing() {
    let mut beta = creator("beta");
    beta.programs
        .push(ProgramSource { id: ProgramId::parse("beta-only").unwrap(), source: common::PROGRAM.to_owned() });
    let app = spawn_app_with(Kind::Postgres, &[creator("alpha"), beta]).await;
    // `shared` is a user id both tenants have: each sees only their own.
    let a = tenant(&app, "alpha", &["a1", "shared"]).await;
    let b = tenant(&app, "beta", &["b1", "shared"]).await;
    assert_eq!((a.conversations.len(), b.conversations.len()), (2, 2));
    let b_owner = staff(&app, "beta", Role::Creator);
    let b_before = get(&app, "/v1/creators/beta", &b_owner).await;

    for role in [Role::Creator, Role::Agent] {
        let token = staff(&app, "alpha", role);

        // B's endpoints by slug, with B's real ids: the answers of a creator that does not exist.
        for (conversation, nudge) in b.conversations.iter().zip(&b.nudges) {
            let at_b = endpoints("beta", conversation, "b1", nudge, "beta/notes.md", "beta-only");
            let at_nowhere = endpoints("nosuch", conversation, "b1", nudge, "beta/notes.md", "beta-only");
            for ((method, path, body), (_, missing_path, missing_body)) in at_b.into_iter().zip(at_nowhere) {
                let answer = call(&app, method.clone(), &path, Some(&token), body).await;
                let missing = call(&app, method.clone(), &missing_path, Some(&token), missing_body).await;
                assert_eq!(answer.status, 404, "{role:?} {method} {path}: {answer:?}");
                assert!(answer.problem, "{method} {path}");
                assert_eq!(renamed(answer, "beta", "nosuch"), missing, "{role:?} {method} {path}");
            }
        }

        // A's endpoints with B's ids: the answers of ids that do not exist.
        for (conversation, nudge) in b.conversations.iter().zip(&b.nudges) {
            let with_b = endpoints("alpha", conversation, "b1", nudge, "beta/notes.md", "beta-only");
            let with_none = endpoints("alpha", NIL, "nobody", NIL, "nothing/here.md", "no-program");
            for ((method, path, body), (_, missing_path, missing_body)) in with_b.into_iter().zip(with_none) {
                let is_b_id = [conversation.as_str(), nudge.as_str(), "/b1", "beta%2Fnotes.md", "beta-only"]
                    .iter()
                    .any(|id| path.contains(id));
                if !is_b_id || (method == Method::PUT) || (method == Method::POST && path.ends_with("validate")) {
                    // Lists and A's own profile, or writes that create at A (checked below).
                    continue;
                }
                let answer = call(&app, method.clone(), &path, Some(&token), body).await;
                let missing = call(&app, method.clone(), &missing_path, Some(&token), missing_body).await;
                // Writes and exports are for the creator (and admins): agents get 403 at their own tenant.
                let write = method != Method::GET || path.ends_with("/export");
                if role == Role::Agent && write {
                    assert_eq!(answer.status, 403, "agents do not write: {method} {path}");
                    assert_eq!(answer, missing);
                    continue;
                }
                assert_eq!(answer.status, 404, "{role:?} {method} {path}: {answer:?}");
                let normalized = renamed(
                    renamed(
                        renamed(renamed(renamed(answer, conversation, NIL), nudge, NIL), "\"b1\"", "\"nobody\""),
                        "beta/notes.md",
                        "nothing/here.md",
                    ),
                    "beta-only",
                    "no-program",
                );
                assert_eq!(normalized, missing, "{role:?} {method} {path}");
            }
        }

        // A's lists hold A's rows only.
        let conversations = get(&app, "/v1/creators/alpha/conversations", &token).await;
        let ids: Vec<&str> =
            conversations.body["items"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.iter().all(|id| a.conversations.iter().any(|own| own == id)));
        let users = get(&app, "/v1/creators/alpha/users", &token).await;
        let names: Vec<&str> =
            users.body["items"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
        assert_eq!(names, ["a1", "shared"]);
        let shared = get(&app, "/v1/creators/alpha/users/shared", &token).await;
        assert!(a.conversations.iter().any(|c| shared.body["conversation"] == c.as_str()), "{shared:?}");
        let nudges = get(&app, "/v1/creators/alpha/nudges", &token).await;
        let ids: Vec<&str> =
            nudges.body["items"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.iter().all(|id| a.nudges.iter().any(|own| own == id)));
        let stats = get(&app, "/v1/creators/alpha/stats?days=1", &token).await;
        assert_eq!(stats.body["active_users"]["period"], 2, "a1 and A's shared, not B's users: {stats:?}");
        let funnels: Vec<&str> =
            stats.body["funnel"].as_array().unwrap().iter().map(|f| f["program"].as_str().unwrap()).collect();
        assert_eq!(funnels, ["intro"], "not B's programs");
        let knowledge = get(&app, "/v1/creators/alpha/knowledge", &token).await;
        assert_eq!(knowledge.body.as_array().unwrap().len(), 1);
        assert_eq!(knowledge.body[0]["path"], "alpha/notes.md");
        let programs = get(&app, "/v1/creators/alpha/programs", &token).await;
        assert_eq!(programs.body, json!([{"id": "intro", "latest_version": 1, "versions": 1}]));
        let creators = get(&app, "/v1/creators", &token).await;
        assert_eq!(creators.body["items"], json!([{"slug": "alpha", "version": 1}]));
        for conversation in &a.conversations {
            let messages =
                get(&app, &format!("/v1/creators/alpha/conversations/{conversation}/messages"), &token).await;
            assert_eq!(messages.status, 200);
        }
    }

    // End users reach no creator endpoint, their own creator's or another's.
    let user = app.token_for("alpha", "a1", std::time::Duration::from_secs(60));
    let calls = endpoints("alpha", &a.conversations[0], "a1", &a.nudges[0], "alpha/notes.md", "intro")
        .into_iter()
        .chain(endpoints("beta", &b.conversations[0], "b1", &b.nudges[0], "beta/notes.md", "beta-only"))
        .chain([(Method::GET, "/v1/creators".to_owned(), None), (Method::POST, "/v1/creators".to_owned(), None)]);
    for (method, path, body) in calls {
        let answer = call(&app, method.clone(), &path, Some(&user), body).await;
        assert_eq!(answer.status, 403, "a user token at {method} {path}: {answer:?}");
        assert!(answer.problem);
    }

    // B is as it was: same profile version, its nudges still pending, its documents in place.
    let b_after = get(&app, "/v1/creators/beta", &b_owner).await;
    assert_eq!(b_after, b_before);
    let still = pending_nudges(&app, "beta", &b_owner, 2).await;
    assert_eq!(still.len(), 2);
    let documents = get(&app, "/v1/creators/beta/knowledge", &b_owner).await;
    assert_eq!(documents.body[0]["path"], "beta/notes.md");
    let conversations = get(&app, "/v1/creators/beta/conversations", &b_owner).await;
    assert_eq!(conversations.body["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn writes_at_the_own_tenant_with_another_tenants_names_stay_in_the_own_tenant() {
    let app = spawn_app_with(Kind::Postgres, &[creator("alpha"), creator("beta")]).await;
    let alpha = staff(&app, "alpha", Role::Creator);
    let beta = staff(&app, "beta", Role::Creator);
    // A document and a program named like B's, written at A, land at A only.
    let planted = Some(("text/markdown", b"# Planted by alpha\n".to_vec()));
    let put = call(
        &app,
        Method::PUT,
        &format!("/v1/creators/alpha/knowledge/{}", encode("beta/notes.md")),
        Some(&alpha),
        planted,
    )
    .await;
    assert_eq!(put.status, 201, "{put:?}");
    let b_doc = get(&app, &format!("/v1/creators/beta/knowledge/{}", encode("beta/notes.md")), &beta).await;
    assert_eq!(b_doc.body["body"], "# Notes of beta\n\nSleep well.");
    let yaml = Some(("application/yaml", common::PROGRAM.replace("Welcome!", "Alpha says hi.").into_bytes()));
    let published = call(&app, Method::PUT, "/v1/creators/alpha/programs/intro", Some(&alpha), yaml).await;
    assert_eq!(published.body["version"], 2, "{published:?}");
    let b_program = get(&app, "/v1/creators/beta/programs/intro", &beta).await;
    assert_eq!(b_program.body["latest_version"], 1);
    assert_eq!(get(&app, "/v1/creators/beta", &beta).await.body["version"], 1);
}
