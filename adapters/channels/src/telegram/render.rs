//! The twin's messages as `sendMessage` calls (the outbox renders through
//! [`TelegramClient`](super::TelegramClient)): split at Telegram's length limit, sent as HTML with
//! the model's light markdown (`**bold**`, `` `code` ``) converted and everything else escaped,
//! choices as an inline keyboard under the last part.

use serde_json::{Value, json};
use twin_engine::channel::OutboxBody;
use twin_engine::message::Choice;

use super::config::MAX_TEXT_CHARS;
use crate::channel::Part;
use crate::split::split_text;

/// Telegram's limit on a button's `callback_data`, in bytes.
pub const MAX_CALLBACK_DATA_BYTES: usize = 64;

/// Telegram refuses an empty text, but buttons need a message to hang from.
const TEXT_FOR_BARE_CHOICES: &str = "…";

/// The calls that deliver `body` to `chat`, in order; none for a blank text without choices.
pub fn render(chat: &str, body: &OutboxBody) -> Vec<Part> {
    let (mut pieces, choices): (Vec<String>, &[Choice]) = match body {
        OutboxBody::Text { text, choices } => {
            (split_visible(text).iter().map(|piece| markdown_to_html(piece)).collect(), choices)
        }
        // Templates answer WhatsApp's 24-hour window; Telegram has none, so one reaching this
        // channel is sent as its name, in plain text, rather than dropped.
        OutboxBody::Template { name, .. } => {
            (split_visible(name).iter().map(|piece| escape_html(piece)).collect(), &[])
        }
    };
    if pieces.is_empty() {
        if choices.is_empty() {
            return Vec::new();
        }
        pieces.push(TEXT_FOR_BARE_CHOICES.to_owned());
    }
    let last = pieces.len() - 1;
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, text)| {
            let mut body = json!({ "chat_id": chat_id(chat), "text": text, "parse_mode": "HTML" });
            if index == last && !choices.is_empty() {
                body["reply_markup"] = inline_keyboard(choices);
            }
            Part { method: "sendMessage", body }
        })
        .collect()
}

/// A numeric chat id as a JSON number (as Telegram sends it), anything else (`@channel`) as is.
pub(crate) fn chat_id(chat: &str) -> Value {
    chat.parse::<i64>().map_or_else(|_| Value::from(chat), Value::from)
}

/// Pieces of at most [`MAX_TEXT_CHARS`] visible characters, split before any markup is added (the
/// limit counts text after entity parsing). Telegram counts UTF-16 code units, in which most emoji
/// are two: a piece that is over in that count is split again at half the limit, where even a
/// piece of nothing but emoji fits.
fn split_visible(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    for piece in split_text(text, MAX_TEXT_CHARS) {
        if piece.encode_utf16().count() <= MAX_TEXT_CHARS {
            pieces.push(piece);
        } else {
            pieces.extend(split_text(&piece, MAX_TEXT_CHARS / 2));
        }
    }
    pieces
}

/// One button per row: the label shows, the value comes back as `callback_data`. A value over 64
/// bytes is cut to its longest prefix of whole characters that fits, so two long values that share
/// that prefix come back the same: the engine's choice values are expected to be short ids.
fn inline_keyboard(choices: &[Choice]) -> Value {
    let rows: Vec<Value> = choices
        .iter()
        .map(|choice| {
            let text = if choice.label.trim().is_empty() { &choice.value } else { &choice.label };
            json!([{ "text": text, "callback_data": truncate_bytes(&choice.value, MAX_CALLBACK_DATA_BYTES) }])
        })
        .collect();
    json!({ "inline_keyboard": rows })
}

/// The longest prefix of `value` of at most `max` bytes that ends on a character boundary.
fn truncate_bytes(value: &str, max: usize) -> &str {
    if value.len() <= max {
        return value;
    }
    let end = (0..=max).rev().find(|&index| value.is_char_boundary(index)).unwrap_or(0);
    &value[..end]
}

