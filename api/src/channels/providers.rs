//! The provider clients of each creator's channels, built from the twin's `channels.toml` settings
//! with secrets resolved from the environment or opened by the server's key, and rebuilt when the creator changes. Serves the
//! webhook handlers (which verify with the resolved secrets) and the outbox (which sends).

use std::sync::Arc;

use dashmap::DashMap;
use twin_actors::{EngineError, EngineHandle};
use twin_channels::outbox::Providers;
use twin_channels::telegram::{TelegramClient, TelegramConfig};
use twin_channels::whatsapp::{WhatsAppClient, WhatsAppConfig};
use twin_channels::{ProviderClient, SendError};
use twin_engine::channel::ChannelKind;
use twin_engine::{CreatorId, TwinSnapshot};

use crate::secrets::SecretBox;

/// A creator's channels as far as they resolve: `Err` says why a configured channel cannot work
/// (an unset environment variable), so the webhook can answer 503 and the log can name it.
#[derive(Clone)]
pub struct CreatorChannels {
    pub telegram: Option<Result<Arc<TelegramClient>, String>>,
    pub whatsapp: Option<Result<Arc<WhatsAppClient>, String>>,
}

pub struct ChannelRegistry {
    engine: EngineHandle,
    http: reqwest::Client,
    telegram_api_base: String,
    whatsapp_api_base: String,
    secrets: Arc<SecretBox>,
    /// Per creator: the twin snapshot the clients were built from, and the clients.
    cache: DashMap<CreatorId, (Arc<TwinSnapshot>, Arc<CreatorChannels>)>,
}

impl ChannelRegistry {
    pub fn new(
        engine: EngineHandle,
        telegram_api_base: String,
        whatsapp_api_base: String,
        secrets: Arc<SecretBox>,
    ) -> Self {
        Self {
            engine,
            http: reqwest::Client::new(),
            telegram_api_base,
            whatsapp_api_base,
            secrets,
            cache: DashMap::new(),
        }
    }

    /// The creator's channels, loading the twin if needed.
    pub async fn channels(&self, creator: CreatorId) -> Result<Arc<CreatorChannels>, EngineError> {
        let twin = self.engine.twin(creator).await?;
        if let Some(cached) = self.cache.get(&creator)
            && Arc::ptr_eq(&cached.0, &twin)
        {
            return Ok(cached.1.clone());
        }
        let channels = Arc::new(self.build(&twin));
        self.cache.insert(creator, (twin, channels.clone()));
        Ok(channels)
    }

    fn build(&self, twin: &TwinSnapshot) -> CreatorChannels {
        let secrets = self.secrets.as_ref();
        let settings = &twin.profile.channels;
        let telegram = settings.telegram.as_ref().map(|telegram| {
            TelegramConfig::resolve(telegram, &self.telegram_api_base, secrets)
                .map(|config| Arc::new(TelegramClient::new(self.http.clone(), Arc::new(config))))
                .map_err(|e| format!("[telegram] of {}: {e}", twin.profile.slug))
        });
        let whatsapp = settings.whatsapp.as_ref().map(|whatsapp| {
            WhatsAppConfig::resolve(whatsapp, &self.whatsapp_api_base, secrets)
                .map(|config| Arc::new(WhatsAppClient::new(self.http.clone(), Arc::new(config))))
                .map_err(|e| format!("[whatsapp] of {}: {e}", twin.profile.slug))
        });
        let errors =
            [telegram.as_ref().and_then(|r| r.as_ref().err()), whatsapp.as_ref().and_then(|r| r.as_ref().err())];
        for error in errors.into_iter().flatten() {
            tracing::warn!(%error, "a channel of this creator cannot work");
        }
        CreatorChannels { telegram, whatsapp }
    }
}

#[async_trait::async_trait]
impl Providers for ChannelRegistry {
    async fn client(
        &self,
        creator: CreatorId,
        kind: ChannelKind,
    ) -> Result<Option<Arc<dyn ProviderClient>>, SendError> {
        let channels = match self.channels(creator).await {
            Ok(channels) => channels,
            // The creator was deleted: nothing can be sent for it any more.
            Err(EngineError::UnknownCreator(_)) => return Ok(None),
            Err(EngineError::Unavailable(cause)) => return Err(SendError::Transient(cause)),
        };
        let client: Option<Arc<dyn ProviderClient>> = match kind {
            ChannelKind::Telegram => channels.telegram.clone().and_then(Result::ok).map(|c| c as _),
            ChannelKind::WhatsApp => channels.whatsapp.clone().and_then(Result::ok).map(|c| c as _),
            ChannelKind::Web => None,
        };
        Ok(client)
    }
}
