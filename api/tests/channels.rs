//! Telegram and WhatsApp through the whole server: webhooks in (verified, stored, deduplicated),
//! conversations, and the outbox out to fake providers on loopback that speak the real payload
//! shapes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::providers::{FakeProviders, Scripted, TELEGRAM_TOKEN, WHATSAPP_TOKEN, fixture, whatsapp_signature};
use support::{Kind, TestApp, spawn_app_with_providers};
use twin_engine::channel::{ChannelKind, ChannelsConfig, DeliveryState, SecretRef, TelegramSettings, WhatsAppSettings};
use twin_engine::ports::{ChannelStore, ConversationStore, LoadLimits};
use twin_engine::{ConversationId, Seq, Slug, Timestamp, UserId};

const WEBHOOK_SECRET: &str = "tg-webhook-secret_0123456789";
const APP_SECRET: &str = "whatsapp-app-secret";
const VERIFY_TOKEN: &str = "whatsapp-verify-token";
const PHONE_NUMBER_ID: &str = "110293847561029";
const MARIA_TG: &str = "5823419076";
const MARIA_WA: &str = "4915112345678";
const WAIT: Duration = Duration::from_secs(15);
/// Any time at all: `inbox_pending` with it sees every pending item.
const EVER: Timestamp = Timestamp(i64::MAX);

/// The demo creator with its program and both channels (literal secrets: tests share one process
/// environment, so they cannot set variables for `env:` references).
fn demo_with_channels() -> twin_api::bundle::Bundle {
    let mut demo = twin_api::bundle::demo();
    demo.profile.channels = ChannelsConfig {
        telegram: Some(TelegramSettings {
            bot_token: SecretRef::new(TELEGRAM_TOKEN),
            webhook_secret: SecretRef::new(WEBHOOK_SECRET),
            bot_username: Some("acme_helper_bot".into()),
        }),
        whatsapp: Some(WhatsAppSettings {
            phone_number_id: PHONE_NUMBER_ID.into(),
            access_token: SecretRef::new(WHATSAPP_TOKEN),
            app_secret: SecretRef::new(APP_SECRET),
            verify_token: SecretRef::new(VERIFY_TOKEN),
            nudge_template: None,
        }),
    };
    demo
}

