//! Tokens against the running server, on SQLite and PostgreSQL: the JWKS endpoints, and end-user
//! tokens minted by creators' own platforms (an HS256 secret, or keys published at a JWKS URL
//! served here by a small loopback server).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{Kind, TestApp, spawn_app_with};
use tokio_tungstenite::tungstenite::http::StatusCode;
use twin_api::auth::keyfiles::PrivateKey;
use twin_engine::channel::SecretRef;
use twin_engine::twin::UserTokens;

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Kind::Postgres).await })*
        }
    };
}

on_both_backends!(
    the_jwks_endpoints_publish_the_key_that_signs,
    a_creator_secret_makes_end_users_of_that_creator_only,
    a_creator_platform_publishing_its_keys_is_trusted_for_its_keys_only,
    unknown_issuers_wrong_audiences_and_forged_signatures_get_401,
);

const ACME_ISSUER: &str = "https://app.acme-coaching.example";
const ACME_SECRET: &str = "acme-secret-acme-secret-acme-secret-0001";
const BETA_ISSUER: &str = "https://beta.example";
const BETA_SECRET: &str = "beta-secret-beta-secret-beta-secret-0002";

/// The demo creator under another slug, in free chat, trusting `user_tokens`.
fn creator(slug: &str, user_tokens: UserTokens) -> twin_api::bundle::Bundle {
    let mut bundle = twin_api::bundle::demo();
    bundle.profile.slug = twin_engine::Slug::parse(slug).unwrap();
    bundle.programs.clear();
    bundle.profile.default_program = None;
    bundle.profile.user_tokens = Some(user_tokens);
    bundle
}

fn secret_issuer(issuer: &str, secret: &str) -> UserTokens {
    UserTokens { issuer: issuer.into(), audience: None, secret: Some(SecretRef::new(secret)), jwks_url: None }
}

async fn two_creators(kind: Kind) -> TestApp {
    spawn_app_with(
        kind,
        &[
            creator("acme", secret_issuer(ACME_ISSUER, ACME_SECRET)),
            creator("beta", secret_issuer(BETA_ISSUER, BETA_SECRET)),
        ],
    )
    .await
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// What a creator's backend puts in a token: only `sub`, `iss`, `aud` and `exp` are needed.
fn user_claims(issuer: &str, sub: &str) -> Value {
    json!({"sub": sub, "iss": issuer, "aud": "twin", "exp": now() + 600, "iat": now()})
}

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// The history `user` of `creator` sees, read back with a platform token.
async fn history(app: &TestApp, creator: &str, user: &str) -> Vec<String> {
    let token = app.token_for(creator, user, Duration::from_secs(60));
    let mut client = app.connect_with_token(&token).await.expect("a platform token opens the socket");
    let messages = client.resume_all(0, 100).await;
    messages.iter().filter(|m| m["origin"] == "user").map(|m| m["text"].as_str().unwrap().to_owned()).collect()
}

/// Opens a socket with `token`, says `text` and waits for the twin's answer.
async fn chat(app: &TestApp, token: &str, text: &str) {
    let mut client = app.connect_with_token(token).await.expect("the socket opens");
    client.say("m1", text).await;
    let (ack, _) = client.until("ack").await;
    assert_eq!(ack["id"], "m1");
    client.reply().await;
}

async fn the_jwks_endpoints_publish_the_key_that_signs(kind: Kind) {
    let app = support::spawn_app(kind).await;
    let http = reqwest::Client::new();
    for path in ["/v1/auth/jwks.json", "/.well-known/jwks.json"] {
        let response = http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let cache = response.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(cache.contains("max-age="), "{path}: {cache}");
        let set: jsonwebtoken::jwk::JwkSet = response.json().await.unwrap();
        assert_eq!(set.keys.len(), 1, "{path}: the development ring has one key");
        let key = &set.keys[0];
        assert_eq!(key.common.key_id.as_deref(), Some(app.keys.signing_kid()));
        // Anyone holding the set can verify the server's tokens.
        let token = app.token("jwks-reader");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::EdDSA);
        validation.set_audience(&["twin"]);
        let decoding = jsonwebtoken::DecodingKey::from_jwk(key).unwrap();
        let claims = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap().claims;
        assert_eq!(claims["sub"], "jwks-reader");
        let raw: Value = serde_json::to_value(key).unwrap();
        assert!(raw.get("d").is_none() && raw.get("k").is_none(), "no private or symmetric key material: {raw}");
    }
}

