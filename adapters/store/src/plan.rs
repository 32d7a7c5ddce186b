//! Turns a commit slice into one batch per tenant, checking each conversation's version chain
//! before anything is written. Both backends write these batches.

use std::collections::HashMap;

use twin_engine::ports::{ConversationHeader, Record, StoreError};
use twin_engine::{ConversationId, CreatorId, Message};

/// One tenant's share of a commit, written after the tenant is set.
pub(crate) struct TenantBatch<'a> {
    pub creator: CreatorId,
    /// Conversations this slice creates, at the last version the slice gives them.
    pub created: Vec<&'a ConversationHeader>,
    /// Conversations this slice moves forward: `(header at its last version, stored version expected)`.
    pub updated: Vec<(&'a ConversationHeader, u64)>,
    /// Messages in slice order; inserted after the conversations they belong to.
    pub messages: Vec<&'a Message>,
}

/// A conversation's net change in the slice: consecutive versions of one conversation collapse
/// into one step from `expected` (0: not stored yet) to `header.version`.
struct Step<'a> {
    header: &'a ConversationHeader,
    expected: u64,
}

/// Groups the records by creator (in order of first appearance). A conversation that appears
/// more than once must carry consecutive versions, as if each record were applied in order;
/// otherwise the slice is refused as a conflict before anything is written.
pub(crate) fn plan(records: &[Record]) -> Result<Vec<TenantBatch<'_>>, StoreError> {
    let mut tenants: Vec<(CreatorId, Vec<Step<'_>>, Vec<&Message>)> = Vec::new();
    let mut tenant_index: HashMap<CreatorId, usize> = HashMap::new();
    let mut step_index: HashMap<(CreatorId, ConversationId), usize> = HashMap::new();
    for record in records {
        let creator = record.creator();
        let t = *tenant_index.entry(creator).or_insert_with(|| {
            tenants.push((creator, Vec::new(), Vec::new()));
            tenants.len() - 1
        });
        let (_, steps, messages) = &mut tenants[t];
        match record {
            Record::Message(message) => messages.push(message),
            Record::Conversation(header) => {
                if header.version == 0 {
                    return Err(StoreError::Corrupt(format!("conversation {} written at version 0", header.id)));
                }
                match step_index.get(&(creator, header.id)) {
                    None => {
                        step_index.insert((creator, header.id), steps.len());
                        steps.push(Step { header, expected: header.version - 1 });
                    }
                    Some(&s) => {
                        let step = &mut steps[s];
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
        .map(|(creator, steps, messages)| {
            let (created, updated): (Vec<_>, Vec<_>) = steps.into_iter().partition(|s| s.expected == 0);
            TenantBatch {
                creator,
                created: created.into_iter().map(|s| s.header).collect(),
                updated: updated.into_iter().map(|s| (s.header, s.expected)).collect(),
                messages,
            }
        })
        .collect())
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
}
