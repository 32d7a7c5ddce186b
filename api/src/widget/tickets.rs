//! Chat tickets: what a widget exchanges for one chat socket. A ticket is 256 random bits, valid
//! for a minute (the server's `widget_ticket_ttl`), redeemed once, and bound to a creator, an end
//! user and the page origin it was issued to. They live in Redis when `TWIN_REDIS_URL` is set (so
//! any node redeems what another issued) and in this process otherwise.
//!
//! The ticket's text is `t1.<creator>.<random>`: the creator part only says where to look (the
//! key carries the tenant like every tenant's Redis key, `twin:{creator}:ticket:<hash>`), the
//! random part is the secret. The store keys on its SHA-256, so the store never holds a ticket
//! that could be replayed from a copy of it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use twin_cluster::{LocalSingleUse, RedisSingleUse, SingleUseError, SingleUseStore};
use twin_engine::{CreatorId, UserId};
use uuid::Uuid;

const VERSION: &str = "t1";
const SECRET_BYTES: usize = 32;
/// The length of a ticket's text: `t1.` + 32 hex digits + `.` + 43 base64url characters.
const TICKET_LEN: usize = 3 + 32 + 1 + 43;

/// What a ticket lets its bearer do: open one chat socket as `user` of `creator`, from `origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub creator: CreatorId,
    pub user: UserId,
    /// The `Origin` the ticket was issued to, as the browser sent it.
    pub origin: String,
}

/// What the store holds under a ticket's key.
#[derive(Serialize, Deserialize)]
struct Stored {
    user: String,
    origin: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// The store (Redis) does not answer: the caller answers 503 and the client tries again.
    #[error(transparent)]
    Unavailable(#[from] SingleUseError),
}

/// Issues and redeems tickets.
pub struct Tickets {
    store: Arc<dyn SingleUseStore>,
    ttl: Duration,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tickets").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Tickets {
    /// In Redis when `redis_url` is given (it must answer at start), in this process otherwise.
    pub async fn connect(redis_url: Option<&str>, ttl: Duration) -> anyhow::Result<Self> {
        let store: Arc<dyn SingleUseStore> = match redis_url {
            Some(url) => Arc::new(RedisSingleUse::connect(url).await.context("cannot reach Redis (TWIN_REDIS_URL)")?),
            None => Arc::new(LocalSingleUse::default()),
        };
        Ok(Self::with(store, ttl))
    }

    pub fn with(store: Arc<dyn SingleUseStore>, ttl: Duration) -> Self {
        Self { store, ttl }
    }

    /// How long a ticket is valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new ticket for `ticket`'s creator, user and origin.
    pub async fn issue(&self, ticket: &Ticket) -> Result<String, TicketError> {
        let value = serde_json::json!({"user": ticket.user.as_str(), "origin": ticket.origin}).to_string();
        loop {
            let mut secret = [0u8; SECRET_BYTES];
            rand::rng().fill_bytes(&mut secret);
            let secret = URL_SAFE_NO_PAD.encode(secret);
            if self.store.put(&key(ticket.creator, &secret), &value, self.ttl).await? {
                return Ok(format!("{VERSION}.{}.{secret}", ticket.creator.as_uuid().simple()));
            }
            // Two equal 256-bit draws: never in practice; draw again rather than reuse a ticket.
        }
    }

    /// The ticket `text` names, removed in the same step; `None` when it is malformed, unknown,
    /// used already or expired (one answer for all: the caller gets a new ticket either way).
    pub async fn redeem(&self, text: &str) -> Result<Option<Ticket>, TicketError> {
        if text.len() != TICKET_LEN {
            return Ok(None);
        }
        let mut parts = text.split('.');
        let (Some(VERSION), Some(creator), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let Ok(creator) = Uuid::try_parse(creator).map(CreatorId) else {
            return Ok(None);
        };
        let Some(stored) = self.store.take(&key(creator, secret)).await? else {
            return Ok(None);
        };
        let Ok(Stored { user, origin }) = serde_json::from_str::<Stored>(&stored) else {
            tracing::warn!(%creator, "a stored ticket could not be read; refused");
            return Ok(None);
        };
        let Ok(user) = UserId::parse(&user) else {
            return Ok(None);
        };
        Ok(Some(Ticket { creator, user, origin }))
    }
}

/// The store key of a ticket: the tenant, and a hash of the secret part.
fn key(creator: CreatorId, secret: &str) -> String {
    format!("twin:{}:ticket:{}", creator.as_uuid(), hex::encode(digest(&SHA256, secret.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use twin_engine::Slug;

    fn tickets(ttl: Duration) -> Tickets {
        Tickets::with(Arc::new(LocalSingleUse::default()), ttl)
    }

    fn ticket() -> Ticket {
        Ticket {
            creator: Slug::parse("maya").unwrap_or_else(|e| panic!("{e}")).creator_id(),
            user: super::super::visitor::user_of(Uuid::new_v4()),
            origin: "https://maya.example".to_owned(),
        }
    }

    #[tokio::test]
    async fn a_ticket_is_redeemed_once_with_what_it_was_issued_for() {
        let tickets = tickets(Duration::from_secs(60));
        let issued = ticket();
        let text = tickets.issue(&issued).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text.len(), TICKET_LEN);
        assert_ne!(text, tickets.issue(&issued).await.unwrap_or_else(|e| panic!("{e}")), "each ticket is new");
        assert_eq!(tickets.redeem(&text).await.ok().flatten(), Some(issued));
        assert_eq!(tickets.redeem(&text).await.ok().flatten(), None, "used");
    }

    #[tokio::test]
    async fn a_ticket_names_its_creator_and_a_changed_creator_finds_nothing() {
        let tickets = tickets(Duration::from_secs(60));
        let text = tickets.issue(&ticket()).await.unwrap_or_else(|e| panic!("{e}"));
        let other = Slug::parse("other").unwrap_or_else(|e| panic!("{e}")).creator_id().as_uuid().simple().to_string();
        let moved = format!("t1.{other}.{}", &text[36..]);
        assert_eq!(moved.len(), TICKET_LEN);
        assert_eq!(tickets.redeem(&moved).await.ok().flatten(), None);
        assert!(tickets.redeem(&text).await.ok().flatten().is_some(), "the failed attempt did not burn it");
    }

    #[tokio::test]
    async fn malformed_tickets_are_unknown_tickets() {
        let tickets = tickets(Duration::from_secs(60));
        for bad in ["", "t1", "t1.x.y", &"x".repeat(TICKET_LEN), &format!("t2.{}", "a".repeat(TICKET_LEN - 3))] {
            assert_eq!(tickets.redeem(bad).await.ok().flatten(), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn an_expired_ticket_is_refused() {
        let tickets = tickets(Duration::from_millis(1));
        let text = tickets.issue(&ticket()).await.unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(tickets.redeem(&text).await.ok().flatten(), None);
    }
}
