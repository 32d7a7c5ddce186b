//! Telegram webhook deliveries, from the raw request to [`InboundItem`]s: the secret-header check,
//! and the mapping of one `Update` to at most one event (the webhook inbox calls both).
//!
//! Media become a [`Content::Media`] turn whose text is a placeholder the twin can read:
//! `[<media>]` or `[<media>: <detail>]`, followed by a space and the caption if there is one, e.g.
//! `[photo] my new desk`, `[document: invoice.pdf]`, `[sticker: 😀]`, `[location: 52.52, 13.405]`.

use serde_json::Value;

use super::config::TelegramConfig;
use super::wire::{CallbackQuery, ChatMemberUpdated, Message, MessageEntity, Update, User};
use crate::channel::{Content, InboundEvent, InboundItem, Sender, WebhookError};

/// Checks the `X-Telegram-Bot-Api-Secret-Token` header Telegram presented (`None`: it was missing).
pub fn verify(presented: Option<&[u8]>, config: &TelegramConfig) -> Result<(), WebhookError> {
    match presented {
        Some(presented) if config.webhook_secret.matches(presented) => Ok(()),
        _ => Err(WebhookError::Unauthenticated),
    }
}

/// Maps a verified webhook body to the items it carries: none for updates that are not a turn of a
/// conversation with the twin (bots, channel posts, unaddressed group chatter, unknown kinds), which
/// are acknowledged and dropped; one otherwise, keyed `tg:update:<update_id>`.
pub fn parse(body: &[u8], bot_username: Option<&str>) -> Result<Vec<InboundItem>, WebhookError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| WebhookError::Malformed(format!("not JSON: {error}")))?;
    if !value.get("update_id").is_some_and(Value::is_i64) {
        return Err(WebhookError::Malformed("no update_id".to_owned()));
    }
    let update: Update = serde_json::from_value(value)
        .map_err(|error| WebhookError::Malformed(format!("not a Telegram update: {error}")))?;
    let bot_username = bot_username.map(|name| name.trim_start_matches('@')).filter(|name| !name.is_empty());
    let event = event_of(&update, bot_username);
    Ok(event
        .map(|event| InboundItem { dedup_key: format!("tg:update:{}", update.update_id), event })
        .into_iter()
        .collect())
}

fn event_of(update: &Update, bot_username: Option<&str>) -> Option<InboundEvent> {
    if let Some(message) = &update.message {
        let turn = turn(message, bot_username)?;
        return Some(InboundEvent::Message {
            from: turn.from,
            message_id: turn.message_id,
            text: turn.text,
            content: turn.content,
        });
    }
    if let Some(message) = &update.edited_message {
        let turn = turn(message, bot_username)?;
        return Some(InboundEvent::Edited { from: turn.from, message_id: turn.message_id, text: turn.text });
    }
    if let Some(query) = &update.callback_query {
        return choice(query);
    }
    if let Some(member) = &update.my_chat_member {
        return reachability(member);
    }
    None
}

/// What a message says to the twin, once it is known to be for the twin.
struct Turn {
    from: Sender,
    message_id: String,
    text: String,
    content: Content,
}

/// A message as a turn: from a person, in a private chat or addressed to the bot in a group, with
/// text or media.
fn turn(message: &Message, bot_username: Option<&str>) -> Option<Turn> {
    let user = message.from.as_ref().filter(|user| !user.is_bot)?;
    let (body, entities) = match (&message.text, &message.caption) {
        (Some(text), _) => (text.as_str(), message.entities.as_slice()),
        (None, Some(caption)) => (caption.as_str(), message.caption_entities.as_slice()),
        (None, None) => ("", &[][..]),
    };
    let body = if message.chat.is_private() {
        body.trim().to_owned()
    } else if message.chat.is_group() {
        addressed_text(body, entities, message.reply_to_message.as_deref(), bot_username?)?
    } else {
        return None;
    };
    let (text, content) = match media_of(message) {
        Some((media, detail)) => {
            (placeholder(media, detail.as_deref(), &body), Content::Media { media: media.to_owned() })
        }
        None if body.is_empty() => return None,
        None => {
            let content = match start_payload(&body, bot_username) {
                Some(payload) => Content::Start { payload },
                None => Content::Text,
            };
            (body, content)
        }
    };
    Some(Turn { from: sender(user, message.chat.id), message_id: message.message_id.to_string(), text, content })
}

