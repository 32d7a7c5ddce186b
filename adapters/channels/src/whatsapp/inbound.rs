//! The webhook side: the `GET` subscription handshake, the `X-Hub-Signature-256` check over the raw
//! body, and the mapping of a notification to [`InboundItem`]s with their dedup keys, routed to the
//! business number they are for. Called by the api crate's webhook route before anything is stored.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use twin_engine::channel::DeliveryState;

use super::wire::{self, Message, Notification, Status};
use crate::channel::{Content, InboundEvent, InboundItem, Sender, WebhookError};
use crate::secret::Secret;

/// What Meta puts in front of the hex digest.
const SIGNATURE_PREFIX: &[u8] = b"sha256=";
/// The only `object` of WhatsApp webhooks; a Meta app can be subscribed to others (pages, Instagram).
const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// Checks `X-Hub-Signature-256: sha256=<lowercase hex HMAC-SHA256 of body keyed with the app
/// secret>`. `body` must be the exact bytes received: any re-serialization changes the digest.
pub fn verify_signature(header: Option<&[u8]>, body: &[u8], app_secret: &Secret) -> Result<(), WebhookError> {
    let hex_digest = header.and_then(|h| h.strip_prefix(SIGNATURE_PREFIX)).ok_or(WebhookError::Unauthenticated)?;
    // Meta writes lowercase; anything else is not its signature (and `hex` would accept uppercase).
    if hex_digest.len() != 64 || !hex_digest.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return Err(WebhookError::Unauthenticated);
    }
    let expected = hex::decode(hex_digest).map_err(|_| WebhookError::Unauthenticated)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(app_secret.expose().as_bytes()).map_err(|_| WebhookError::Unauthenticated)?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).map_err(|_| WebhookError::Unauthenticated)
}

/// The subscription handshake (`GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`): the
/// challenge to answer with when the token is ours.
pub fn handshake(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
    expected: &Secret,
) -> Result<String, WebhookError> {
    let (Some(mode), Some(token), Some(challenge)) = (mode, verify_token, challenge) else {
        return Err(WebhookError::Malformed("hub.mode, hub.verify_token and hub.challenge are required".into()));
    };
    if mode != "subscribe" {
        return Err(WebhookError::Malformed(format!("unexpected hub.mode {mode:?}")));
    }
    if !expected.matches(token.as_bytes()) {
        return Err(WebhookError::Unauthenticated);
    }
    Ok(challenge.to_owned())
}

/// One item of a notification and the business number (`metadata.phone_number_id`) it is for,
/// which says whose twin it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    pub phone_number_id: String,
    pub item: InboundItem,
}

/// Every message and status of a (verified) notification, in the order Meta listed them across its
/// entries and changes. Items that are not turns or delivery states (a removed reaction, a `deleted`
/// status, a system notice) give nothing.
pub fn parse(body: &[u8]) -> Result<Vec<Routed>, WebhookError> {
    let raw: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(format!("not JSON: {e}")))?;
    if !raw.get("entry").is_some_and(serde_json::Value::is_array) {
        return Err(WebhookError::Malformed("not a webhook notification: no entry array".into()));
    }
    // Other objects (a Meta app can also be subscribed to pages) have other shapes: not ours to read.
    if raw.get("object").and_then(serde_json::Value::as_str) != Some(WHATSAPP_OBJECT) {
        return Ok(Vec::new());
    }
    let notification: Notification = serde_json::from_value(raw)
        .map_err(|e| WebhookError::Malformed(format!("not a WhatsApp notification: {e}")))?;

    let mut routed = Vec::new();
    for change in notification.entry.iter().flat_map(|entry| &entry.changes) {
        let value = &change.value;
        let phone_number_id = value.metadata.as_ref().map(|m| m.phone_number_id.clone()).unwrap_or_default();
        let items = value
            .messages
            .iter()
            .filter_map(|message| message_item(message, &value.contacts))
            .chain(value.statuses.iter().filter_map(status_item));
        routed.extend(items.map(|item| Routed { phone_number_id: phone_number_id.clone(), item }));
    }
    Ok(routed)
}

fn message_item(message: &Message, contacts: &[wire::Contact]) -> Option<InboundItem> {
    let (text, content) = describe(message)?;
    let name = contacts
        .iter()
        .find(|contact| contact.wa_id == message.from)
        .and_then(|contact| contact.profile.as_ref()?.name.clone());
    let from = Sender { user: message.from.clone(), chat: message.from.clone(), name };
    Some(InboundItem {
        dedup_key: format!("wa:msg:{}", message.id),
        event: InboundEvent::Message { from, message_id: message.id.clone(), text, content },
    })
}

