//! Visitor tokens: how a browser without an account stays the same end user of one creator. The
//! token is opaque to the browser (it keeps it in `localStorage`) and signed by the server:
//! `v1.<visitor id>.<HMAC-SHA256 over the creator and the visitor>`, both parts base64url. A token
//! of another creator, a forged or damaged one, is simply not recognised: its bearer becomes a new
//! visitor, which costs nothing and tells a prober nothing.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use twin_engine::{CreatorId, UserId};
use uuid::Uuid;

const VERSION: &str = "v1";
/// What the MAC covers besides the ids, so a visitor tag can never be taken for another MAC of the
/// same key.
const DOMAIN: &[u8] = b"twin widget visitor v1\0";
/// Longer strings are not read at all (a real token is 70 characters).
const MAX_TOKEN_LEN: usize = 128;
/// The purpose the key is derived for ([`crate::secrets::SecretBox::subkey`]).
pub const KEY_PURPOSE: &str = "widget visitor tokens";

/// The end-user id of a visitor: `web:<uuid>`.
pub fn user_of(visitor: Uuid) -> UserId {
    // `web:` and a hyphenated uuid: 40 printable characters, always a valid user id.
    UserId::parse(&format!("web:{visitor}")).unwrap_or_else(|_| unreachable!("web:<uuid> is a valid user id"))
}

/// Signs and checks visitor tokens.
pub struct VisitorKey(hmac::Key);

impl std::fmt::Debug for VisitorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorKey(***)")
    }
}

impl VisitorKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn message(creator: CreatorId, visitor: Uuid) -> Vec<u8> {
        let mut message = DOMAIN.to_vec();
        message.extend_from_slice(creator.as_uuid().as_bytes());
        message.extend_from_slice(visitor.as_bytes());
        message
    }

    /// The token of `visitor` for `creator`.
    pub fn sign(&self, creator: CreatorId, visitor: Uuid) -> String {
        let tag = hmac::sign(&self.0, &Self::message(creator, visitor));
        format!("{VERSION}.{}.{}", URL_SAFE_NO_PAD.encode(visitor.as_bytes()), URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The visitor a token names, when this server signed it for `creator`; `None` for anything
    /// else (forged, damaged, another creator's, another key's, not a token at all).
    pub fn verify(&self, creator: CreatorId, token: &str) -> Option<Uuid> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let mut parts = token.split('.');
        let (Some(VERSION), Some(id), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let visitor = Uuid::from_slice(&URL_SAFE_NO_PAD.decode(id).ok()?).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(&self.0, &Self::message(creator, visitor), &tag).ok()?;
        Some(visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin_engine::Slug;

    fn creator(slug: &str) -> CreatorId {
        Slug::parse(slug).unwrap_or_else(|e| panic!("{e}")).creator_id()
    }

    #[test]
    fn a_token_names_its_visitor_for_its_creator_only() {
        let key = VisitorKey::new(&[1; 32]);
        let visitor = Uuid::new_v4();
        let token = key.sign(creator("maya"), visitor);
        assert_eq!(key.verify(creator("maya"), &token), Some(visitor));
        assert_eq!(key.verify(creator("other"), &token), None, "another creator's visitor");
        assert_eq!(VisitorKey::new(&[2; 32]).verify(creator("maya"), &token), None, "another key");
    }

    #[test]
    fn forged_and_damaged_tokens_name_nobody() {
        let key = VisitorKey::new(&[1; 32]);
        let maya = creator("maya");
        let token = key.sign(maya, Uuid::new_v4());
        // The same tag with another visitor id.
        let mut parts: Vec<&str> = token.split('.').collect();
        let other_id = URL_SAFE_NO_PAD.encode(Uuid::new_v4().as_bytes());
        parts[1] = &other_id;
        let swapped = parts.join(".");
        let truncated = &token[..token.len() - 2];
        let long = format!("{token}{}", "A".repeat(200));
        let extra = format!("{token}.x");
        let v2 = token.replacen("v1.", "v2.", 1);
        for bad in [swapped.as_str(), truncated, long.as_str(), extra.as_str(), v2.as_str(), "", "v1..", "garbage"] {
            assert_eq!(key.verify(maya, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_visitor_is_the_web_user_of_its_uuid() {
        let visitor = Uuid::nil();
        assert_eq!(user_of(visitor).as_str(), "web:00000000-0000-0000-0000-000000000000");
    }
}
