//! The conversation registry: at most one actor per conversation, and the hand-over that keeps an
//! event from being lost while an actor starts, passivates or restarts.
//!
//! A slot is `Live` (events are cast straight to the actor), `Stopping` (the actor asked to
//! passivate; events wait in the slot, in order, for whoever comes next) or `Held` (an actor is
//! being started; events wait for it) or `Erasing` (the conversation's data is being erased: its
//! actor was stopped and no new one starts until the erasure ends; events wait, in order, for the
//! fresh conversation that follows). Every transition happens under the map's shard lock, and
//! casting is non-blocking, so an event is either in the old actor's mailbox before it was told to
//! stop, or held for the next one: never both, never neither.

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use ractor::{ActorId, ActorRef, MessagingErr};
use twin_engine::ConversationId;

use crate::conversation::ConversationMsg;

/// Events held for one conversation while its actor changes; beyond this the sender is refused.
pub(crate) const MAX_HELD: usize = 1_000;

enum Slot {
    Live(ActorRef<ConversationMsg>),
    Stopping { actor: ActorRef<ConversationMsg>, held: Vec<ConversationMsg> },
    Held(Vec<ConversationMsg>),
    Erasing(Vec<ConversationMsg>),
}

/// What [`Registry::fence`] found.
pub(crate) enum Fence {
    /// No actor: the slot is fenced.
    Idle,
    /// The slot is fenced; this actor (live or passivating) must be stopped before the erasure.
    Actor(ActorRef<ConversationMsg>),
    /// An actor is being started or restarted, or another erasure runs: try again shortly.
    Busy,
}

