//! `actors`: K idle conversation actors in this process, each holding a short stored history:
//! resident memory per actor, spawn (with load) rate, passivation rate and re-hydration rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use twin_actors::{ConversationKey, EngineConfig, EngineHandle, LiveHub, Ports};
use twin_engine::ports::{
    Clock, ConversationHeader, ConversationStore, Delivery, ManualClock, Outbound, Recipient, Record,
};
use twin_engine::{ClientMsgId, ConversationId, Event, Message, Origin, Seq, Slug, StreamId, Timestamp, UserId};
use twin_store::Store;

use super::TwinArgs;
use crate::process::own_rss;
use crate::report::Report;

pub struct ActorArgs {
    pub count: usize,
    /// Stored messages per conversation (user and twin turns), loaded into each actor.
    pub history: usize,
}

/// Frames go nowhere: no client is connected in this scenario.
struct NoClients;

impl Delivery for NoClients {
    fn deliver(&self, _conversation: ConversationId, _to: Recipient, _out: Outbound) {}
}

const IDLE_TTL: Duration = Duration::from_secs(60);
const CONCURRENCY: usize = 256;

pub async fn run(args: &ActorArgs, twin: &TwinArgs, report: &mut Report) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let url = match &twin.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", data.path().join("twin.db").display()),
    };
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let mut bundle = twin_api::bundle::demo();
    bundle.profile.slug = Slug::parse("bench")?;
    // Free chat: the bench measures conversations, not a program's first-contact welcome.
    bundle.programs.clear();
    bundle.profile.default_program = None;
    twin_api::startup::import(&store, &bundle).await?;
    let creator = bundle.profile.slug.creator_id();
    let keys: Vec<ConversationKey> = (0..args.count)
        .map(|i| Ok(ConversationKey { creator, user: UserId::parse(&format!("actor-{i}"))? }))
        .collect::<anyhow::Result<_>>()?;
    seed_history(&store, &keys, args.history).await?;

    let clock = Arc::new(ManualClock::starting_at(Timestamp(1_700_000_000_000)));
    let ports = Ports {
        conversations: Arc::new(store.clone()),
        creators: Arc::new(store.clone()),
        nudges: Arc::new(store.clone()),
        llm: Arc::new(twin_llm::BuiltinResponder::new()),
        knowledge: twin_actors::KnowledgePorts {
            embedder: Arc::new(twin_engine::knowledge::HashedEmbedder::default()),
            index: Arc::new(twin_store::EmbeddedIndex::new(Arc::new(store.clone()))),
            store: Arc::new(store.clone()),
        },
        delivery: Arc::new(NoClients),
        outbox: Arc::new(twin_engine::ports::NoOutbox),
        live: Arc::new(LiveHub::new()),
        clock: clock.clone(),
        cluster: None,
    };
    let engine = EngineHandle::start(ports, EngineConfig { idle_ttl: IDLE_TTL, ..EngineConfig::default() }).await?;
    engine.twin(creator).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = own_rss()?;

    let started = Instant::now();
    touch_all(&engine, &keys).await?;
    let spawned = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = own_rss()?;

    let started = Instant::now();
    clock.advance_millis(IDLE_TTL.as_millis() as i64 + 1);
    engine.sweep_idle();
    while engine.live_conversations() > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let passivated = started.elapsed();

    let started = Instant::now();
    touch_all(&engine, &keys).await?;
    let rehydrated = started.elapsed();

    let figures = report.section("actors");
    figures.insert("actors".into(), json!(args.count));
    figures.insert("history_messages_per_actor".into(), json!(args.history));
    figures.insert("store".into(), json!(store.backend()));
    figures.insert("rss_before_bytes".into(), json!(before));
    figures.insert("rss_after_bytes".into(), json!(after));
    figures.insert(
        "rss_bytes_per_idle_actor".into(),
        json!(after.saturating_sub(before) as f64 / args.count.max(1) as f64),
    );
    figures.insert("spawns_per_sec".into(), json!(args.count as f64 / spawned.as_secs_f64().max(1e-9)));
    figures.insert("passivations_per_sec".into(), json!(args.count as f64 / passivated.as_secs_f64().max(1e-9)));
    figures.insert("rehydrations_per_sec".into(), json!(args.count as f64 / rehydrated.as_secs_f64().max(1e-9)));
    engine.shutdown(Duration::from_secs(30)).await;
    store.close().await;
    Ok(())
}

/// Routes an event to every conversation (spawning and loading it) and waits until each is loaded.
async fn touch_all(engine: &EngineHandle, keys: &[ConversationKey]) -> anyhow::Result<()> {
    let routed = futures::stream::iter(keys)
        .map(|key| engine.route(key, Event::Recovered))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    routed.into_iter().collect::<Result<Vec<_>, _>>()?;
    // An Inspect is answered after the load and the routed event: every actor is then hydrated.
    let loaded = futures::stream::iter(keys)
        .map(|key| engine.inspect(key))
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let missing = loaded.iter().filter(|view| !view.as_ref().is_some_and(|v| v.loaded)).count();
    anyhow::ensure!(missing == 0, "{missing} conversations did not load");
    Ok(())
}

/// Stores `history` alternating user/twin messages for every conversation, in large commits.
async fn seed_history(store: &Store, keys: &[ConversationKey], history: usize) -> anyhow::Result<()> {
    if history == 0 {
        return Ok(());
    }
    let now = twin_engine::ports::SystemClock.now();
    for chunk in keys.chunks(1_000) {
        let mut records = Vec::with_capacity(chunk.len() * (history + 1));
        for key in chunk {
            let id = key.id();
            records.push(Record::Conversation(ConversationHeader {
                id,
                creator: key.creator,
                user: key.user.clone(),
                version: 1,
                created_at: now,
                state: Default::default(),
            }));
            for n in 1..=history as u64 {
                let user_turn = n % 2 == 1;
                records.push(Record::Message(Message {
                    conversation: id,
                    creator: key.creator,
                    seq: Seq(n),
                    origin: if user_turn { Origin::User } else { Origin::Twin },
                    text: if user_turn {
                        "How do I protect my focus when my phone keeps distracting me?".to_owned()
                    } else {
                        "Put the phone in another room for one ninety-minute block, and decide the block's one task before it starts.".to_owned()
                    },
                    client_id: if user_turn { Some(ClientMsgId::parse(&format!("seed-{n}"))?) } else { None },
                    stream: if user_turn { None } else { Some(StreamId::answering(Seq(n - 1))) },
                    choices: Vec::new(),
                    consistency: None,
                    created_at: now,
                }));
            }
        }
        store.commit(&records).await?;
    }
    Ok(())
}
