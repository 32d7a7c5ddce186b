//! Which node owns a conversation: rendezvous (highest-random-weight) hashing of the conversation
//! id over the live nodes. Every node computes the same owner from the same live set, with no
//! coordination; when a node joins or leaves, only the conversations it wins or held move (about
//! `1/n` of them), the rest stay where they are.
//!
//! The weight is a fixed 64-bit hash (FNV-1a folded through a SplitMix64 finaliser) rather than the
//! standard library's hasher, whose output may change between Rust releases: two nodes built by
//! different compilers during a rolling upgrade must still agree.

use crate::ids::ConversationId;

/// The owner of `conversation` among `nodes` (node ids); `None` when there is none.
pub fn owner<S: AsRef<str>>(conversation: ConversationId, nodes: &[S]) -> Option<&S> {
    let key = conversation.0.as_bytes();
    nodes.iter().max_by_key(|node| (weight(node.as_ref(), key), node.as_ref().to_owned()))
}

/// The node's weight for a key: a stable hash of both.
fn weight(node: &str, key: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    // A separator byte, so ("ab", "c…") and ("a", "bc…") do not hash alike.
    for byte in node.bytes().chain([0xff]).chain(key.iter().copied()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(PRIME);
    }
    mix(hash)
}

/// SplitMix64's finaliser: spreads FNV's weak low bits over the whole word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn conversations(n: u128) -> impl Iterator<Item = ConversationId> {
        (0..n).map(|i| ConversationId(Uuid::from_u128(i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))))
    }

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn no_nodes_no_owner_and_one_node_owns_everything() {
        let none: Vec<String> = Vec::new();
        assert_eq!(owner(ConversationId(Uuid::from_u128(1)), &none), None);
        let one = nodes(&["a"]);
        assert!(conversations(100).all(|c| owner(c, &one).map(String::as_str) == Some("a")));
    }

    #[test]
    fn the_owner_does_not_depend_on_the_order_of_the_live_set() {
        let forward = nodes(&["a", "b", "c"]);
        let backward = nodes(&["c", "b", "a"]);
        for c in conversations(1000) {
            assert_eq!(owner(c, &forward), owner(c, &backward));
        }
    }

    #[test]
    fn the_weight_is_a_fixed_function() {
        // Pinned: nodes built by different compilers must agree on every owner.
        assert_eq!(weight("node-1", &[0; 16]), 0xa99a_cd73_b725_4f92);
    }

    #[test]
    fn conversations_spread_evenly_over_three_nodes() {
        let live = nodes(&["twin-1", "twin-2", "twin-3"]);
        let mut counts = [0usize; 3];
        for c in conversations(30_000) {
            let owner = owner(c, &live).unwrap();
            counts[live.iter().position(|n| n == owner).unwrap()] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn when_a_node_leaves_only_its_conversations_move() {
        let before = nodes(&["a", "b", "c"]);
        let after = nodes(&["a", "c"]);
        let mut moved = 0;
        for c in conversations(10_000) {
            let was = owner(c, &before).unwrap();
            let is = owner(c, &after).unwrap();
            if was != "b" {
                assert_eq!(was, is, "a conversation of a node that stayed moved");
            } else {
                moved += 1;
            }
        }
        assert!((2_800..3_900).contains(&moved), "{moved} moved");
    }

    #[test]
    fn when_a_node_joins_it_takes_a_fair_share_from_each() {
        let before = nodes(&["a", "b"]);
        let after = nodes(&["a", "b", "c"]);
        let mut taken = 0;
        for c in conversations(10_000) {
            let is = owner(c, &after).unwrap();
            if is == "c" {
                taken += 1;
            } else {
                assert_eq!(owner(c, &before).unwrap(), is, "only moves to the new node");
            }
        }
        assert!((2_800..3_900).contains(&taken), "{taken} taken");
    }
}
