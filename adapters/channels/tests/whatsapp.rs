//! The WhatsApp adapter against Meta's real payload shapes (the fixtures) and a fake Graph API on
//! loopback: signatures, the handshake, batched notifications, rendering and the send error mapping.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use twin_channels::whatsapp::config::SIGNATURE_HEADER;
use twin_channels::whatsapp::{WhatsAppClient, WhatsAppConfig, handshake, parse, render, verify_signature};
use twin_channels::{Content, InboundEvent, ProviderClient, Secret, SendError, WebhookError};
use twin_engine::channel::{ChannelKind, DeliveryState, OutboxBody};
use twin_engine::message::Choice;

const TEXT_MESSAGE: &str = include_str!("fixtures/whatsapp/01_text_message.json");
const BUTTON_REPLY: &str = include_str!("fixtures/whatsapp/02_interactive_button_reply.json");
const STATUS_SENT: &str = include_str!("fixtures/whatsapp/03_status_sent.json");
const STATUS_FAILED: &str = include_str!("fixtures/whatsapp/06_status_failed_131047.json");
const RATE_LIMIT_ERROR: &str = include_str!("fixtures/whatsapp/error_130429_rate_limit.json");
const BUTTONS_REQUEST: &str = include_str!("fixtures/whatsapp/send_reply_buttons_request.json");
const TEXT_REQUEST: &str = include_str!("fixtures/whatsapp/send_text_request.json");
const TEXT_RESPONSE: &str = include_str!("fixtures/whatsapp/send_text_response.json");
const HANDSHAKE: &str = include_str!("fixtures/whatsapp/verification_handshake.json");

const PHONE_NUMBER_ID: &str = "110293847561029";
const APP_SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const TOKEN: &str = "EAAGtestTOKENs3cr3t";
const SENT_WAMID: &str = "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEjRCMzdFMDk5NkQ3QjE2NkMwRQA=";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(APP_SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn only_message(fixture: &str) -> (String, String, Content, twin_channels::Sender) {
    let routed = parse(fixture.as_bytes()).expect("a fixture parses");
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].phone_number_id, PHONE_NUMBER_ID);
    match routed[0].item.event.clone() {
        InboundEvent::Message { from, message_id, text, content } => {
            assert_eq!(routed[0].item.dedup_key, format!("wa:msg:{message_id}"));
            (message_id, text, content, from)
        }
        other => panic!("not a message: {other:?}"),
    }
}

// ---- Inbound fixtures ----

#[test]
fn the_text_fixture_is_a_text_turn_from_a_named_sender() {
    let (id, text, content, from) = only_message(TEXT_MESSAGE);
    assert_eq!(id, "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjA0RjI3QTY5NDlCODk0QzdBNTgA");
    assert_eq!(text, "Hallo! Wann wird meine Bestellung 4471 verschickt?");
    assert_eq!(content, Content::Text);
    assert_eq!(from.user, "4915112345678");
    assert_eq!(from.chat, "4915112345678");
    assert_eq!(from.name.as_deref(), Some("Maria Keller"));
}

#[test]
fn the_button_reply_fixture_is_a_choice_of_the_buttons_id() {
    let (_, text, content, from) = only_message(BUTTON_REPLY);
    assert_eq!(text, "rate_good_4471");
    assert_eq!(content, Content::Choice { callback_id: None });
    assert_eq!(from.name.as_deref(), Some("Maria Keller"));
}

#[test]
fn the_sent_status_fixture_reports_sent_for_the_wamid() {
    let routed = parse(STATUS_SENT.as_bytes()).unwrap();
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].item.dedup_key, format!("wa:status:{SENT_WAMID}:sent"));
    assert_eq!(
        routed[0].item.event,
        InboundEvent::Status {
            recipient: "4915112345678".into(),
            provider_message_id: SENT_WAMID.into(),
            state: DeliveryState::Sent,
            error: None,
        }
    );
}

#[test]
fn the_failed_status_fixture_carries_the_131047_error() {
    let routed = parse(STATUS_FAILED.as_bytes()).unwrap();
    assert_eq!(routed.len(), 1);
    let InboundEvent::Status { state, error, provider_message_id, .. } = &routed[0].item.event else {
        panic!("not a status: {:?}", routed[0].item.event);
    };
    assert_eq!(*state, DeliveryState::Failed);
    assert_eq!(provider_message_id, "wamid.HBgNNDkxNTExMjM0NTY3OBUCABEYEkU4QjkwQzFBNzIzRDQ1RjBBMgA=");
    assert_eq!(
        error.as_deref(),
        Some(
            "131047 Re-engagement message: Message failed to send because more than 24 hours have passed since the \
             customer last replied to this number."
        )
    );
}

