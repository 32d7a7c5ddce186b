//! Which key ring verifies a token: the platform's ([`TokenKeys`]) when the token's `iss` is the
//! server's own issuer, else the creator platform whose issuer it is ([`CreatorIssuers`]). The
//! `iss` is read before the signature is checked only to choose the keys; the chosen keys then
//! check it again with everything else.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::issuers::CreatorIssuers;
use super::tokens::{self, AuthError, Identity, TokenKeys, refuse};

pub struct Authenticator {
    platform: TokenKeys,
    creators: CreatorIssuers,
}

impl Authenticator {
    pub fn new(platform: TokenKeys, creators: CreatorIssuers) -> Self {
        Self { platform, creators }
    }

    /// The platform's own ring (what `twin token` and the accounts routes sign with).
    pub fn platform(&self) -> &TokenKeys {
        &self.platform
    }

    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > tokens::MAX_TOKEN_BYTES {
            return Err(refuse(format_args!("{} bytes long", token.len())));
        }
        match unverified_issuer(token) {
            Some(issuer) if issuer != self.platform.issuer() => self.creators.verify(&issuer, token).await,
            // No readable `iss`: the platform ring refuses it, with the reason logged.
            _ => self.platform.verify(token),
        }
    }
}

/// The `iss` claim of a token whose signature has not been checked yet.
fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Issuer>(&bytes).ok()?.iss
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_read_from_the_payload_without_verifying() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://a.example","sub":"x"}"#);
        assert_eq!(unverified_issuer(&format!("e30.{payload}.sig")).as_deref(), Some("https://a.example"));
        assert_eq!(unverified_issuer(&format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(b"{}"))), None);
        assert_eq!(unverified_issuer("garbage"), None);
        assert_eq!(unverified_issuer("a.!!!.c"), None);
    }
}
