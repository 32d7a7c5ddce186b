//! The creator stats read (`Store::creator_stats`) on SQLite and PostgreSQL, over hand-made rows at
//! known times: every count is checked against the number worked out by hand in the comments.

#![allow(clippy::unwrap_used)]

#[path = "support/fixtures.rs"]
mod fixtures;

use fixtures::*;
use twin_engine::ports::{ConversationStore, CreatorStore, NudgeOutcome, Record, ScheduledNudge};
use twin_engine::{CreatorId, Message, Origin, ProgramId, Seq, StepId};
use twin_store::stats::{ActiveUsers, Day, MAX_LATENCY_SAMPLES_PER_DAY, NudgeResponses, Percentiles, StatsPeriod};
use twin_store::testing::{Kind, TestDb};

macro_rules! both {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test(super::Kind::Postgres).await } )*
        }
    };
}

both!(
    the_counts_of_a_period_are_exact_and_leave_out_preview_users_and_other_tenants,
    a_creator_without_activity_gets_every_day_at_zero,
    latency_samples_are_capped_per_day_at_the_latest,
);

const HOUR: i64 = 3_600_000;
/// 2026-12-05T13:00:00Z: "now" of every test.
const NOW: i64 = 1_796_475_600_000;
/// Midnight (UTC) of 2026-12-01 … 2026-12-05.
const DEC1: i64 = 1_796_083_200_000;
const DEC2: i64 = DEC1 + 24 * HOUR;
const DEC3: i64 = DEC2 + 24 * HOUR;
const DEC4: i64 = DEC3 + 24 * HOUR;
const DEC5: i64 = DEC4 + 24 * HOUR;

fn message(creator: CreatorId, user: &str, seq: u64, origin: Origin, at: i64) -> Record {
    Record::Message(Message {
        conversation: conversation(creator, user),
        creator,
        seq: Seq(seq),
        origin,
        text: format!("{origin:?} {seq}"),
        client_id: None,
        stream: None,
        choices: Vec::new(),
        consistency: None,
        created_at: fixtures::at(at),
    })
}

fn entered(creator: CreatorId, user: &str, program: &str, step: &str, at: i64) -> Record {
    Record::StepEntered {
        creator,
        conversation: conversation(creator, user),
        program: ProgramId::parse(program).unwrap(),
        step: StepId::parse(step).unwrap(),
        at: fixtures::at(at),
    }
}

/// A nudge of (creator, user) due at `due`, settled with `outcome` unless `None` (pending).
async fn nudge_row(db: &TestDb, creator: CreatorId, user: &str, n: u64, due: i64, outcome: Option<NudgeOutcome>) {
    let row: ScheduledNudge = nudge(creator, user, n, due);
    db.store.commit(&[scheduled(&row)]).await.unwrap();
    if let Some(outcome) = outcome {
        db.store.commit(&[settled(&row, outcome)]).await.unwrap();
    }
}

/// One user's conversation with these rows, in one commit.
async fn user(db: &TestDb, creator: CreatorId, user: &str, rows: Vec<Record>) {
    let mut slice = vec![conversation_record(creator, user, 1)];
    slice.extend(rows);
    db.store.commit(&slice).await.unwrap();
}

