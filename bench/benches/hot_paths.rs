//! Micro-benchmarks of Twin's hot paths, all pure and in-process (no sockets, store or runtime):
//!
//! - `step/*`: [`Conversation::step`] for a user message into a full 20-message history window
//!   (persist + ack + start-reply, knowledge retrieval included), finishing a pending reply, and
//!   the idempotent retry of a client id already stored;
//! - `knowledge/search`: BM25 retrieval over five documents of about ten paragraphs each;
//! - `prompt/system_prompt`: system prompt assembly from a complete persona;
//! - `wire/*`: decoding a client `message` frame, encoding an `ack` and a twin reply `message`;
//! - `responder/compose`: the built-in responder writing the reply to a typical request;
//! - `tokens/verify_*`: verifying an end user's token as every chat connect does, HS256 and EdDSA
//!   (the development default since the accounts work).
//!
//! Run with `cargo bench -p twin-bench --bench hot_paths`. Results are reported in
//! docs/BENCHMARKS.md; the benchmark names are quoted there, so keep them stable.

#![allow(clippy::expect_used, reason = "a benchmark fixture that cannot be built is a bug in the benchmark")]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use twin_channels::websocket::wire;
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::persona::{Boundary, Persona, Traits, Voice};
use twin_engine::ports::Outbound;
use twin_engine::prompt::{ReplyRequest, system_prompt};
use twin_engine::twin::{CreatorProfile, ReplySettings};
use twin_engine::{
    ClientMsgId, Conversation, Effect, Event, Message, Origin, Seq, SessionId, Slug, StreamId, Timestamp, TwinSnapshot,
    UserId,
};
use twin_llm::BuiltinResponder;

/// What a client typically asks; it shares words with several passages of more than one document.
const QUESTION: &str = "I keep checking my phone during focus blocks and then my whole morning is gone. \
                        How long should a block be, and what should I do when I get distracted?";

fn persona() -> Persona {
    Persona {
        name: "Maya Chen".into(),
        role: "habit and focus coach".into(),
        traits: Traits::from_words(&["warm", "direct", "practical", "calm", "a little playful"]),
        voice: Voice {
            greeting: "Hi, I'm Maya. I help people build calm, focused days, one small habit at a time. What would \
                       you like to work on: focus, your mornings, a new habit, sleep, or getting back on track?"
                .into(),
            signature_phrases: [
                "Small steps, every day.",
                "Make it easy, then make it a habit.",
                "Protect your first hour.",
                "Never miss twice.",
            ]
            .map(String::from)
            .to_vec(),
            avoid_words: ["hustle", "grind", "crush it", "lazy", "failure"].map(String::from).to_vec(),
            fallback: "That's not something my material covers, and I'd rather not guess. I can help with focus, \
                       morning routines, building habits, setbacks and sleep."
                .into(),
            ..Voice::default()
        },
        methodology: "I help people build calm, focused days by changing the environment before asking for \
                      effort. We start with the smallest version of a habit that still counts, tie it to something \
                      the person already does, and review each week without blame."
            .into(),
        values: [
            "consistency over intensity",
            "rest is part of the work",
            "kindness to yourself after a bad day",
            "design your surroundings instead of relying on effort",
        ]
        .map(String::from)
        .to_vec(),
        boundaries: ["medication", "supplements", "diagnosis", "depression", "insomnia", "eating disorders"]
            .map(Boundary::from)
            .to_vec(),
        ..Persona::default()
    }
}

/// Five documents of about ten paragraphs each, shaped like the demo creator's material.
fn documents() -> Vec<KnowledgeDocument> {
    [
        ("focus-blocks.md", FOCUS_BLOCKS),
        ("morning-routine.md", MORNING_ROUTINE),
        ("habit-stacking.md", HABIT_STACKING),
        ("setbacks.md", SETBACKS),
        ("sleep-basics.md", SLEEP_BASICS),
    ]
    .map(|(path, body)| KnowledgeDocument { path: path.into(), body: body.into() })
    .to_vec()
}

fn twin() -> TwinSnapshot {
    let profile = CreatorProfile {
        slug: Slug::parse("maya").expect("valid slug"),
        persona: persona(),
        replies: ReplySettings::default(),
        allowed_origins: vec![],
        default_program: None,
        nudges: Default::default(),
        model: Default::default(),
        channels: Default::default(),
        user_tokens: None,
    };
    assert_eq!(profile.replies.history_window, 20, "the benchmarks assume the default history window");
    TwinSnapshot::new(profile, &documents(), &[]).0
}

fn user_message(client_id: &str, text: &str) -> Event {
    Event::UserMessage {
        client_id: ClientMsgId::parse(client_id).expect("valid client id"),
        text: text.into(),
        session: Some(SessionId(1)),
        channel: None,
    }
}

