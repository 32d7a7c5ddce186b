//! Telegram and WhatsApp in the server: the provider clients of each creator (`providers`), the
//! webhook inbox (`inbox`), channel identities and link codes (`identity`), and the wiring of the
//! outbox worker (`twin-channels`) into the engine. The HTTP handlers are in `routes::channels`.

pub mod identity;
pub mod inbox;
pub mod providers;

use std::sync::Arc;

use twin_actors::{ConversationKey, EngineHandle};
use twin_channels::outbox::Feedback;
use twin_engine::Event;
use twin_engine::channel::{ChannelAddress, OutboxEntry};
use twin_engine::ports::ChannelStore;

pub use inbox::Inbox;
pub use providers::ChannelRegistry;

/// Tells a conversation that its user blocked the twin on a channel (the outbox learnt it from a
/// refused send), so nudges stop going there.
pub struct OutboxFeedback {
    pub store: Arc<dyn ChannelStore>,
    pub engine: EngineHandle,
}

impl Feedback for OutboxFeedback {
    fn unreachable(&self, entry: &OutboxEntry, address: &ChannelAddress) {
        let (store, engine) = (self.store.clone(), self.engine.clone());
        let (creator, address) = (entry.creator, address.clone());
        tokio::spawn(async move {
            // In a private chat the chat id is the person's id, which is what identities are keyed by.
            let user = match store.identity(creator, address.kind, &address.chat).await {
                Ok(Some(user)) => user,
                Ok(None) => match identity::default_user(address.kind, &address.chat) {
                    Ok(user) => user,
                    Err(_) => return,
                },
                Err(error) => {
                    tracing::warn!(%creator, %error, "cannot find who blocked the twin");
                    return;
                }
            };
            let key = ConversationKey { creator, user };
            if let Err(error) = engine.route(&key, Event::Reachability { address, reachable: false }).await {
                tracing::warn!(%creator, %error, "cannot tell a conversation its user is unreachable");
            }
        });
    }
}
