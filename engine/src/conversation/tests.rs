use super::*;
use crate::conversation::test_effects::{messages as persisted_messages, started as started_stream};
use crate::ids::Slug;
use crate::knowledge::KnowledgeDocument;
use crate::persona::Persona;
use crate::twin::{CreatorProfile, ReplySettings};

fn twin() -> TwinSnapshot {
    let profile = CreatorProfile {
        slug: Slug::parse("demo").unwrap(),
        persona: Persona { name: "Maya".into(), ..Persona::default() },
        replies: ReplySettings { history_window: 4, ..ReplySettings::default() },
        allowed_origins: vec![],
        default_program: None,
        nudges: Default::default(),
        model: Default::default(),
        channels: Default::default(),
        user_tokens: None,
    };
    TwinSnapshot::new(
        profile,
        &[KnowledgeDocument { path: "focus.md".into(), body: "# Focus\nPut the phone in another room.".into() }],
        &[],
    )
    .0
}

fn conversation(twin: &TwinSnapshot) -> Conversation {
    Conversation::new(twin.creator, UserId::parse("u1").unwrap(), Timestamp(1_000))
}

fn user(id: &str, text: &str) -> Event {
    Event::UserMessage {
        client_id: ClientMsgId::parse(id).unwrap(),
        text: text.into(),
        session: Some(SessionId(7)),
        channel: None,
    }
}

#[test]
fn a_first_user_message_creates_the_conversation_persists_acks_and_starts_a_reply_in_that_order() {
    let twin = twin();
    let mut c = conversation(&twin);
    let effects = c.step(&twin, user("m1", "how do I focus?"), Timestamp(2_000));

    let Effect::Persist(records) = &effects[0] else { panic!("persist must come first: {effects:?}") };
    assert!(matches!(&records[0], Record::Conversation(h) if h.version == 1));
    assert!(matches!(&records[1], Record::Message(m) if m.seq == Seq(1) && m.origin == Origin::User));
    assert_eq!(
        effects[1],
        Effect::Send {
            to: Recipient::Session(SessionId(7)),
            out: Outbound::Ack { client_id: ClientMsgId::parse("m1").unwrap(), seq: Seq(1) }
        }
    );
    let Some(Effect::StartReply(request)) = effects.iter().find(|e| matches!(e, Effect::StartReply(_))) else {
        panic!("no reply started: {effects:?}")
    };
    assert_eq!(request.stream, StreamId::answering(Seq(1)));
    assert_eq!(request.turns.last().map(|t| t.text.as_str()), Some("how do I focus?"));
    assert_eq!(request.passages[0].source, "focus.md", "the reply draws on matching knowledge");
    assert!(request.first_contact);
    assert_eq!(c.pending_reply(), Some(&StreamId::answering(Seq(1))));
}

#[test]
fn a_retried_client_id_is_acknowledged_again_without_storing_or_replying() {
    let twin = twin();
    let mut c = conversation(&twin);
    c.step(&twin, user("m1", "hello"), Timestamp(2_000));
    let effects = c.step(&twin, user("m1", "hello"), Timestamp(3_000));
    assert_eq!(
        effects,
        vec![Effect::Send {
            to: Recipient::Session(SessionId(7)),
            out: Outbound::Ack { client_id: ClientMsgId::parse("m1").unwrap(), seq: Seq(1) }
        }]
    );
    assert_eq!(c.last_seq(), Seq(1));
}

#[test]
fn a_finished_reply_is_persisted_before_it_is_sent_as_the_final_message() {
    let twin = twin();
    let mut c = conversation(&twin);
    let stream = started_stream(&c.step(&twin, user("m1", "hi"), Timestamp(2_000))).unwrap();
    let effects = c.step(
        &twin,
        Event::ReplyFinished { stream: stream.clone(), text: "Hello!".into(), consistency: None },
        Timestamp(2_500),
    );
    let persisted = persisted_messages(&effects);
    assert_eq!(persisted.len(), 1);
    assert_eq!((persisted[0].seq, persisted[0].origin), (Seq(2), Origin::Twin));
    assert_eq!(persisted[0].stream.as_ref(), Some(&stream));
    let persist_at = effects.iter().position(|e| matches!(e, Effect::Persist(_))).unwrap();
    let send_at = effects.iter().position(|e| matches!(e, Effect::Send { out: Outbound::Message(_), .. })).unwrap();
    assert!(persist_at < send_at);
    assert!(c.is_quiescent());
}