fn started_reply(effects: Vec<Effect>) -> ReplyRequest {
    effects
        .into_iter()
        .find_map(|e| match e {
            Effect::StartReply(request) => Some(*request),
            _ => None,
        })
        .expect("a user message into a quiescent conversation starts a reply")
}

/// A quiescent conversation whose history window is full: ten questions, ten answers.
fn full_conversation(twin: &TwinSnapshot) -> Conversation {
    let mut conversation =
        Conversation::new(twin.creator, UserId::parse("user-1").expect("valid user id"), Timestamp(0));
    let responder = BuiltinResponder::new();
    for i in 0..10 {
        let question = format!("Question {i}: how do I protect my focus blocks from my phone in the morning?");
        let effects = conversation.step(twin, user_message(&format!("c{i}"), &question), Timestamp(i * 1_000));
        let request = started_reply(effects);
        let answer = responder.compose(&request);
        conversation.step(
            twin,
            Event::ReplyFinished { stream: request.stream, text: answer, consistency: None },
            Timestamp(i * 1_000 + 500),
        );
    }
    assert!(conversation.is_quiescent());
    conversation
}

fn step(c: &mut Criterion) {
    let twin = twin();
    let full = full_conversation(&twin);
    let now = Timestamp(1_000_000);
    let mut group = c.benchmark_group("step");

    let mut next_id = 0u64;
    group.bench_function("user_message", |b| {
        b.iter_batched(
            || {
                next_id += 1;
                (full.clone(), user_message(&format!("new-{next_id}"), QUESTION))
            },
            |(mut conversation, event)| {
                // Returned with the effects so that dropping them is not timed.
                let effects = conversation.step(black_box(&twin), black_box(event), now);
                (conversation, effects)
            },
            BatchSize::SmallInput,
        );
    });

    group.bench_function("reply_finished", |b| {
        b.iter_batched(
            || {
                let mut conversation = full.clone();
                let request = started_reply(conversation.step(&twin, user_message("pending", QUESTION), now));
                let text = BuiltinResponder::new().compose(&request);
                (conversation, Event::ReplyFinished { stream: request.stream, text, consistency: None })
            },
            |(mut conversation, event)| {
                // Returned with the effects so that dropping them is not timed.
                let effects = conversation.step(black_box(&twin), black_box(event), now);
                (conversation, effects)
            },
            BatchSize::SmallInput,
        );
    });

    // A reply preview changes nothing either: one conversation with a reply in flight serves every
    // iteration. Since the live view streams previews too, each delta is also a live event.
    let mut streaming = full.clone();
    let stream = started_reply(streaming.step(&twin, user_message("streaming", QUESTION), now)).stream;
    let delta = Event::ReplyDelta { stream, text: "Put the ".to_owned() };
    group.bench_function("reply_delta", |b| {
        b.iter_batched(
            || delta.clone(),
            |event| streaming.step(black_box(&twin), black_box(event), now),
            BatchSize::SmallInput,
        );
    });

    // A retry changes nothing, so one conversation serves every iteration.
    let mut conversation = full.clone();
    let retry = user_message("c9", "Question 9: how do I protect my focus blocks from my phone in the morning?");
    group.bench_function("duplicate_client_id", |b| {
        b.iter_batched(
            || retry.clone(),
            |event| conversation.step(black_box(&twin), black_box(event), now),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn knowledge(c: &mut Criterion) {
    let twin = twin();
    let limit = twin.profile.replies.passages;
    assert!(!twin.knowledge.search(QUESTION, limit).is_empty(), "the question must match some passages");
    let mut group = c.benchmark_group("knowledge");
    group.bench_function("search", |b| b.iter(|| twin.knowledge.search(black_box(QUESTION), black_box(limit))));
    group.finish();
}

fn prompt(c: &mut Criterion) {
    let persona = persona();
    let mut group = c.benchmark_group("prompt");
    group.bench_function("system_prompt", |b| b.iter(|| system_prompt(black_box(&persona))));
    group.finish();
}

fn wire(c: &mut Criterion) {
    let frame = serde_json::json!({ "type": "message", "id": "c-1f3a9", "text": QUESTION }).to_string();
    assert!(matches!(wire::decode(&frame), Ok(wire::ClientFrame::Message { .. })));
    let ack = Outbound::Ack { client_id: ClientMsgId::parse("c-1f3a9").expect("valid client id"), seq: Seq(21) };

    // The twin's answer to the question, as it goes out when the reply finishes.
    let twin = twin();
    let mut conversation = full_conversation(&twin);
    let request = started_reply(conversation.step(&twin, user_message("c-1f3a9", QUESTION), Timestamp(1)));
    let reply = Message {
        conversation: conversation.id(),
        creator: conversation.creator(),
        seq: Seq(22),
        origin: Origin::Twin,
        text: BuiltinResponder::new().compose(&request),
        client_id: None,
        stream: Some(StreamId::answering(Seq(21))),
        choices: Vec::new(),
        consistency: None,
        created_at: Timestamp(2),
    };

    let mut group = c.benchmark_group("wire");
    group.bench_function("decode_message", |b| b.iter(|| wire::decode(black_box(&frame))));
    group.bench_function("encode_ack", |b| b.iter(|| wire::encode(black_box(&ack))));
    group.bench_function("encode_message", |b| b.iter(|| wire::encode_message(black_box(&reply))));
    group.finish();
}

fn responder(c: &mut Criterion) {
    // The request the engine builds for the question: 20 turns of history and 3 passages.
    let twin = twin();
    let mut conversation = full_conversation(&twin);
    let request = started_reply(conversation.step(&twin, user_message("c-1f3a9", QUESTION), Timestamp(1)));
    assert_eq!((request.turns.len(), request.passages.len()), (20, 3));
    let responder = BuiltinResponder::new();
    let mut group = c.benchmark_group("responder");
    group.bench_function("compose", |b| b.iter(|| responder.compose(black_box(&request))));
    group.finish();
}

fn tokens(c: &mut Criterion) {
    use twin_api::auth::Role;
    use twin_api::auth::keyfiles::PrivateKey;
    use twin_api::auth::tokens::TokenKeys;

    let user = UserId::parse("maria").expect("valid user id");
    let creator = Slug::parse("demo").expect("valid slug").creator_id();
    let ttl = std::time::Duration::from_secs(3600);
    let hs256 = TokenKeys::from_secret(&[7; 32], "twin", "twin");
    let signing = PrivateKey::generate().expect("a key");
    let eddsa = TokenKeys::from_ed25519(&signing, &[], "twin", "twin").expect("a ring");
    let hs256_token = hs256.mint(creator, &user, Role::User, ttl).expect("signed");
    let eddsa_token = eddsa.mint(creator, &user, Role::User, ttl).expect("signed");
    assert!(hs256.verify(&hs256_token).is_ok() && eddsa.verify(&eddsa_token).is_ok());

    let mut group = c.benchmark_group("tokens");
    group.bench_function("verify_hs256", |b| b.iter(|| hs256.verify(black_box(&hs256_token))));
    group.bench_function("verify_eddsa", |b| b.iter(|| eddsa.verify(black_box(&eddsa_token))));
    group.finish();
}

criterion_group!(benches, step, knowledge, prompt, wire, responder, tokens);
criterion_main!(benches);

const FOCUS_BLOCKS: &str = "# Focus blocks

A focus block is a stretch of time with one task, one tab and no notifications. It is the basic unit of deep work in \
my coaching: we count blocks, not hours.

Most people can do two good blocks a day at first, and two real blocks get more done than a whole day of \
half-attention.

## How long a block should be

Start with 25 minutes if focusing feels hard right now, and work up to 50 or 90 minutes over a few weeks. The right \
length is the longest one you can finish without checking your phone.

When you finish a block easily three days in a row, add ten minutes. When you keep breaking a block early, shorten it \
again: a finished short block beats an abandoned long one.

## Setting up a block

Before you start, write the one outcome of the block on a sticky note, such as \"draft the intro\" rather than \"work \
on the report\". Close everything that is not needed for that outcome.

Put your phone in another room, not face down on the desk: out of sight is not enough when it is in reach. Turn off \
notifications on the computer for the length of the block.

## When a distraction pops up

Keep a notepad next to you as a parking lot. When a thought comes up, write it down in a few words and go straight \
back to the task; most items turn out to matter less than they seemed.

If you notice you have already drifted, do not scold yourself. Say \"back\" quietly, look at the sticky note and pick \
up the next small step of the task.

## Breaks between blocks

Take a real break of 5 to 15 minutes after each block: stand up, drink water, look out of a window or walk. Scrolling \
is not a break, because your attention keeps working.

The break is what makes the next block possible, so treat it as part of the work. After three or four blocks, take a \
longer break of half an hour away from screens.
";

const MORNING_ROUTINE: &str = "# Morning routine

The first hour sets the tone for the day. I do not ask for a perfect routine, only for a first hour that you protect \
from other people's priorities.

A good morning routine is short, repeatable and boring. Three small steps you do every day beat a ten-step ritual you \
keep for a week.

## The night before

Your morning starts the evening before. Lay out what you need, write tomorrow's first task on a card, and charge your \
phone outside the bedroom.

Decide the night before when you will get up, and keep that time on weekends within an hour. A steady wake time does \
more for your mornings than any app.

## The first hour

Do not check messages, news or social media in the first hour. Everything in your inbox is someone else's agenda, and \
it will still be there at nine.

Drink a glass of water, get daylight on your face for a few minutes and move your body, even if it is only a short \
walk around the block.

Use the rest of the first hour for one focus block on the task you wrote down the night before. Finishing something \
that matters before the day starts pulling at you is the point of the routine.

## When mornings go wrong

Some mornings will be chaos: a sick child, a late train, a bad night. On those days do the smallest version of the \
routine, even just the glass of water and one line on the card.

The routine exists to make good days easier, not to make hard days worse. Never judge your week by its worst morning.

## Adjusting the routine

Review the routine once a week. Keep the steps you actually did, drop the ones you skipped every time, and add at most \
one new step.
";

const HABIT_STACKING: &str = "# Habit stacking

Habit stacking means tying a new habit to something you already do every day. The old habit becomes the reminder, so \
you do not need willpower or an alarm.

The formula is simple: after I do the current habit, I will do the new habit. After I pour my morning coffee, I will \
write down my one task for the day.

## Choosing the anchor

Pick an anchor you do at the same time and place every day, such as brushing your teeth, sitting down at your desk or \
closing the laptop in the evening.

The anchor should match the new habit in time and place. Stretching fits after getting out of bed; reading fits after \
getting into it.

## Starting small

Make the new habit so small it feels almost silly: one push-up, one line in a journal, one page of a book. The goal of \
the first weeks is to show up, not to perform.

Once the small version happens without thinking, grow it slowly. Two push-ups, then five; one page, then a chapter. \
Small steps, every day.

## Tracking

Mark each day you do the habit on a paper calendar where you can see it. A chain of marks is motivating, and a gap \
shows you where the stack needs work.

Do not track more than three habits at once. If the list grows longer than that, you are building a to-do list, not \
habits.

## When a stack breaks

If you miss the new habit several times, the anchor is probably wrong, or the habit is too big. Change one of the two \
instead of trying harder.

Moving house, travel and new jobs break stacks because the anchors disappear. Rebuild the stack on the new routine in \
the first week.
";

const SETBACKS: &str = "# Getting back on track

Everyone falls off. What separates people who build lasting habits from people who do not is how quickly they come \
back after a bad day or a bad week.

My rule is never miss twice. One missed day is an accident; two in a row is the start of a new habit, the one you do \
not want.

## After a bad day

Skip the self-criticism and do the smallest version of the habit the next day. One focus block, one page, one walk \
around the block counts as coming back.

Ask what got in the way, in one sentence, and write it down. Most setbacks repeat, and a written cause is the start of \
a plan.

## After a bad week

After a longer break, do not try to make up for lost time. Start again at half the size you were at before, and grow \
back over a week or two.

Look at your environment before you look at your motivation. Did the phone come back to the desk? Did the evening \
routine slip? Fix the setup first.

## Weekly review

Once a week, spend fifteen minutes on a review: what went well, what got in the way, and one change for next week. Do \
it on the same day and time so it becomes a habit too.

Be kind to yourself in the review. Talk to yourself as you would to a friend who had a hard week, then plan the next \
small step.

## When to ask for help

If you keep falling off for weeks in a row, the plan is probably too ambitious for this season of your life. Shrink it \
rather than quitting, or talk it through with me.
";

const SLEEP_BASICS: &str = "# Sleep basics

Good focus starts with good sleep. Rest is part of the work, and no morning routine can make up for a short night \
every night.

Most adults need seven to nine hours. If you need an alarm to wake up every day and still feel tired at ten, you are \
probably sleeping too little.

## A steady schedule

Go to bed and get up at about the same time every day, weekends included. A steady schedule trains your body to get \
sleepy and wake up on its own.

If you want to shift your schedule, move it by fifteen minutes every few days rather than an hour at once.

## The last hour before bed

Dim the lights an hour before bed and put screens away. Bright light and scrolling tell your brain it is still day, \
and the next video is always one more.

Build a short wind-down routine: tidy up, write tomorrow's first task on a card, read a few pages of a paper book. The \
same steps every night become a signal to sleep.

## The bedroom

Keep the bedroom cool, dark and quiet, and use it for sleep only. Charge your phone in another room and use a simple \
alarm clock instead.

If street light or noise wakes you, blackout curtains and earplugs are cheap fixes that work for most people.

## Caffeine and late meals

Stop caffeine by early afternoon: it stays in your body for many hours. Eat your last big meal two or three hours \
before bed.

If you lie awake for a long time most nights, or sleep problems last for weeks, please talk to a doctor; that is \
beyond what I can help with here.
";
