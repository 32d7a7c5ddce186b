//! RootActor: the top of the tree. Starts the writer and the twin supervisor and watches them.
//! Neither is expected to fail (store errors are answered, not raised); if one does, that is a bug
//! the process cannot heal in place, so the root reports the engine as failed and the server exits
//! (non-zero) for its process supervisor to restart it. Nothing acknowledged is lost that way:
//! everything acknowledged is committed.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::watch;
use twin_engine::ports::CreatorStore;

use crate::twin_supervisor::{TwinSupervisor, TwinSupervisorMsg};
use crate::writer::{WriterActor, WriterArgs, WriterMsg};

pub(crate) enum RootMsg {
    Children(RpcReplyPort<(ActorRef<WriterMsg>, ActorRef<TwinSupervisorMsg>)>),
    /// From now on children stopping is expected.
    ShuttingDown(RpcReplyPort<()>),
}

pub(crate) struct RootArgs {
    pub(crate) writer: WriterArgs,
    pub(crate) creators: Arc<dyn CreatorStore>,
    /// Set to the reason when a top-level child fails.
    pub(crate) failed: watch::Sender<Option<String>>,
}

pub(crate) struct RootState {
    writer: ActorRef<WriterMsg>,
    supervisor: ActorRef<TwinSupervisorMsg>,
    failed: watch::Sender<Option<String>>,
    shutting_down: bool,
}

pub(crate) struct RootActor;

impl Actor for RootActor {
    type Msg = RootMsg;
    type State = RootState;
    type Arguments = RootArgs;

    async fn pre_start(&self, myself: ActorRef<RootMsg>, args: RootArgs) -> Result<RootState, ActorProcessingErr> {
        let (writer, _) = Actor::spawn_linked(None, WriterActor, args.writer, myself.get_cell()).await?;
        let (supervisor, _) = Actor::spawn_linked(None, TwinSupervisor, args.creators, myself.get_cell()).await?;
        Ok(RootState { writer, supervisor, failed: args.failed, shutting_down: false })
    }

    async fn handle(
        &self,
        _myself: ActorRef<RootMsg>,
        message: RootMsg,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RootMsg::Children(reply) => {
                let _ = reply.send((state.writer.clone(), state.supervisor.clone()));
            }
            RootMsg::ShuttingDown(reply) => {
                state.shutting_down = true;
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<RootMsg>,
        event: SupervisionEvent,
        state: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let reason = match event {
            SupervisionEvent::ActorFailed(cell, error) => format!("{:?} failed: {error}", cell.get_name()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                format!("{:?} stopped: {}", cell.get_name(), reason.unwrap_or_default())
            }
            _ => return Ok(()),
        };
        if !state.shutting_down {
            tracing::error!(%reason, "a top-level actor is gone; the engine cannot go on");
            let _ = state.failed.send(Some(reason));
        }
        Ok(())
    }
}
