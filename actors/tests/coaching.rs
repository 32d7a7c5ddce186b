//! Programs and nudges through the real actor tree: a user walked through a program over days by
//! the virtual clock, the scheduler firing each timer once, quiet hours and inactivity.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::Harness;
use twin_engine::nudge::{NudgePolicy, QuietHours};
use twin_engine::ports::Clock;
use twin_engine::twin::NudgeSettings;
use twin_engine::{Origin, Timestamp};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

const WALK: &str = r#"
inactivity:
  after: 6h
  text: "Still there, {{ name | friend }}?"
steps:
  - id: hello
    message: "Welcome!"
  - id: name
    question: "What should I call you?"
    save_as: name
  - id: pause
    wait: 1d
  - id: task
    task: "Today, {{ name }}: one focused hour."
    check_in: 2h
    check_in_text: "Did you get your hour?"
  - id: done
    end: "Well done, {{ name }}."
"#;

fn no_quiet_hours() -> NudgeSettings {
    NudgeSettings { policy: NudgePolicy { quiet_hours: None, ..NudgePolicy::default() }, ..NudgeSettings::default() }
}

fn texts(h: &Harness, key: &twin_actors::ConversationKey) -> Vec<(Origin, String)> {
    h.finals(key).into_iter().map(|m| (m.origin, m.text)).collect()
}