/// Telegram HTML for a text with light markdown: `**bold**` becomes `<b>`, `` `code` `` becomes
/// `<code>`, and `&`, `<`, `>` are escaped everywhere. A marker without its match, an empty span, a
/// bold span with blank edges (`2 ** 3`) or a code span across lines stays literal, so the output
/// always has balanced tags.
pub fn markdown_to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    inline_to_html(text, true, &mut out);
    out
}

fn inline_to_html(text: &str, bold_allowed: bool, out: &mut String) {
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if let Some((code, after)) = code_span(rest) {
            out.push_str("<code>");
            out.push_str(&escape_html(code));
            out.push_str("</code>");
            rest = after;
        } else if let Some((inner, after)) = bold_allowed.then(|| bold_span(rest)).flatten() {
            out.push_str("<b>");
            inline_to_html(inner, false, out);
            out.push_str("</b>");
            rest = after;
        } else {
            push_escaped(c, out);
            rest = &rest[c.len_utf8()..];
        }
    }
}

/// `` `code` `` at the start of `text`: its content and what follows it.
fn code_span(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix('`')?;
    let end = inner.find(['`', '\n'])?;
    (inner[end..].starts_with('`') && end > 0).then(|| (&inner[..end], &inner[end + 1..]))
}

/// `**bold**` at the start of `text`: its content and what follows it. The closing marker is the
/// first `**` outside a code span.
fn bold_span(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix("**")?;
    let mut index = 0;
    let end = loop {
        let rest = &inner[index..];
        if rest.starts_with("**") {
            break index;
        }
        if let Some((_, after)) = code_span(rest) {
            index = inner.len() - after.len();
            continue;
        }
        index += rest.chars().next()?.len_utf8();
    };
    let content = &inner[..end];
    let blank_edge = content.starts_with(char::is_whitespace) || content.ends_with(char::is_whitespace);
    (!content.is_empty() && !blank_edge).then(|| (content, &inner[end + 2..]))
}

/// `&`, `<` and `>` escaped: all that Telegram's HTML parse mode needs outside attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    text.chars().for_each(|c| push_escaped(c, &mut out));
    out
}

