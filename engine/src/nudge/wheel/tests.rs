use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;

use super::*;

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;
const START: i64 = 1_717_200_000_000; // 2024-06-01

fn at(ms: i64) -> Timestamp {
    Timestamp(ms)
}

fn keys(fired: &[(u32, Timestamp)]) -> Vec<u32> {
    fired.iter().map(|(k, _)| *k).collect()
}

#[test]
fn an_entry_fires_at_its_due_millisecond_not_at_the_start_of_its_tick() {
    let mut wheel = TimingWheel::new(at(START), 10);
    wheel.insert(1u32, at(START + 1_005));
    assert!(wheel.advance(at(START + 1_000)).is_empty());
    assert!(wheel.advance(at(START + 1_004)).is_empty());
    assert_eq!(wheel.next_due(), Some(at(START + 1_005)));
    assert_eq!(wheel.advance(at(START + 1_005)), vec![(1, at(START + 1_005))]);
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_due(), None);
}

#[test]
fn entries_come_out_in_due_order_across_levels() {
    let mut wheel = TimingWheel::new(at(START), 10);
    let dues = [7 * DAY, 5, 3 * MINUTE, 640, 1, 2 * DAY + 17, 90 * MINUTE, 64 * 10, 639, 11 * 64 * 64 * 10];
    for (key, due) in dues.iter().enumerate() {
        wheel.insert(key as u32, at(START + due));
    }
    let fired = wheel.advance(at(START + 8 * DAY));
    let mut expected: Vec<(u32, Timestamp)> = dues.iter().enumerate().map(|(k, d)| (k as u32, at(START + d))).collect();
    expected.sort_by_key(|&(_, due)| due);
    assert_eq!(fired, expected);
}

#[test]
fn a_jump_of_days_fires_everything_due_in_one_advance_and_keeps_the_rest() {
    let mut wheel = TimingWheel::new(at(START), 10);
    // One entry every 37 minutes for 60 days.
    let dues: Vec<i64> = (0..60 * DAY / (37 * MINUTE)).map(|i| START + i * 37 * MINUTE + i % 1_000).collect();
    for (key, due) in dues.iter().enumerate() {
        wheel.insert(key as u32, at(*due));
    }
    let now = START + 30 * DAY;
    let fired = wheel.advance(at(now));
    let due_by_now: Vec<Timestamp> = dues.iter().filter(|&&d| d <= now).map(|&d| at(d)).collect();
    assert_eq!(fired.iter().map(|(_, d)| *d).collect::<Vec<_>>(), due_by_now);
    assert_eq!(wheel.len(), dues.len() - due_by_now.len());
    let rest = wheel.advance(at(START + 61 * DAY));
    assert_eq!(fired.len() + rest.len(), dues.len());
    assert!(rest.windows(2).all(|w| w[0].1 <= w[1].1));
}

#[test]
fn reinserting_a_key_moves_its_single_entry() {
    let mut wheel = TimingWheel::new(at(START), 10);
    wheel.insert("u1", at(START + DAY));
    wheel.insert("u1", at(START + 2 * DAY));
    assert_eq!(wheel.len(), 1);
    assert_eq!(wheel.due(&"u1"), Some(at(START + 2 * DAY)));
    assert!(wheel.advance(at(START + DAY)).is_empty());
    // And earlier again, after the clock moved.
    wheel.insert("u1", at(START + DAY + 5));
    assert_eq!(wheel.advance(at(START + 2 * DAY)), vec![("u1", at(START + DAY + 5))]);
    assert!(wheel.is_empty());
}

#[test]
fn a_removed_entry_never_fires() {
    let mut wheel = TimingWheel::new(at(START), 10);
    for key in 0u32..100 {
        wheel.insert(key, at(START + i64::from(key) * MINUTE));
    }
    for key in (0u32..100).filter(|k| k % 3 == 0) {
        assert!(wheel.remove(&key));
    }
    assert!(!wheel.remove(&0));
    assert!(!wheel.remove(&1_000));
    let fired = keys(&wheel.advance(at(START + DAY)));
    assert_eq!(fired, (0u32..100).filter(|k| k % 3 != 0).collect::<Vec<_>>());
}

