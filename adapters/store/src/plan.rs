//! Turns a commit slice into one batch per tenant, checking each conversation's version chain
//! before anything is written. Both backends write these batches.
//!
//! Before anything is written, each tenant's ownership fences are checked (`Record::Fence`): one
//! whose epoch is not the conversation's refuses the whole commit.
//!
//! Inside a tenant's batch the backends write, in this order: created conversations, updated
//! conversations, messages, outbox entries, scheduled nudges, settled nudges, step entries. So a conversation
//! committed in the same slice as its first messages and nudges exists before the rows that
//! reference it, an outbox entry follows the message it sends, and a nudge scheduled and settled
//! in one slice ends settled, whatever the order of the records.

use std::collections::{HashMap, HashSet};

use twin_engine::channel::OutboxEntry;
use twin_engine::ports::{ConversationHeader, NudgeOutcome, Record, ScheduledNudge, StoreError};
use twin_engine::{ConversationId, CreatorId, Message, NudgeId, ProgramId, StepId, Timestamp};

/// One tenant's share of a commit, written after the tenant is set.
pub(crate) struct TenantBatch<'a> {
    pub creator: CreatorId,
    /// Conversations this slice creates, at the last version the slice gives them.
    pub created: Vec<&'a ConversationHeader>,
    /// Conversations this slice moves forward: `(header at its last version, stored version expected)`.
    pub updated: Vec<(&'a ConversationHeader, u64)>,
    /// Messages in slice order; inserted after the conversations they belong to.
    pub messages: Vec<&'a Message>,
    /// Nudges to insert as pending, each id once (the first record of it), after the conversations.
    pub scheduled: Vec<&'a ScheduledNudge>,
    /// Nudges to settle, each id once with the outcome of its first record (applied in order, a
    /// later one would find the nudge no longer pending); written after `scheduled`.
    pub settled: Vec<(NudgeId, NudgeOutcome)>,
    /// Outbox entries to insert as pending, after the messages they send.
    pub outbox: Vec<&'a OutboxEntry>,
    /// Webhook inbox rows to mark processed.
    pub inbox_done: Vec<i64>,
    /// Program steps entered, in slice order; inserted after the conversations they belong to.
    pub steps_entered: Vec<StepEntry<'a>>,
    /// Ownership fences `(conversation, epoch)` in slice order, checked before anything is written.
    pub fences: Vec<(ConversationId, u64)>,
}

/// A `Record::StepEntered` borrowed from the slice.
pub(crate) struct StepEntry<'a> {
    pub conversation: ConversationId,
    pub program: &'a ProgramId,
    pub step: &'a StepId,
    pub at: Timestamp,
}

impl TenantBatch<'_> {
    /// The settled nudges grouped by outcome (in outcome order), for backends that settle with one
    /// statement per outcome.
    pub(crate) fn settled_by_outcome(&self) -> Vec<(NudgeOutcome, Vec<NudgeId>)> {
        let mut groups: Vec<(NudgeOutcome, Vec<NudgeId>)> = Vec::new();
        for &(id, outcome) in &self.settled {
            match groups.iter_mut().find(|(o, _)| *o == outcome) {
                Some((_, ids)) => ids.push(id),
                None => groups.push((outcome, vec![id])),
            }
        }
        groups
    }
}

/// A conversation's net change in the slice: consecutive versions of one conversation collapse
/// into one step from `expected` (0: not stored yet) to `header.version`.
struct Step<'a> {
    header: &'a ConversationHeader,
    expected: u64,
}

struct Tenant<'a> {
    creator: CreatorId,
    steps: Vec<Step<'a>>,
    messages: Vec<&'a Message>,
    scheduled: Vec<&'a ScheduledNudge>,
    settled: Vec<(NudgeId, NudgeOutcome)>,
    outbox: Vec<&'a OutboxEntry>,
    inbox_done: Vec<i64>,
    steps_entered: Vec<StepEntry<'a>>,
    fences: Vec<(ConversationId, u64)>,
}