pub(crate) enum Offer {
    /// In the live actor's mailbox.
    Delivered,
    /// Waiting for the actor that is starting or stopping.
    Held,
    /// Nobody owns the conversation: the caller must spawn an actor (the event is held).
    MustSpawn,
    /// Too many events are waiting for this conversation.
    Refused,
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
                Slot::Stopping { held, .. } | Slot::Held(held) | Slot::Erasing(held) if held.len() >= MAX_HELD => {
                    Offer::Refused
                }
                Slot::Stopping { held, .. } | Slot::Held(held) | Slot::Erasing(held) => {
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
    /// If it is already dead, the slot stays held and the events that could not be handed over
    /// stay in it, in order; the caller starts another actor or gives up.
    pub(crate) fn go_live(&self, id: ConversationId, actor: ActorRef<ConversationMsg>) -> bool {
        let mut slot = self.slots.entry(id).or_insert_with(|| Slot::Held(Vec::new()));
        let held = match &mut *slot {
            Slot::Held(held) => std::mem::take(held),
            // Only the spawner of a held slot calls go_live; anything else is left alone.
            Slot::Live(_) | Slot::Stopping { .. } | Slot::Erasing(_) => return false,
        };
        let mut undelivered = Vec::new();
        for message in held {
            if !undelivered.is_empty() {
                undelivered.push(message);
                continue;
            }
            if let Err(MessagingErr::SendErr(message)) = actor.cast(message) {
                undelivered.push(message);
            }
        }
        if undelivered.is_empty() {
            *slot = Slot::Live(actor);
            true
        } else {
            *slot = Slot::Held(undelivered);
            false
        }
    }

    /// An idle actor asks to stop. Granted only if it is still the live actor of its conversation;
    /// from then on events are held until [`Registry::finish_stop`] or [`Registry::cancel_stop`].
    pub(crate) fn begin_stop(&self, id: ConversationId, actor: &ActorRef<ConversationMsg>) -> bool {
        match self.slots.get_mut(&id) {
            Some(mut slot) if matches!(&*slot, Slot::Live(a) if a.get_id() == actor.get_id()) => {
                *slot = Slot::Stopping { actor: actor.clone(), held: Vec::new() };
                true
            }
            _ => false,
        }
    }

    /// The actor found work after all and stays: it gets the events held meanwhile.
    pub(crate) fn cancel_stop(&self, id: ConversationId, actor: &ActorRef<ConversationMsg>) {
        let Some(mut slot) = self.slots.get_mut(&id) else { return };
        if let Slot::Stopping { actor: stopping, held } = &mut *slot
            && stopping.get_id() == actor.get_id()
        {
            for message in held.drain(..) {
                // The actor is running this very call, so its mailbox is open.
                let _ = actor.cast(message);
            }
            *slot = Slot::Live(actor.clone());
        }
    }

    /// The stopping actor has stopped. Returns true when events arrived meanwhile: the caller
    /// spawns a successor (the slot stays held until it is live).
    pub(crate) fn finish_stop(&self, id: ConversationId, actor: ActorId) -> bool {
        let Entry::Occupied(mut slot) = self.slots.entry(id) else { return false };
        let held = match slot.get_mut() {
            Slot::Stopping { actor: stopping, held } if stopping.get_id() == actor => std::mem::take(held),
            _ => return false,
        };
        if held.is_empty() {
            slot.remove();
            false
        } else {
            slot.insert(Slot::Held(held));
            true
        }
    }

    /// The actor failed. Returns true when it owned the slot (live or stopping): the caller
    /// restarts it; events are held meanwhile, including those held during a passivation.
    pub(crate) fn crashed(&self, id: ConversationId, actor: ActorId) -> bool {
        let Some(mut slot) = self.slots.get_mut(&id) else { return false };
        let held = match &mut *slot {
            Slot::Live(a) if a.get_id() == actor => Vec::new(),
            Slot::Stopping { actor: a, held } if a.get_id() == actor => std::mem::take(held),
            _ => return false,
        };
        *slot = Slot::Held(held);
        true
    }

    /// No actor can be started (the creator is gone, the store is down, shutdown): forget a held
    /// slot and give back its events so their senders can be told.
    pub(crate) fn abandon(&self, id: ConversationId) -> Vec<ConversationMsg> {
        match self.slots.remove_if(&id, |_, slot| matches!(slot, Slot::Held(_))) {
            Some((_, Slot::Held(held))) => held,
            _ => Vec::new(),
        }
    }

    /// Fences the conversation for an erasure: from now on its events are held and no actor
    /// starts for it until [`Registry::unfence`]. A passivating actor's held events stay held; the
    /// actor it returns must be stopped by the caller (its late `finish_stop` or `crashed` finds
    /// the slot fenced and changes nothing, so no successor is started).
    pub(crate) fn fence(&self, id: ConversationId) -> Fence {
        match self.slots.entry(id) {
            Entry::Vacant(slot) => {
                slot.insert(Slot::Erasing(Vec::new()));
                Fence::Idle
            }
            Entry::Occupied(mut slot) => {
                let (actor, held) = match slot.get_mut() {
                    Slot::Live(actor) => (actor.clone(), Vec::new()),
                    Slot::Stopping { actor, held } => (actor.clone(), std::mem::take(held)),
                    Slot::Held(_) | Slot::Erasing(_) => return Fence::Busy,
                };
                slot.insert(Slot::Erasing(held));
                Fence::Actor(actor)
            }
        }
    }

    /// The erasure is over. Returns true when events arrived meanwhile: the caller spawns an actor
    /// for them (the slot stays held until it is live); it starts from the store, as new.
    pub(crate) fn unfence(&self, id: ConversationId) -> bool {
        let Entry::Occupied(mut slot) = self.slots.entry(id) else { return false };
        let held = match slot.get_mut() {
            Slot::Erasing(held) => std::mem::take(held),
            _ => return false,
        };
        if held.is_empty() {
            slot.remove();
            false
        } else {
            slot.insert(Slot::Held(held));
            true
        }
    }

    pub(crate) fn live_actors(&self) -> Vec<ActorRef<ConversationMsg>> {
        self.slots
            .iter()
            .filter_map(|slot| match slot.value() {
                Slot::Live(actor) => Some(actor.clone()),
                Slot::Stopping { .. } | Slot::Held(_) | Slot::Erasing(_) => None,
            })
            .collect()
    }

    /// Whether anything of this conversation is here: an actor (live, starting, stopping) or an
    /// erasure. Its events are then routed here, whoever owns it in a cluster.
    pub(crate) fn has_slot(&self, id: ConversationId) -> bool {
        self.slots.contains_key(&id)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ractor::{Actor, ActorProcessingErr};
    use uuid::Uuid;

    use super::*;

    /// Counts what it receives; stands in for a conversation actor.
    struct Counter;

    impl Actor for Counter {
        type Msg = ConversationMsg;
        type State = Arc<AtomicUsize>;
        type Arguments = Arc<AtomicUsize>;

        async fn pre_start(
            &self,
            _myself: ActorRef<ConversationMsg>,
            count: Arc<AtomicUsize>,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(count)
        }

        async fn handle(
            &self,
            _myself: ActorRef<ConversationMsg>,
            _message: ConversationMsg,
            count: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    async fn counter() -> (ActorRef<ConversationMsg>, Arc<AtomicUsize>) {
        let count = Arc::new(AtomicUsize::new(0));
        let (actor, _) = Actor::spawn(None, Counter, count.clone()).await.unwrap();
        (actor, count)
    }

    async fn received(count: &AtomicUsize, expected: usize) {
        for _ in 0..500 {
            if count.load(Ordering::SeqCst) == expected {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        panic!("received {} messages, expected {expected}", count.load(Ordering::SeqCst));
    }

    const ID: ConversationId = ConversationId(Uuid::from_u128(9));

    #[tokio::test]
    async fn events_held_while_starting_reach_the_new_actor_in_order() {
        let registry = Registry::default();
        assert!(matches!(registry.offer(ID, ConversationMsg::IdleCheck), Offer::MustSpawn));
        assert!(matches!(registry.offer(ID, ConversationMsg::IdleCheck), Offer::Held));
        let (actor, count) = counter().await;
        assert!(registry.go_live(ID, actor));
        received(&count, 2).await;
        assert!(matches!(registry.offer(ID, ConversationMsg::IdleCheck), Offer::Delivered));
        received(&count, 3).await;
    }

    #[tokio::test]
    async fn a_crash_during_passivation_hands_the_held_events_to_the_restart() {
        let registry = Registry::default();
        registry.offer(ID, ConversationMsg::IdleCheck);
        let (old, _) = counter().await;
        registry.go_live(ID, old.clone());
        assert!(registry.begin_stop(ID, &old));
        assert!(matches!(registry.offer(ID, ConversationMsg::IdleCheck), Offer::Held));
        assert!(registry.crashed(ID, old.get_id()), "the stopping actor still owns the slot");
        assert!(!registry.finish_stop(ID, old.get_id()), "a crashed actor's late stop changes nothing");
        let (new, count) = counter().await;
        assert!(registry.go_live(ID, new));
        received(&count, 1).await;
    }

    #[tokio::test]
    async fn a_stopped_actor_with_events_waiting_asks_for_a_successor() {
        let registry = Registry::default();
        registry.offer(ID, ConversationMsg::IdleCheck);
        let (old, _) = counter().await;
        registry.go_live(ID, old.clone());
        assert!(registry.begin_stop(ID, &old));
        assert!(!registry.finish_stop(ID, ractor::ActorId::Local(u64::MAX)), "only the stopping actor finishes");
        registry.offer(ID, ConversationMsg::IdleCheck);
        assert!(registry.finish_stop(ID, old.get_id()));
        assert_eq!(registry.abandon(ID).len(), 1, "the event waits in a held slot");
    }

    #[tokio::test]
    async fn a_fenced_conversation_holds_its_events_and_starts_no_actor_until_unfenced() {
        let registry = Registry::default();
        registry.offer(ID, ConversationMsg::IdleCheck);
        let (old, _) = counter().await;
        registry.go_live(ID, old.clone());
        assert!(matches!(registry.fence(ID), Fence::Actor(a) if a.get_id() == old.get_id()));
        assert!(matches!(registry.offer(ID, ConversationMsg::IdleCheck), Offer::Held), "held, no spawn");
        assert!(matches!(registry.fence(ID), Fence::Busy), "one erasure at a time");
        assert!(!registry.crashed(ID, old.get_id()), "the stopped actor's exit restarts nothing");
        assert!(!registry.finish_stop(ID, old.get_id()));
        assert!(!registry.begin_stop(ID, &old));
        assert!(registry.actor(ID).is_none());
        assert!(registry.unfence(ID), "an event waits: a fresh actor must take it");
        let (new, count) = counter().await;
        assert!(registry.go_live(ID, new));
        received(&count, 1).await;
    }

    #[tokio::test]
    async fn a_passivating_actor_is_fenced_with_its_held_events_and_a_starting_one_is_waited_for() {
        let registry = Registry::default();
        registry.offer(ID, ConversationMsg::IdleCheck);
        assert!(matches!(registry.fence(ID), Fence::Busy), "an actor is starting");
        let (old, _) = counter().await;
        registry.go_live(ID, old.clone());
        assert!(registry.begin_stop(ID, &old));
        registry.offer(ID, ConversationMsg::IdleCheck);
        assert!(matches!(registry.fence(ID), Fence::Actor(_)));
        assert!(!registry.finish_stop(ID, old.get_id()), "no successor while fenced");
        assert!(registry.unfence(ID), "the event held during the passivation still waits");
        assert_eq!(registry.abandon(ID).len(), 1);
        assert!(matches!(registry.fence(ID), Fence::Idle), "nobody owns it now");
        assert!(!registry.unfence(ID), "nothing waited");
        assert!(matches!(registry.offer(ID, ConversationMsg::IdleCheck), Offer::MustSpawn));
    }

    #[tokio::test]
    async fn a_new_actor_that_is_already_dead_keeps_the_events_held() {
        let registry = Registry::default();
        registry.offer(ID, ConversationMsg::IdleCheck);
        let (dead, _) = counter().await;
        dead.stop_and_wait(None, None).await.unwrap();
        assert!(!registry.go_live(ID, dead));
        assert_eq!(registry.abandon(ID).len(), 1);
    }
}