#[test]
fn an_entry_due_in_the_past_fires_at_the_next_advance() {
    let mut wheel = TimingWheel::new(at(START), 10);
    wheel.advance(at(START + DAY));
    wheel.insert(1u32, at(START + 5));
    wheel.insert(2u32, at(i64::MIN));
    wheel.insert(3u32, at(START - 10 * DAY));
    assert_eq!(wheel.next_due(), Some(at(i64::MIN)));
    assert_eq!(keys(&wheel.advance(at(START + DAY))), vec![2, 3, 1]);
}

#[test]
fn an_earlier_now_does_not_move_the_clock_back_or_fire_early() {
    let mut wheel = TimingWheel::new(at(START), 10);
    wheel.advance(at(START + 10 * MINUTE));
    wheel.insert(1u32, at(START + 10 * MINUTE + 3));
    wheel.insert(2u32, at(START + MINUTE));
    assert_eq!(keys(&wheel.advance(at(START + 2 * MINUTE))), vec![2]);
    assert_eq!(keys(&wheel.advance(at(START + 10 * MINUTE + 3))), vec![1]);
}

#[test]
fn far_future_entries_wait_in_the_overflow_and_still_fire_in_order() {
    // 1 ms ticks: the levels span 2^36 ms, about two years.
    let mut wheel = TimingWheel::new(at(START), 1);
    let year = 365 * DAY;
    let dues = [START + 3 * year, START + 50 * year + 7, START + 3 * year - 1, START + 1, i64::MAX, START + 2 * year];
    for (key, due) in dues.iter().enumerate() {
        wheel.insert(key as u32, at(*due));
    }
    assert!(wheel.next_due().is_some_and(|d| d <= at(START + 1)));
    assert_eq!(keys(&wheel.advance(at(START + 2 * year))), vec![3, 5]);
    assert!(wheel.next_due().is_some_and(|d| d <= at(START + 3 * year - 1)));
    assert_eq!(keys(&wheel.advance(at(START + 3 * year))), vec![2, 0]);
    assert_eq!(keys(&wheel.advance(at(START + 100 * year))), vec![1]);
    assert_eq!(keys(&wheel.advance(at(i64::MAX))), vec![4]);
    assert!(wheel.is_empty());
}

#[test]
fn next_due_is_exact_near_the_clock_and_a_lower_bound_further_out() {
    let mut wheel = TimingWheel::new(at(START), 10);
    wheel.insert(1u32, at(START + 3 * DAY + 123));
    let bound = wheel.next_due().unwrap();
    assert!(bound <= at(START + 3 * DAY + 123) && bound > at(START));
    wheel.insert(2u32, at(START + 333));
    assert_eq!(wheel.next_due(), Some(at(START + 333)));
    wheel.advance(at(START + 333));
    // Walk the clock to each bound in turn: the bound only grows, and ends exact.
    let mut previous = at(START + 333);
    while let Some(bound) = wheel.next_due() {
        assert!(bound > previous);
        previous = bound;
        if !wheel.advance(bound).is_empty() {
            break;
        }
    }
    assert_eq!(previous, at(START + 3 * DAY + 123));
}

