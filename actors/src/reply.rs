//! A reply being generated: runs on a task of its own and reports back to the conversation as
//! messages, so a conversation never awaits retrieval or the model inside a handler.
//!
//! The task first retrieves the knowledge passages for the user's message (the query embedded,
//! searched among the creator's vectors and fused with the lexical ranking), then streams the
//! model's reply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ractor::ActorRef;
use tokio::task::AbortHandle;
use twin_engine::Event;
use twin_engine::message::Score;
use twin_engine::ports::Llm;
use twin_engine::prompt::{ReplyRequest, Role};
use twin_engine::twin::TwinSnapshot;

use crate::conversation::ConversationMsg;
use crate::knowledge::{KnowledgePorts, retrieve};
use crate::metrics as m;

/// What a reply needs besides its request: the model, and the twin and ports to retrieve from.
pub(crate) struct ReplyContext {
    pub(crate) llm: Arc<dyn Llm>,
    pub(crate) knowledge: KnowledgePorts,
    pub(crate) twin: Arc<TwinSnapshot>,
    pub(crate) timeout: Duration,
}

pub(crate) fn start(
    context: ReplyContext,
    mut request: ReplyRequest,
    conversation: ActorRef<ConversationMsg>,
) -> AbortHandle {
    tokio::spawn(async move {
        let stream = request.stream.clone();
        let started = Instant::now();
        let ReplyContext { llm, knowledge, twin, timeout } = context;
        let previews = twin.profile.replies.stream_previews;
        // What has streamed so far, kept outside the timeout so a reply cut off still reports it.
        let mut text = String::new();
        let outcome = tokio::time::timeout(timeout, async {
            if let Some(query) = request.turns.iter().rev().find(|t| t.role == Role::User).map(|t| t.text.clone()) {
                request.passages = retrieve(&knowledge, &twin, &query, twin.profile.replies.passages).await;
            }
            generate(llm, request, previews, &conversation, &mut text).await
        })
        .await;
        let event = match outcome {
            Ok(Ok(())) => {
                metrics::histogram!(m::REPLY_SECONDS).record(started.elapsed().as_secs_f64());
                // Scored here, on the reply's task: tens of microseconds the conversation's handler
                // does not spend.
                let score = twin.style.score(&text).score;
                metrics::histogram!(m::REPLY_CONSISTENCY).record(f64::from(score));
                let consistency = Some(Score::new(score));
                Event::ReplyFinished { stream, text, consistency }
            }
            Ok(Err(reason)) => {
                metrics::counter!(m::REPLY_FAILURES).increment(1);
                Event::ReplyFailed { stream, reason, partial: text }
            }
            Err(_) => {
                metrics::counter!(m::REPLY_FAILURES).increment(1);
                let reason = format!("no reply within {} s", timeout.as_secs());
                Event::ReplyFailed { stream, reason, partial: text }
            }
        };
        // If the conversation is gone, its successor answers from the store (Event::Recovered).
        let _ = conversation.cast(ConversationMsg::Event(event));
    })
    .abort_handle()
}

async fn generate(
    llm: Arc<dyn Llm>,
    request: ReplyRequest,
    previews: bool,
    conversation: &ActorRef<ConversationMsg>,
    text: &mut String,
) -> Result<(), String> {
    let stream_id = request.stream.clone();
    let mut deltas = llm.reply(request).await.map_err(|e| e.to_string())?;
    while let Some(delta) = deltas.next().await {
        let delta = delta.map_err(|e| e.to_string())?;
        text.push_str(&delta);
        if previews && !delta.is_empty() {
            let event = Event::ReplyDelta { stream: stream_id.clone(), text: delta };
            if conversation.cast(ConversationMsg::Event(event)).is_err() {
                return Err("the conversation stopped".to_owned());
            }
        }
    }
    Ok(())
}