fn push_escaped(c: char, out: &mut String) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn text(text: &str, choices: &[(&str, &str)]) -> OutboxBody {
        OutboxBody::Text {
            text: text.into(),
            choices: choices
                .iter()
                .map(|(value, label)| Choice { value: (*value).into(), label: (*label).into() })
                .collect(),
        }
    }

    #[test]
    fn a_short_text_is_one_html_call_to_the_numeric_chat() {
        let parts = render("5823419076", &text("Fish & chips <3", &[]));
        assert_eq!(
            parts,
            vec![Part {
                method: "sendMessage",
                body: json!({"chat_id": 5_823_419_076_i64, "text": "Fish &amp; chips &lt;3", "parse_mode": "HTML"}),
            }]
        );
        assert_eq!(render("@channel", &text("x", &[]))[0].body["chat_id"], json!("@channel"));
    }

    #[test]
    fn markdown_bold_and_code_become_tags_with_their_content_escaped() {
        assert_eq!(markdown_to_html("Your **order 4471** ships"), "Your <b>order 4471</b> ships");
        assert_eq!(markdown_to_html("run `a<b && c`"), "run <code>a&lt;b &amp;&amp; c</code>");
        assert_eq!(markdown_to_html("**use `x**y` now**"), "<b>use <code>x**y</code> now</b>");
        assert_eq!(markdown_to_html("a **b** and **c**"), "a <b>b</b> and <b>c</b>");
    }

    #[test]
    fn unbalanced_or_empty_markers_stay_literal() {
        assert_eq!(markdown_to_html("2 ** 3 is 8"), "2 ** 3 is 8");
        assert_eq!(markdown_to_html("**not closed"), "**not closed");
        assert_eq!(markdown_to_html("a `tick"), "a `tick");
        assert_eq!(markdown_to_html("empty `` and ****"), "empty `` and ****");
        assert_eq!(markdown_to_html("`across\nlines`"), "`across\nlines`");
        assert_eq!(markdown_to_html("**x < y **"), "**x &lt; y **");
    }

    #[test]
    fn a_long_text_splits_on_visible_characters_before_escaping() {
        // 4000 visible characters of which many are escaped: one part, although its HTML is longer.
        let long = "<".repeat(4000);
        let parts = render("1", &text(&long, &[]));
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body["text"].as_str().unwrap().len(), 4000 * 4);

        let sentence = "This sentence is exactly forty chars ok. ";
        let parts = render("1", &text(&sentence.repeat(250), &[("a", "A")]));
        assert_eq!(parts.len(), 3);
        for part in &parts {
            assert!(part.body["text"].as_str().unwrap().chars().count() <= MAX_TEXT_CHARS);
        }
        assert!(parts[..2].iter().all(|part| part.body.get("reply_markup").is_none()));
        assert!(parts[2].body.get("reply_markup").is_some());
    }

    #[test]
    fn emoji_count_twice_toward_the_limit() {
        let parts = render("1", &text(&"😀".repeat(3000), &[]));
        assert_eq!(parts.len(), 2);
        for part in &parts {
            assert!(part.body["text"].as_str().unwrap().encode_utf16().count() <= MAX_TEXT_CHARS);
        }
    }

    #[test]
    fn choices_are_one_button_per_row_with_long_values_cut_on_a_character_boundary() {
        let long_value = format!("{}é", "v".repeat(63));
        let parts = render("1", &text("Pick one", &[("yes", "Yes!"), (&long_value, "Long"), ("bare", " ")]));
        assert_eq!(
            parts[0].body["reply_markup"],
            json!({"inline_keyboard": [
                [{"text": "Yes!", "callback_data": "yes"}],
                [{"text": "Long", "callback_data": "v".repeat(63)}],
                [{"text": "bare", "callback_data": "bare"}],
            ]})
        );
        assert_eq!(truncate_bytes("ab", 64), "ab");
    }

    #[test]
    fn blank_texts_send_nothing_unless_they_carry_buttons() {
        assert!(render("1", &text("  ", &[])).is_empty());
        let parts = render("1", &text("", &[("a", "A")]));
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body["text"], json!("…"));
    }

    #[test]
    fn a_template_is_sent_as_its_name_in_plain_text() {
        let parts = render("1", &OutboxBody::Template { name: "check_in **now**".into(), language: "en_US".into() });
        assert_eq!(parts[0].body["text"], json!("check_in **now**"));
    }

    /// The tags of `html` are only ours and balanced, and every `&`, `<`, `>` belongs to a tag or an
    /// entity we wrote.
    fn well_formed(html: &str) -> bool {
        const TOKENS: [&str; 7] = ["<b>", "</b>", "<code>", "</code>", "&amp;", "&lt;", "&gt;"];
        let mut open: Vec<&str> = Vec::new();
        let mut rest = html;
        loop {
            let Some(index) = rest.find(['<', '&', '>']) else { return open.is_empty() };
            rest = &rest[index..];
            let Some(token) = TOKENS.into_iter().find(|token| rest.starts_with(token)) else { return false };
            match token {
                "<b>" | "<code>" => open.push(token),
                "</b>" if open.pop() != Some("<b>") => return false,
                "</code>" if open.pop() != Some("<code>") => return false,
                _ => {}
            }
            rest = &rest[token.len()..];
        }
    }

    proptest! {
        #[test]
        fn converted_markdown_is_always_well_formed_html(text in "[a *`<>&\n]{0,60}") {
            let html = markdown_to_html(&text);
            prop_assert!(well_formed(&html), "{:?} -> {:?}", text, html);
        }

        #[test]
        fn text_without_markers_is_only_escaped(text in "[a-z <>&é\n]{0,60}") {
            prop_assert_eq!(markdown_to_html(&text), escape_html(&text));
        }
    }
}