#[test]
fn the_handshake_fixture_is_answered_and_its_mismatch_refused() {
    let fixture: Value = serde_json::from_str(HANDSHAKE).unwrap();
    let token = Secret::new(fixture["configured_verify_token"].as_str().unwrap());
    let query = |q: &Value, key: &str| q[key].as_str().map(str::to_owned);
    let good = &fixture["request"]["query"];
    let answer = handshake(
        query(good, "hub.mode").as_deref(),
        query(good, "hub.verify_token").as_deref(),
        query(good, "hub.challenge").as_deref(),
        &token,
    );
    assert_eq!(answer.as_deref(), Ok(fixture["expected_response"]["body"].as_str().unwrap()));
    let bad = &fixture["mismatch_example"]["query"];
    let refused = handshake(
        query(bad, "hub.mode").as_deref(),
        query(bad, "hub.verify_token").as_deref(),
        query(bad, "hub.challenge").as_deref(),
        &token,
    );
    assert_eq!(refused, Err(WebhookError::Unauthenticated));
    assert!(matches!(handshake(Some("subscribe"), None, None, &token), Err(WebhookError::Malformed(_))));
}

// ---- Signatures ----

#[test]
fn a_signature_over_the_exact_bytes_is_accepted_and_every_other_refused() {
    let secret = Secret::new(APP_SECRET);
    let body = TEXT_MESSAGE.as_bytes();
    let good = sign(body);
    assert_eq!(SIGNATURE_HEADER, "X-Hub-Signature-256");
    assert_eq!(verify_signature(Some(good.as_bytes()), body, &secret), Ok(()));

    let unauthenticated = Err(WebhookError::Unauthenticated);
    assert_eq!(verify_signature(None, body, &secret), unauthenticated);
    let forged = format!("sha256={}", "ab".repeat(32));
    assert_eq!(verify_signature(Some(forged.as_bytes()), body, &secret), unauthenticated);
    let wrong_prefix = good.replacen("sha256=", "sha1=", 1);
    assert_eq!(verify_signature(Some(wrong_prefix.as_bytes()), body, &secret), unauthenticated);
    let bare = good.trim_start_matches("sha256=");
    assert_eq!(verify_signature(Some(bare.as_bytes()), body, &secret), unauthenticated);

    let mut changed = body.to_vec();
    let at = TEXT_MESSAGE.find("4471").unwrap();
    changed[at] = b'5';
    assert_eq!(verify_signature(Some(good.as_bytes()), &changed, &secret), unauthenticated);
    // The same JSON re-serialized is other bytes: verification is over what arrived, not its meaning.
    let reserialized = serde_json::to_vec(&serde_json::from_str::<Value>(TEXT_MESSAGE).unwrap()).unwrap();
    assert_eq!(verify_signature(Some(good.as_bytes()), &reserialized, &secret), unauthenticated);
}

// ---- Batching ----

#[test]
fn a_batched_notification_keeps_its_order_routes_by_number_and_keys_each_item() {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "waba-1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550100001", "phone_number_id": "pn-A"},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "111"}, {"profile": {"name": "Ben"}, "wa_id": "222"}],
                "messages": [
                    {"from": "111", "id": "wamid.A1", "timestamp": "1700000001", "type": "text", "text": {"body": "eins"}},
                    {"from": "222", "id": "wamid.A2", "timestamp": "1700000002", "type": "text", "text": {"body": "zwei"}}
                ],
                "statuses": [
                    {"id": "wamid.out1", "status": "delivered", "timestamp": "1700000003", "recipient_id": "111"}
                ]
            }}]},
            {"id": "waba-2", "changes": [
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550100002", "phone_number_id": "pn-B"},
                    "statuses": [
                        {"id": "wamid.out2", "status": "read", "timestamp": "1700000004", "recipient_id": "333"},
                        {"id": "wamid.out2", "status": "deleted", "timestamp": "1700000005", "recipient_id": "333"}
                    ]
                }},
                {"field": "messages", "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550100002", "phone_number_id": "pn-B"},
                    "contacts": [{"profile": {"name": "Cleo"}, "wa_id": "333"}],
                    "messages": [
                        {"from": "333", "id": "wamid.B1", "timestamp": "1700000006", "type": "interactive",
                         "interactive": {"type": "list_reply", "list_reply": {"id": "opt_7", "title": "Seven"}}}
                    ]
                }}
            ]}
        ]
    });
    let routed = parse(&serde_json::to_vec(&body).unwrap()).unwrap();
    let summary: Vec<(&str, &str)> =
        routed.iter().map(|r| (r.phone_number_id.as_str(), r.item.dedup_key.as_str())).collect();
    assert_eq!(
        summary,
        vec![
            ("pn-A", "wa:msg:wamid.A1"),
            ("pn-A", "wa:msg:wamid.A2"),
            ("pn-A", "wa:status:wamid.out1:delivered"),
            ("pn-B", "wa:status:wamid.out2:read"),
            ("pn-B", "wa:msg:wamid.B1"),
        ]
    );
    let InboundEvent::Message { from, text, .. } = &routed[1].item.event else { panic!("not a message") };
    assert_eq!((from.user.as_str(), from.name.as_deref(), text.as_str()), ("222", Some("Ben"), "zwei"));
    let InboundEvent::Message { from, text, content, .. } = &routed[4].item.event else { panic!("not a message") };
    assert_eq!((from.name.as_deref(), text.as_str()), (Some("Cleo"), "opt_7"));
    assert_eq!(*content, Content::Choice { callback_id: None });
}