async fn start(kind: Kind) -> (TestApp, FakeProviders) {
    let fake = FakeProviders::start().await;
    let app = spawn_app_with_providers(kind, &[demo_with_channels()], Some(&fake)).await;
    (app, fake)
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post_telegram(app: &TestApp, secret: Option<&str>, body: &[u8]) -> u16 {
    let mut request = http()
        .post(app.url("/v1/channels/telegram/demo/webhook"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(secret) = secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn telegram_update(app: &TestApp, update: &Value) -> u16 {
    post_telegram(app, Some(WEBHOOK_SECRET), update.to_string().as_bytes()).await
}

async fn post_whatsapp(app: &TestApp, path: &str, signature: Option<String>, body: &[u8]) -> u16 {
    let mut request = http().post(app.url(path)).header("content-type", "application/json").body(body.to_vec());
    if let Some(signature) = signature {
        request = request.header("X-Hub-Signature-256", signature);
    }
    request.send().await.unwrap().status().as_u16()
}

async fn whatsapp_notification(app: &TestApp, body: &Value) -> u16 {
    let bytes = body.to_string().into_bytes();
    post_whatsapp(app, "/v1/channels/whatsapp/demo/webhook", Some(whatsapp_signature(APP_SECRET, &bytes)), &bytes).await
}

/// A private Telegram text message from Maria (the fixture's shape) with its own update id.
fn telegram_text(update_id: u64, text: &str) -> Value {
    let mut update = fixture("telegram/01_private_text_message.json");
    update["update_id"] = json!(update_id);
    update["message"]["message_id"] = json!(update_id % 100_000);
    update["message"]["text"] = json!(text);
    update
}

/// A WhatsApp text message from Maria (the fixture's shape) with its own message id.
fn whatsapp_text(id: &str, text: &str) -> Value {
    let mut body = fixture("whatsapp/01_text_message.json");
    let message = &mut body["entry"][0]["changes"][0]["value"]["messages"][0];
    message["id"] = json!(id);
    message["text"]["body"] = json!(text);
    body
}

fn conversation_of(user: &str) -> ConversationId {
    ConversationId::of(Slug::parse("demo").unwrap().creator_id(), &UserId::parse(user).unwrap())
}

async fn stored_texts(app: &TestApp, user: &str) -> Vec<(String, String)> {
    let creator = Slug::parse("demo").unwrap().creator_id();
    let messages = app.db.store.history(creator, conversation_of(user), Seq::ZERO, 1000).await.unwrap();
    messages.into_iter().map(|m| (m.origin.as_str().to_owned(), m.text)).collect()
}

#[tokio::test]
async fn a_telegram_user_walks_through_the_program_with_buttons() {
    let (app, fake) = start(Kind::Sqlite).await;
    assert_eq!(telegram_update(&app, &fixture("telegram/01_private_text_message.json")).await, 200);
    // First contact: the welcome and the first question, in order, to Maria's chat.
    let sent = fake.wait_for("sendMessage", 2, WAIT).await;
    assert!(sent.iter().all(|c| c.body["chat_id"].to_string().trim_matches('"') == MARIA_TG), "{sent:#?}");
    assert!(fake.telegram_texts()[0].starts_with("Hi, I'm Maya's twin."), "{:?}", fake.telegram_texts());
    assert_eq!(fake.telegram_texts()[1], "First, what should I call you?");

    assert_eq!(telegram_update(&app, &telegram_text(734201600, "Maria")).await, 200);
    let sent = fake.wait_for("sendMessage", 3, WAIT).await;
    let goal = &sent[2].body;
    assert!(goal["text"].as_str().unwrap().contains("Nice to meet you, Maria"), "{goal}");
    let keyboard = goal["reply_markup"]["inline_keyboard"].as_array().expect("the choices are buttons");
    assert_eq!(keyboard.len(), 3);
    assert_eq!(keyboard[0][0]["callback_data"], "focus");

    // Maria presses "Deep focus at work": the press is answered and the program goes on.
    let mut press = fixture("telegram/05_callback_query.json");
    press["update_id"] = json!(734201601);
    press["callback_query"]["data"] = json!("focus");
    assert_eq!(telegram_update(&app, &press).await, 200);
    let answered = fake.wait_for("answerCallbackQuery", 1, WAIT).await;
    assert_eq!(answered[0].body["callback_query_id"], "2504582394870512113");
    fake.wait_for("sendMessage", 4, WAIT).await;
    assert!(fake.telegram_texts()[3].contains("hours"), "{:?}", fake.telegram_texts());

    let stored = stored_texts(&app, "tg-5823419076").await;
    let user_turns: Vec<_> = stored.iter().filter(|(o, _)| o == "user").map(|(_, t)| t.as_str()).collect();
    assert_eq!(user_turns, ["Hi, can you tell me when my order ships?", "Maria", "focus"]);
    // Every message the twin sent has its outbox row marked sent.
    let creator = Slug::parse("demo").unwrap().creator_id();
    for seq in [2, 3] {
        let row = app.db.store.outbox_entry(creator, conversation_of("tg-5823419076"), Seq(seq)).await.unwrap();
        assert_eq!(row.expect("an outbox row").state, DeliveryState::Sent);
    }
}

#[tokio::test]
async fn forged_malformed_oversized_and_replayed_telegram_deliveries_are_refused_or_processed_once() {
    let (app, fake) = start(Kind::Sqlite).await;
    let update = fixture("telegram/01_private_text_message.json").to_string();
    assert_eq!(post_telegram(&app, None, update.as_bytes()).await, 401, "no secret");
    assert_eq!(post_telegram(&app, Some("wrong"), update.as_bytes()).await, 401, "a wrong secret");
    assert_eq!(post_telegram(&app, Some(WEBHOOK_SECRET), b"{not json").await, 400);
    let huge = vec![b' '; 2 * 1024 * 1024];
    assert_eq!(post_telegram(&app, Some(WEBHOOK_SECRET), &huge).await, 413);
    let other = http().post(app.url("/v1/channels/telegram/nobody/webhook")).body("{}").send().await.unwrap();
    assert_eq!(other.status().as_u16(), 404, "an unknown creator");
    assert!(stored_texts(&app, "tg-5823419076").await.is_empty(), "nothing refused was stored");
    assert!(app.db.store.inbox_pending(EVER, EVER, 10).await.unwrap().is_empty());

    // Telegram retries a delivery it did not see acknowledged: the same update three times.
    for _ in 0..3 {
        assert_eq!(post_telegram(&app, Some(WEBHOOK_SECRET), update.as_bytes()).await, 200);
    }
    fake.wait_for("sendMessage", 2, WAIT).await;
    // An unknown update kind is acknowledged and ignored.
    let poll = json!({"update_id": 734209999, "poll": {"id": "1", "question": "?", "options": []}});
    assert_eq!(telegram_update(&app, &poll).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = stored_texts(&app, "tg-5823419076").await;
    assert_eq!(stored.iter().filter(|(o, _)| o == "user").count(), 1, "{stored:?}");
    assert_eq!(fake.calls_of("sendMessage").len(), 2, "one welcome, one question: nothing doubled");
    assert!(
        app.db.store.inbox_pending(EVER, EVER, 10).await.unwrap().is_empty(),
        "every stored delivery was processed"
    );
}

#[tokio::test]
async fn a_rate_limited_send_waits_retry_after_and_goes_out_once() {
    let (app, fake) = start(Kind::Sqlite).await;
    // The fixture's shape, with a shorter wait than its 41 s.
    let mut too_many = fixture("telegram/error_429_too_many_requests.json");
    too_many["parameters"]["retry_after"] = json!(2);
    fake.script([Scripted::Respond(429, too_many)]);
    assert_eq!(telegram_update(&app, &fixture("telegram/01_private_text_message.json")).await, 200);
    let started = std::time::Instant::now();
    let sent = fake.wait_for("sendMessage", 3, WAIT).await;
    assert!(started.elapsed() >= Duration::from_millis(1900), "waited retry_after: {:?}", started.elapsed());
    let texts: Vec<_> = sent.iter().map(|c| c.body["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts[0], texts[1], "the refused message was sent again");
    assert_ne!(texts[1], texts[2], "and then the next one, in order");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.calls_of("sendMessage").len(), 3, "nothing else was repeated");
}

#[tokio::test]
async fn a_provider_outage_is_retried_with_back_off_and_nothing_is_lost_or_doubled() {
    let (app, fake) = start(Kind::Postgres).await;
    let outage = json!({"ok": false, "error_code": 502, "description": "Bad Gateway"});
    fake.script([Scripted::Respond(502, outage.clone()), Scripted::Respond(502, outage)]);
    assert_eq!(telegram_update(&app, &fixture("telegram/01_private_text_message.json")).await, 200);
    let sent = fake.wait_for("sendMessage", 4, WAIT).await;
    let texts: Vec<_> = sent.iter().map(|c| c.body["text"].as_str().unwrap().to_owned()).collect();
    assert_eq!(texts[0], texts[1]);
    assert_eq!(texts[1], texts[2], "the welcome was tried three times");
    assert_eq!(texts[3], "First, what should I call you?", "and the question followed it, in order");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.calls_of("sendMessage").len(), 4);
    let creator = Slug::parse("demo").unwrap().creator_id();
    let row = app.db.store.outbox_entry(creator, conversation_of("tg-5823419076"), Seq(2)).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (DeliveryState::Sent, 2));
}

#[tokio::test]
async fn a_deep_link_enrols_the_user_in_the_program_it_names() {
    let mut demo = demo_with_channels();
    // No program on first contact: only the deep link starts one.
    demo.profile.default_program = None;
    let source = demo.programs[0].source.replace("first_contact: true", "first_contact: false");
    demo.programs[0].source = source;
    let fake = FakeProviders::start().await;
    let app = spawn_app_with_providers(Kind::Sqlite, &[demo], Some(&fake)).await;
    let mut start = fixture("telegram/04_start_deep_link.json");
    // The demo program's `commands: [focus]`.
    start["message"]["text"] = json!("/start focus");
    assert_eq!(telegram_update(&app, &start).await, 200);
    let sent = fake.wait_for("sendMessage", 2, WAIT).await;
    assert!(sent[0].body["text"].as_str().unwrap().starts_with("Hi, I'm Maya's twin."), "{sent:#?}");
    assert_eq!(sent[1].body["text"], "First, what should I call you?");
}

#[tokio::test]
async fn a_user_who_blocked_the_bot_is_marked_unreachable_and_unblocking_reaches_them_again() {
    let (app, fake) = start(Kind::Postgres).await;
    fake.script([
        Scripted::Respond(403, fixture("telegram/error_403_bot_blocked_by_user.json")),
        Scripted::Respond(403, fixture("telegram/error_403_bot_blocked_by_user.json")),
    ]);
    assert_eq!(telegram_update(&app, &fixture("telegram/01_private_text_message.json")).await, 200);
    let creator = Slug::parse("demo").unwrap().creator_id();
    let conversation = conversation_of("tg-5823419076");
    let failed = wait_until(|| async {
        let row = app.db.store.outbox_entry(creator, conversation, Seq(2)).await.unwrap();
        row.filter(|r| r.state == DeliveryState::Failed)
    })
    .await;
    assert_eq!(failed.attempts, 0, "a blocked user is not retried");
    let reach = wait_until(|| async {
        let stored = app.db.store.load(creator, conversation, limits()).await.unwrap().unwrap();
        let reach = stored.header.state.reach;
        reach.unreachable().then_some(reach)
    })
    .await;
    assert_eq!(reach.contacts[0].address.kind, ChannelKind::Telegram);

    // The blocked-status update Telegram sends (my_chat_member): unblocking makes them reachable.
    let mut unblocked = fixture("telegram/07_my_chat_member_blocked.json");
    unblocked["update_id"] = json!(734205000);
    unblocked["my_chat_member"]["new_chat_member"]["status"] = json!("member");
    assert_eq!(telegram_update(&app, &unblocked).await, 200);
    wait_until(|| async {
        let stored = app.db.store.load(creator, conversation, limits()).await.unwrap().unwrap();
        (!stored.header.state.reach.unreachable()).then_some(())
    })
    .await;
    assert_eq!(telegram_update(&app, &fixture("telegram/07_my_chat_member_blocked.json")).await, 200);
    wait_until(|| async {
        let stored = app.db.store.load(creator, conversation, limits()).await.unwrap().unwrap();
        stored.header.state.reach.unreachable().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_whatsapp_user_chats_and_delivery_states_are_recorded() {
    let (app, fake) = start(Kind::Postgres).await;
    // The subscription handshake.
    let handshake = |token: &str| {
        app.url(&format!(
            "/v1/channels/whatsapp/demo/webhook?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
        ))
    };
    let ok = http().get(handshake(VERIFY_TOKEN)).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    assert_eq!(http().get(handshake("wrong")).send().await.unwrap().status().as_u16(), 403);

    let body = fixture("whatsapp/01_text_message.json");
    let bytes = body.to_string().into_bytes();
    let path = "/v1/channels/whatsapp/demo/webhook";
    assert_eq!(post_whatsapp(&app, path, None, &bytes).await, 403, "unsigned");
    assert_eq!(post_whatsapp(&app, path, Some(whatsapp_signature("not-the-secret", &bytes)), &bytes).await, 403);
    let mut tampered = bytes.clone();
    *tampered.last_mut().unwrap() = b' ';
    assert_eq!(post_whatsapp(&app, path, Some(whatsapp_signature(APP_SECRET, &bytes)), &tampered).await, 403);
    assert!(stored_texts(&app, "wa-4915112345678").await.is_empty(), "nothing forged was stored");

    assert_eq!(whatsapp_notification(&app, &body).await, 200);
    assert_eq!(whatsapp_notification(&app, &body).await, 200, "a redelivery");
    let sent = fake.wait_for("messages", 3, WAIT).await;
    // The message was marked read, then the welcome and the first question went out as text.
    let texts: Vec<_> =
        sent.iter().filter(|c| c.body["type"] == "text").map(|c| c.body["text"]["body"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 2, "{sent:#?}");
    assert_eq!(texts[1], "First, what should I call you?");
    assert!(sent.iter().all(|c| c.authorization.as_deref() == Some(&format!("Bearer {WHATSAPP_TOKEN}"))));
    assert!(sent.iter().filter(|c| c.body["type"] == "text").all(|c| c.body["to"] == MARIA_WA));

    // The goal question comes as reply buttons; Maria taps one (an interactive reply).
    assert_eq!(whatsapp_notification(&app, &whatsapp_text("wamid.maria-2", "Maria")).await, 200);
    let sent = fake.wait_for("messages", 5, WAIT).await;
    let buttons = sent.iter().find(|c| c.body["type"] == "interactive").expect("the choices as buttons");
    assert_eq!(buttons.body["interactive"]["type"], "button");
    let mut tap = fixture("whatsapp/02_interactive_button_reply.json");
    let message = &mut tap["entry"][0]["changes"][0]["value"]["messages"][0];
    message["interactive"]["button_reply"]["id"] = json!("mornings");
    message["from"] = json!(MARIA_WA);
    assert_eq!(whatsapp_notification(&app, &tap).await, 200);
    wait_until(|| async {
        let stored = stored_texts(&app, "wa-4915112345678").await;
        stored.iter().any(|(o, t)| o == "user" && t == "mornings").then_some(())
    })
    .await;

    // Status reports for the first question: read arrives before delivered; the state only moves
    // forward, and a report for an id nobody sent is ignored.
    let creator = Slug::parse("demo").unwrap().creator_id();
    let conversation = conversation_of("wa-4915112345678");
    wait_until(|| async {
        let row = app.db.store.outbox_entry(creator, conversation, Seq(3)).await.unwrap()?;
        (row.state == DeliveryState::Sent).then_some(())
    })
    .await;
    let provider_id = fake
        .calls_of("messages")
        .into_iter()
        .find(|c| c.body["type"] == "text" && c.body["text"]["body"] == "First, what should I call you?")
        .and_then(|c| c.provider_id)
        .unwrap();
    for (id, status) in [(provider_id.as_str(), "read"), (provider_id.as_str(), "delivered"), ("wamid.unknown", "read")]
    {
        let mut report = fixture("whatsapp/03_status_sent.json");
        let entry = &mut report["entry"][0]["changes"][0]["value"]["statuses"][0];
        entry["id"] = json!(id);
        entry["status"] = json!(status);
        entry["recipient_id"] = json!(MARIA_WA);
        assert_eq!(whatsapp_notification(&app, &report).await, 200);
    }
    wait_until(|| async {
        let row = app.db.store.outbox_entry(creator, conversation, Seq(3)).await.unwrap()?;
        (row.state == DeliveryState::Read).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let row = app.db.store.outbox_entry(creator, conversation, Seq(3)).await.unwrap().unwrap();
    assert_eq!(row.state, DeliveryState::Read, "a late `delivered` does not move it back");
}

#[tokio::test]
async fn the_shared_whatsapp_endpoint_routes_by_number_and_drops_unknown_numbers() {
    let (app, fake) = start(Kind::Postgres).await;
    let path = "/v1/channels/whatsapp/webhook";
    let body = whatsapp_text("wamid.shared-1", "hello").to_string().into_bytes();
    assert_eq!(post_whatsapp(&app, path, None, &body).await, 403, "unsigned");
    assert_eq!(post_whatsapp(&app, path, Some(whatsapp_signature("forged", &body)), &body).await, 403);
    assert_eq!(post_whatsapp(&app, path, Some(whatsapp_signature(APP_SECRET, &body)), &body).await, 200);
    wait_until(|| async {
        let stored = stored_texts(&app, "wa-4915112345678").await;
        stored.iter().any(|(o, t)| o == "user" && t == "hello").then_some(())
    })
    .await;
    fake.wait_for("messages", 1, WAIT).await;

    let mut stranger = whatsapp_text("wamid.shared-2", "anyone?");
    stranger["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!("999999");
    let bytes = stranger.to_string().into_bytes();
    assert_eq!(post_whatsapp(&app, path, Some(whatsapp_signature(APP_SECRET, &bytes)), &bytes).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stored = stored_texts(&app, "wa-4915112345678").await;
    assert!(!stored.iter().any(|(_, t)| t == "anyone?"), "an unknown number's message is dropped");
}

#[tokio::test]
async fn a_web_user_links_their_telegram_chat_and_the_conversation_continues_there() {
    let (app, fake) = start(Kind::Sqlite).await;
    // On the web the user is "alice"; she answers the first question there.
    let mut web = app.connect_ws("alice").await;
    web.say("w1", "hello").await;
    web.until("ack").await;
    let response = http().post(app.url("/v1/channels/link-code")).bearer_auth(app.token("alice")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let link: Value = response.json().await.unwrap();
    let code = link["code"].as_str().unwrap().to_owned();
    assert_eq!(link["telegram_url"], format!("https://t.me/acme_helper_bot?start=link-{code}"));

    // Another user's code cannot be guessed into: a wrong code is refused in the chat it came from.
    assert_eq!(telegram_update(&app, &telegram_text(734300001, "LINK ABCDEFGH")).await, 200);
    fake.wait_for("sendMessage", 1, WAIT).await;
    assert!(fake.telegram_texts()[0].contains("unknown or has expired"), "{:?}", fake.telegram_texts());

    // The deep link: /start link-CODE.
    assert_eq!(telegram_update(&app, &telegram_text(734300002, &format!("/start link-{code}"))).await, 200);
    fake.wait_for("sendMessage", 2, WAIT).await;
    assert!(fake.telegram_texts()[1].contains("linked"), "{:?}", fake.telegram_texts());
    // From now on Maria's Telegram messages are alice's turns, answered on Telegram.
    assert_eq!(telegram_update(&app, &telegram_text(734300003, "Alice")).await, 200);
    fake.wait_for("sendMessage", 3, WAIT).await;
    let stored = stored_texts(&app, "alice").await;
    assert!(stored.iter().any(|(o, t)| o == "user" && t == "Alice"), "{stored:?}");
    assert!(fake.telegram_texts()[2].contains("Alice"), "{:?}", fake.telegram_texts());
    // The code was single-use.
    assert_eq!(telegram_update(&app, &telegram_text(734300004, &format!("LINK {code}"))).await, 200);
    fake.wait_for("sendMessage", 4, WAIT).await;
    assert!(fake.telegram_texts()[3].contains("unknown or has expired"), "{:?}", fake.telegram_texts());
}

fn limits() -> LoadLimits {
    LoadLimits { history: 10, client_ids: 10 }
}

/// Polls `probe` until it gives a value, failing the test after [`WAIT`].
async fn wait_until<T, F, Fut>(probe: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "the condition did not hold within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