/// What the twin reads of a message, and what kind of turn it is. Media cannot be read by the twin,
/// so it gets a bracketed placeholder naming the kind, with the user's caption (or file name,
/// place) after it, e.g. `[image] look at this`, `[voice message]`, `[document report.pdf]`.
/// A type the adapter does not know (Meta's `unsupported`, polls, orders…) becomes
/// `[unsupported message]` with the type as its media kind, so the user still gets an answer.
fn describe(message: &Message) -> Option<(String, Content)> {
    let media = |kind: &str, text: String| Some((text, Content::Media { media: kind.to_owned() }));
    match message.kind.as_str() {
        "text" => Some((message.text.as_ref().map(|t| t.body.clone()).unwrap_or_default(), Content::Text)),
        "interactive" => {
            let interactive = message.interactive.as_ref();
            match interactive.and_then(|i| i.button_reply.as_ref().or(i.list_reply.as_ref())) {
                // The render put the choice's value in the id: that is the answer.
                Some(reply) => Some((reply.id.clone(), Content::Choice { callback_id: None })),
                None => media("unsupported", "[unsupported message]".into()),
            }
        }
        // A template's quick-reply button: its payload is what the template was approved with.
        "button" => match &message.button {
            Some(button) => {
                let value = if button.payload.is_empty() { &button.text } else { &button.payload };
                Some((value.clone(), Content::Choice { callback_id: None }))
            }
            None => media("unsupported", "[unsupported message]".into()),
        },
        "image" | "video" | "sticker" => {
            let caption = media_of(message).and_then(|m| m.caption.as_deref());
            media(&message.kind, placeholder(&message.kind, caption))
        }
        "audio" => {
            let voice = message.audio.as_ref().and_then(|a| a.voice).unwrap_or(false);
            media("audio", placeholder(if voice { "voice message" } else { "audio" }, None))
        }
        "document" => {
            let document = message.document.as_ref();
            let label = match document.and_then(|d| d.filename.as_deref()).filter(|f| !f.trim().is_empty()) {
                Some(filename) => format!("document {}", filename.trim()),
                None => "document".to_owned(),
            };
            media("document", placeholder(&label, document.and_then(|d| d.caption.as_deref())))
        }
        "location" => media("location", placeholder("location", location_text(message).as_deref())),
        "contacts" => {
            let count = message.contacts.as_ref().map_or(0, Vec::len);
            let label = if count > 1 { format!("{count} contact cards") } else { "contact card".to_owned() };
            media("contacts", placeholder(&label, None))
        }
        "reaction" => {
            let reaction = message.reaction.as_ref()?;
            // An empty or missing emoji is the user taking a reaction back: not a turn.
            let emoji = reaction.emoji.as_deref().filter(|e| !e.is_empty())?;
            Some((
                format!("[reacted {emoji}]"),
                Content::Reaction { to_message_id: reaction.message_id.clone(), emoji: Some(emoji.to_owned()) },
            ))
        }
        // Notices such as "the user changed their number": nothing the user said.
        "system" | "request_welcome" => None,
        "" => media("unsupported", "[unsupported message]".into()),
        other => media(other, "[unsupported message]".into()),
    }
}

fn media_of(message: &Message) -> Option<&wire::Media> {
    match message.kind.as_str() {
        "image" => message.image.as_ref(),
        "video" => message.video.as_ref(),
        "sticker" => message.sticker.as_ref(),
        _ => None,
    }
}

/// `[label]`, or `[label] detail` when there is a non-blank detail.
fn placeholder(label: &str, detail: Option<&str>) -> String {
    match detail.map(str::trim).filter(|d| !d.is_empty()) {
        Some(detail) => format!("[{label}] {detail}"),
        None => format!("[{label}]"),
    }
}

/// A shared place by its name and address, or by its coordinates when it has neither.
fn location_text(message: &Message) -> Option<String> {
    let location = message.location.as_ref()?;
    let named: Vec<&str> = [location.name.as_deref(), location.address.as_deref()]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
    if !named.is_empty() {
        return Some(named.join(", "));
    }
    Some(format!("{:.5}, {:.5}", location.latitude?, location.longitude?))
}