fn sender(user: &User, chat: i64) -> Sender {
    Sender { user: user.id.to_string(), chat: chat.to_string(), name: user.display_name() }
}

/// A group message's text with the bot's mention removed, or `None` when it is not addressed to the
/// bot: by a `@bot` mention, a `/command@bot`, or as a reply to one of the bot's messages.
fn addressed_text(
    text: &str,
    entities: &[MessageEntity],
    reply_to: Option<&Message>,
    bot_username: &str,
) -> Option<String> {
    // Entity offsets count UTF-16 code units, so the text is cut in that unit.
    let units: Vec<u16> = text.encode_utf16().collect();
    let handle: Vec<u16> = format!("@{bot_username}").encode_utf16().collect();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for entity in entities {
        let end = entity.offset.saturating_add(entity.length);
        let Some(span) = units.get(entity.offset..end) else { continue };
        match entity.kind.as_str() {
            "mention" if eq_ignore_ascii_case_utf16(span, &handle) => {
                // Take one neighbouring space with it, so "hi @bot there" reads "hi there".
                let (mut start, mut end) = (entity.offset, end);
                if units.get(end) == Some(&u16::from(b' ')) {
                    end += 1;
                } else if start > 0 && units.get(start - 1) == Some(&u16::from(b' ')) {
                    start -= 1;
                }
                cuts.push((start, end));
            }
            "bot_command" if span.len() > handle.len() => {
                let suffix_start = end - handle.len();
                if eq_ignore_ascii_case_utf16(&units[suffix_start..end], &handle) {
                    cuts.push((suffix_start, end));
                }
            }
            _ => {}
        }
    }
    let replies_to_bot = reply_to
        .and_then(|message| message.from.as_ref())
        .and_then(|user| user.username.as_deref())
        .is_some_and(|username| username.eq_ignore_ascii_case(bot_username));
    if cuts.is_empty() && !replies_to_bot {
        return None;
    }
    cuts.sort_unstable();
    let mut kept: Vec<u16> = Vec::with_capacity(units.len());
    let mut cursor = 0;
    for (start, end) in cuts {
        if start >= cursor {
            kept.extend_from_slice(&units[cursor..start]);
        }
        cursor = cursor.max(end);
    }
    kept.extend_from_slice(&units[cursor.min(units.len())..]);
    let stripped = String::from_utf16_lossy(&kept).trim().to_owned();
    // A bare "@bot" still says something: keep it rather than hand the twin an empty turn.
    Some(if stripped.is_empty() { text.trim().to_owned() } else { stripped })
}

fn eq_ignore_ascii_case_utf16(a: &[u16], b: &[u16]) -> bool {
    let lower = |unit: u16| u8::try_from(unit).map_or(unit, |byte| u16::from(byte.to_ascii_lowercase()));
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| lower(x) == lower(y))
}

/// `/start`, `/start PAYLOAD` or `/start@bot …`: `Some(payload)`; any other text: `None`.
fn start_payload(text: &str, bot_username: Option<&str>) -> Option<Option<String>> {
    let rest = text.strip_prefix("/start")?;
    let (command_tail, payload) = rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len()));
    match command_tail.strip_prefix('@') {
        None if command_tail.is_empty() => {}
        // `/start@other_bot` was meant for another bot.
        Some(addressee) if bot_username.is_none_or(|bot| addressee.eq_ignore_ascii_case(bot)) => {}
        // `/started`, `/start@other_bot`
        _ => return None,
    }
    let payload = payload.trim();
    Some((!payload.is_empty()).then(|| payload.to_owned()))
}