#[test]
fn a_scheduler_sleeping_until_next_due_wakes_at_most_seven_times_per_entry() {
    let mut wheel = TimingWheel::new(at(START), 10);
    let dues = [5 * MINUTE, 3 * DAY, 3 * DAY + 1, 400 * DAY, 20 * 365 * DAY, 40 * 365 * DAY];
    for (key, due) in dues.iter().enumerate() {
        wheel.insert(key as u32, at(START + due));
    }
    let (mut wakes, mut fired) = (0, Vec::new());
    while let Some(next) = wheel.next_due() {
        wakes += 1;
        fired.extend(wheel.advance(next));
        assert!(wakes <= 7 * dues.len(), "woke {wakes} times");
    }
    assert_eq!(keys(&fired), vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn a_million_entries_fire_once_each_in_due_order() {
    let mut wheel = TimingWheel::new(at(START), 10);
    let n = 1_000_000u32;
    // Spread over a week, in a scrambled order.
    let due_of = |k: u32| START + (i64::from(k.wrapping_mul(2_654_435_761)) % (7 * DAY));
    for key in 0..n {
        wheel.insert(key, at(due_of(key)));
    }
    assert_eq!(wheel.len(), n as usize);
    for key in (0..n).step_by(2) {
        wheel.remove(&key);
    }
    let mut fired = Vec::with_capacity(n as usize / 2);
    for hour in 1..=7 * 24 {
        let batch = wheel.advance(at(START + hour * 3_600_000));
        assert!(batch.iter().all(|&(_, d)| d <= at(START + hour * 3_600_000)));
        fired.extend(batch);
    }
    assert!(wheel.is_empty());
    assert_eq!(fired.len(), n as usize / 2);
    assert!(fired.windows(2).all(|w| w[0].1 <= w[1].1));
    assert!(fired.iter().all(|&(k, d)| k % 2 == 1 && d == at(due_of(k))));
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, i64),
    Remove(u8),
    Advance(i64),
    AdvanceToNextDue,
}

fn op() -> impl Strategy<Value = Op> {
    let offset = prop_oneof![
        -5_000i64..5_000,
        0i64..100_000,
        0i64..3 * DAY,
        0i64..(1 << 42),
        Just(i64::MAX / 4),
        Just(i64::MIN / 4),
    ];
    let step = prop_oneof![0i64..50, 0i64..5_000, 0i64..DAY, 0i64..(1 << 41), -1_000i64..0];
    prop_oneof![
        4 => (0u8..40, offset).prop_map(|(k, o)| Op::Insert(k, o)),
        1 => (0u8..40).prop_map(Op::Remove),
        2 => step.prop_map(Op::Advance),
        1 => Just(Op::AdvanceToNextDue),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The wheel against a map of key to due time: the same entries fire at each advance, in due
    /// order, never before they are due, and none is lost or fires twice.
    #[test]
    fn the_wheel_fires_exactly_what_a_plain_map_says_is_due(
        start in -1_000_000_000_000i64..4_000_000_000_000,
        tick in prop_oneof![Just(1u64), Just(7), Just(10), Just(1_000)],
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut wheel = TimingWheel::new(at(start), tick);
        let mut model: HashMap<u8, i64> = HashMap::new();
        let mut now = start;
        for op in ops {
            match op {
                Op::Insert(key, offset) => {
                    let due = now.saturating_add(offset);
                    wheel.insert(key, at(due));
                    model.insert(key, due);
                }
                Op::Remove(key) => prop_assert_eq!(wheel.remove(&key), model.remove(&key).is_some()),
                Op::Advance(_) | Op::AdvanceToNextDue => {
                    let to = match op {
                        Op::Advance(step) => now.saturating_add(step),
                        _ => wheel.next_due().map_or(now, |d| d.0),
                    };
                    let mut fired = wheel.advance(at(to));
                    prop_assert!(fired.windows(2).all(|w| w[0].1 <= w[1].1), "out of order: {:?}", fired);
                    // Entries due at the same millisecond come out in any order.
                    fired.sort_by_key(|&(k, d)| (d, k));
                    let mut expected: BTreeMap<(i64, u8), ()> = BTreeMap::new();
                    model.retain(|&k, &mut d| {
                        if d <= to { expected.insert((d, k), ()); false } else { true }
                    });
                    let expected: Vec<(u8, Timestamp)> = expected.into_keys().map(|(d, k)| (k, at(d))).collect();
                    prop_assert_eq!(&fired, &expected);
                    now = now.max(to);
                }
            }
            prop_assert_eq!(wheel.len(), model.len());
            let earliest = model.values().min().copied();
            match (wheel.next_due(), earliest) {
                (None, None) => {}
                (Some(bound), Some(earliest)) => prop_assert!(bound.0 <= earliest, "bound {} after {}", bound.0, earliest),
                (bound, earliest) => prop_assert!(false, "next_due {:?} with earliest {:?}", bound, earliest),
            }
        }
        // Draining by next_due loses nothing.
        let mut guard = 0;
        while let Some(next) = wheel.next_due() {
            for (key, due) in wheel.advance(next) {
                prop_assert_eq!(model.remove(&key), Some(due.0));
            }
            guard += 1;
            prop_assert!(guard < 7 * 40 + 10, "draining does not end");
        }
        prop_assert!(model.is_empty());
    }
}