async fn a_creator_secret_makes_end_users_of_that_creator_only(kind: Kind) {
    let app = two_creators(kind).await;
    // acme's backend vouches for its user ana.
    chat(&app, &hs256(&user_claims(ACME_ISSUER, "ana"), ACME_SECRET), "hello from acme's app").await;
    assert_eq!(history(&app, "acme", "ana").await, vec!["hello from acme's app"]);

    // Signed with acme's secret, claiming beta's tenant and the creator role: still an end user
    // (the chat socket, which refuses every other role with 403, opens) of acme (beta sees nothing).
    let beta_id = twin_engine::Slug::parse("beta").unwrap().creator_id();
    let mut grabby = user_claims(ACME_ISSUER, "mallory");
    grabby["tenant"] = json!(beta_id.to_string());
    grabby["role"] = json!("creator");
    let grabby = hs256(&grabby, ACME_SECRET);
    chat(&app, &grabby, "let me into beta").await;
    assert_eq!(history(&app, "acme", "mallory").await, vec!["let me into beta"]);
    assert!(history(&app, "beta", "mallory").await.is_empty(), "nothing landed at beta");
    let link = reqwest::Client::new()
        .post(app.url("/v1/channels/link-code"))
        .bearer_auth(&grabby)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(link.status(), 201, "an end-user route takes it as acme's end user");

    // acme's secret cannot speak for beta's issuer, nor beta's for acme's.
    for (issuer, secret) in [(BETA_ISSUER, ACME_SECRET), (ACME_ISSUER, BETA_SECRET)] {
        let forged = hs256(&user_claims(issuer, "eve"), secret);
        assert_eq!(app.connect_with_token(&forged).await.err(), Some(StatusCode::UNAUTHORIZED), "{issuer}");
    }
    // Nor can a creator's secret mint platform tokens.
    let mut platform = user_claims("twin", "eve");
    platform["tenant"] = json!(beta_id.to_string());
    platform["role"] = json!("user");
    platform["jti"] = json!("j");
    assert_eq!(app.connect_with_token(&hs256(&platform, ACME_SECRET)).await.err(), Some(StatusCode::UNAUTHORIZED));
}

/// A creator platform's key set on a loopback server, counting how often it is fetched.
struct KeyServer {
    url: String,
    fetches: Arc<AtomicUsize>,
}

async fn key_server(keys: Value) -> KeyServer {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let keys = keys.clone();
            async move { axum::Json(keys) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    KeyServer { url, fetches }
}

fn ed25519_jwk(key: &PrivateKey, kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(key.public), "kid": kid, "alg": "EdDSA", "use": "sig"})
}

fn eddsa(claims: &Value, key: &PrivateKey, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&key.pkcs8)).unwrap()
}

async fn a_creator_platform_publishing_its_keys_is_trusted_for_its_keys_only(kind: Kind) {
    const ISSUER: &str = "https://gamma.example";
    let signing = PrivateKey::generate().unwrap();
    let other = PrivateKey::generate().unwrap();
    let server = key_server(json!({"keys": [ed25519_jwk(&signing, "k1"), ed25519_jwk(&other, "k2")]})).await;
    let tokens = UserTokens {
        issuer: ISSUER.into(),
        audience: Some("gamma-twin".into()),
        secret: None,
        jwks_url: Some(server.url.clone()),
    };
    let app = spawn_app_with(kind, &[creator("gamma", tokens)]).await;

    let mut claims = user_claims(ISSUER, "zoe");
    claims["aud"] = json!("gamma-twin");
    chat(&app, &eddsa(&claims, &signing, Some("k1")), "hi from gamma").await;
    assert_eq!(history(&app, "gamma", "zoe").await, vec!["hi from gamma"]);

    let unauthorized = Some(StatusCode::UNAUTHORIZED);
    // A key id the platform never published, and a key that is published under another kid.
    assert_eq!(app.connect_with_token(&eddsa(&claims, &signing, Some("k9"))).await.err(), unauthorized);
    assert_eq!(app.connect_with_token(&eddsa(&claims, &other, Some("k1"))).await.err(), unauthorized);
    // Several keys published: a token must say which.
    assert_eq!(app.connect_with_token(&eddsa(&claims, &signing, None)).await.err(), unauthorized);
    // The server's audience is not gamma's.
    let mut wrong_audience = claims.clone();
    wrong_audience["aud"] = json!("twin");
    assert_eq!(app.connect_with_token(&eddsa(&wrong_audience, &signing, Some("k1"))).await.err(), unauthorized);
    // HS256 "signed" with the published key's bytes.
    let confused = jsonwebtoken::encode(
        &Header { kid: Some("k1".into()), ..Header::new(Algorithm::HS256) },
        &claims,
        &EncodingKey::from_secret(&signing.public),
    )
    .unwrap();
    assert_eq!(app.connect_with_token(&confused).await.err(), unauthorized);
    // Unknown key ids do not each cost the platform a request (one fetch a minute at most).
    assert!(server.fetches.load(Ordering::SeqCst) <= 2, "fetched {} times", server.fetches.load(Ordering::SeqCst));
}