/// The message's media kind and a short detail for its placeholder. `animation` is checked before
/// `document` because Telegram sets both for a GIF.
fn media_of(message: &Message) -> Option<(&'static str, Option<String>)> {
    let text_of = |value: &Value, field: &str| {
        value.get(field).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
    };
    let kinds: [(&'static str, &Option<Value>); 11] = [
        ("animation", &message.animation),
        ("photo", &message.photo),
        ("video_note", &message.video_note),
        ("video", &message.video),
        ("voice", &message.voice),
        ("audio", &message.audio),
        ("document", &message.document),
        ("sticker", &message.sticker),
        ("location", &message.location),
        ("contact", &message.contact),
        ("poll", &message.poll),
    ];
    let (media, value) = kinds.into_iter().find_map(|(media, value)| value.as_ref().map(|value| (media, value)))?;
    let detail = match media {
        "document" => text_of(value, "file_name"),
        "audio" => match (text_of(value, "performer"), text_of(value, "title")) {
            (Some(performer), Some(title)) => Some(format!("{performer} – {title}")),
            (performer, title) => title.or(performer).or_else(|| text_of(value, "file_name")),
        },
        "sticker" => text_of(value, "emoji"),
        "location" => {
            match (value.get("latitude").and_then(Value::as_f64), value.get("longitude").and_then(Value::as_f64)) {
                (Some(latitude), Some(longitude)) => Some(format!("{latitude}, {longitude}")),
                _ => None,
            }
        }
        "contact" => match (text_of(value, "first_name"), text_of(value, "last_name")) {
            (Some(first), Some(last)) => Some(format!("{first} {last}")),
            (first, last) => first.or(last),
        },
        "poll" => text_of(value, "question"),
        _ => None,
    };
    Some((media, detail))
}

/// `[media]` or `[media: detail]`, then ` caption` if there is one.
fn placeholder(media: &str, detail: Option<&str>, caption: &str) -> String {
    let mut text = match detail {
        Some(detail) => format!("[{media}: {detail}]"),
        None => format!("[{media}]"),
    };
    if !caption.is_empty() {
        text.push(' ');
        text.push_str(caption);
    }
    text
}

/// A pressed inline button. Without the message that carried it (too old, or inline mode) there is
/// no chat to answer in, so it is dropped.
fn choice(query: &CallbackQuery) -> Option<InboundEvent> {
    if query.from.is_bot {
        return None;
    }
    let message = query.message.as_ref()?;
    let data = query.data.as_ref()?;
    Some(InboundEvent::Message {
        from: sender(&query.from, message.chat.id),
        message_id: message.message_id.to_string(),
        text: data.clone(),
        content: Content::Choice { callback_id: Some(query.id.clone()) },
    })
}

/// The user blocked (`kicked`) or restarted (`member`) the bot in their private chat.
fn reachability(update: &ChatMemberUpdated) -> Option<InboundEvent> {
    if !update.chat.is_private() {
        return None;
    }
    let reachable = match update.new_chat_member.status.as_str() {
        "kicked" => false,
        "member" => true,
        _ => return None,
    };
    Some(InboundEvent::Reachability { from: sender(&update.from, update.chat.id), reachable })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use twin_engine::channel::{SecretRef, TelegramSettings};

    use super::*;

    const BOT: Option<&str> = Some("acme_bot");

    fn config() -> TelegramConfig {
        let settings = TelegramSettings {
            bot_token: SecretRef::new("123:token"),
            webhook_secret: SecretRef::new("hook-secret"),
            bot_username: Some("acme_bot".into()),
        };
        TelegramConfig::resolve(&settings, "http://localhost", &|_: &str| None).unwrap()
    }

    fn user() -> Value {
        json!({"id": 42, "is_bot": false, "first_name": "Ana", "last_name": "Silva", "username": "ana"})
    }

    fn private_message(fields: Value) -> Vec<u8> {
        let mut message = json!({"message_id": 7, "from": user(), "chat": {"id": 42, "type": "private"}, "date": 1});
        message.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
        serde_json::to_vec(&json!({"update_id": 100, "message": message})).unwrap()
    }

    fn group_message(text: &str, entities: Value, reply_to: Option<Value>) -> Vec<u8> {
        let mut message = json!({
            "message_id": 8, "from": user(), "chat": {"id": -1001, "type": "supergroup"}, "date": 1,
            "text": text, "entities": entities,
        });
        if let Some(reply_to) = reply_to {
            message["reply_to_message"] = reply_to;
        }
        serde_json::to_vec(&json!({"update_id": 101, "message": message})).unwrap()
    }

    fn only(body: &[u8], bot: Option<&str>) -> InboundEvent {
        let mut items = parse(body, bot).unwrap();
        assert_eq!(items.len(), 1, "{items:?}");
        items.remove(0).event
    }

    fn text_of(event: &InboundEvent) -> (&str, &Content) {
        match event {
            InboundEvent::Message { text, content, .. } => (text, content),
            other => panic!("not a message: {other:?}"),
        }
    }

    #[test]
    fn only_the_configured_secret_is_accepted() {
        let config = config();
        assert_eq!(verify(Some(b"hook-secret"), &config), Ok(()));
        assert_eq!(verify(Some(b"hook-secreT"), &config), Err(WebhookError::Unauthenticated));
        assert_eq!(verify(Some(b""), &config), Err(WebhookError::Unauthenticated));
        assert_eq!(verify(None, &config), Err(WebhookError::Unauthenticated));
    }

    #[test]
    fn a_private_text_is_a_text_turn_keyed_by_its_update() {
        let items = parse(&private_message(json!({"text": " hello "})), BOT).unwrap();
        assert_eq!(
            items,
            vec![InboundItem {
                dedup_key: "tg:update:100".into(),
                event: InboundEvent::Message {
                    from: Sender { user: "42".into(), chat: "42".into(), name: Some("Ana Silva".into()) },
                    message_id: "7".into(),
                    text: "hello".into(),
                    content: Content::Text,
                },
            }]
        );
    }

    #[test]
    fn start_commands_carry_their_payload_and_lookalikes_do_not() {
        let start = |text: &str| text_of(&only(&private_message(json!({ "text": text })), BOT)).1.clone();
        assert_eq!(start("/start"), Content::Start { payload: None });
        assert_eq!(start("/start   "), Content::Start { payload: None });
        assert_eq!(start("/start abc-1"), Content::Start { payload: Some("abc-1".into()) });
        assert_eq!(start("/start@acme_bot xyz"), Content::Start { payload: Some("xyz".into()) });
        assert_eq!(start("/start@ACME_BOT"), Content::Start { payload: None });
        assert_eq!(start("/started"), Content::Text);
        assert_eq!(start("/start@other_bot hi"), Content::Text);
        assert_eq!(start("please /start"), Content::Text);
    }

    #[test]
    fn media_become_placeholders_with_their_detail_and_caption() {
        let cases = [
            (json!({"photo": [{"file_id": "a"}], "caption": "my desk"}), "photo", "[photo] my desk"),
            (json!({"voice": {"file_id": "a", "duration": 3}}), "voice", "[voice]"),
            (json!({"document": {"file_id": "a", "file_name": "invoice.pdf"}}), "document", "[document: invoice.pdf]"),
            (
                json!({"animation": {"file_id": "a"}, "document": {"file_id": "a", "file_name": "x.gif"}}),
                "animation",
                "[animation]",
            ),
            (json!({"sticker": {"file_id": "a", "emoji": "😀"}}), "sticker", "[sticker: 😀]"),
            (json!({"location": {"latitude": 52.52, "longitude": 13.405}}), "location", "[location: 52.52, 13.405]"),
            (json!({"contact": {"phone_number": "+1", "first_name": "Bo"}}), "contact", "[contact: Bo]"),
            (json!({"audio": {"file_id": "a", "performer": "Nina", "title": "Song"}}), "audio", "[audio: Nina – Song]"),
            (json!({"video_note": {"file_id": "a"}}), "video_note", "[video_note]"),
        ];
        for (fields, media, expected) in cases {
            let event = only(&private_message(fields), BOT);
            let (text, content) = text_of(&event);
            assert_eq!(text, expected);
            assert_eq!(content, &Content::Media { media: media.into() });
        }
    }

    #[test]
    fn an_edit_is_not_a_new_turn() {
        let body = json!({"update_id": 5, "edited_message": {
            "message_id": 7, "from": user(), "chat": {"id": 42, "type": "private"}, "date": 1, "edit_date": 2,
            "text": "fixed typo",
        }});
        let event = only(&serde_json::to_vec(&body).unwrap(), BOT);
        assert_eq!(
            event,
            InboundEvent::Edited {
                from: Sender { user: "42".into(), chat: "42".into(), name: Some("Ana Silva".into()) },
                message_id: "7".into(),
                text: "fixed typo".into(),
            }
        );
    }

    #[test]
    fn a_group_mention_is_stripped_counting_utf16_offsets() {
        // "🎉" is two UTF-16 units: the mention starts at unit 3, byte 5.
        let body =
            group_message("🎉 @Acme_Bot what's up?", json!([{"type": "mention", "offset": 3, "length": 9}]), None);
        let event = only(&body, BOT);
        let InboundEvent::Message { from, text, .. } = &event else { panic!("{event:?}") };
        assert_eq!(text, "🎉 what's up?");
        assert_eq!(from, &Sender { user: "42".into(), chat: "-1001".into(), name: Some("Ana Silva".into()) });
    }

    #[test]
    fn a_group_command_for_the_bot_loses_its_suffix() {
        let body =
            group_message("/help@acme_bot now", json!([{"type": "bot_command", "offset": 0, "length": 14}]), None);
        assert_eq!(text_of(&only(&body, BOT)).0, "/help now");
        let start =
            group_message("/start@acme_bot promo", json!([{"type": "bot_command", "offset": 0, "length": 15}]), None);
        assert_eq!(text_of(&only(&start, BOT)).1, &Content::Start { payload: Some("promo".into()) });
    }

    #[test]
    fn a_reply_to_the_bot_is_addressed_to_it() {
        let reply_to = json!({"message_id": 3, "from": {"id": 9, "is_bot": true, "first_name": "Acme", "username": "acme_bot"},
            "chat": {"id": -1001, "type": "supergroup"}, "date": 1, "text": "earlier"});
        let body = group_message("thanks!", json!([]), Some(reply_to));
        assert_eq!(text_of(&only(&body, BOT)).0, "thanks!");
    }

    #[test]
    fn group_chatter_not_for_the_bot_is_ignored() {
        let other_mention = group_message("@someone hi", json!([{"type": "mention", "offset": 0, "length": 8}]), None);
        assert!(parse(&other_mention, BOT).unwrap().is_empty());
        let other_command =
            group_message("/help@other_bot", json!([{"type": "bot_command", "offset": 0, "length": 15}]), None);
        assert!(parse(&other_command, BOT).unwrap().is_empty());
        let plain = group_message("hello all", json!([]), None);
        assert!(parse(&plain, BOT).unwrap().is_empty());
        let mention = group_message("@acme_bot hi", json!([{"type": "mention", "offset": 0, "length": 9}]), None);
        assert!(parse(&mention, None).unwrap().is_empty(), "groups are ignored without a bot username");
        assert_eq!(parse(&mention, BOT).unwrap().len(), 1);
    }

    #[test]
    fn bots_channel_posts_and_unknown_kinds_are_dropped_without_error() {
        let from_bot = json!({"update_id": 1, "message": {"message_id": 1, "date": 1,
            "from": {"id": 5, "is_bot": true, "first_name": "B"}, "chat": {"id": 5, "type": "private"}, "text": "hi"}});
        let channel_post = json!({"update_id": 2, "channel_post": {"message_id": 1, "date": 1,
            "chat": {"id": -100, "type": "channel"}, "text": "news"}});
        let inline = json!({"update_id": 3, "inline_query": {"id": "1", "from": user(), "query": "q", "offset": ""}});
        let poll = json!({"update_id": 4, "poll": {"id": "1", "question": "?", "options": []}});
        let service = json!({"update_id": 5, "message": {"message_id": 1, "date": 1, "from": user(),
            "chat": {"id": 42, "type": "private"}, "pinned_message": {}}});
        for body in [from_bot, channel_post, inline, poll, service] {
            assert_eq!(parse(&serde_json::to_vec(&body).unwrap(), BOT), Ok(vec![]), "{body}");
        }
    }

    #[test]
    fn bodies_that_are_not_updates_are_malformed() {
        for body in [&b"not json"[..], b"[]", b"{}", br#"{"update_id": "1"}"#, br#"{"update_id": 1, "message": 3}"#] {
            assert!(matches!(parse(body, BOT), Err(WebhookError::Malformed(_))), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn a_block_and_an_unblock_change_reachability() {
        let member = |status: &str| {
            serde_json::to_vec(&json!({"update_id": 9, "my_chat_member": {
                "chat": {"id": 42, "type": "private"}, "from": user(), "date": 1,
                "old_chat_member": {"status": "member", "user": {"id": 1, "is_bot": true, "first_name": "B"}},
                "new_chat_member": {"status": status, "user": {"id": 1, "is_bot": true, "first_name": "B"}},
            }}))
            .unwrap()
        };
        let reachable = |status: &str| match only(&member(status), BOT) {
            InboundEvent::Reachability { reachable, from } => {
                assert_eq!(from.chat, "42");
                reachable
            }
            other => panic!("{other:?}"),
        };
        assert!(!reachable("kicked"));
        assert!(reachable("member"));
        assert!(parse(&member("left"), BOT).unwrap().is_empty());
    }
}