#[test]
fn a_body_that_is_not_a_notification_is_malformed() {
    assert!(matches!(
        parse(b"{\"object\": \"whatsapp_business_account\", \"entry\": 3}"),
        Err(WebhookError::Malformed(_))
    ));
    assert!(matches!(parse(b"<html>"), Err(WebhookError::Malformed(_))));
}

// ---- Rendering against the request fixtures ----

fn choice(value: &str, label: &str) -> Choice {
    Choice { value: value.into(), label: label.into() }
}

#[test]
fn reply_buttons_render_exactly_as_the_request_fixture() {
    let body = OutboxBody::Text {
        text: "Wie zufrieden warst du mit unserem Support?".into(),
        choices: vec![choice("rate_good_4471", "\u{1f44d} Good"), choice("rate_bad_4471", "\u{1f44e} Bad")],
    };
    let parts = render("4915112345678", &body);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].method, "messages");
    assert_eq!(parts[0].body, serde_json::from_str::<Value>(BUTTONS_REQUEST).unwrap());
}

#[test]
fn a_text_renders_as_the_request_fixture_without_its_quoted_context() {
    let mut expected: Value = serde_json::from_str(TEXT_REQUEST).unwrap();
    expected.as_object_mut().unwrap().remove("context");
    let text = expected["text"]["body"].as_str().unwrap().to_owned();
    let parts = render("+49 151 12345678", &OutboxBody::Text { text, choices: vec![] });
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].body, expected);
}

// ---- The client against a fake Graph API ----

#[derive(Debug, Clone)]
struct Received {
    phone_number_id: String,
    authorization: Option<String>,
    body: Value,
}

#[derive(Clone)]
struct FakeGraph {
    status: StatusCode,
    answer: &'static str,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn fake_messages(
    State(fake): State<FakeGraph>,
    Path(phone_number_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], &'static str) {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.received.lock().expect("no test panicked holding the lock").push(Received {
        phone_number_id,
        authorization,
        body,
    });
    (fake.status, [("content-type", "application/json")], fake.answer)
}

/// Starts a fake Graph API answering every send with `status` and `answer`; returns its API base
/// and what it received.
async fn fake_graph(status: StatusCode, answer: &'static str) -> (String, Arc<Mutex<Vec<Received>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let fake = FakeGraph { status, answer, received: received.clone() };
    let app = Router::new().route("/v21.0/{phone_number_id}/messages", post(fake_messages)).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the fake Graph API serves") });
    (format!("http://{addr}/v21.0/"), received)
}

fn client(api_base: &str) -> WhatsAppClient {
    let config = WhatsAppConfig {
        api_base: api_base.trim_end_matches('/').to_owned(),
        phone_number_id: PHONE_NUMBER_ID.into(),
        access_token: Secret::new(TOKEN),
        app_secret: Secret::new(APP_SECRET),
        verify_token: Secret::new("vt"),
    };
    WhatsAppClient::new(reqwest::Client::new(), Arc::new(config))
}

fn assert_no_token(error: &SendError) {
    assert!(!error.to_string().contains(TOKEN), "the token leaked: {error}");
    assert!(!format!("{error:?}").contains(TOKEN), "the token leaked: {error:?}");
}

#[tokio::test]
async fn an_accepted_send_returns_the_wamid_and_the_fake_saw_the_token_and_the_json() {
    let (base, received) = fake_graph(StatusCode::OK, TEXT_RESPONSE).await;
    let client = client(&base);
    assert_eq!(client.kind(), ChannelKind::WhatsApp);
    let parts = client.render("4915112345678", &OutboxBody::Text { text: "Hallo **Maria**!".into(), choices: vec![] });
    let sent = client.send(&parts[0]).await.unwrap();
    assert_eq!(sent.provider_message_id.as_deref(), Some(SENT_WAMID));

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].phone_number_id, PHONE_NUMBER_ID);
    assert_eq!(received[0].authorization.as_deref(), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(received[0].body["to"], "4915112345678");
    assert_eq!(received[0].body["text"]["body"], "Hallo *Maria*!");
}