#[test]
fn deltas_are_previews_only_for_the_current_stream_and_only_when_streaming_is_on() {
    let mut twin = twin();
    let mut c = conversation(&twin);
    let stream = started_stream(&c.step(&twin, user("m1", "hi"), Timestamp(2_000))).unwrap();
    let effects = c.step(&twin, Event::ReplyDelta { stream: stream.clone(), text: "Hel".into() }, Timestamp(2_100));
    let live_delta = LiveEventKind::Delta { stream: stream.clone(), text: "Hel".into() };
    assert_eq!(
        effects,
        vec![
            Effect::Send { to: Recipient::User, out: Outbound::Delta { stream: stream.clone(), text: "Hel".into() } },
            Effect::Publish(LiveEvent { creator: c.creator(), conversation: c.id(), kind: live_delta }),
        ],
        "the user and the live view both see the preview"
    );
    let stale = StreamId::parse("r99").unwrap();
    assert!(c.step(&twin, Event::ReplyDelta { stream: stale.clone(), text: "x".into() }, Timestamp(2_100)).is_empty());
    assert!(
        c.step(&twin, Event::ReplyFinished { stream: stale, text: "x".into(), consistency: None }, Timestamp(2_100))
            .is_empty()
    );
    twin.profile.replies.stream_previews = false;
    let effects = c.step(&twin, Event::ReplyDelta { stream, text: "lo".into() }, Timestamp(2_100));
    assert!(matches!(&effects[..], [Effect::Publish(_)]), "previews off: the live view only: {effects:?}");
}

#[test]
fn a_message_during_a_reply_is_answered_after_that_reply_ends() {
    let twin = twin();
    let mut c = conversation(&twin);
    let first = started_stream(&c.step(&twin, user("m1", "hi"), Timestamp(2_000))).unwrap();
    let effects = c.step(&twin, user("m2", "and focus?"), Timestamp(2_100));
    assert!(started_stream(&effects).is_none(), "one reply at a time");
    let effects =
        c.step(&twin, Event::ReplyFinished { stream: first, text: "Hi.".into(), consistency: None }, Timestamp(2_200));
    let second = started_stream(&effects).expect("the second message gets its answer");
    assert_eq!(second, StreamId::answering(Seq(2)));
}

#[test]
fn a_failed_reply_tells_the_user_and_frees_the_conversation() {
    let twin = twin();
    let mut c = conversation(&twin);
    let stream = started_stream(&c.step(&twin, user("m1", "hi"), Timestamp(2_000))).unwrap();
    let effects =
        c.step(&twin, Event::ReplyFailed { stream, reason: "down".into(), partial: String::new() }, Timestamp(2_100));
    assert!(matches!(
        &effects[0],
        Effect::Send { to: Recipient::User, out: Outbound::Error { code: ErrorCode::Unavailable, .. } }
    ));
    assert!(persisted_messages(&effects).is_empty());
    assert!(c.is_quiescent());
}

#[test]
fn a_reply_cut_off_mid_stream_says_so_and_marks_its_partial_text_for_the_creator() {
    let twin = twin();
    let mut c = conversation(&twin);
    let stream = started_stream(&c.step(&twin, user("m1", "hi"), Timestamp(2_000))).unwrap();
    let failed = Event::ReplyFailed { stream, reason: "stream error".into(), partial: "Start with".into() };
    let effects = c.step(&twin, failed, Timestamp(2_100));
    let told = effects
        .iter()
        .any(|e| matches!(e, Effect::Send { out: Outbound::Error { message, .. }, .. } if message.contains("cut off")));
    assert!(told, "{effects:?}");
    let marked = effects.iter().any(|e| {
        matches!(e, Effect::Publish(LiveEvent { kind: LiveEventKind::ReplyFailed { partial, .. }, .. }) if partial == "Start with")
    });
    assert!(marked, "{effects:?}");
    assert!(persisted_messages(&effects).is_empty(), "a partial reply is never stored as the twin's answer");
    assert_eq!(c.last_seq(), Seq(1), "the user's message stays");
}

#[test]
fn a_twin_reply_is_stored_with_its_consistency_score() {
    let twin = twin();
    let mut c = conversation(&twin);
    let stream = started_stream(&c.step(&twin, user("m1", "hi"), Timestamp(2_000))).unwrap();
    let text = "Start small, every day.";
    let score = crate::message::Score::new(twin.style.score(text).score);
    let finished = Event::ReplyFinished { stream, text: text.into(), consistency: Some(score) };
    let effects = c.step(&twin, finished, Timestamp(2_100));
    let stored = persisted_messages(&effects);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].consistency, Some(score), "a twin reply is stored with its score");
    assert!((0.0..=1.0).contains(&score.value()));
    let published = effects.iter().any(|e| {
        matches!(e, Effect::Publish(LiveEvent { kind: LiveEventKind::Message(m), .. }) if m.consistency == Some(score))
    });
    assert!(published, "the live event carries the score");
}

