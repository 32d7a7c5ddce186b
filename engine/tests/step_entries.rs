//! Every program step a conversation enters becomes a durable `Record::StepEntered` (what the
//! stats' program funnel counts), in the same commit as the state that holds the step.

#![allow(clippy::unwrap_used)]

use twin_engine::ids::{ClientMsgId, ProgramId, Slug, StepId, UserId};
use twin_engine::nudge::NudgePolicy;
use twin_engine::persona::Persona;
use twin_engine::ports::{ScheduledNudge, StoredProgram};
use twin_engine::twin::{CreatorProfile, NudgeSettings};
use twin_engine::{Conversation, Effect, Event, Record, Timestamp, TwinSnapshot};

const PROGRAM: &str = r#"
triggers:
  first_contact: true
steps:
  - id: hello
    message: "Welcome!"
  - id: pause
    wait: 1h
  - id: goal
    question: "What do you want to work on?"
"#;

const NOW: Timestamp = Timestamp(1_796_475_600_000);

fn twin() -> TwinSnapshot {
    let profile = CreatorProfile {
        slug: Slug::parse("demo").unwrap(),
        persona: Persona { name: "Maya".into(), ..Persona::default() },
        replies: Default::default(),
        allowed_origins: vec![],
        default_program: Some(ProgramId::parse("p").unwrap()),
        nudges: NudgeSettings {
            policy: NudgePolicy { quiet_hours: None, ..NudgePolicy::default() },
            ..NudgeSettings::default()
        },
        model: Default::default(),
        channels: Default::default(),
        user_tokens: None,
    };
    let stored = StoredProgram { id: ProgramId::parse("p").unwrap(), version: 1, source: PROGRAM.to_owned() };
    let (twin, broken) = TwinSnapshot::new(profile, &[], &[stored]);
    assert!(broken.is_empty(), "{broken:?}");
    twin
}

/// The one commit of a step's effects.
fn commit(effects: &[Effect]) -> &[Record] {
    let commits: Vec<&Vec<Record>> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(records) => Some(records),
            _ => None,
        })
        .collect();
    assert_eq!(commits.len(), 1, "{effects:?}");
    commits[0]
}

/// The steps entered in a commit, with their time, and the step its conversation state holds.
fn entered(records: &[Record]) -> (Vec<(String, Timestamp)>, Option<StepId>) {
    let mut steps = Vec::new();
    let mut state = None;
    for record in records {
        match record {
            Record::StepEntered { program, step, at, .. } => {
                assert_eq!(program.as_str(), "p");
                steps.push((step.to_string(), *at));
            }
            Record::Conversation(header) => state = header.state.enrolment.as_ref().map(|e| e.step.clone()),
            _ => {}
        }
    }
    (steps, state)
}

#[test]
fn each_step_entered_is_recorded_in_the_commit_that_moves_the_state_there() {
    let twin = twin();
    let user = UserId::parse("u1").unwrap();
    let mut conversation = Conversation::new(twin.creator, user, NOW);
    let first = Event::UserMessage {
        client_id: ClientMsgId::parse("m1").unwrap(),
        text: "hi".into(),
        session: None,
        channel: None,
    };
    let effects = conversation.step(&twin, first, NOW);
    let records = commit(&effects);
    let (steps, state) = entered(records);
    assert_eq!(steps, [("hello".to_owned(), NOW), ("pause".to_owned(), NOW)]);
    assert_eq!(state, Some(StepId::parse("pause").unwrap()));
    let conversation_id = conversation.id();
    assert!(records.iter().all(|r| match r {
        Record::StepEntered { creator, conversation, .. } =>
            *creator == twin.creator && *conversation == conversation_id,
        _ => true,
    }));

    // The wait's timer falls due an hour later: the question step is entered then.
    let timer: Vec<ScheduledNudge> = records
        .iter()
        .filter_map(|r| match r {
            Record::NudgeScheduled(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    let later = Timestamp(NOW.0 + 3_600_000);
    let effects = conversation.step(&twin, Event::NudgeDue { id: timer[0].id }, later);
    let (steps, state) = entered(commit(&effects));
    assert_eq!(steps, [("goal".to_owned(), later)]);
    assert_eq!(state, Some(StepId::parse("goal").unwrap()));

    // Answering the last question finishes the program: no step is entered.
    let answer = Event::UserMessage {
        client_id: ClientMsgId::parse("m2").unwrap(),
        text: "sleep".into(),
        session: None,
        channel: None,
    };
    let effects = conversation.step(&twin, answer, later);
    let entries = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(records) => Some(records),
            _ => None,
        })
        .flatten()
        .filter(|r| matches!(r, Record::StepEntered { .. }))
        .count();
    assert_eq!(entries, 0, "{effects:?}");
}
