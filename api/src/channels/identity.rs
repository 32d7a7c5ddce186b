//! Channel identities and linking: a Telegram user or WhatsApp number is an end user of its own
//! until the person links it, with a one-time code, to the user they already are elsewhere (the
//! web chat of the creator's platform); from then on every channel continues one conversation.

use rand::Rng;
use twin_channels::Content;
use twin_engine::UserId;
use twin_engine::channel::ChannelKind;

/// Letters and digits that cannot be mistaken for one another when typed from a screen.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
pub const CODE_LEN: usize = 8;
/// How long a link code stays valid.
pub const CODE_TTL_MS: i64 = 15 * 60 * 1000;
/// The prefix of a link code in a Telegram deep link: `t.me/<bot>?start=link-<CODE>`.
pub const START_PREFIX: &str = "link-";

/// The user id of a channel identity nobody linked: `tg-<telegram user id>`, `wa-<number>`.
pub fn default_user(channel: ChannelKind, external: &str) -> Result<UserId, String> {
    let prefix = match channel {
        ChannelKind::Telegram => "tg",
        ChannelKind::WhatsApp => "wa",
        ChannelKind::Web => "web",
    };
    UserId::parse(&format!("{prefix}-{external}")).map_err(|e| format!("channel identity {external:?}: {e}"))
}

/// A fresh one-time link code.
pub fn new_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_LEN).map(|_| char::from(CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())])).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCommand {
    pub code: String,
}

/// A message that links the channel: Telegram `/start link-CODE` (the deep link) or `/link CODE`,
/// or `LINK CODE` on any channel. Case and surrounding spaces do not matter.
pub fn link_command(text: &str, content: &Content) -> Option<LinkCommand> {
    let code = match content {
        Content::Start { payload: Some(payload) } => payload.strip_prefix(START_PREFIX)?.to_owned(),
        Content::Text => {
            let mut words = text.split_whitespace();
            let verb = words.next()?;
            let code = words.next()?;
            if words.next().is_some() || !(verb.eq_ignore_ascii_case("link") || verb.eq_ignore_ascii_case("/link")) {
                return None;
            }
            code.to_owned()
        }
        _ => return None,
    };
    let code = code.trim().to_ascii_uppercase();
    let well_formed = code.len() == CODE_LEN && code.bytes().all(|b| CODE_ALPHABET.contains(&b));
    well_formed.then_some(LinkCommand { code })
}

/// A WhatsApp failure (as its status report words it, `"<code> <title>: <details>"`) that means
/// the number cannot be reached: not on WhatsApp, or the user blocked the business (131026).
pub fn means_unreachable(error: &str) -> bool {
    error.split_whitespace().next() == Some("131026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_commands_are_recognised_in_every_form_and_nothing_else_is() {
        let code = Some(LinkCommand { code: "ABCD2345".into() });
        assert_eq!(
            link_command("/start link-abcd2345", &Content::Start { payload: Some("link-abcd2345".into()) }),
            code
        );
        assert_eq!(link_command("LINK ABCD2345", &Content::Text), code);
        assert_eq!(link_command("  /link abcd2345 ", &Content::Text), code);
        assert_eq!(link_command("link ABCD2345 please", &Content::Text), None);
        assert_eq!(link_command("link ABCD", &Content::Text), None, "too short");
        assert_eq!(link_command("link ABCD0O11", &Content::Text), None, "ambiguous characters are never issued");
        assert_eq!(link_command("/start program", &Content::Start { payload: Some("program".into()) }), None);
        assert_eq!(link_command("LINK ABCD2345", &Content::Media { media: "photo".into() }), None);
    }

    #[test]
    fn codes_are_well_formed_and_unlinked_identities_get_their_own_user() {
        let code = new_code();
        assert!(link_command(&format!("link {code}"), &Content::Text).is_some(), "{code}");
        assert_ne!(new_code(), new_code());
        assert_eq!(default_user(ChannelKind::Telegram, "5823419076").unwrap().as_str(), "tg-5823419076");
        assert_eq!(default_user(ChannelKind::WhatsApp, "4915112345678").unwrap().as_str(), "wa-4915112345678");
    }

    #[test]
    fn only_an_undeliverable_number_is_unreachable() {
        assert!(means_unreachable("131026 Message undeliverable: the number is not on WhatsApp"));
        assert!(!means_unreachable("131047 Re-engagement message: more than 24 hours"));
        assert!(!means_unreachable("1310261 something"));
    }
}
