//! Which channels a user wrote from, most recent first, and which still reach them. Kept in the
//! conversation's state: a reply goes out on the channel the user wrote on last, and a nudge to the
//! most recently active channel that still reaches them.

use serde::{Deserialize, Serialize};

use super::ChannelAddress;
use crate::nudge::ChannelWindow;
use crate::time::Timestamp;

/// At most this many channels are remembered per user; the least recent is forgotten.
pub const MAX_CONTACTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Reach {
    /// Most recently heard from first.
    pub contacts: Vec<Contact>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub address: ChannelAddress,
    /// When the user last wrote on this channel.
    pub last_inbound: Timestamp,
    /// False once the provider said the user blocked the twin (or the number is gone); true again
    /// when they write or unblock.
    pub reachable: bool,
}

impl Reach {
    /// The user wrote on `address` at `now`: it becomes their current channel and reaches them.
    pub fn heard_from(&mut self, address: &ChannelAddress, now: Timestamp) {
        self.contacts.retain(|c| c.address != *address);
        self.contacts.insert(0, Contact { address: address.clone(), last_inbound: now, reachable: true });
        self.contacts.truncate(MAX_CONTACTS);
    }

    /// The provider says the user can (not) be reached there. True when that changed anything.
    pub fn set_reachable(&mut self, address: &ChannelAddress, reachable: bool) -> bool {
        match self.contacts.iter_mut().find(|c| c.address == *address) {
            Some(contact) if contact.reachable != reachable => {
                contact.reachable = reachable;
                true
            }
            _ => false,
        }
    }

    /// Where what the twin says goes: the most recently active channel that still reaches the user.
    /// `None` for a user never heard from on any channel (a web user before any message, or tests).
    pub fn target(&self) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.reachable)
    }

    /// Every channel the user used has told us they cannot be reached there.
    pub fn unreachable(&self) -> bool {
        !self.contacts.is_empty() && self.target().is_none()
    }

    /// The customer-service window of the channel a nudge would go to, if it has one.
    pub fn window(&self) -> Option<ChannelWindow> {
        let target = self.target()?;
        let window_ms = target.address.kind.service_window_ms()?;
        Some(ChannelWindow { open_until: Some(target.last_inbound.plus_millis(window_ms)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelKind;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn replies_follow_the_channel_the_user_wrote_on_last() {
        let mut reach = Reach::default();
        let telegram = ChannelAddress::new(ChannelKind::Telegram, "42");
        reach.heard_from(&ChannelAddress::web(), at(1));
        reach.heard_from(&telegram, at(2));
        assert_eq!(reach.target().unwrap().address, telegram);
        reach.heard_from(&ChannelAddress::web(), at(3));
        assert_eq!(reach.target().unwrap().address, ChannelAddress::web());
        assert_eq!(reach.contacts.len(), 2);
    }

    #[test]
    fn a_blocked_channel_is_passed_over_until_the_user_writes_there_again() {
        let mut reach = Reach::default();
        let telegram = ChannelAddress::new(ChannelKind::Telegram, "42");
        let whatsapp = ChannelAddress::new(ChannelKind::WhatsApp, "4915");
        reach.heard_from(&whatsapp, at(1));
        reach.heard_from(&telegram, at(2));
        assert!(reach.set_reachable(&telegram, false));
        assert!(!reach.set_reachable(&telegram, false), "no change the second time");
        assert_eq!(reach.target().unwrap().address, whatsapp);
        assert!(reach.set_reachable(&whatsapp, false));
        assert!(reach.unreachable());
        reach.heard_from(&telegram, at(3));
        assert!(!reach.unreachable());
        assert_eq!(reach.target().unwrap().address, telegram);
    }

    #[test]
    fn only_whatsapp_has_a_window_and_it_closes_a_day_after_the_last_message() {
        let mut reach = Reach::default();
        reach.heard_from(&ChannelAddress::new(ChannelKind::Telegram, "1"), at(0));
        assert_eq!(reach.window(), None);
        reach.heard_from(&ChannelAddress::new(ChannelKind::WhatsApp, "2"), at(1000));
        let window = reach.window().unwrap();
        assert!(window.is_open(at(1000 + 24 * 3_600_000 - 1)));
        assert!(!window.is_open(at(1000 + 24 * 3_600_000)));
    }

    #[test]
    fn a_user_never_heard_from_is_not_unreachable() {
        assert!(!Reach::default().unreachable());
        assert!(Reach::default().target().is_none());
    }
}