async fn the_counts_of_a_period_are_exact_and_leave_out_preview_users_and_other_tenants(kind: Kind) {
    use Origin::{Human, Nudge, Program, Twin, User};
    let db = TestDb::new(kind).await;
    let (alice, bob) = (creator("alice"), creator("bob"));
    db.store.put_creator(&profile("alice", "Alice"), &[], &[]).await.unwrap();
    db.store.put_creator(&profile("bob", "Bob"), &[], &[]).await.unwrap();

    // u1 writes today: answered by the twin after 800 ms; then two messages in a row answered by
    // one program message 3 s after the first (samples 3000 and 2000).
    let u1 = vec![
        message(alice, "u1", 1, User, DEC5 + 10 * HOUR),
        message(alice, "u1", 2, Twin, DEC5 + 10 * HOUR + 800),
        message(alice, "u1", 3, User, DEC5 + 11 * HOUR),
        message(alice, "u1", 4, User, DEC5 + 11 * HOUR + 1_000),
        message(alice, "u1", 5, Program, DEC5 + 11 * HOUR + 3_000),
        entered(alice, "u1", "onboarding", "welcome", DEC5 + 10 * HOUR),
        entered(alice, "u1", "onboarding", "goal", DEC5 + 10 * HOUR + 60_000),
        // Entered again: still one conversation.
        entered(alice, "u1", "onboarding", "welcome", DEC5 + 10 * HOUR + 300_000),
    ];
    user(&db, alice, "u1", u1).await;
    // u2: on Dec 3 a human answers after 5 s; on Dec 4 only a nudge follows (no sample); writes
    // again this morning (no reply yet: no sample).
    let u2 = vec![
        message(alice, "u2", 1, User, DEC3 + 9 * HOUR),
        message(alice, "u2", 2, Human, DEC3 + 9 * HOUR + 5_000),
        message(alice, "u2", 3, User, DEC4 + 9 * HOUR),
        message(alice, "u2", 4, Nudge, DEC4 + 20 * HOUR),
        message(alice, "u2", 5, User, DEC5 + 8 * HOUR),
        entered(alice, "u2", "onboarding", "welcome", DEC3 + 9 * HOUR),
    ];
    user(&db, alice, "u2", u2).await;
    // u3 wrote on Dec 1 only: active this week, not in the 3-day period.
    let u3 = vec![
        message(alice, "u3", 1, User, DEC1 + 12 * HOUR),
        message(alice, "u3", 2, Twin, DEC1 + 12 * HOUR + 100),
        entered(alice, "u3", "onboarding", "welcome", DEC1 + 12 * HOUR),
    ];
    user(&db, alice, "u3", u3).await;
    // u4 writes a millisecond before Dec 4 and is answered 401 ms later, on Dec 4: the sample is
    // Dec 3's (the question's day), the reply counts on Dec 4.
    let u4 = vec![
        message(alice, "u4", 1, User, DEC4 - 1),
        message(alice, "u4", 2, Twin, DEC4 + 400),
        entered(alice, "u4", "habit", "day-1", DEC4 + 400),
    ];
    user(&db, alice, "u4", u4).await;
    // The creator's preview user: nowhere.
    let preview = vec![
        message(alice, "preview:acc-1", 1, User, DEC5 + 12 * HOUR),
        message(alice, "preview:acc-1", 2, Twin, DEC5 + 12 * HOUR + 50),
        entered(alice, "preview:acc-1", "onboarding", "welcome", DEC5 + 12 * HOUR),
    ];
    user(&db, alice, "preview:acc-1", preview).await;
    // Bob's user, busy today: nowhere in Alice's counts.
    let theirs = vec![
        message(bob, "u1", 1, User, DEC5 + 10 * HOUR),
        message(bob, "u1", 2, Twin, DEC5 + 10 * HOUR + 10),
        entered(bob, "u1", "onboarding", "welcome", DEC5 + 10 * HOUR),
    ];
    user(&db, bob, "u1", theirs).await;

    // Nudges: fired today at 9:00 for u1 (u1 wrote at 10:00: answered), Dec 4 20:00 for u2 (u2
    // wrote this morning: answered), Dec 3 01:00 for u3 (never answered), Dec 2 for u4 (before the
    // period); a pending one, a skipped one, a preview user's and Bob's fired ones are not counted.
    nudge_row(&db, alice, "u1", 1, DEC5 + 9 * HOUR, Some(NudgeOutcome::Fired)).await;
    nudge_row(&db, alice, "u2", 1, DEC4 + 20 * HOUR, Some(NudgeOutcome::Fired)).await;
    nudge_row(&db, alice, "u3", 1, DEC3 + HOUR, Some(NudgeOutcome::Fired)).await;
    nudge_row(&db, alice, "u4", 1, DEC2 + 12 * HOUR, Some(NudgeOutcome::Fired)).await;
    nudge_row(&db, alice, "u1", 2, DEC5 + 15 * HOUR, None).await;
    nudge_row(&db, alice, "u4", 2, DEC4 + HOUR, Some(NudgeOutcome::Skipped)).await;
    nudge_row(&db, alice, "preview:acc-1", 1, DEC5 + 11 * HOUR, Some(NudgeOutcome::Fired)).await;
    nudge_row(&db, bob, "u1", 1, DEC5 + 9 * HOUR, Some(NudgeOutcome::Fired)).await;

    let stats = db.store.creator_stats(alice, StatsPeriod::new(3, at(NOW))).await.unwrap();

    assert_eq!(stats.period.first_day().to_string(), "2026-12-03");
    assert_eq!(stats.period.last_day().to_string(), "2026-12-05");
    // Since yesterday 13:00: u1, u2. Since Nov 28 13:00: u1 to u4. Dec 3 to today: u1, u2, u4.
    assert_eq!(stats.active_users, ActiveUsers { day: 2, week: 4, period: 3 });
    let per_day: Vec<(String, u64, u64)> =
        stats.messages_per_day.iter().map(|d| (d.day.to_string(), d.inbound, d.outbound)).collect();
    assert_eq!(
        per_day,
        [
            ("2026-12-03".to_owned(), 2, 1), // u2 user + human, u4 user
            ("2026-12-04".to_owned(), 1, 2), // u2 user + nudge, u4 twin
            ("2026-12-05".to_owned(), 4, 2), // u1 3 user + twin + program, u2 user
        ]
    );
    // Samples: Dec 3 [401, 5000]; Dec 4 none; Dec 5 [800, 2000, 3000].
    let latency = &stats.reply_latency;
    assert_eq!(latency.overall, Percentiles { p50: Some(2_000), p95: Some(5_000), samples: 5 });
    let per_day: Vec<(String, Percentiles)> = latency.per_day.iter().map(|(d, p)| (d.to_string(), *p)).collect();
    assert_eq!(
        per_day,
        [
            ("2026-12-03".to_owned(), Percentiles { p50: Some(401), p95: Some(5_000), samples: 2 }),
            ("2026-12-04".to_owned(), Percentiles { p50: None, p95: None, samples: 0 }),
            ("2026-12-05".to_owned(), Percentiles { p50: Some(2_000), p95: Some(3_000), samples: 3 }),
        ]
    );
    let funnel: Vec<(&str, &str, u64)> =
        stats.steps_reached.iter().map(|s| (s.program.as_str(), s.step.as_str(), s.conversations)).collect();
    assert_eq!(funnel, [("habit", "day-1", 1), ("onboarding", "goal", 1), ("onboarding", "welcome", 2)]);
    assert_eq!(stats.nudges, NudgeResponses { fired: 3, responded: 2 });

    // A one-day period: today only.
    let today = db.store.creator_stats(alice, StatsPeriod::new(1, at(NOW))).await.unwrap();
    assert_eq!(today.active_users, ActiveUsers { day: 2, week: 4, period: 2 });
    assert_eq!(today.messages_per_day.len(), 1);
    assert_eq!(today.reply_latency.overall, Percentiles { p50: Some(2_000), p95: Some(3_000), samples: 3 });
    assert_eq!(today.nudges, NudgeResponses { fired: 1, responded: 1 });
    assert_eq!(today.steps_reached.len(), 2, "onboarding's welcome and goal (u1)");

    // Bob sees his own user only.
    let bobs = db.store.creator_stats(bob, StatsPeriod::new(3, at(NOW))).await.unwrap();
    assert_eq!(bobs.active_users, ActiveUsers { day: 1, week: 1, period: 1 });
    assert_eq!(bobs.reply_latency.overall, Percentiles { p50: Some(10), p95: Some(10), samples: 1 });
    assert_eq!(bobs.nudges, NudgeResponses { fired: 1, responded: 1 });
}

