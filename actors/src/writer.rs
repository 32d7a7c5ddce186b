//! WriterActor: group commit. Conversations hand it records and wait for the commit; while
//! transactions are in flight (as many as the store allows at once), everything that arrives is
//! gathered into the next, so a busy server writes many conversations' messages per transaction
//! instead of one transaction per message. A conversation never has two commits in flight (it
//! waits for each), so overlapping transactions never reorder one conversation's writes.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use twin_engine::Record;
use twin_engine::ports::{ConversationStore, StoreError};

use crate::metrics as m;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// Too much is waiting to be written; the caller refuses the work (clients retry).
    #[error("the writer is overloaded")]
    Overloaded,
    #[error("the commit failed: {0}")]
    Failed(String),
    /// Cluster: another node owns the conversation now; nothing was written.
    #[error("{0}")]
    Fenced(String),
}

type CommitReply = RpcReplyPort<Result<(), CommitError>>;
type Entry = (Vec<Record>, CommitReply);
type Outcome = (CommitReply, Result<(), CommitError>);

pub enum WriterMsg {
    Commit {
        records: Vec<Record>,
        reply: CommitReply,
    },
    /// The in-flight transaction ended; `outcomes` answer its callers in order.
    Flushed {
        outcomes: Vec<Outcome>,
    },
    /// Replies when everything received before it is committed (for shutdown).
    Drain(RpcReplyPort<()>),
}

pub struct WriterArgs {
    pub store: Arc<dyn ConversationStore>,
    /// Records waiting (not yet in flight) above which new commits are refused.
    pub max_pending_records: usize,
    /// Records in one transaction at most.
    pub max_batch_records: usize,
}

pub struct WriterState {
    args: WriterArgs,
    pending: Vec<Entry>,
    pending_records: usize,
    /// Transactions running now, at most `store.concurrent_commits()`.
    in_flight: usize,
    max_in_flight: usize,
    drains: Vec<RpcReplyPort<()>>,
}

pub struct WriterActor;

impl Actor for WriterActor {
    type Msg = WriterMsg;
    type State = WriterState;
    type Arguments = WriterArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<WriterMsg>,
        args: WriterArgs,
    ) -> Result<WriterState, ActorProcessingErr> {
        let max_in_flight = args.store.concurrent_commits().max(1);
        Ok(WriterState {
            args,
            pending: Vec::new(),
            pending_records: 0,
            in_flight: 0,
            max_in_flight,
            drains: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<WriterMsg>,
        message: WriterMsg,
        state: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WriterMsg::Commit { records, reply } => {
                if records.is_empty() {
                    let _ = reply.send(Ok(()));
                    return Ok(());
                }
                if state.pending_records + records.len() > state.args.max_pending_records {
                    metrics::counter!(m::WRITER_OVERLOADED).increment(1);
                    let _ = reply.send(Err(CommitError::Overloaded));
                    return Ok(());
                }
                state.pending_records += records.len();
                state.pending.push((records, reply));
            }
            WriterMsg::Flushed { outcomes } => {
                state.in_flight -= 1;
                for (reply, outcome) in outcomes {
                    let _ = reply.send(outcome);
                }
            }
            WriterMsg::Drain(reply) => state.drains.push(reply),
        }
        while state.in_flight < state.max_in_flight && !state.pending.is_empty() {
            start_flush(&myself, state);
        }
        if state.in_flight == 0 && state.pending.is_empty() {
            for reply in state.drains.drain(..) {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

/// Takes up to a batch of pending commits and writes them in one transaction on a task of its own.
fn start_flush(myself: &ActorRef<WriterMsg>, state: &mut WriterState) {
    let mut take = 0;
    let mut records = 0;
    for (batch, _) in &state.pending {
        if take > 0 && records + batch.len() > state.args.max_batch_records {
            break;
        }
        records += batch.len();
        take += 1;
    }
    let entries: Vec<_> = state.pending.drain(..take).collect();
    state.pending_records -= records;
    state.in_flight += 1;
    let store = state.args.store.clone();
    let myself = myself.clone();
    tokio::spawn(async move {
        // A panicking store must not leave the writer waiting forever: the callers' reply ports
        // are dropped with the panic (they see the commit fail) and the writer goes on.
        let outcomes = AssertUnwindSafe(commit_entries(store.as_ref(), entries, records))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                metrics::counter!(m::WRITER_COMMIT_FAILURES).increment(1);
                tracing::error!("the store panicked during a commit");
                Vec::new()
            });
        // The writer only stops at shutdown, after a drain; a failed cast means nobody waits.
        let _ = myself.cast(WriterMsg::Flushed { outcomes });
    });
}

/// Commits all entries in one transaction. If that fails for a reason one entry can cause (a
/// version conflict, a duplicate), each entry is retried alone so one bad entry fails only itself.
async fn commit_entries(store: &dyn ConversationStore, entries: Vec<Entry>, records: usize) -> Vec<Outcome> {
    let all: Vec<Record> = entries.iter().flat_map(|(r, _)| r.iter().cloned()).collect();
    let started = Instant::now();
    let result = store.commit(&all).await;
    metrics::histogram!(m::WRITER_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::histogram!(m::WRITER_BATCH_RECORDS).record(records as f64);
    match result {
        Ok(()) => entries.into_iter().map(|(_, reply)| (reply, Ok(()))).collect(),
        Err(error) if entries.len() > 1 && !matches!(error, StoreError::Unavailable(_)) => {
            tracing::warn!(%error, entries = entries.len(), "group commit failed; committing its entries one by one");
            let mut outcomes = Vec::with_capacity(entries.len());
            for (records, reply) in entries {
                let outcome = store.commit(&records).await.map_err(|e| failed(&e));
                outcomes.push((reply, outcome));
            }
            outcomes
        }
        Err(error) => {
            let error = failed(&error);
            entries.into_iter().map(|(_, reply)| (reply, Err(error.clone()))).collect()
        }
    }
}

fn failed(error: &StoreError) -> CommitError {
    if matches!(error, StoreError::Fenced { .. }) {
        metrics::counter!(m::CLUSTER_FENCED).increment(1);
        tracing::warn!(error = %error, "commit refused: the conversation has a newer owner");
        return CommitError::Fenced(error.to_string());
    }
    metrics::counter!(m::WRITER_COMMIT_FAILURES).increment(1);
    tracing::error!(error = %error, source = ?std::error::Error::source(error), "commit failed");
    CommitError::Failed(error.to_string())
}
