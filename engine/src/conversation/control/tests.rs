//! Takeover, human messages, release and draft approval, step by step with hand-set times.

use super::*;
use crate::channel::{Arrival, ChannelAddress, ChannelKind};
use crate::conversation::test_effects::{live, messages, started};
use crate::ids::{NudgeId, ProgramId, Seq, Slug, UserId};
use crate::persona::Persona;
use crate::ports::{ScheduledNudge, StoredProgram};
use crate::twin::{CreatorProfile, NudgeSettings, ReplySettings};
use crate::{ClientMsgId, Event};

const T0: Timestamp = Timestamp(1_772_884_800_000);
const HOUR: i64 = 3_600_000;

fn twin(program: Option<&str>, drafts: bool) -> TwinSnapshot {
    let quiet = crate::nudge::NudgePolicy { quiet_hours: None, ..Default::default() };
    let profile = CreatorProfile {
        slug: Slug::parse("demo").unwrap(),
        persona: Persona { name: "Maya".into(), ..Persona::default() },
        replies: ReplySettings { drafts, ..ReplySettings::default() },
        allowed_origins: vec![],
        default_program: program.map(|_| ProgramId::parse("p").unwrap()),
        nudges: NudgeSettings { policy: quiet, ..NudgeSettings::default() },
        model: Default::default(),
        channels: Default::default(),
        user_tokens: None,
    };
    let programs: Vec<StoredProgram> = program
        .map(|source| StoredProgram { id: ProgramId::parse("p").unwrap(), version: 1, source: source.to_owned() })
        .into_iter()
        .collect();
    let (twin, broken) = TwinSnapshot::new(profile, &[], &programs);
    assert!(broken.is_empty(), "{broken:?}");
    twin
}

fn conversation(twin: &TwinSnapshot) -> Conversation {
    Conversation::new(twin.creator, UserId::parse("u1").unwrap(), T0)
}

fn user(id: &str, text: &str) -> Event {
    Event::UserMessage { client_id: ClientMsgId::parse(id).unwrap(), text: text.into(), session: None, channel: None }
}

fn at(ms: i64) -> Timestamp {
    T0.plus_millis(ms)
}

fn sent_to_user(effects: &[Effect]) -> Vec<Outbound> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to: Recipient::User, out } => Some(out.clone()),
            _ => None,
        })
        .collect()
}

fn answer(effects: &[Effect]) -> Option<Answer> {
    effects.iter().find_map(|e| match e {
        Effect::Answer(a) => Some(a.clone()),
        _ => None,
    })
}

