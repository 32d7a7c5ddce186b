//! The Telegram adapter against Telegram's own payloads (the fixtures) and a fake Bot API on
//! loopback that answers with them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use serde_json::{Value, json};
use twin_channels::telegram::config::{DEFAULT_API_BASE, MAX_TEXT_CHARS, generate_webhook_secret};
use twin_channels::telegram::{TelegramClient, TelegramConfig, inbound, render};
use twin_channels::{Content, InboundEvent, InboundItem, ProviderClient, SendError, Sender, WebhookError};
use twin_channels::{Part, Secret, SentPart};
use twin_engine::channel::{ChannelKind, OutboxBody, SecretRef, TelegramSettings};
use twin_engine::message::Choice;

const TOKEN: &str = "7012345678:AAF-fake_TOKEN-never-printed";
const BOT: Option<&str> = Some("acme_helper_bot");

const PRIVATE_TEXT: &str = include_str!("fixtures/telegram/01_private_text_message.json");
const START_DEEP_LINK: &str = include_str!("fixtures/telegram/04_start_deep_link.json");
const CALLBACK_QUERY: &str = include_str!("fixtures/telegram/05_callback_query.json");
const BLOCKED: &str = include_str!("fixtures/telegram/07_my_chat_member_blocked.json");
const SEND_REQUEST: &str = include_str!("fixtures/telegram/sendMessage_request.json");
const SEND_OK: &str = include_str!("fixtures/telegram/sendMessage_response_ok.json");
const ERROR_403: &str = include_str!("fixtures/telegram/error_403_bot_blocked_by_user.json");
const ERROR_429: &str = include_str!("fixtures/telegram/error_429_too_many_requests.json");

fn config(api_base: &str) -> TelegramConfig {
    let settings = TelegramSettings {
        bot_token: SecretRef::new("env:TELEGRAM_BOT_TOKEN"),
        webhook_secret: SecretRef::new("hook-secret-123"),
        bot_username: Some("@acme_helper_bot".into()),
    };
    let env = |name: &str| (name == "TELEGRAM_BOT_TOKEN").then(|| TOKEN.to_owned());
    TelegramConfig::resolve(&settings, api_base, &env).expect("the settings resolve")
}

fn only(body: &[u8]) -> InboundItem {
    let mut items = inbound::parse(body, BOT).expect("a valid update");
    assert_eq!(items.len(), 1, "{items:?}");
    items.remove(0)
}

fn maria(chat: &str) -> Sender {
    Sender { user: "5823419076".into(), chat: chat.into(), name: Some("Maria Keller".into()) }
}

/// Fixture 01 with its message changed by `edit`.
fn edited_fixture(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut update: Value = serde_json::from_str(PRIVATE_TEXT).expect("the fixture is JSON");
    edit(&mut update["message"]);
    serde_json::to_vec(&update).expect("JSON serializes")
}

#[test]
fn every_webhook_fixture_maps_to_its_event() {
    assert_eq!(
        only(PRIVATE_TEXT.as_bytes()),
        InboundItem {
            dedup_key: "tg:update:734201551".into(),
            event: InboundEvent::Message {
                from: maria("5823419076"),
                message_id: "812".into(),
                text: "Hi, can you tell me when my order ships?".into(),
                content: Content::Text,
            },
        }
    );
    assert_eq!(
        only(START_DEEP_LINK.as_bytes()),
        InboundItem {
            dedup_key: "tg:update:734201554".into(),
            event: InboundEvent::Message {
                from: Sender { user: "6104729385".into(), chat: "6104729385".into(), name: Some("Lucía".into()) },
                message_id: "1".into(),
                text: "/start ref_spring25-campaign".into(),
                content: Content::Start { payload: Some("ref_spring25-campaign".into()) },
            },
        }
    );
    assert_eq!(
        only(CALLBACK_QUERY.as_bytes()),
        InboundItem {
            dedup_key: "tg:update:734201555".into(),
            event: InboundEvent::Message {
                from: maria("5823419076"),
                message_id: "814".into(),
                text: "rate:good:4471".into(),
                content: Content::Choice { callback_id: Some("2504582394870512113".into()) },
            },
        }
    );
    assert_eq!(
        only(BLOCKED.as_bytes()),
        InboundItem {
            dedup_key: "tg:update:734201557".into(),
            event: InboundEvent::Reachability { from: maria("5823419076"), reachable: false },
        }
    );
}

#[test]
fn the_api_fixtures_are_not_updates() {
    for body in [SEND_REQUEST, SEND_OK, ERROR_403, ERROR_429] {
        assert!(matches!(inbound::parse(body.as_bytes(), BOT), Err(WebhookError::Malformed(_))), "{body}");
    }
}

