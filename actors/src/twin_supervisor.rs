//! TwinSupervisor: loads creators and starts one CreatorTwinActor per active creator.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use twin_engine::CreatorId;
use twin_engine::ports::CreatorStore;

use crate::creator_twin::{CreatorTwinActor, CreatorTwinArgs};
use crate::handle::{Engine, EngineError, TwinCell, TwinEntry};

pub(crate) enum TwinSupervisorMsg {
    Load { creator: CreatorId, engine: Arc<Engine>, reply: RpcReplyPort<Result<TwinEntry, EngineError>> },
}

pub(crate) struct TwinSupervisorState {
    creators: Arc<dyn CreatorStore>,
    twins: HashMap<CreatorId, TwinEntry>,
}

pub(crate) struct TwinSupervisor;

impl Actor for TwinSupervisor {
    type Msg = TwinSupervisorMsg;
    type State = TwinSupervisorState;
    type Arguments = Arc<dyn CreatorStore>;

    async fn pre_start(
        &self,
        _myself: ActorRef<TwinSupervisorMsg>,
        creators: Arc<dyn CreatorStore>,
    ) -> Result<TwinSupervisorState, ActorProcessingErr> {
        Ok(TwinSupervisorState { creators, twins: HashMap::new() })
    }

    async fn handle(
        &self,
        myself: ActorRef<TwinSupervisorMsg>,
        message: TwinSupervisorMsg,
        state: &mut TwinSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TwinSupervisorMsg::Load { creator, engine, reply } => {
                // Loads are serialised here; creators are few and load once per process.
                let entry = match state.twins.get(&creator) {
                    Some(entry) => Ok(entry.clone()),
                    None => load(&myself, state, creator, engine).await,
                };
                let _ = reply.send(entry);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<TwinSupervisorMsg>,
        event: SupervisionEvent,
        state: &mut TwinSupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // A twin has no work of its own that can fail; if one stops, forget it so the next use
        // loads it again.
        if let SupervisionEvent::ActorTerminated(cell, ..) | SupervisionEvent::ActorFailed(cell, _) = event {
            state.twins.retain(|_, entry| entry.actor.get_id() != cell.get_id());
        }
        Ok(())
    }
}

async fn load(
    myself: &ActorRef<TwinSupervisorMsg>,
    state: &mut TwinSupervisorState,
    creator: CreatorId,
    engine: Arc<Engine>,
) -> Result<TwinEntry, EngineError> {
    let stored = state
        .creators
        .creator(creator)
        .await
        .map_err(|e| EngineError::Unavailable(e.to_string()))?
        .ok_or(EngineError::UnknownCreator(creator))?;
    let cell = Arc::new(TwinCell::new(crate::creator_twin::snapshot(&stored)));
    let args = CreatorTwinArgs { creator, cell: cell.clone(), engine, documents: stored.documents };
    let (actor, _) = Actor::spawn_linked(None, CreatorTwinActor, args, myself.get_cell())
        .await
        .map_err(|e| EngineError::Unavailable(e.to_string()))?;
    let entry = TwinEntry { actor, cell };
    state.twins.insert(creator, entry.clone());
    Ok(entry)
}