async fn a_creator_without_activity_gets_every_day_at_zero(kind: Kind) {
    let db = TestDb::new(kind).await;
    let alice = creator("alice");
    db.store.put_creator(&profile("alice", "Alice"), &[], &[]).await.unwrap();
    let stats = db.store.creator_stats(alice, StatsPeriod::new(90, at(NOW))).await.unwrap();
    assert_eq!(stats.active_users, ActiveUsers::default());
    assert_eq!(stats.messages_per_day.len(), 90);
    assert!(stats.messages_per_day.iter().all(|d| d.inbound == 0 && d.outbound == 0));
    assert_eq!(stats.messages_per_day[0].day, Day::of(at(NOW - 89 * 24 * HOUR)));
    assert_eq!(stats.reply_latency.overall, Percentiles::default());
    assert_eq!(stats.reply_latency.per_day.len(), 90);
    assert!(stats.steps_reached.is_empty());
    assert_eq!(stats.nudges, NudgeResponses::default());
}

async fn latency_samples_are_capped_per_day_at_the_latest(kind: Kind) {
    let db = TestDb::new(kind).await;
    let alice = creator("alice");
    db.store.put_creator(&profile("alice", "Alice"), &[], &[]).await.unwrap();
    let cap = u64::from(MAX_LATENCY_SAMPLES_PER_DAY);
    // One more question than the cap today, a second apart, the i-th answered after i + 1 ms; and
    // one yesterday, answered after 7 ms.
    let mut rows = Vec::new();
    for i in 0..=cap {
        let asked = DEC5 + i as i64 * 1_000;
        rows.push(message(alice, "u1", 2 * i + 1, Origin::User, asked));
        rows.push(message(alice, "u1", 2 * i + 2, Origin::Twin, asked + i as i64 + 1));
    }
    user(&db, alice, "u1", rows).await;
    user(
        &db,
        alice,
        "u2",
        vec![message(alice, "u2", 1, Origin::User, DEC4), message(alice, "u2", 2, Origin::Twin, DEC4 + 7)],
    )
    .await;

    let stats = db.store.creator_stats(alice, StatsPeriod::new(2, at(NOW))).await.unwrap();
    let per_day: Vec<Percentiles> = stats.reply_latency.per_day.iter().map(|(_, p)| *p).collect();
    // Today's latest 5000 are 2 ..= 5001 ms (the first question's 1 ms is left out): the 2500th
    // and the 4750th of them.
    assert_eq!(cap, 5_000, "the numbers below are worked out for this cap");
    assert_eq!(
        per_day,
        [
            Percentiles { p50: Some(7), p95: Some(7), samples: 1 },
            Percentiles { p50: Some(2_501), p95: Some(4_751), samples: cap }
        ]
    );
    assert_eq!(stats.reply_latency.overall.samples, cap + 1);
    assert_eq!(stats.messages_per_day[1].inbound, cap + 1, "the cap bounds the samples only");
}
