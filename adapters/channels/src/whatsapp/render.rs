//! Outbox entries as Cloud API `messages` calls: long texts split at WhatsApp's limit, Markdown bold
//! turned into WhatsApp's, choices as reply buttons or a list, templates as templates. Pure; the
//! [`WhatsAppClient`](super::WhatsAppClient) renders with it.

use std::collections::HashSet;

use twin_engine::channel::OutboxBody;
use twin_engine::message::Choice;

use super::config::MAX_TEXT_CHARS;
use super::wire::{
    Button, ButtonAction, ButtonSpec, Interactive, InteractiveBody, Language, ListAction, Row, Section, SendContent,
    SendRequest, SendText, Template,
};
use crate::channel::Part;
use crate::split::split_text;

/// The Graph API edge every part is posted to.
pub const METHOD: &str = "messages";
/// The body of an interactive message is shorter than a text message's.
pub const MAX_INTERACTIVE_BODY_CHARS: usize = 1024;
/// Reply buttons: at most 3, titles up to 20 characters, ids up to 256.
pub const MAX_BUTTONS: usize = 3;
pub const MAX_BUTTON_TITLE_CHARS: usize = 20;
pub const MAX_BUTTON_ID_CHARS: usize = 256;
/// List messages: at most 10 rows, titles up to 24 characters, descriptions up to 72, ids up to 200.
pub const MAX_LIST_ROWS: usize = 10;
pub const MAX_ROW_TITLE_CHARS: usize = 24;
pub const MAX_ROW_DESCRIPTION_CHARS: usize = 72;
pub const MAX_ROW_ID_CHARS: usize = 200;
/// The label of the button that opens a list (at most 20 characters).
pub const LIST_BUTTON: &str = "Choose";
/// The body of an interactive message must not be empty; used when a message is only choices.
pub const EMPTY_BODY: &str = "Choose:";

/// The calls that deliver `body` to the WhatsApp number `chat`, in order.
///
/// Choices: up to 3 become reply buttons, 4 to 10 a list; the pressed button or picked row comes
/// back with the choice's value as its id. More than 10 (or values too long to be ids, or labels that
/// would collide once cut) are appended to the text as a numbered list, and the user types their
/// answer like any other turn.
pub fn render(chat: &str, body: &OutboxBody) -> Vec<Part> {
    match body {
        OutboxBody::Text { text, choices } => render_text(chat, &whatsapp_bold(text), choices),
        OutboxBody::Template { name, language } => vec![part(
            chat,
            SendContent::Template {
                template: Template { name: name.clone(), language: Language { code: language.clone() } },
            },
        )],
    }
}

fn render_text(chat: &str, text: &str, choices: &[Choice]) -> Vec<Part> {
    let Some(interactive) = interactive_kind(choices) else {
        let text = if choices.is_empty() { text.to_owned() } else { with_numbered_choices(text, choices) };
        return split_text(&text, MAX_TEXT_CHARS).into_iter().map(|piece| text_part(chat, piece)).collect();
    };
    let mut pieces = split_text(text, MAX_TEXT_CHARS);
    let last = pieces.pop().unwrap_or_default();
    let body = if last.chars().count() > MAX_INTERACTIVE_BODY_CHARS {
        let (head, tail) = split_tail(&last, MAX_INTERACTIVE_BODY_CHARS);
        pieces.push(head.to_owned());
        tail.to_owned()
    } else if last.is_empty() {
        EMPTY_BODY.to_owned()
    } else {
        last
    };
    let mut parts: Vec<Part> = pieces.into_iter().map(|piece| text_part(chat, piece)).collect();
    let body = InteractiveBody { text: body };
    let interactive = match interactive {
        Kind::Buttons => Interactive::Button {
            body,
            action: ButtonAction {
                buttons: choices
                    .iter()
                    .map(|c| Button {
                        kind: "reply",
                        reply: ButtonSpec { id: c.value.clone(), title: cut(&c.label, MAX_BUTTON_TITLE_CHARS) },
                    })
                    .collect(),
            },
        },
        Kind::List => Interactive::List {
            body,
            action: ListAction {
                button: LIST_BUTTON.to_owned(),
                sections: vec![Section { rows: choices.iter().map(row).collect() }],
            },
        },
    };
    parts.push(part(chat, SendContent::Interactive { interactive }));
    parts
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Buttons,
    List,
}