/// Groups the records by creator (in order of first appearance). A conversation that appears
/// more than once must carry consecutive versions, as if each record were applied in order;
/// otherwise the slice is refused as a conflict before anything is written.
pub(crate) fn plan(records: &[Record]) -> Result<Vec<TenantBatch<'_>>, StoreError> {
    let mut tenants: Vec<Tenant<'_>> = Vec::new();
    let mut tenant_index: HashMap<CreatorId, usize> = HashMap::new();
    let mut step_index: HashMap<(CreatorId, ConversationId), usize> = HashMap::new();
    // Nudge ids are unique across tenants (a primary key), so one set serves the whole slice.
    let mut scheduled_ids: HashSet<NudgeId> = HashSet::new();
    let mut settled_ids: HashSet<NudgeId> = HashSet::new();
    for record in records {
        let creator = record.creator();
        let t = *tenant_index.entry(creator).or_insert_with(|| {
            tenants.push(Tenant {
                creator,
                steps: Vec::new(),
                messages: Vec::new(),
                scheduled: Vec::new(),
                settled: Vec::new(),
                outbox: Vec::new(),
                inbox_done: Vec::new(),
                steps_entered: Vec::new(),
                fences: Vec::new(),
            });
            tenants.len() - 1
        });
        let tenant = &mut tenants[t];
        match record {
            Record::Message(message) => tenant.messages.push(message),
            Record::Outbox(entry) => tenant.outbox.push(entry),
            Record::InboxDone { id, .. } => tenant.inbox_done.push(*id),
            Record::Fence { conversation, epoch, .. } => tenant.fences.push((*conversation, *epoch)),
            Record::StepEntered { conversation, program, step, at, .. } => {
                tenant.steps_entered.push(StepEntry { conversation: *conversation, program, step, at: *at })
            }
            Record::NudgeScheduled(nudge) => {
                if scheduled_ids.insert(nudge.id) {
                    tenant.scheduled.push(nudge);
                }
            }
            Record::NudgeSettled { id, outcome, .. } => {
                if settled_ids.insert(*id) {
                    tenant.settled.push((*id, *outcome));
                }
            }
            Record::Conversation(header) => {
                if header.version == 0 {
                    return Err(StoreError::Corrupt(format!("conversation {} written at version 0", header.id)));
                }
                match step_index.get(&(creator, header.id)) {
                    None => {
                        step_index.insert((creator, header.id), tenant.steps.len());
                        tenant.steps.push(Step { header, expected: header.version - 1 });
                    }
                    Some(&s) => {
                        let step = &mut tenant.steps[s];
                        if header.version != step.header.version + 1 {
                            return Err(StoreError::Conflict { conversation: header.id, expected: header.version - 1 });
                        }
                        step.header = header;
                    }
                }
            }
        }
    }
    Ok(tenants
        .into_iter()
        .map(|tenant| {
            let (created, updated): (Vec<_>, Vec<_>) = tenant.steps.into_iter().partition(|s| s.expected == 0);
            TenantBatch {
                creator: tenant.creator,
                created: created.into_iter().map(|s| s.header).collect(),
                updated: updated.into_iter().map(|s| (s.header, s.expected)).collect(),
                messages: tenant.messages,
                scheduled: tenant.scheduled,
                settled: tenant.settled,
                outbox: tenant.outbox,
                inbox_done: tenant.inbox_done,
                steps_entered: tenant.steps_entered,
                fences: tenant.fences,
            }
        })
        .collect())
}

/// The first fence whose epoch is not the stored one (`stored`: conversation and epoch of the rows
/// found; a conversation with no row has no owner, so its fence fails too), as the error that
/// refuses the commit.
pub(crate) fn first_fenced(fences: &[(ConversationId, u64)], stored: &[(uuid::Uuid, i64)]) -> Option<StoreError> {
    let stored: HashMap<uuid::Uuid, i64> = stored.iter().copied().collect();
    fences
        .iter()
        .find(|(conversation, epoch)| {
            stored.get(&conversation.0).is_none_or(|stored| u64::try_from(*stored).ok() != Some(*epoch))
        })
        .map(|&(conversation, epoch)| StoreError::Fenced { conversation, epoch })
}