fn scheduled(effects: &[Effect]) -> Vec<ScheduledNudge> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Schedule(rows) => Some(rows.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn take_over() -> Event {
    Event::TakeOver { by: "maya@example.com".into() }
}

fn release() -> Event {
    Event::Release { by: "maya@example.com".into() }
}

#[test]
fn taking_over_cancels_the_reply_in_flight_and_the_twin_stays_silent_until_release() {
    let twin = twin(None, false);
    let mut c = conversation(&twin);
    let stream = started(&c.step(&twin, user("m1", "hi"), at(0))).expect("a reply starts");

    let effects = c.step(&twin, take_over(), at(10));
    assert!(effects.contains(&Effect::CancelReply(stream.clone())), "{effects:?}");
    assert!(
        matches!(&effects[0], Effect::Persist(r) if matches!(&r[0], Record::Conversation(h) if h.state.control.held_by.as_deref() == Some("maya@example.com")))
    );
    assert!(
        live(&effects).iter().any(|k| matches!(k, LiveEventKind::TakenOver { by, .. } if by == "maya@example.com"))
    );
    assert_eq!(answer(&effects), Some(Answer::Done { seq: None }));
    assert_eq!(c.held_by(), Some("maya@example.com"));

    // The cancelled reply's late end changes nothing.
    let late = c.step(&twin, Event::ReplyFinished { stream, text: "late".into(), consistency: None }, at(20));
    assert!(messages(&late).is_empty(), "{late:?}");

    // The user writes: stored and acknowledged, shown live, no reply; a reload does not answer.
    let effects = c.step(&twin, user("m2", "are you there?"), at(30));
    assert_eq!(messages(&effects).len(), 1);
    assert!(started(&effects).is_none(), "{effects:?}");
    assert!(live(&effects).iter().any(|k| matches!(k, LiveEventKind::Message(m) if m.origin == Origin::User)));
    assert!(c.step(&twin, Event::Recovered, at(40)).is_empty());

    let effects = c.step(&twin, release(), at(50));
    assert!(live(&effects).iter().any(|k| matches!(k, LiveEventKind::Released { .. })));
    assert!(started(&effects).is_none(), "the human answered; the twin takes the next message");
    assert_eq!(c.held_by(), None);
    assert!(started(&c.step(&twin, user("m3", "thanks!"), at(60))).is_some(), "the twin answers again");
}

#[test]
fn a_human_message_takes_over_is_stored_as_human_and_goes_out_on_the_users_channel() {
    let twin = twin(None, false);
    let mut c = conversation(&twin);
    let telegram = ChannelAddress { kind: ChannelKind::Telegram, chat: "42".into() };
    let from_telegram = Event::UserMessage {
        client_id: ClientMsgId::parse("tg-1").unwrap(),
        text: "hello".into(),
        session: None,
        channel: Some(Arrival { address: telegram.clone(), inbox: None }),
    };
    c.step(&twin, from_telegram, at(0));

    let write = |id: &str| Event::HumanMessage {
        by: "agent@example.com".into(),
        text: "Hi, Maya's team here.".into(),
        client_id: Some(ClientMsgId::parse(id).unwrap()),
    };
    let effects = c.step(&twin, write("h1"), at(10));
    let stored = messages(&effects);
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].origin, stored[0].seq), (Origin::Human, Seq(2)));
    assert!(matches!(&sent_to_user(&effects)[..], [Outbound::Message(m)] if m.origin == Origin::Human));
    let outbox = effects.iter().find_map(|e| match e {
        Effect::Dispatch(entries) => Some(entries.clone()),
        _ => None,
    });
    assert_eq!(outbox.map(|o| o[0].address.clone()), Some(telegram), "the human's message goes out on Telegram");
    assert_eq!(c.held_by(), Some("agent@example.com"));
    assert_eq!(answer(&effects), Some(Answer::Done { seq: Some(Seq(2)) }));

    // The same client id again: the same seq, nothing stored.
    let again = c.step(&twin, write("h1"), at(20));
    assert_eq!(again, vec![Effect::Answer(Answer::Done { seq: Some(Seq(2)) })]);

    let empty = Event::HumanMessage { by: "agent@example.com".into(), text: "  ".into(), client_id: None };
    assert!(matches!(answer(&c.step(&twin, empty, at(30))), Some(Answer::Refused { conflict: false, .. })));
    assert_eq!(c.last_seq(), Seq(2));
}

const HANDOFF: &str = r#"
steps:
  - id: human
    handoff: "Maya will answer you herself."
    timeout: 2h
  - id: after
    question: "Did that help?"
"#;

#[test]
fn releasing_a_handoff_moves_the_program_on_and_its_timeout_waits_while_a_human_holds_it() {
    let twin = twin(Some(HANDOFF), false);
    let mut c = conversation(&twin);
    let effects = c.step(&twin, user("m1", "hi"), at(0));
    let timeout = scheduled(&effects).into_iter().next().expect("the handoff's timeout is armed");
    assert_eq!(timeout.due_at, at(2 * HOUR));

    c.step(&twin, take_over(), at(10));
    // The timeout falls due while the human holds the conversation: it waits for them.
    let effects = c.step(&twin, Event::NudgeDue { id: timeout.id }, timeout.due_at);
    assert!(live(&effects).iter().any(|k| matches!(k, LiveEventKind::NudgeSkipped { reason: "human_holds", .. })));
    assert!(messages(&effects).is_empty(), "nothing is said while held: {effects:?}");

    let effects = c.step(&twin, release(), at(3 * HOUR));
    let said: Vec<_> = messages(&effects).into_iter().map(|m| m.text).collect();
    assert_eq!(said, ["Did that help?"], "the program goes on after the handoff");
    assert_eq!(c.state().enrolment.as_ref().map(|e| e.step.as_str()), Some("after"));
}