#[tokio::test]
async fn a_user_is_walked_through_a_program_over_days_and_every_timer_fires_once() {
    let h = Harness::start_coaching(WALK, no_quiet_hours()).await;
    let key = h.key("ana");

    h.say(&key, "c1", "hi").await;
    h.until("the welcome and the first question", |h| texts(h, &key).len() >= 2).await;
    assert_eq!(
        texts(&h, &key),
        [(Origin::Program, "Welcome!".to_owned()), (Origin::Program, "What should I call you?".to_owned())]
    );

    h.say(&key, "c2", "Ana").await;
    // Two rows: the inactivity nudge armed by the question, and the wait's.
    h.until("the wait's nudge row", |h| h.store.nudge_rows().len() == 2).await;
    // Nothing happens before the day is over.
    h.clock.advance_millis(DAY - 1_000);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(texts(&h, &key).len(), 2, "the wait must not end early");

    h.clock.advance_millis(2_000);
    h.until("the task after the wait", |h| texts(h, &key).len() >= 3).await;
    assert_eq!(texts(&h, &key)[2], (Origin::Program, "Today, Ana: one focused hour.".to_owned()));

    h.clock.advance_millis(2 * HOUR);
    h.until("the check-in", |h| texts(h, &key).len() >= 4).await;
    assert_eq!(texts(&h, &key)[3], (Origin::Nudge, "Did you get your hour?".to_owned()));

    h.say(&key, "c3", "yes!").await;
    h.until("the end", |h| texts(h, &key).len() >= 5).await;
    assert_eq!(texts(&h, &key)[4], (Origin::Program, "Well done, Ana.".to_owned()));

    // Every timer fired exactly once; the inactivity nudge armed while waiting for the name was
    // cancelled when the program no longer waited for the user. Nothing is left pending.
    h.clock.advance_millis(3 * DAY);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rows = h.store.nudge_rows();
    assert!(rows.iter().all(|r| r.status != "pending"), "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.status == "fired").count(), 2, "{rows:?}");
    assert_eq!(texts(&h, &key).len(), 5, "nothing after the end: {:?}", texts(&h, &key));
    // Everything the user saw was durable when it was handed over.
    assert!(h.seen(&key).iter().all(|s| s.durable != Some(false)));
}

#[tokio::test]
async fn a_silent_user_gets_one_inactivity_nudge_per_silence() {
    let h = Harness::start_coaching(WALK, no_quiet_hours()).await;
    let key = h.key("ben");
    h.say(&key, "c1", "hi").await;
    h.until("the question", |h| texts(h, &key).len() >= 2).await;

    // The user stays silent.
    h.clock.advance_millis(6 * HOUR + 1_000);
    h.until("the inactivity nudge", |h| texts(h, &key).len() >= 3).await;
    assert_eq!(texts(&h, &key)[2], (Origin::Nudge, "Still there, friend?".to_owned()));

    // One per silence: days later, still only one.
    h.clock.advance_millis(3 * DAY);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(texts(&h, &key).iter().filter(|(o, _)| *o == Origin::Nudge).count(), 1);
}

#[tokio::test]
async fn a_nudge_due_in_quiet_hours_waits_until_they_end_in_the_users_timezone() {
    // Europe/Berlin, quiet 21:00–08:00. The wait of the program ends at 22:00 local time.
    let settings = NudgeSettings {
        timezone: "Europe/Berlin".parse().unwrap(),
        policy: NudgePolicy {
            quiet_hours: Some(QuietHours::new("21:00".parse().unwrap(), "08:00".parse().unwrap()).unwrap()),
            ..NudgePolicy::default()
        },
        ..NudgeSettings::default()
    };
    let h = Harness::start_coaching(WALK, settings).await;
    // 2023-11-13 21:00 UTC is 22:00 in Berlin (CET): the harness clock starts at 2023-11-14 22:13 UTC.
    let start = Clock::now(&*h.clock);
    let key = h.key("cleo");
    h.say(&key, "c1", "hi").await;
    h.until("the question", |h| texts(h, &key).len() >= 2).await;
    h.say(&key, "c2", "Cleo").await;
    h.until("the wait's row", |h| h.store.nudge_rows().len() == 2).await;

    // The day passes: it is 23:13 in Berlin, inside quiet hours; the nudge is deferred to 08:00.
    h.clock.advance_millis(DAY + 1_000);
    h.until("the deferral", |h| {
        h.store.nudge_rows().iter().filter(|r| r.status == "pending").count() == 1
            && h.store.nudge_rows().iter().any(|r| r.status == "skipped")
    })
    .await;
    let deferred = h.store.nudge_rows().into_iter().find(|r| r.status == "pending").unwrap();
    // 08:00 CET the next morning = 07:00 UTC.
    let expected = Timestamp(((start.0 + DAY) / DAY + 1) * DAY + 7 * HOUR);
    assert_eq!(deferred.nudge.due_at, expected);
    assert_eq!(texts(&h, &key).len(), 2, "nothing is sent in quiet hours");

    h.clock.set(expected);
    h.until("the task at 08:00", |h| texts(h, &key).len() >= 3).await;
}

#[tokio::test]
async fn a_user_message_pushes_the_inactivity_nudge_back_to_their_last_message() {
    const ASK: &str = r#"
inactivity:
  after: 6h
  text: "Still deciding?"
steps:
  - id: ready
    question: "Ready to start?"
    expect: yes_no
    attempts: 5
  - id: done
    end: "Great."
"#;
    let h = Harness::start_coaching(ASK, no_quiet_hours()).await;
    let key = h.key("dan");
    h.say(&key, "c1", "hi").await;
    h.until("the question", |h| !texts(h, &key).is_empty()).await;

    // Five hours later an answer that is not yes or no: asked again, still waiting for the user.
    h.clock.advance_millis(5 * HOUR);
    h.say(&key, "c2", "hmm").await;
    h.until("the question again", |h| texts(h, &key).len() >= 2).await;

    // Six hours after the first message the nudge falls due, but the user wrote an hour ago.
    h.clock.advance_millis(HOUR + 1_000);
    h.until("the re-armed row", |h| h.store.nudge_rows().iter().any(|r| r.status == "cancelled")).await;
    assert!(texts(&h, &key).iter().all(|(o, _)| *o != Origin::Nudge));
    let rearmed = h.store.nudge_rows().into_iter().find(|r| r.status == "pending").unwrap();
    assert_eq!(rearmed.nudge.due_at.millis_since(Clock::now(&*h.clock)), 5 * HOUR - 1_000);

    h.clock.advance_millis(5 * HOUR);
    h.until("the nudge six hours after the last message", |h| {
        texts(h, &key).iter().any(|(o, t)| *o == Origin::Nudge && t == "Still deciding?")
    })
    .await;
}

#[tokio::test]
async fn a_nudge_wakes_a_passivated_conversation_from_the_store() {
    let h = Harness::start_coaching(WALK, no_quiet_hours()).await;
    let key = h.key("eve");
    h.say(&key, "c1", "hi").await;
    h.until("the question", |h| texts(h, &key).len() >= 2).await;
    h.say(&key, "c2", "Eve").await;
    h.until("the wait's row", |h| h.store.nudge_rows().len() == 2).await;

    h.clock.advance_millis(support::IDLE_TTL.as_millis() as i64 + 1);
    h.engine.sweep_idle();
    h.until("passivation", |h| h.engine.live_conversations() == 0).await;

    h.clock.advance_millis(DAY);
    h.until("the task, from a re-hydrated conversation", |h| texts(h, &key).len() >= 3).await;
    assert_eq!(texts(&h, &key)[2], (Origin::Program, "Today, Eve: one focused hour.".to_owned()));
    assert_eq!(h.engine.live_conversations(), 1);
}