#[test]
fn a_redelivered_update_has_the_same_dedup_key() {
    assert_eq!(only(PRIVATE_TEXT.as_bytes()).dedup_key, only(PRIVATE_TEXT.as_bytes()).dedup_key);
    assert_ne!(only(PRIVATE_TEXT.as_bytes()).dedup_key, only(START_DEEP_LINK.as_bytes()).dedup_key);
}

#[test]
fn forged_and_missing_secrets_are_refused() {
    let config = config(DEFAULT_API_BASE);
    assert_eq!(inbound::verify(Some(b"hook-secret-123"), &config), Ok(()));
    for forged in [&b"hook-secret-124"[..], b"hook-secret-12", b"hook-secret-1234", b"", TOKEN.as_bytes()] {
        assert_eq!(inbound::verify(Some(forged), &config), Err(WebhookError::Unauthenticated));
    }
    assert_eq!(inbound::verify(None, &config), Err(WebhookError::Unauthenticated));
}

#[test]
fn in_a_group_only_messages_addressed_to_the_bot_are_turns() {
    let in_group = |text: &str, entities: Value| {
        edited_fixture(|message| {
            message["chat"] = json!({"id": -1_001_555_000_111_i64, "title": "Fans", "type": "supergroup"});
            message["text"] = json!(text);
            message["entities"] = entities;
        })
    };
    // "Ünïcødé 🚚 " is 11 UTF-16 units, 10 characters and 17 bytes: offsets count UTF-16 units.
    let mentioned =
        in_group("Ünïcødé 🚚 @acme_helper_bot when?", json!([{"type": "mention", "offset": 11, "length": 16}]));
    let event = only(&mentioned).event;
    let InboundEvent::Message { from, text, content, .. } = event else { panic!("not a message: {event:?}") };
    assert_eq!(text, "Ünïcødé 🚚 when?");
    assert_eq!(content, Content::Text);
    assert_eq!(from, maria("-1001555000111"));

    let other = in_group("@someone_else when?", json!([{"type": "mention", "offset": 0, "length": 13}]));
    assert_eq!(inbound::parse(&other, BOT), Ok(vec![]));
    assert_eq!(inbound::parse(&in_group("when?", json!([])), BOT), Ok(vec![]));
    assert_eq!(inbound::parse(&mentioned, None), Ok(vec![]), "without a username groups are ignored");
}

#[test]
fn media_messages_become_described_placeholders() {
    let photo = edited_fixture(|message| {
        message.as_object_mut().expect("an object").remove("text");
        message["photo"] = json!([{"file_id": "AgAD", "file_unique_id": "x", "width": 90, "height": 90}]);
        message["caption"] = json!("my new desk");
    });
    let InboundEvent::Message { text, content, .. } = only(&photo).event else { panic!("not a message") };
    assert_eq!(text, "[photo] my new desk");
    assert_eq!(content, Content::Media { media: "photo".into() });

    let voice = edited_fixture(|message| {
        message.as_object_mut().expect("an object").remove("text");
        message["voice"] = json!({"file_id": "AwAD", "file_unique_id": "y", "duration": 4});
    });
    let InboundEvent::Message { text, content, .. } = only(&voice).event else { panic!("not a message") };
    assert_eq!(text, "[voice]");
    assert_eq!(content, Content::Media { media: "voice".into() });
}

#[test]
fn unknown_update_kinds_are_acknowledged_and_ignored() {
    let bodies = [
        json!({"update_id": 1, "channel_post": {"message_id": 1, "date": 1, "chat": {"id": -100, "type": "channel"}, "text": "x"}}),
        json!({"update_id": 2, "message_reaction": {"chat": {"id": 1, "type": "private"}, "message_id": 3}}),
        json!({"update_id": 3, "some_future_kind": {"anything": [1, 2, 3]}}),
        json!({"update_id": 4}),
    ];
    for body in bodies {
        assert_eq!(inbound::parse(&serde_json::to_vec(&body).expect("serializes"), BOT), Ok(vec![]), "{body}");
    }
}

#[test]
fn generated_webhook_secrets_are_accepted_by_verify() {
    let secret = generate_webhook_secret();
    let mut config = config(DEFAULT_API_BASE);
    config.webhook_secret = Secret::new(secret.clone());
    assert_eq!(inbound::verify(Some(secret.as_bytes()), &config), Ok(()));
}

/// What the fake received: the request path and its JSON body.
type Received = Arc<Mutex<Vec<(String, Value)>>>;

#[derive(Clone)]
struct FakeBotApi {
    status: StatusCode,
    answer: &'static str,
    /// Never answer (for timeouts).
    hang: bool,
    received: Received,
}