#[tokio::test]
async fn buttons_lists_and_templates_reach_the_api_as_rendered() {
    let (base, received) = fake_graph(StatusCode::OK, TEXT_RESPONSE).await;
    let client = client(&base);
    let buttons = OutboxBody::Text { text: "Ready?".into(), choices: vec![choice("yes", "Yes"), choice("no", "No")] };
    let list = OutboxBody::Text {
        text: "Which day?".into(),
        choices: ["mon", "tue", "wed", "thu", "fri"].iter().map(|d| choice(d, &d.to_uppercase())).collect(),
    };
    let template = OutboxBody::Template { name: "checkin".into(), language: "de".into() };
    for body in [&buttons, &list, &template] {
        for part in client.render("4915112345678", body) {
            client.send(&part).await.unwrap();
        }
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 3);
    assert_eq!(
        received[0].body["interactive"]["action"]["buttons"],
        json!([{"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
               {"type": "reply", "reply": {"id": "no", "title": "No"}}])
    );
    assert_eq!(received[1].body["interactive"]["type"], "list");
    assert_eq!(received[1].body["interactive"]["body"]["text"], "Which day?");
    let rows = &received[1].body["interactive"]["action"]["sections"][0]["rows"];
    assert_eq!(rows[4], json!({"id": "fri", "title": "FRI"}));
    assert_eq!(
        received[2].body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "4915112345678",
               "type": "template", "template": {"name": "checkin", "language": {"code": "de"}}})
    );
    assert!(received.iter().all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {TOKEN}"))));
}

#[tokio::test]
async fn mark_read_posts_a_read_status_for_the_message() {
    let (base, received) = fake_graph(StatusCode::OK, r#"{"success": true}"#).await;
    client(&base).mark_read("wamid.in1").await.unwrap();
    let received = received.lock().unwrap().clone();
    assert_eq!(received[0].body, json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in1"}));
}

#[tokio::test]
async fn the_throughput_limit_fixture_is_a_whole_number_rate_limit() {
    let (base, _) = fake_graph(StatusCode::BAD_REQUEST, RATE_LIMIT_ERROR).await;
    let client = client(&base);
    let part = &client.render("491", &OutboxBody::Text { text: "hi".into(), choices: vec![] })[0];
    let error = client.send(part).await.unwrap_err();
    assert_eq!(
        error,
        SendError::RateLimited { retry_after: twin_channels::whatsapp::client::THROUGHPUT_RETRY, whole_sender: true }
    );
}

#[tokio::test]
async fn a_re_engagement_error_means_the_window_is_closed() {
    const ANSWER: &str = r#"{"error": {"message": "(#131047) Re-engagement message", "type": "OAuthException",
        "code": 131047, "error_data": {"messaging_product": "whatsapp",
        "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
        "fbtrace_id": "AbC"}}"#;
    let (base, _) = fake_graph(StatusCode::BAD_REQUEST, ANSWER).await;
    let client = client(&base);
    let part = &client.render("491", &OutboxBody::Text { text: "hi".into(), choices: vec![] })[0];
    let error = client.send(part).await.unwrap_err();
    let SendError::WindowClosed(reason) = &error else { panic!("not window closed: {error:?}") };
    assert!(reason.contains("131047") && reason.contains("24 hours"), "{reason}");
    assert_no_token(&error);
}

#[tokio::test]
async fn a_server_error_is_transient_and_a_bad_token_rejected_without_the_token_in_either() {
    let (base, _) = fake_graph(StatusCode::INTERNAL_SERVER_ERROR, "oops").await;
    let client_500 = client(&base);
    let part = &client_500.render("491", &OutboxBody::Text { text: "hi".into(), choices: vec![] })[0];
    let error = client_500.send(part).await.unwrap_err();
    assert_eq!(error, SendError::Transient("HTTP 500".into()));

    const BAD_TOKEN: &str = r#"{"error": {"message": "Invalid OAuth access token - Cannot parse access token EAAGtestTOKENs3cr3t",
        "type": "OAuthException", "code": 190, "fbtrace_id": "X"}}"#;
    let (base, _) = fake_graph(StatusCode::UNAUTHORIZED, BAD_TOKEN).await;
    let error = client(&base).send(part).await.unwrap_err();
    let SendError::Rejected(reason) = &error else { panic!("not rejected: {error:?}") };
    assert!(reason.contains("190") && reason.contains("<redacted>"), "{reason}");
    assert_no_token(&error);
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client(&format!("http://{addr}/v21.0"));
    let part = &client.render("491", &OutboxBody::Text { text: "hi".into(), choices: vec![] })[0];
    let error = client.send(part).await.unwrap_err();
    let SendError::Transient(reason) = &error else { panic!("not transient: {error:?}") };
    assert!(reason.starts_with("could not connect"), "{reason}");
    assert_no_token(&error);
}
