//! CreatorTwinActor: one per active creator. Parent of that creator's conversations; restarts a
//! crashed conversation from the store, a bounded number of times. Keeps the creator's knowledge
//! ingested: when the twin loads or its creator changes, an ingestion task embeds what the vector
//! index does not have yet (one task at a time; a newer version of the creator replaces it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use twin_engine::knowledge::KnowledgeDocument;
use twin_engine::{ConversationId, CreatorId, TwinSnapshot};

use crate::handle::{Engine, EngineError, Spawner, TwinCell};
use crate::metrics as m;

/// Restarts allowed per conversation within [`RESTART_WINDOW`]; past that the conversation is left
/// stopped until its next event.
const MAX_RESTARTS: u32 = 3;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

pub enum CreatorTwinMsg {
    /// Re-read the creator from the store and swap the snapshot; answers once the new snapshot is
    /// in place (or the reload failed and the old one stays).
    Reload(ractor::RpcReplyPort<()>),
}

pub(crate) struct CreatorTwinArgs {
    pub(crate) creator: CreatorId,
    pub(crate) cell: Arc<TwinCell>,
    pub(crate) engine: Arc<Engine>,
    /// The creator's documents as loaded, for the first ingestion.
    pub(crate) documents: Vec<KnowledgeDocument>,
}

pub struct CreatorTwinState {
    creator: CreatorId,
    cell: Arc<TwinCell>,
    engine: Arc<Engine>,
    restarts: HashMap<ConversationId, (Instant, u32)>,
    ingestion: Option<tokio::task::JoinHandle<()>>,
}

impl CreatorTwinState {
    /// Starts ingesting `documents`, replacing an ingestion of an older version still running
    /// (ingestion is idempotent per document, so the new run picks up what the old one finished).
    fn ingest(&mut self, documents: Vec<KnowledgeDocument>) {
        if let Some(previous) = self.ingestion.take() {
            previous.abort();
        }
        let ports = self.engine.ports.knowledge.clone();
        let creator = self.creator;
        self.ingestion = Some(tokio::spawn(async move {
            match crate::knowledge::ingest(&ports, creator, &documents, |_| {}).await {
                Ok(report) if report.embedded > 0 || report.failed > 0 => {
                    tracing::info!(%creator, embedded = report.embedded, unchanged = report.unchanged, failed = report.failed, chunks = report.chunks, "knowledge ingested");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%creator, %error, "knowledge ingestion stopped; it resumes at the next load")
                }
            }
        }));
    }
}

pub(crate) struct CreatorTwinActor;

impl Actor for CreatorTwinActor {
    type Msg = CreatorTwinMsg;
    type State = CreatorTwinState;
    type Arguments = CreatorTwinArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<CreatorTwinMsg>,
        args: CreatorTwinArgs,
    ) -> Result<CreatorTwinState, ActorProcessingErr> {
        let mut state = CreatorTwinState {
            creator: args.creator,
            cell: args.cell,
            engine: args.engine,
            restarts: HashMap::new(),
            ingestion: None,
        };
        state.ingest(args.documents);
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CreatorTwinMsg>,
        state: &mut CreatorTwinState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(ingestion) = state.ingestion.take() {
            ingestion.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<CreatorTwinMsg>,
        message: CreatorTwinMsg,
        state: &mut CreatorTwinState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CreatorTwinMsg::Reload(reply) => {
                match state.engine.ports.creators.creator(state.creator).await {
                    Ok(Some(stored)) => {
                        state.cell.replace(snapshot(&stored));
                        state.ingest(stored.documents);
                    }
                    Ok(None) => tracing::warn!(creator = %state.creator, "creator vanished; keeping the last snapshot"),
                    Err(error) => tracing::warn!(creator = %state.creator, %error, "could not reload creator"),
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<CreatorTwinMsg>,
        event: SupervisionEvent,
        state: &mut CreatorTwinState,
    ) -> Result<(), ActorProcessingErr> {
        // Overridden so that a child's exit never stops the twin (ractor's default would).
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) if state.engine.actors.remove(&cell.get_id()).is_some() => {
                metrics::gauge!(m::CONVERSATIONS_ACTIVE).decrement(1.0);
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                let Some((_, key)) = state.engine.actors.remove(&cell.get_id()) else { return Ok(()) };
                metrics::gauge!(m::CONVERSATIONS_ACTIVE).decrement(1.0);
                let id = key.id();
                tracing::error!(conversation = %id, %error, "conversation actor failed");
                if !state.engine.registry.crashed(id, cell.get_id()) {
                    return Ok(());
                }
                if state.engine.is_closed() {
                    let error = EngineError::Unavailable("the server is shutting down".to_owned());
                    for message in state.engine.registry.abandon(id) {
                        state.engine.refuse(id, message, &error);
                    }
                    return Ok(());
                }
                let now = Instant::now();
                let entry = state.restarts.entry(id).or_insert((now, 0));
                if now.duration_since(entry.0) > RESTART_WINDOW {
                    *entry = (now, 0);
                }
                entry.1 += 1;
                if entry.1 > MAX_RESTARTS {
                    tracing::error!(conversation = %id, "conversation keeps failing; left stopped until its next event");
                    let error = EngineError::Unavailable("this conversation is failing; try again later".to_owned());
                    for message in state.engine.registry.abandon(id) {
                        state.engine.refuse(id, message, &error);
                    }
                    return Ok(());
                }
                metrics::counter!(m::CONVERSATION_RESTARTS).increment(1);
                let engine = state.engine.clone();
                tokio::spawn(async move {
                    let _ = engine.spawn_conversation(key, Spawner::Successor).await;
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// Builds a twin from its stored creator; program versions that no longer compile are logged and
/// left out (their enrolments fall back to free chat).
pub(crate) fn snapshot(stored: &twin_engine::ports::StoredCreator) -> TwinSnapshot {
    let (twin, broken) = TwinSnapshot::new(stored.profile.clone(), &stored.documents, &stored.programs);
    for program in broken {
        tracing::error!(creator = %twin.creator, program = %program.id, version = program.version, problems = %program.problems, "a stored program version does not compile; it is not used");
    }
    twin
}
