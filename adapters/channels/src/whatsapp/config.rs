//! One creator's WhatsApp business number as the adapter uses it: the `[whatsapp]` settings of
//! `channels.toml` with their secrets resolved, plus the Graph API base (a fake one in tests).

use twin_engine::channel::WhatsAppSettings;

use crate::secret::{Secret, SecretError, SecretSource};

/// The Graph API version the wire types and fixtures were written against.
pub const DEFAULT_API_BASE: &str = "https://graph.facebook.com/v21.0";
/// Meta signs every webhook POST with the app secret in this header.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The longest `text.body` the Cloud API accepts.
pub const MAX_TEXT_CHARS: usize = 4096;

#[derive(Debug, Clone)]
pub struct WhatsAppConfig {
    /// Without a trailing `/`: calls go to `{api_base}/{phone_number_id}/messages`.
    pub api_base: String,
    /// The business number's Graph id (not the phone number itself); webhooks name it in
    /// `metadata.phone_number_id`.
    pub phone_number_id: String,
    pub access_token: Secret,
    pub app_secret: Secret,
    pub verify_token: Secret,
}

impl WhatsAppConfig {
    /// Resolves the settings' secrets through `secrets` (`env:NAME` references, sealed values) and fixes the API base.
    pub fn resolve(
        settings: &WhatsAppSettings,
        api_base: &str,
        secrets: &dyn SecretSource,
    ) -> Result<Self, SecretError> {
        Ok(Self {
            api_base: api_base.trim_end_matches('/').to_owned(),
            phone_number_id: settings.phone_number_id.clone(),
            access_token: Secret::resolve(&settings.access_token, secrets)?,
            app_secret: Secret::resolve(&settings.app_secret, secrets)?,
            verify_token: Secret::resolve(&settings.verify_token, secrets)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin_engine::channel::SecretRef;

    fn settings() -> WhatsAppSettings {
        WhatsAppSettings {
            phone_number_id: "110293847561029".into(),
            access_token: SecretRef::new("env:WA_TOKEN"),
            app_secret: SecretRef::new("app-secret-literal"),
            verify_token: SecretRef::new("env:WA_VERIFY"),
            nudge_template: None,
        }
    }

    #[test]
    fn settings_resolve_their_secrets_and_the_api_base_loses_its_trailing_slash() {
        let env = |name: &str| match name {
            "WA_TOKEN" => Some("EAAG-s3cret".to_owned()),
            "WA_VERIFY" => Some("vt".to_owned()),
            _ => None,
        };
        let config = WhatsAppConfig::resolve(&settings(), "http://127.0.0.1:9/v21.0/", &env).unwrap();
        assert_eq!(config.api_base, "http://127.0.0.1:9/v21.0");
        assert_eq!(config.phone_number_id, "110293847561029");
        assert_eq!(config.access_token.expose(), "EAAG-s3cret");
        assert_eq!(config.app_secret.expose(), "app-secret-literal");
        assert!(config.verify_token.matches(b"vt"));
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn a_missing_environment_variable_is_named_in_the_error() {
        let env = |name: &str| (name == "WA_TOKEN").then(|| "tok".to_owned());
        let error = WhatsAppConfig::resolve(&settings(), DEFAULT_API_BASE, &env).unwrap_err();
        assert_eq!(error, SecretError::MissingEnv("WA_VERIFY".into()));
    }
}