async fn unknown_issuers_wrong_audiences_and_forged_signatures_get_401(kind: Kind) {
    let app = two_creators(kind).await;
    let unauthorized = Some(StatusCode::UNAUTHORIZED);
    let unknown = hs256(&user_claims("https://nobody.example", "ana"), ACME_SECRET);
    assert_eq!(app.connect_with_token(&unknown).await.err(), unauthorized, "unknown issuer");
    let mut audience = user_claims(ACME_ISSUER, "ana");
    audience["aud"] = json!("someone-else");
    assert_eq!(app.connect_with_token(&hs256(&audience, ACME_SECRET)).await.err(), unauthorized, "wrong audience");
    let mut expired = user_claims(ACME_ISSUER, "ana");
    expired["exp"] = json!(now() - 3600);
    assert_eq!(app.connect_with_token(&hs256(&expired, ACME_SECRET)).await.err(), unauthorized, "expired");
    let mut no_sub = user_claims(ACME_ISSUER, "ana");
    no_sub.as_object_mut().unwrap().remove("sub");
    assert_eq!(app.connect_with_token(&hs256(&no_sub, ACME_SECRET)).await.err(), unauthorized, "no sub");
    let key = PrivateKey::generate().unwrap();
    let asymmetric = eddsa(&user_claims(ACME_ISSUER, "ana"), &key, Some("k1"));
    assert_eq!(app.connect_with_token(&asymmetric).await.err(), unauthorized, "EdDSA to a secret issuer");
    let huge = format!("{}{}", hs256(&user_claims(ACME_ISSUER, "ana"), ACME_SECRET), "A".repeat(9000));
    let response = reqwest::Client::new()
        .post(app.url("/v1/channels/link-code"))
        .bearer_auth(huge)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "oversized");
}

/// `twin keys rotate` adds a signing key to the data dir's ring; tokens of the previous key still
/// verify, `twin token` signs with the new one, and deleting a public key file retires it.
#[tokio::test]
async fn twin_keys_rotate_keeps_the_previous_key_verifying_until_its_file_is_removed() {
    let data = tempfile::tempdir().unwrap();
    let twin = |args: &[&str]| {
        let output = std::process::Command::new(support::twin_binary())
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .env_remove("TWIN_JWT_SECRET")
            .env_remove("TWIN_JWT_PRIVATE_KEY")
            .env_remove("TWIN_JWT_PUBLIC_KEY")
            .output()
            .unwrap();
        assert!(output.status.success(), "twin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let ring = || {
        let overrides =
            twin_api::settings::Overrides { data_dir: Some(data.path().to_path_buf()), ..Default::default() };
        twin_api::auth::TokenKeys::from_settings(&twin_api::Settings::defaults(&overrides).unwrap()).unwrap()
    };
    let old_token = twin(&["token", "--creator", "demo", "--user", "ana"]).trim().to_owned();
    let old_kid = ring().signing_kid().to_owned();
    let new_kid = twin(&["keys", "rotate"]).trim().to_owned();
    assert_ne!(new_kid, old_kid);
    let listed = twin(&["keys", "list"]);
    assert!(listed.contains(&format!("{new_kid} (signing)")) && listed.contains(&old_kid), "{listed}");

    let rotated = ring();
    assert_eq!(rotated.signing_kid(), new_kid);
    assert!(rotated.verify(&old_token).is_ok(), "the previous key still verifies");
    let new_token = twin(&["token", "--creator", "demo", "--user", "ana"]).trim().to_owned();
    assert_eq!(jsonwebtoken::decode_header(&new_token).unwrap().kid.as_deref(), Some(new_kid.as_str()));

    std::fs::remove_file(data.path().join("jwt-keys").join(format!("{old_kid}.pub.pem"))).unwrap();
    let retired = ring();
    assert!(retired.verify(&old_token).is_err(), "a removed key's tokens are refused");
    assert!(retired.verify(&new_token).is_ok());
}