/// The first of `wanted` (in order) that the database did not return: a row skipped by
/// `ON CONFLICT DO NOTHING`. Counted, so a key given twice and returned once is found too.
pub(crate) fn first_missing<K: Eq + std::hash::Hash + Copy>(wanted: impl Iterator<Item = K>, got: &[K]) -> Option<K> {
    let mut returned: HashMap<K, usize> = HashMap::new();
    for key in got {
        *returned.entry(*key).or_default() += 1;
    }
    wanted.into_iter().find(|key| match returned.get_mut(key) {
        Some(n) if *n > 0 => {
            *n -= 1;
            false
        }
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use twin_engine::{Slug, Timestamp, UserId};
    use uuid::Uuid;

    use super::*;

    fn header(creator: CreatorId, user: &str, version: u64) -> ConversationHeader {
        let user = UserId::parse(user).unwrap();
        ConversationHeader {
            id: ConversationId::of(creator, &user),
            creator,
            user,
            version,
            created_at: Timestamp::from_millis(1),
            state: Default::default(),
        }
    }

    fn nudge(creator: CreatorId, n: u64) -> ScheduledNudge {
        let user = UserId::parse("u").unwrap();
        let conversation = ConversationId::of(creator, &user);
        ScheduledNudge {
            id: NudgeId::of(conversation, n),
            creator,
            conversation,
            user,
            due_at: Timestamp::from_millis(9),
        }
    }

    #[test]
    fn records_are_grouped_by_tenant_in_order_of_appearance() {
        let a = Slug::parse("a").unwrap().creator_id();
        let b = Slug::parse("b").unwrap().creator_id();
        let records = [
            Record::Conversation(header(b, "u", 1)),
            Record::Conversation(header(a, "u", 4)),
            Record::Conversation(header(b, "v", 2)),
        ];
        let batches = plan(&records).unwrap();
        assert_eq!(batches.iter().map(|t| t.creator).collect::<Vec<_>>(), vec![b, a]);
        assert_eq!(batches[0].created.len(), 1);
        assert_eq!(batches[0].updated.len(), 1);
        assert_eq!(batches[1].updated[0].1, 3);
    }

    #[test]
    fn consecutive_versions_of_one_conversation_collapse_into_one_step() {
        let a = CreatorId(Uuid::from_u128(7));
        let records = [Record::Conversation(header(a, "u", 1)), Record::Conversation(header(a, "u", 2))];
        let batches = plan(&records).unwrap();
        assert_eq!(batches[0].created.len(), 1);
        assert_eq!(batches[0].created[0].version, 2);
        assert!(batches[0].updated.is_empty());
    }

    #[test]
    fn step_entries_go_to_their_tenants_batch_in_slice_order() {
        let a = Slug::parse("a").unwrap().creator_id();
        let b = Slug::parse("b").unwrap().creator_id();
        let entered = |creator: CreatorId, step: &str, at: i64| Record::StepEntered {
            creator,
            conversation: header(creator, "u", 1).id,
            program: ProgramId::parse("p").unwrap(),
            step: StepId::parse(step).unwrap(),
            at: Timestamp::from_millis(at),
        };
        let records = [entered(a, "two", 2), entered(b, "one", 1), entered(a, "one", 1)];
        let batches = plan(&records).unwrap();
        let steps = |i: usize| -> Vec<(String, i64)> {
            batches[i].steps_entered.iter().map(|e| (e.step.to_string(), e.at.millis())).collect()
        };
        assert_eq!((batches[0].creator, steps(0)), (a, vec![("two".to_owned(), 2), ("one".to_owned(), 1)]));
        assert_eq!((batches[1].creator, steps(1)), (b, vec![("one".to_owned(), 1)]));
    }

    #[test]
    fn a_fence_passes_only_on_its_conversations_stored_epoch() {
        let a = CreatorId(Uuid::from_u128(7));
        let (one, two) = (header(a, "u", 1).id, header(a, "v", 1).id);
        let records = [
            Record::Fence { creator: a, conversation: one, epoch: 3 },
            Record::Conversation(header(a, "u", 1)),
            Record::Fence { creator: a, conversation: two, epoch: 5 },
        ];
        let batches = plan(&records).unwrap();
        assert_eq!(batches[0].fences, vec![(one, 3), (two, 5)]);
        assert!(first_fenced(&batches[0].fences, &[(one.0, 3), (two.0, 5)]).is_none());
        let stale = first_fenced(&batches[0].fences, &[(one.0, 3), (two.0, 6)]);
        assert!(matches!(stale, Some(StoreError::Fenced { conversation, epoch: 5 }) if conversation == two));
        let unowned = first_fenced(&batches[0].fences, &[(two.0, 5)]);
        assert!(matches!(unowned, Some(StoreError::Fenced { conversation, epoch: 3 }) if conversation == one));
    }

    #[test]
    fn a_key_given_twice_and_returned_once_is_missing() {
        assert_eq!(first_missing([1, 2, 2].into_iter(), &[2, 1]), Some(2));
        assert_eq!(first_missing([1, 2].into_iter(), &[2, 1]), None);
    }

    #[test]
    fn a_repeated_version_in_one_slice_is_a_conflict() {
        let a = CreatorId(Uuid::from_u128(7));
        let records = [Record::Conversation(header(a, "u", 3)), Record::Conversation(header(a, "u", 3))];
        assert!(matches!(plan(&records), Err(StoreError::Conflict { expected: 2, .. })));
    }

    #[test]
    fn nudges_are_kept_once_per_id_with_the_first_record_winning() {
        let a = CreatorId(Uuid::from_u128(7));
        let (first, second) = (nudge(a, 1), nudge(a, 2));
        let records = [
            Record::NudgeSettled { creator: a, id: first.id, outcome: NudgeOutcome::Fired },
            Record::NudgeScheduled(first.clone()),
            Record::NudgeScheduled(second.clone()),
            Record::NudgeScheduled(first.clone()),
            Record::NudgeSettled { creator: a, id: first.id, outcome: NudgeOutcome::Cancelled },
            Record::NudgeSettled { creator: a, id: second.id, outcome: NudgeOutcome::Skipped },
        ];
        let batches = plan(&records).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].scheduled, vec![&first, &second]);
        assert_eq!(batches[0].settled, vec![(first.id, NudgeOutcome::Fired), (second.id, NudgeOutcome::Skipped)]);
        assert_eq!(
            batches[0].settled_by_outcome(),
            vec![(NudgeOutcome::Fired, vec![first.id]), (NudgeOutcome::Skipped, vec![second.id])]
        );
    }
}
