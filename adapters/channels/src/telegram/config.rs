//! A creator's Telegram bot as the adapter uses it: the `[telegram]` settings with their secrets
//! resolved, and the Bot API's fixed facts (endpoint, secret header, length limit).

use rand::Rng;
use twin_engine::channel::TelegramSettings;

use crate::secret::{Secret, SecretError, SecretSource};

pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";
/// Telegram echoes the `secret_token` given to `setWebhook` verbatim in this header.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";
/// A message text is at most this many characters after entity parsing (visible text, not markup).
pub const MAX_TEXT_CHARS: usize = 4096;

/// Length of a generated webhook secret; Telegram accepts 1 to 256 characters.
const WEBHOOK_SECRET_LEN: usize = 48;
/// The only characters Telegram allows in a webhook secret.
const WEBHOOK_SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// The Bot API endpoint without a trailing `/`; a fake server's address in tests.
    pub api_base: String,
    /// Part of every request URL, so never in a log or an error message.
    pub bot_token: Secret,
    /// What a genuine webhook request presents in [`SECRET_HEADER`].
    pub webhook_secret: Secret,
    /// The bot's username without the `@`; `None`: group chats are ignored.
    pub bot_username: Option<String>,
}

impl TelegramConfig {
    /// Resolves the settings' secrets through `secrets` (`env:NAME` references, sealed values) for the API at `api_base`.
    pub fn resolve(
        settings: &TelegramSettings,
        api_base: &str,
        secrets: &dyn SecretSource,
    ) -> Result<Self, SecretError> {
        let bot_username = settings
            .bot_username
            .as_deref()
            .map(|name| name.trim().trim_start_matches('@').to_owned())
            .filter(|name| !name.is_empty());
        Ok(Self {
            api_base: api_base.trim_end_matches('/').to_owned(),
            bot_token: Secret::resolve(&settings.bot_token, secrets)?,
            webhook_secret: Secret::resolve(&settings.webhook_secret, secrets)?,
            bot_username,
        })
    }
}

/// A fresh secret for `setWebhook`: 48 characters of `[A-Za-z0-9_-]`, about 288 bits.
pub fn generate_webhook_secret() -> String {
    let mut rng = rand::rng();
    (0..WEBHOOK_SECRET_LEN)
        .map(|_| char::from(WEBHOOK_SECRET_ALPHABET[rng.random_range(0..WEBHOOK_SECRET_ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use twin_engine::channel::SecretRef;

    use super::*;

    fn settings(bot_username: Option<&str>) -> TelegramSettings {
        TelegramSettings {
            bot_token: SecretRef::new("env:TG_TOKEN"),
            webhook_secret: SecretRef::new("literal-secret"),
            bot_username: bot_username.map(str::to_owned),
        }
    }

    #[test]
    fn settings_resolve_with_a_clean_base_and_username() {
        let env = |name: &str| (name == "TG_TOKEN").then(|| "123:abc".to_owned());
        let config = TelegramConfig::resolve(&settings(Some("@acme_bot")), "http://127.0.0.1:9/", &env).unwrap();
        assert_eq!(config.api_base, "http://127.0.0.1:9");
        assert_eq!(config.bot_token.expose(), "123:abc");
        assert!(config.webhook_secret.matches(b"literal-secret"));
        assert_eq!(config.bot_username.as_deref(), Some("acme_bot"));
        assert!(!format!("{config:?}").contains("123:abc"));

        let plain = TelegramConfig::resolve(&settings(Some("acme_bot")), DEFAULT_API_BASE, &env).unwrap();
        assert_eq!(plain.api_base, "https://api.telegram.org");
        assert_eq!(plain.bot_username.as_deref(), Some("acme_bot"));
    }

    #[test]
    fn a_missing_token_variable_is_an_error() {
        let env = |_: &str| None;
        assert_eq!(
            TelegramConfig::resolve(&settings(None), DEFAULT_API_BASE, &env).unwrap_err(),
            SecretError::MissingEnv("TG_TOKEN".into())
        );
    }

    #[test]
    fn generated_webhook_secrets_use_only_allowed_characters_and_differ() {
        let first = generate_webhook_secret();
        let second = generate_webhook_secret();
        assert_eq!(first.len(), 48);
        assert!(first.bytes().all(|b| WEBHOOK_SECRET_ALPHABET.contains(&b)), "{first}");
        assert_ne!(first, second);
    }
}