#[test]
fn a_handoff_nobody_takes_ends_at_its_timeout() {
    let twin = twin(Some(HANDOFF), false);
    let mut c = conversation(&twin);
    let timeout = scheduled(&c.step(&twin, user("m1", "hi"), at(0))).remove(0);
    let effects = c.step(&twin, Event::NudgeDue { id: timeout.id }, timeout.due_at);
    let said: Vec<_> = messages(&effects).into_iter().map(|m| m.text).collect();
    assert_eq!(said, ["Did that help?"]);
}

#[test]
fn in_draft_mode_a_reply_waits_for_approval_and_the_user_sees_nothing_of_it() {
    let twin = twin(None, true);
    let mut c = conversation(&twin);
    let stream = started(&c.step(&twin, user("m1", "hi"), at(0))).unwrap();
    let delta = c.step(&twin, Event::ReplyDelta { stream: stream.clone(), text: "Hel".into() }, at(1));
    assert!(sent_to_user(&delta).is_empty(), "no preview reaches the user: {delta:?}");
    assert!(matches!(&live(&delta)[..], [LiveEventKind::Delta { text, .. }] if text == "Hel"));

    let effects =
        c.step(&twin, Event::ReplyFinished { stream: stream.clone(), text: "Hello!".into(), consistency: None }, at(2));
    assert!(messages(&effects).is_empty() && sent_to_user(&effects).is_empty(), "{effects:?}");
    assert!(live(&effects).iter().any(|k| matches!(k, LiveEventKind::DraftProposed { text, .. } if text == "Hello!")));
    assert_eq!(c.state().control.draft.as_ref().map(|d| d.text.as_str()), Some("Hello!"));
    assert!(c.step(&twin, Event::Recovered, at(3)).is_empty(), "a pending draft is not answered again on reload");

    let approve =
        Event::ResolveDraft { stream: stream.clone(), action: DraftAction::Approve, by: "maya@example.com".into() };
    let effects = c.step(&twin, approve.clone(), at(4));
    let stored = messages(&effects);
    assert_eq!((stored[0].origin, stored[0].text.as_str(), stored[0].seq), (Origin::Twin, "Hello!", Seq(2)));
    assert!(matches!(&sent_to_user(&effects)[..], [Outbound::Message(m)] if m.text == "Hello!"));
    assert_eq!(answer(&effects), Some(Answer::Done { seq: Some(Seq(2)) }));
    assert!(c.state().control.draft.is_none());

    // Deciding again: refused as a conflict, nothing changes.
    assert!(matches!(
        c.step(&twin, approve, at(5)).as_slice(),
        [Effect::Answer(Answer::Refused { conflict: true, .. })]
    ));
}