#[test]
fn an_empty_or_oversized_message_is_refused_without_a_seq() {
    let twin = twin();
    let mut c = conversation(&twin);
    let effects = c.step(&twin, user("m1", "   "), Timestamp(2_000));
    assert!(matches!(&effects[..], [Effect::Send { out: Outbound::Error { code: ErrorCode::InvalidField, .. }, .. }]));
    let effects = c.step(&twin, user("m2", &"x".repeat(MAX_TEXT_BYTES + 1)), Timestamp(2_000));
    assert!(matches!(&effects[..], [Effect::Send { out: Outbound::Error { code: ErrorCode::TooLarge, .. }, .. }]));
    assert_eq!(c.last_seq(), Seq(0));
}

#[test]
fn a_reloaded_conversation_answers_an_acknowledged_but_unanswered_message() {
    let twin = twin();
    let mut c = conversation(&twin);
    c.step(&twin, user("m1", "hi"), Timestamp(2_000));
    let stored = StoredConversation {
        header: ConversationHeader { version: 1, ..c.header.clone() },
        last_seq: Seq(1),
        recent: c.history.iter().cloned().collect(),
        client_ids: vec![(ClientMsgId::parse("m1").unwrap(), Seq(1))],
    };
    let mut reloaded = Conversation::from_stored(stored);
    assert_eq!(
        started_stream(&reloaded.step(&twin, Event::Recovered, Timestamp(9_000))),
        Some(StreamId::answering(Seq(1)))
    );
    // And the retry of m1 after the reload is still recognised.
    let effects = reloaded.step(&twin, user("m1", "hi"), Timestamp(9_001));
    assert!(matches!(&effects[..], [Effect::Send { out: Outbound::Ack { seq: Seq(1), .. }, .. }]));
}

#[test]
fn the_history_window_keeps_only_the_most_recent_messages() {
    let twin = twin();
    let mut c = conversation(&twin);
    for i in 0..5 {
        let s = started_stream(&c.step(&twin, user(&format!("m{i}"), "hi"), Timestamp(2_000))).unwrap();
        c.step(&twin, Event::ReplyFinished { stream: s, text: "ok".into(), consistency: None }, Timestamp(2_000));
    }
    assert_eq!(c.history.len(), 4);
    assert_eq!(c.history.back().map(|m| m.seq), Some(Seq(10)));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Send(u8),
        Finish,
        Fail,
        Delta,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![(0u8..12).prop_map(Op::Send), Just(Op::Finish), Just(Op::Fail), Just(Op::Delta)]
    }

    proptest! {
        /// Whatever happens, persisted seqs go up by one with no gap or repeat, every client id is
        /// stored once, and each stored user message is acknowledged with its own seq.
        #[test]
        fn seqs_are_dense_and_client_ids_unique(ops in proptest::collection::vec(op(), 1..60)) {
            let twin = twin();
            let mut c = conversation(&twin);
            let mut persisted = Vec::new();
            let mut acks = std::collections::HashMap::new();
            for op in ops {
                let event = match op {
                    Op::Send(n) => user(&format!("m{n}"), "hello there"),
                    Op::Finish => match c.pending_reply() {
                        Some(s) => Event::ReplyFinished { stream: s.clone(), text: "ok".into(), consistency: None },
                        None => continue,
                    },
                    Op::Fail => match c.pending_reply() {
                        Some(s) => Event::ReplyFailed { stream: s.clone(), reason: "x".into(), partial: String::new() },
                        None => continue,
                    },
                    Op::Delta => match c.pending_reply() {
                        Some(s) => Event::ReplyDelta { stream: s.clone(), text: "o".into() },
                        None => continue,
                    },
                };
                let effects = c.step(&twin, event, Timestamp(5));
                for e in &effects {
                    if let Effect::Send { out: Outbound::Ack { client_id, seq }, .. } = e {
                        let first = *acks.entry(client_id.clone()).or_insert(*seq);
                        prop_assert_eq!(first, *seq, "a client id is always acked with one seq");
                    }
                }
                persisted.extend(persisted_messages(&effects));
            }
            for (i, m) in persisted.iter().enumerate() {
                prop_assert_eq!(m.seq, Seq(i as u64 + 1));
            }
            let ids: Vec<_> = persisted.iter().filter_map(|m| m.client_id.clone()).collect();
            let mut unique = ids.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(ids.len(), unique.len());
        }
    }
}
