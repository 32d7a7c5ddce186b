//! The end-user web widget (docs/WIDGET.md): the script itself (`api/web/widget.js`, served at
//! `/widget.js`), the visitor tokens that keep a browser the same end user, the single-use tickets
//! a page exchanges for a chat socket; both go through the origin checks of `crate::origin`. The HTTP side is in
//! `routes/widget.rs`; the socket side (`?ticket=`) in `routes/chat.rs`.

pub mod tickets;
pub mod visitor;

use std::time::Duration;

use crate::secrets::SecretBox;
use crate::settings::Settings;

pub use tickets::{Ticket, TicketError, Tickets};
pub use visitor::VisitorKey;

/// The widget script, embedded in the binary (plain JavaScript, no build step).
pub const SCRIPT: &str = include_str!("../web/widget.js");

/// What the widget routes share.
#[derive(Debug)]
pub struct Widget {
    pub visitors: VisitorKey,
    pub tickets: Tickets,
    /// `TWIN_PUBLIC_URL` without a trailing slash: where embed snippets load the script from.
    pub public_url: String,
}

impl Widget {
    pub async fn from_settings(settings: &Settings, secrets: &SecretBox) -> anyhow::Result<Self> {
        let redis = settings.redis_url.as_ref().map(|u| u.expose());
        Ok(Self {
            visitors: VisitorKey::new(&secrets.subkey(visitor::KEY_PURPOSE)),
            tickets: Tickets::connect(redis, settings.widget_ticket_ttl).await?,
            public_url: settings.public_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The URL of the script.
    pub fn script_url(&self) -> String {
        format!("{}/widget.js", self.public_url)
    }

    /// The tag a creator pastes into their pages.
    pub fn snippet(&self, slug: &str) -> String {
        format!(r#"<script src="{}" data-creator="{slug}" async></script>"#, html_attribute(&self.script_url()))
    }

    /// A ticket's lifetime in whole seconds, rounded up (what `expires_in` says).
    pub fn ticket_seconds(&self) -> u64 {
        let ttl: Duration = self.tickets.ttl();
        ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0)
    }
}

/// `text` safe inside a double-quoted HTML attribute (the public URL comes from configuration; a
/// slug is `[a-z0-9-]` and needs nothing).
fn html_attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snippet_loads_the_script_from_the_public_url() {
        let widget = Widget {
            visitors: VisitorKey::new(&[0; 32]),
            tickets: Tickets::with(
                std::sync::Arc::new(twin_cluster::LocalSingleUse::default()),
                Duration::from_secs(60),
            ),
            public_url: "https://twin.example".to_owned(),
        };
        assert_eq!(widget.script_url(), "https://twin.example/widget.js");
        assert_eq!(
            widget.snippet("maya"),
            r#"<script src="https://twin.example/widget.js" data-creator="maya" async></script>"#
        );
        assert_eq!(widget.ticket_seconds(), 60);
    }
}