#[test]
fn an_edited_draft_is_sent_as_the_humans_message_a_rejected_one_not_at_all() {
    let twin = twin(None, true);
    let mut c = conversation(&twin);
    let first = started(&c.step(&twin, user("m1", "hi"), at(0))).unwrap();
    c.step(&twin, Event::ReplyFinished { stream: first.clone(), text: "Hey".into(), consistency: None }, at(1));
    let edit = DraftAction::Edit("Hello, and welcome!".into());
    let effects =
        c.step(&twin, Event::ResolveDraft { stream: first, action: edit, by: "maya@example.com".into() }, at(2));
    let stored = messages(&effects);
    assert_eq!((stored[0].origin, stored[0].text.as_str()), (Origin::Human, "Hello, and welcome!"));

    let second = started(&c.step(&twin, user("m2", "what now?"), at(3))).unwrap();
    c.step(
        &twin,
        Event::ReplyFinished { stream: second.clone(), text: "Something off".into(), consistency: None },
        at(4),
    );
    let reject =
        Event::ResolveDraft { stream: second.clone(), action: DraftAction::Reject, by: "maya@example.com".into() };
    let effects = c.step(&twin, reject, at(5));
    assert!(messages(&effects).is_empty() && sent_to_user(&effects).is_empty());
    assert!(live(&effects).iter().any(|k| matches!(k, LiveEventKind::DraftResolved { outcome: "rejected", .. })));
    assert_eq!(c.last_seq(), Seq(3), "m1, the edit, m2: the rejected draft took no seq");
}

#[test]
fn a_newer_draft_supersedes_a_pending_one_and_the_old_one_can_no_longer_be_approved() {
    let twin = twin(None, true);
    let mut c = conversation(&twin);
    let first = started(&c.step(&twin, user("m1", "hi"), at(0))).unwrap();
    c.step(&twin, Event::ReplyFinished { stream: first.clone(), text: "One".into(), consistency: None }, at(1));
    let second = started(&c.step(&twin, user("m2", "and?"), at(2))).unwrap();
    let effects =
        c.step(&twin, Event::ReplyFinished { stream: second.clone(), text: "Two".into(), consistency: None }, at(3));
    assert!(
        live(&effects).iter().any(
            |k| matches!(k, LiveEventKind::DraftResolved { stream, outcome: "superseded", .. } if *stream == first)
        )
    );
    let old = Event::ResolveDraft { stream: first, action: DraftAction::Approve, by: "maya@example.com".into() };
    assert!(matches!(answer(&c.step(&twin, old, at(4))), Some(Answer::Refused { conflict: true, .. })));
    assert_eq!(c.state().control.draft.as_ref().map(|d| d.stream.clone()), Some(second));
}

#[test]
fn draft_mode_per_conversation_overrides_the_creators_default() {
    let twin = twin(None, false);
    let mut c = conversation(&twin);
    let effects = c.step(&twin, Event::SetDrafts { drafts: Some(true) }, at(0));
    assert!(live(&effects).contains(&LiveEventKind::DraftsMode { drafts: true }));
    assert!(c.drafting(&twin));
    let stream = started(&c.step(&twin, user("m1", "hi"), at(1))).unwrap();
    let effects = c.step(&twin, Event::ReplyFinished { stream, text: "Hi!".into(), consistency: None }, at(2));
    assert!(messages(&effects).is_empty());
    c.step(&twin, Event::SetDrafts { drafts: None }, at(3));
    assert!(!c.drafting(&twin), "back to the creator's default");
}

const WAIT: &str = r#"
steps:
  - id: rest
    wait: 1d
  - id: ask
    question: "Day two: how did it go?"
"#;

#[test]
fn a_fast_forward_fires_the_next_timer_at_its_own_time() {
    let twin = twin(Some(WAIT), false);
    let mut c = conversation(&twin);
    let wait = scheduled(&c.step(&twin, user("m1", "hi"), at(0))).remove(0);
    let effects = c.step(&twin, Event::FastForward, at(1_000));
    let stored = messages(&effects);
    assert_eq!(stored[0].text, "Day two: how did it go?");
    assert_eq!(stored[0].created_at, wait.due_at, "the preview's clock jumped to the timer");
    assert_eq!(answer(&effects), Some(Answer::FastForwarded { nudge: Some((wait.id, wait.due_at)) }));
    let nothing: Option<(NudgeId, Timestamp)> = None;
    let effects = c.step(&twin, Event::FastForward, at(2_000));
    assert_eq!(answer(&effects), Some(Answer::FastForwarded { nudge: nothing }));
}