async fn answer(
    State(fake): State<FakeBotApi>,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], &'static str) {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.received.lock().expect("not poisoned").push((uri.path().to_owned(), body));
    if fake.hang {
        std::future::pending::<()>().await;
    }
    (fake.status, [(header::CONTENT_TYPE, "application/json")], fake.answer)
}

/// Serves a fake Bot API answering every call with `status` and `answer`; its base URL and what it
/// received.
async fn fake_bot_api(status: u16, answer_body: &'static str, hang: bool) -> (String, Received) {
    let received = Received::default();
    let fake = FakeBotApi {
        status: StatusCode::from_u16(status).expect("a valid status"),
        answer: answer_body,
        hang,
        received: received.clone(),
    };
    let app = Router::new().fallback(answer).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let address = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/"), received)
}

fn client(api_base: &str) -> TelegramClient {
    TelegramClient::new(reqwest::Client::new(), Arc::new(config(api_base)))
}

fn reply_with_choices() -> OutboxBody {
    OutboxBody::Text {
        text: "Your order **4471** ships tomorrow 🚚 <fast & free>".into(),
        choices: vec![
            Choice { value: "track:4471".into(), label: "Track order".into() },
            Choice { value: "human".into(), label: "Talk to a person".into() },
        ],
    }
}

/// The one call of [`reply_with_choices`] to chat 1.
fn reply_part() -> Part {
    render::render("1", &reply_with_choices()).remove(0)
}

fn assert_token_free(error: &SendError) {
    assert!(!error.to_string().contains(TOKEN), "{error}");
    assert!(!format!("{error:?}").contains(TOKEN), "{error:?}");
    assert!(!error.to_string().contains("AAF-fake_TOKEN"), "{error}");
}

#[tokio::test]
async fn a_send_posts_the_rendered_html_and_keyboard_and_returns_the_message_id() {
    let (base, received) = fake_bot_api(200, SEND_OK, false).await;
    let client = client(&base);
    assert_eq!(client.kind(), ChannelKind::Telegram);
    let parts = client.render("5823419076", &reply_with_choices());
    assert_eq!(parts.len(), 1);

    let sent = client.send(&parts[0]).await.expect("the fake accepts it");
    assert_eq!(sent, SentPart { provider_message_id: Some("815".into()) });

    let received = received.lock().expect("not poisoned").clone();
    assert_eq!(received.len(), 1);
    let (path, body) = &received[0];
    assert_eq!(path, &format!("/bot{TOKEN}/sendMessage"));
    assert_eq!(
        body,
        &json!({
            "chat_id": 5_823_419_076_i64,
            "text": "Your order <b>4471</b> ships tomorrow 🚚 &lt;fast &amp; free&gt;",
            "parse_mode": "HTML",
            "reply_markup": {"inline_keyboard": [
                [{"text": "Track order", "callback_data": "track:4471"}],
                [{"text": "Talk to a person", "callback_data": "human"}],
            ]},
        })
    );
    // The same call shape as Telegram's own example request.
    let example: Value = serde_json::from_str(SEND_REQUEST).expect("the fixture is JSON");
    assert_eq!(body["chat_id"], example["chat_id"]);
    assert_eq!(body["parse_mode"], example["parse_mode"]);
}

#[tokio::test]
async fn a_long_reply_is_sent_in_parts_with_the_buttons_on_the_last() {
    let (base, received) = fake_bot_api(200, SEND_OK, false).await;
    let client = client(&base);
    let text = "A sentence of some forty characters, ok. ".repeat(220);
    let body = OutboxBody::Text { text, choices: vec![Choice { value: "more".into(), label: "More".into() }] };
    let parts = client.render("42", &body);
    assert_eq!(parts.len(), 3);
    for part in &parts {
        client.send(part).await.expect("the fake accepts it");
    }
    let received = received.lock().expect("not poisoned").clone();
    assert_eq!(received.len(), 3);
    for (index, (_, body)) in received.iter().enumerate() {
        assert!(body["text"].as_str().expect("a text").chars().count() <= MAX_TEXT_CHARS);
        assert_eq!(body.get("reply_markup").is_some(), index == 2, "{index}");
    }
}

#[tokio::test]
async fn a_429_is_rate_limited_for_the_time_telegram_asks() {
    let (base, _) = fake_bot_api(429, ERROR_429, false).await;
    let error = client(&base).send(&reply_part()).await.unwrap_err();
    assert_eq!(error, SendError::RateLimited { retry_after: Duration::from_secs(41), whole_sender: false });
}

#[tokio::test]
async fn a_blocked_bot_makes_the_user_unreachable() {
    let (base, _) = fake_bot_api(403, ERROR_403, false).await;
    let error = client(&base).send(&reply_part()).await.unwrap_err();
    assert_eq!(error, SendError::Unreachable("Forbidden: bot was blocked by the user".into()));
    assert_token_free(&error);
}

