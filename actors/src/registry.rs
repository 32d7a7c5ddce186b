//! The conversation registry: at most one actor per conversation, and the hand-over that keeps an
//! event from being lost while an actor starts, passivates or restarts.
//!
//! A slot is either `Live` (events are cast straight to the actor) or `Held` (an actor is starting
//! or stopping; events wait in the slot, in order, and go to the next actor). Every transition
//! happens under the map's shard lock, and casting is non-blocking, so an event is either in the
//! old actor's mailbox before it was told to stop, or held for the new one — never both, never
//! neither.

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use ractor::{ActorId, ActorRef, MessagingErr};
use twin_engine::ConversationId;

use crate::conversation::ConversationMsg;

/// Events held for one conversation while its actor changes; beyond this the sender is refused.
pub(crate) const MAX_HELD: usize = 1_000;

enum Slot {
    Live(ActorRef<ConversationMsg>),
    Held(Vec<ConversationMsg>),
}

pub(crate) enum Offer {
    /// In the live actor's mailbox.
    Delivered,
    /// Waiting for the actor that is starting or stopping.
    Held,
    /// Nobody owns the conversation: the caller must spawn an actor (the event is held).
    MustSpawn,
    /// Too many events are waiting for this conversation.
    Refused(ConversationMsg),
}

#[derive(Default)]
pub(crate) struct Registry {
    slots: DashMap<ConversationId, Slot>,
}

impl Registry {
    pub(crate) fn offer(&self, id: ConversationId, message: ConversationMsg) -> Offer {
        match self.slots.entry(id) {
            Entry::Occupied(mut slot) => match slot.get_mut() {
                Slot::Live(actor) => match actor.cast(message) {
                    Ok(()) => Offer::Delivered,
                    // The actor died without a hand-over (a crash): whoever sees that first spawns.
                    Err(MessagingErr::SendErr(message)) => {
                        slot.insert(Slot::Held(vec![message]));
                        Offer::MustSpawn
                    }
                    Err(_) => {
                        slot.insert(Slot::Held(Vec::new()));
                        Offer::MustSpawn
                    }
                },
                Slot::Held(held) if held.len() >= MAX_HELD => Offer::Refused(message),
                Slot::Held(held) => {
                    held.push(message);
                    Offer::Held
                }
            },
            Entry::Vacant(slot) => {
                slot.insert(Slot::Held(vec![message]));
                Offer::MustSpawn
            }
        }
    }

    /// The new actor is running: hand it the held events, in order, and route to it from now on.
    pub(crate) fn go_live(&self, id: ConversationId, actor: ActorRef<ConversationMsg>) {
        let mut slot = self.slots.entry(id).or_insert_with(|| Slot::Held(Vec::new()));
        if let Slot::Held(held) = &mut *slot {
            for message in held.drain(..) {
                // A fresh actor's mailbox is open; if it already died, its supervisor restarts it.
                let _ = actor.cast(message);
            }
        }
        *slot = Slot::Live(actor);
    }

    /// An idle actor asks to stop. Granted only if it is still the live actor of its conversation;
    /// from then on events are held until [`Registry::finish_stop`] or [`Registry::cancel_stop`].
    pub(crate) fn begin_stop(&self, id: ConversationId, actor: ActorId) -> bool {
        match self.slots.get_mut(&id) {
            Some(mut slot) if matches!(&*slot, Slot::Live(a) if a.get_id() == actor) => {
                *slot = Slot::Held(Vec::new());
                true
            }
            _ => false,
        }
    }

    /// The actor found work after all and stays.
    pub(crate) fn cancel_stop(&self, id: ConversationId, actor: ActorRef<ConversationMsg>) {
        self.go_live(id, actor);
    }

    /// The actor has stopped. Returns true when events arrived meanwhile: the caller spawns a
    /// successor (the slot stays held until it is live).
    pub(crate) fn finish_stop(&self, id: ConversationId) -> bool {
        let mut must_spawn = false;
        self.slots.remove_if(&id, |_, slot| match slot {
            Slot::Held(held) => {
                must_spawn = !held.is_empty();
                held.is_empty()
            }
            Slot::Live(_) => false,
        });
        must_spawn
    }

    /// The actor crashed. Returns true when it was the live actor: the caller restarts it (events
    /// are held meanwhile).
    pub(crate) fn crashed(&self, id: ConversationId, actor: ActorId) -> bool {
        match self.slots.get_mut(&id) {
            Some(mut slot) if matches!(&*slot, Slot::Live(a) if a.get_id() == actor) => {
                *slot = Slot::Held(Vec::new());
                true
            }
            _ => false,
        }
    }

    /// No actor can be started (the creator is gone, the store is down): forget the slot and give
    /// back the held events so their senders can be told.
    pub(crate) fn abandon(&self, id: ConversationId) -> Vec<ConversationMsg> {
        match self.slots.remove(&id) {
            Some((_, Slot::Held(held))) => held,
            Some((id, live @ Slot::Live(_))) => {
                self.slots.insert(id, live);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    pub(crate) fn live_actors(&self) -> Vec<ActorRef<ConversationMsg>> {
        self.slots
            .iter()
            .filter_map(|slot| match slot.value() {
                Slot::Live(actor) => Some(actor.clone()),
                Slot::Held(_) => None,
            })
            .collect()
    }

    pub(crate) fn live_count(&self) -> usize {
        self.slots.iter().filter(|slot| matches!(slot.value(), Slot::Live(_))).count()
    }

    pub(crate) fn actor(&self, id: ConversationId) -> Option<ActorRef<ConversationMsg>> {
        match self.slots.get(&id).as_deref() {
            Some(Slot::Live(actor)) => Some(actor.clone()),
            _ => None,
        }
    }
}