/// Which interactive message can carry `choices`, if any. WhatsApp refuses duplicate ids (and
/// duplicate button titles), and an id is the value the user's answer comes back with, so it is
/// never cut: choices that do not fit fall back to the numbered list.
fn interactive_kind(choices: &[Choice]) -> Option<Kind> {
    let (kind, max_id, max_title) = match choices.len() {
        0 => return None,
        1..=MAX_BUTTONS => (Kind::Buttons, MAX_BUTTON_ID_CHARS, MAX_BUTTON_TITLE_CHARS),
        n if n <= MAX_LIST_ROWS => (Kind::List, MAX_ROW_ID_CHARS, MAX_ROW_TITLE_CHARS),
        _ => return None,
    };
    let ids_fit = choices.iter().all(|c| !c.value.is_empty() && c.value.chars().count() <= max_id);
    let distinct_ids = choices.iter().map(|c| c.value.as_str()).collect::<HashSet<_>>().len() == choices.len();
    let titles = choices.iter().map(|c| cut(&c.label, max_title)).collect::<Vec<_>>();
    let titles_fit = titles.iter().all(|t| !t.trim().is_empty())
        && (kind == Kind::List || titles.iter().collect::<HashSet<_>>().len() == titles.len());
    (ids_fit && distinct_ids && titles_fit).then_some(kind)
}

/// A list row: the label's first 24 characters as the title, the rest (up to 72) as the description.
fn row(choice: &Choice) -> Row {
    let title = cut(&choice.label, MAX_ROW_TITLE_CHARS);
    let rest: String = choice.label.chars().skip(MAX_ROW_TITLE_CHARS).collect();
    let rest = rest.trim();
    Row {
        id: choice.value.clone(),
        title,
        description: (!rest.is_empty()).then(|| cut(rest, MAX_ROW_DESCRIPTION_CHARS)),
    }
}

/// The text followed by the choices numbered `1.`, `2.`…, for choices no interactive message holds.
fn with_numbered_choices(text: &str, choices: &[Choice]) -> String {
    let list: Vec<String> = choices.iter().enumerate().map(|(i, c)| format!("{}. {}", i + 1, c.label)).collect();
    let text = text.trim_end();
    if text.is_empty() { list.join("\n") } else { format!("{text}\n\n{}", list.join("\n")) }
}

/// Splits `text` into a head and a tail of at most `max_chars` that starts at a paragraph, sentence
/// or word boundary where there is one, so the interactive body reads as a whole. The tail is as
/// long as such a boundary allows; the head keeps everything before it.
fn split_tail(text: &str, max_chars: usize) -> (&str, &str) {
    let total = text.chars().count();
    if total <= max_chars {
        return ("", text);
    }
    // Byte index where the last `max_chars` characters begin.
    let start = text.char_indices().nth(total - max_chars).map_or(0, |(i, _)| i);
    let window = &text[start..];
    let boundary = |found: Option<usize>| found.map(|i| start + i);
    let cut = boundary(window.find("\n\n"))
        .or_else(|| boundary(sentence_start(window)))
        .or_else(|| boundary(window.find('\n')))
        .or_else(|| boundary(window.find(char::is_whitespace)))
        .unwrap_or(start);
    let (head, tail) = text.split_at(cut);
    let (head, tail) = (head.trim_end(), tail.trim_start());
    if head.is_empty() || tail.is_empty() { (&text[..start], &text[start..]) } else { (head, tail) }
}

/// The byte index just after the first sentence end (`.`, `!`, `?`, `…` and whitespace) in `window`.
fn sentence_start(window: &str) -> Option<usize> {
    let mut chars = window.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?' | '…') && chars.peek().is_some_and(|&(_, next)| next.is_whitespace()) {
            return Some(i + c.len_utf8());
        }
    }
    None
}

