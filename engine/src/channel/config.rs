//! A creator's channel settings, as written in `channels.toml` and stored with the creator.
//! Secrets stay references (`env:NAME`) or literals as the creator wrote them; the server resolves
//! them when it uses them (`twin-channels`), so they never enter a prompt, a log or an export they
//! were not already in.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram: Option<TelegramSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsAppSettings>,
}

impl ChannelsConfig {
    pub fn is_empty(&self) -> bool {
        self.telegram.is_none() && self.whatsapp.is_none()
    }
}

/// `[telegram]`: one bot per creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    pub bot_token: SecretRef,
    /// Telegram sends it back in `X-Telegram-Bot-Api-Secret-Token` with every update.
    pub webhook_secret: SecretRef,
    /// The bot's `@username` without the `@`; in group chats the twin answers only when addressed
    /// by it (a mention, a `/command@bot`, or a reply to the bot). Unset: groups are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_username: Option<String>,
}

/// `[whatsapp]`: one business phone number per creator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsAppSettings {
    pub phone_number_id: String,
    pub access_token: SecretRef,
    /// The Meta app's secret: `X-Hub-Signature-256` is an HMAC-SHA256 of the raw body with it.
    pub app_secret: SecretRef,
    /// Echoed in the `GET` verification handshake.
    pub verify_token: SecretRef,
    /// An approved message template for program nudges that fall due outside the 24-hour
    /// customer-service window. Unset: such nudges are held until the user writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nudge_template: Option<TemplateRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateRef {
    pub name: String,
    /// The template's language code as approved (`en_US`).
    #[serde(default = "default_language")]
    pub language: String,
}

fn default_language() -> String {
    "en_US".to_owned()
}

/// A secret as configured: `env:NAME` (read from the server's environment when used), `sealed:…`
/// (encrypted with the server's `TWIN_SECRET_KEY`: how secrets set through the REST API are
/// stored) or the value itself. Never printed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(String);

const SEALED_PREFIX: &str = "sealed:";

impl SecretRef {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The environment variable this refers to, if it is a reference.
    pub fn env_name(&self) -> Option<&str> {
        self.0.strip_prefix("env:")
    }

    /// The ciphertext of a sealed secret (after `sealed:`).
    pub fn sealed(&self) -> Option<&str> {
        self.0.strip_prefix(SEALED_PREFIX)
    }

    /// A secret sealed by the server (`ciphertext` is what follows `sealed:`).
    pub fn from_sealed(ciphertext: &str) -> Self {
        Self(format!("{SEALED_PREFIX}{ciphertext}"))
    }

    /// The configured text: a reference, or the secret itself. For resolving only.
    pub fn raw(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.env_name(), self.sealed()) {
            (Some(name), _) => write!(f, "env:{name}"),
            (None, Some(_)) => f.write_str("<sealed>"),
            (None, None) => f.write_str("<redacted>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_example_parses_and_a_literal_secret_never_prints() {
        let text = r#"
            [telegram]
            bot_token = "env:TELEGRAM_BOT_TOKEN"
            webhook_secret = "s3cret-literal"

            [whatsapp]
            phone_number_id = "1234567890"
            access_token = "env:WHATSAPP_ACCESS_TOKEN"
            app_secret = "env:WHATSAPP_APP_SECRET"
            verify_token = "env:WHATSAPP_VERIFY_TOKEN"
            nudge_template = { name = "checkin" }
        "#;
        let config: ChannelsConfig = toml::from_str(text).unwrap();
        let telegram = config.telegram.as_ref().unwrap();
        assert_eq!(telegram.bot_token.env_name(), Some("TELEGRAM_BOT_TOKEN"));
        assert!(!format!("{config:?}").contains("s3cret-literal"));
        let whatsapp = config.whatsapp.unwrap();
        assert_eq!(whatsapp.nudge_template.unwrap().language, "en_US");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        assert!(toml::from_str::<ChannelsConfig>("[telegram]\nbot_tokn = \"x\"\nwebhook_secret = \"y\"\n").is_err());
    }
}