fn status_item(status: &Status) -> Option<InboundItem> {
    let state = match status.status.as_str() {
        "sent" => DeliveryState::Sent,
        "delivered" => DeliveryState::Delivered,
        "read" => DeliveryState::Read,
        "failed" => DeliveryState::Failed,
        // `deleted`, `warning` and whatever Meta adds: not a delivery state of ours.
        _ => return None,
    };
    let error = status.errors.first().map(|e| {
        let title = e.title.as_deref().or(e.message.as_deref()).unwrap_or("error");
        match e.error_data.as_ref().and_then(|d| d.details.as_deref()) {
            Some(details) => format!("{} {title}: {details}", e.code),
            None => format!("{} {title}", e.code),
        }
    });
    Some(InboundItem {
        dedup_key: format!("wa:status:{}:{}", status.id, status.status),
        event: InboundEvent::Status {
            recipient: status.recipient_id.clone(),
            provider_message_id: status.id.clone(),
            state,
            error,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sign(body: &[u8], secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn notification(messages: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550109876", "phone_number_id": "pn1"},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "491"}],
                "messages": messages,
            }}]}]
        }))
        .unwrap()
    }

    fn one(message: serde_json::Value) -> Option<(String, Content)> {
        let mut routed = parse(&notification(json!([message]))).unwrap();
        assert!(routed.len() <= 1);
        routed.pop().map(|r| match r.item.event {
            InboundEvent::Message { text, content, .. } => (text, content),
            other => panic!("not a message: {other:?}"),
        })
    }

    #[test]
    fn a_signature_over_the_exact_body_passes_and_uppercase_hex_does_not() {
        let secret = Secret::new("app-secret");
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let good = sign(body, "app-secret");
        assert_eq!(verify_signature(Some(good.as_bytes()), body, &secret), Ok(()));
        let upper = format!("sha256={}", good["sha256=".len()..].to_uppercase());
        assert_eq!(verify_signature(Some(upper.as_bytes()), body, &secret), Err(WebhookError::Unauthenticated));
        let short = &good[..good.len() - 2];
        assert_eq!(verify_signature(Some(short.as_bytes()), body, &secret), Err(WebhookError::Unauthenticated));
        let other_key = sign(body, "other-secret");
        assert_eq!(verify_signature(Some(other_key.as_bytes()), body, &secret), Err(WebhookError::Unauthenticated));
    }

    #[test]
    fn the_handshake_answers_the_challenge_only_to_the_right_token() {
        let token = Secret::new("vt");
        assert_eq!(handshake(Some("subscribe"), Some("vt"), Some("42"), &token), Ok("42".into()));
        assert_eq!(handshake(Some("subscribe"), Some("vx"), Some("42"), &token), Err(WebhookError::Unauthenticated));
        assert!(matches!(handshake(Some("subscribe"), None, Some("42"), &token), Err(WebhookError::Malformed(_))));
        assert!(matches!(
            handshake(Some("unsubscribe"), Some("vt"), Some("42"), &token),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn media_become_placeholders_with_their_captions() {
        let image = one(json!({"from": "491", "id": "m1", "timestamp": "1", "type": "image",
            "image": {"id": "media1", "mime_type": "image/jpeg", "caption": " my dog ", "sha256": "x"}}));
        assert_eq!(image, Some(("[image] my dog".into(), Content::Media { media: "image".into() })));
        let voice = one(json!({"from": "491", "id": "m2", "type": "audio",
            "audio": {"id": "a", "mime_type": "audio/ogg; codecs=opus", "voice": true}}));
        assert_eq!(voice, Some(("[voice message]".into(), Content::Media { media: "audio".into() })));
        let document = one(json!({"from": "491", "id": "m3", "type": "document",
            "document": {"id": "d", "filename": "plan.pdf", "caption": "my plan"}}));
        assert_eq!(document, Some(("[document plan.pdf] my plan".into(), Content::Media { media: "document".into() })));
        let sticker =
            one(json!({"from": "491", "id": "m4", "type": "sticker", "sticker": {"id": "s", "animated": false}}));
        assert_eq!(sticker, Some(("[sticker]".into(), Content::Media { media: "sticker".into() })));
    }

    #[test]
    fn places_and_contact_cards_are_described() {
        let named = one(json!({"from": "491", "id": "m1", "type": "location",
            "location": {"latitude": 52.52, "longitude": 13.405, "name": "Café Lila", "address": "Torstr. 1"}}));
        assert_eq!(named.unwrap().0, "[location] Café Lila, Torstr. 1");
        let pinned = one(json!({"from": "491", "id": "m2", "type": "location",
            "location": {"latitude": 52.52, "longitude": 13.405}}));
        assert_eq!(pinned.unwrap().0, "[location] 52.52000, 13.40500");
        let cards = one(json!({"from": "491", "id": "m3", "type": "contacts",
            "contacts": [{"name": {"formatted_name": "A"}}, {"name": {"formatted_name": "B"}}]}));
        assert_eq!(cards, Some(("[2 contact cards]".into(), Content::Media { media: "contacts".into() })));
    }

    #[test]
    fn a_reaction_is_a_turn_and_taking_it_back_is_not() {
        let reacted = one(json!({"from": "491", "id": "m1", "type": "reaction",
            "reaction": {"message_id": "wamid.ours", "emoji": "👍"}}));
        assert_eq!(
            reacted,
            Some((
                "[reacted 👍]".into(),
                Content::Reaction { to_message_id: "wamid.ours".into(), emoji: Some("👍".into()) }
            ))
        );
        assert_eq!(
            one(json!({"from": "491", "id": "m2", "type": "reaction", "reaction": {"message_id": "wamid.ours"}})),
            None
        );
        assert_eq!(
            one(
                json!({"from": "491", "id": "m3", "type": "reaction", "reaction": {"message_id": "wamid.ours", "emoji": ""}})
            ),
            None
        );
    }

    #[test]
    fn list_picks_and_template_buttons_are_choices_by_value() {
        let listed =
            one(json!({"from": "491", "id": "m1", "type": "interactive", "interactive": {"type": "list_reply",
            "list_reply": {"id": "plan_b", "title": "Plan B", "description": "the slower one"}}}));
        assert_eq!(listed, Some(("plan_b".into(), Content::Choice { callback_id: None })));
        let quick = one(json!({"from": "491", "id": "m2", "type": "button",
            "button": {"payload": "resume_program", "text": "Weiter"}}));
        assert_eq!(quick, Some(("resume_program".into(), Content::Choice { callback_id: None })));
    }

    #[test]
    fn unknown_types_get_a_placeholder_and_system_notices_nothing() {
        let unknown = one(json!({"from": "491", "id": "m1", "type": "unsupported",
            "errors": [{"code": 131051, "title": "Message type unknown"}]}));
        assert_eq!(unknown, Some(("[unsupported message]".into(), Content::Media { media: "unsupported".into() })));
        let poll = one(json!({"from": "491", "id": "m2", "type": "poll", "poll": {}}));
        assert_eq!(poll, Some(("[unsupported message]".into(), Content::Media { media: "poll".into() })));
        assert_eq!(one(json!({"from": "491", "id": "m3", "type": "system", "system": {"body": "changed"}})), None);
    }

    #[test]
    fn the_sender_is_named_by_the_contact_with_their_number_only() {
        let body = notification(json!([
            {"from": "491", "id": "m1", "type": "text", "text": {"body": "hi"}},
            {"from": "492", "id": "m2", "type": "text", "text": {"body": "yo"}}
        ]));
        let names: Vec<Option<String>> = parse(&body)
            .unwrap()
            .into_iter()
            .map(|r| match r.item.event {
                InboundEvent::Message { from, .. } => from.name,
                other => panic!("not a message: {other:?}"),
            })
            .collect();
        assert_eq!(names, vec![Some("Ana".to_owned()), None]);
    }

    #[test]
    fn statuses_other_than_delivery_states_give_nothing_and_errors_are_summarised() {
        let body = serde_json::to_vec(&json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "metadata": {"phone_number_id": "pn1"},
                "statuses": [
                    {"id": "w1", "status": "deleted", "timestamp": "1", "recipient_id": "491"},
                    {"id": "w2", "status": "failed", "timestamp": "2", "recipient_id": "491",
                     "errors": [{"code": 131026, "title": "Message undeliverable"}]}
                ]
            }}]}]
        }))
        .unwrap();
        let routed = parse(&body).unwrap();
        assert_eq!(routed.len(), 1);
        assert_eq!(routed[0].item.dedup_key, "wa:status:w2:failed");
        assert_eq!(
            routed[0].item.event,
            InboundEvent::Status {
                recipient: "491".into(),
                provider_message_id: "w2".into(),
                state: DeliveryState::Failed,
                error: Some("131026 Message undeliverable".into()),
            }
        );
    }

    #[test]
    fn bodies_that_are_not_whatsapp_notifications_are_refused_or_ignored() {
        assert!(matches!(parse(b"not json"), Err(WebhookError::Malformed(_))));
        assert!(matches!(parse(br#"{"object": "whatsapp_business_account"}"#), Err(WebhookError::Malformed(_))));
        assert_eq!(parse(br#"{"object": "page", "entry": [{"id": "1", "messaging": []}]}"#), Ok(Vec::new()));
    }
}