/// WhatsApp formats with single markers: `*bold*`, `_italic_`, `~strikethrough~`, `` `code` `` and
/// ```` ```monospace``` ````, and shows a marker it cannot pair as the character itself. It has no
/// escaping and never refuses a message for its formatting, so text passes as written except
/// Markdown's `**bold**`, which WhatsApp would show with stray asterisks: each complete `**…**`
/// pair becomes `*…*`; an unpaired `**` stays as it is.
pub fn whatsapp_bold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("**") {
        let after_open = &rest[open + 2..];
        match after_open.find("**") {
            Some(close) if close > 0 && !after_open[..close].contains('\n') => {
                out.push_str(&rest[..open]);
                out.push('*');
                out.push_str(&after_open[..close]);
                out.push('*');
                rest = &after_open[close + 2..];
            }
            _ => {
                out.push_str(&rest[..open + 2]);
                rest = after_open;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The first `max_chars` characters of `text` (never cutting inside a character), without the
/// whitespace the cut may leave at the end.
fn cut(text: &str, max_chars: usize) -> String {
    let cut: String = text.chars().take(max_chars).collect();
    cut.trim_end().to_owned()
}

fn text_part(chat: &str, body: String) -> Part {
    part(chat, SendContent::Text { text: SendText { preview_url: false, body } })
}

fn part(chat: &str, content: SendContent) -> Part {
    let request =
        SendRequest { messaging_product: "whatsapp", recipient_type: "individual", to: chat.to_owned(), content };
    // Serializing plain structs of strings and bools cannot fail.
    let body = serde_json::to_value(&request).unwrap_or_default();
    Part { method: METHOD, body }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(text: &str, choices: &[(&str, &str)]) -> OutboxBody {
        OutboxBody::Text {
            text: text.into(),
            choices: choices.iter().map(|(v, l)| Choice { value: (*v).into(), label: (*l).into() }).collect(),
        }
    }

    fn bodies(parts: &[Part]) -> Vec<&str> {
        parts.iter().map(|p| p.body["text"]["body"].as_str().unwrap_or("<not text>")).collect()
    }

    #[test]
    fn a_short_text_is_one_text_message_without_a_link_preview() {
        let parts = render("491", &text("Hallo Maria!", &[]));
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].method, "messages");
        assert_eq!(
            parts[0].body,
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "491", "type": "text",
                   "text": {"preview_url": false, "body": "Hallo Maria!"}})
        );
    }

    #[test]
    fn a_long_text_is_split_at_the_limit() {
        let sentence = "A short sentence. ";
        let long = sentence.repeat(500);
        let parts = render("491", &text(&long, &[]));
        assert_eq!(parts.len(), 3);
        for body in bodies(&parts) {
            assert!(body.chars().count() <= MAX_TEXT_CHARS);
            assert!(body.ends_with('.'), "split at a sentence end");
        }
    }

    #[test]
    fn markdown_bold_becomes_whatsapp_bold_and_everything_else_stays() {
        assert_eq!(whatsapp_bold("a **big** step, _really_ ~no~"), "a *big* step, _really_ ~no~");
        assert_eq!(whatsapp_bold("**one** and **two**"), "*one* and *two*");
        assert_eq!(whatsapp_bold("2 ** 3 is power"), "2 ** 3 is power");
        assert_eq!(whatsapp_bold("****"), "****");
        assert_eq!(whatsapp_bold("**over\nlines**"), "**over\nlines**");
        assert_eq!(whatsapp_bold("é **ü** ß"), "é *ü* ß");
    }

    #[test]
    fn up_to_three_choices_are_reply_buttons_with_cut_titles() {
        let parts = render("491", &text("Ready?", &[("yes", "Yes, let's go right now"), ("later", "Later")]));
        assert_eq!(parts.len(), 1);
        assert_eq!(
            parts[0].body["interactive"],
            json!({"type": "button", "body": {"text": "Ready?"}, "action": {"buttons": [
                {"type": "reply", "reply": {"id": "yes", "title": "Yes, let's go right"}},
                {"type": "reply", "reply": {"id": "later", "title": "Later"}}
            ]}})
        );
        assert_eq!(parts[0].body["type"], "interactive");
    }

    #[test]
    fn four_to_ten_choices_are_a_list_whose_long_labels_continue_in_the_description() {
        let choices = [
            ("a", "Alpha"),
            ("b", "Beta"),
            ("c", "Gamma"),
            ("d", "A label that is longer than twenty-four characters"),
        ];
        let parts = render("491", &text("Pick one", &choices));
        assert_eq!(parts.len(), 1);
        let interactive = &parts[0].body["interactive"];
        assert_eq!(interactive["type"], "list");
        assert_eq!(interactive["action"]["button"], "Choose");
        let rows = &interactive["action"]["sections"][0]["rows"];
        assert_eq!(rows.as_array().unwrap().len(), 4);
        assert_eq!(rows[0], json!({"id": "a", "title": "Alpha"}));
        assert_eq!(
            rows[3],
            json!({"id": "d", "title": "A label that is longer t", "description": "han twenty-four characters"})
        );
    }

    #[test]
    fn more_than_ten_choices_are_a_numbered_list_the_user_answers_by_typing() {
        let labels: Vec<String> = (1..=11).map(|i| format!("Option {i}")).collect();
        let choices: Vec<(&str, &str)> = labels.iter().map(|l| (l.as_str(), l.as_str())).collect();
        let parts = render("491", &text("Which one?", &choices));
        assert_eq!(parts.len(), 1);
        let body = parts[0].body["text"]["body"].as_str().unwrap();
        assert!(body.starts_with("Which one?\n\n1. Option 1\n2. Option 2\n"));
        assert!(body.ends_with("11. Option 11"));
    }

    #[test]
    fn choices_that_cannot_be_ids_or_would_collide_fall_back_to_the_numbered_list() {
        let long_value = "v".repeat(MAX_BUTTON_ID_CHARS + 1);
        let parts = render("491", &text("Go?", &[(long_value.as_str(), "Yes")]));
        assert_eq!(parts[0].body["type"], "text");
        let same_title =
            render("491", &text("Go?", &[("a", "Twenty characters ok A"), ("b", "Twenty characters ok B")]));
        assert_eq!(same_title[0].body["text"]["body"], "Go?\n\n1. Twenty characters ok A\n2. Twenty characters ok B");
    }

    #[test]
    fn a_text_too_long_for_an_interactive_body_goes_first_as_text() {
        let first = "First paragraph. ".repeat(70);
        let second = "Now decide.";
        let parts = render("491", &text(&format!("{}\n\n{second}", first.trim()), &[("y", "Yes")]));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body["text"]["body"], first.trim());
        assert_eq!(parts[1].body["interactive"]["body"]["text"], second);
        let body_chars = |p: &Part| p.body["interactive"]["body"]["text"].as_str().unwrap().chars().count();
        let unbroken = "x".repeat(3000);
        let parts = render("491", &text(&unbroken, &[("y", "Yes")]));
        assert_eq!(parts.len(), 2);
        assert_eq!(body_chars(&parts[1]), MAX_INTERACTIVE_BODY_CHARS);
        assert_eq!(parts[0].body["text"]["body"].as_str().unwrap().chars().count(), 3000 - MAX_INTERACTIVE_BODY_CHARS);
    }

    #[test]
    fn choices_without_text_still_have_a_body() {
        let parts = render("491", &text("", &[("y", "Yes")]));
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body["interactive"]["body"]["text"], EMPTY_BODY);
    }

    #[test]
    fn a_template_names_its_language() {
        let parts = render("491", &OutboxBody::Template { name: "checkin".into(), language: "en_US".into() });
        assert_eq!(
            parts[0].body,
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "491", "type": "template",
                   "template": {"name": "checkin", "language": {"code": "en_US"}}})
        );
    }

    #[test]
    fn titles_are_cut_between_characters() {
        let label = "ü".repeat(30);
        let parts = render("491", &text("?", &[("u", label.as_str())]));
        assert_eq!(parts[0].body["interactive"]["action"]["buttons"][0]["reply"]["title"], "ü".repeat(20));
    }
}