#[tokio::test]
async fn a_server_error_is_transient() {
    let (base, _) =
        fake_bot_api(500, r#"{"ok":false,"error_code":500,"description":"Internal Server Error"}"#, false).await;
    let error = client(&base).send(&reply_part()).await.unwrap_err();
    assert_eq!(error, SendError::Transient("Internal Server Error".into()));

    let (base, _) = fake_bot_api(502, "<html>Bad Gateway</html>", false).await;
    let error = client(&base).send(&reply_part()).await.unwrap_err();
    assert!(matches!(error, SendError::Transient(_)), "{error:?}");
}

#[tokio::test]
async fn a_bad_token_is_rejected_without_quoting_it() {
    let (base, _) = fake_bot_api(401, r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#, false).await;
    let error = client(&base).get_me().await.unwrap_err();
    assert_eq!(error, SendError::Rejected("Unauthorized".into()));
    assert_token_free(&error);
}

#[tokio::test]
async fn a_refused_connection_is_transient_and_does_not_leak_the_token() {
    // A port that was just free: nothing listens on it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let address = listener.local_addr().expect("bound");
    drop(listener);
    let error = client(&format!("http://{address}")).send(&reply_part()).await.unwrap_err();
    let SendError::Transient(message) = &error else { panic!("not transient: {error:?}") };
    assert!(message.contains("failed"), "{message}");
    assert_token_free(&error);
}

#[tokio::test]
async fn a_call_that_never_answers_times_out_as_transient() {
    let (base, received) = fake_bot_api(200, SEND_OK, true).await;
    let client = client(&base).with_timeout(Duration::from_millis(200));
    let error = client.send(&reply_part()).await.unwrap_err();
    assert_eq!(error, SendError::Transient("the request to Telegram timed out".into()));
    assert_eq!(received.lock().expect("not poisoned").len(), 1, "the request reached the fake");
}

#[tokio::test]
async fn the_webhook_is_set_with_its_secret_and_the_update_kinds_the_adapter_maps() {
    let (base, received) =
        fake_bot_api(200, r#"{"ok":true,"result":true,"description":"Webhook was set"}"#, false).await;
    let client = client(&base);
    client.set_webhook("https://twin.example/v1/telegram/abc", &Secret::new("s3cret")).await.expect("set");
    client.answer_callback_query("2504582394870512113").await.expect("answered");
    client.send_chat_action("5823419076", "typing").await.expect("typing");
    let received = received.lock().expect("not poisoned").clone();
    assert_eq!(
        received,
        vec![
            (
                format!("/bot{TOKEN}/setWebhook"),
                json!({
                    "url": "https://twin.example/v1/telegram/abc",
                    "secret_token": "s3cret",
                    "allowed_updates": ["message", "edited_message", "callback_query", "my_chat_member"],
                }),
            ),
            (format!("/bot{TOKEN}/answerCallbackQuery"), json!({"callback_query_id": "2504582394870512113"})),
            (format!("/bot{TOKEN}/sendChatAction"), json!({"chat_id": 5_823_419_076_i64, "action": "typing"})),
        ]
    );
}

#[tokio::test]
async fn get_me_returns_the_bots_username() {
    let (base, _) = fake_bot_api(
        200,
        r#"{"ok":true,"result":{"id":7012345678,"is_bot":true,"first_name":"Acme Helper","username":"acme_helper_bot"}}"#,
        false,
    )
    .await;
    assert_eq!(client(&base).get_me().await, Ok(Some("acme_helper_bot".into())));
}

#[tokio::test]
async fn editing_to_the_same_text_is_not_an_error_but_other_refusals_are() {
    let (base, received) = fake_bot_api(
        400,
        r#"{"ok":false,"error_code":400,"description":"Bad Request: message is not modified: specified new message content and reply markup are exactly the same"}"#,
        false,
    )
    .await;
    assert_eq!(client(&base).edit_message_text("42", "815", "**Done** & dusted").await, Ok(()));
    assert_eq!(
        received.lock().expect("not poisoned")[0].1,
        json!({"chat_id": 42, "message_id": 815, "text": "<b>Done</b> &amp; dusted", "parse_mode": "HTML"})
    );

    let (base, _) = fake_bot_api(
        400,
        r#"{"ok":false,"error_code":400,"description":"Bad Request: message to edit not found"}"#,
        false,
    )
    .await;
    assert_eq!(
        client(&base).edit_message_text("42", "815", "x").await,
        Err(SendError::Rejected("Bad Request: message to edit not found".into()))
    );
    assert!(matches!(client(&base).edit_message_text("42", "wamid.x", "x").await, Err(SendError::Rejected(_))));
}
