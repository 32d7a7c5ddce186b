//! `GET /v1/live`: the live view of a creator's conversations for the creator and their agents
//! (docs/LIVE.md). On connect (and after a `subscribe` or a lag) a snapshot of the active
//! conversations comes first, then every live event as it happens. A watcher reads from the
//! creator's broadcast; one that falls behind is told `lagged` and sent a fresh snapshot, it never
//! holds up a conversation.

use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use twin_engine::ports::LiveEvent;
use twin_engine::{ConversationId, CreatorId};
use twin_store::ConversationFilter;

use super::AppState;
use crate::auth::{Caller, Role, authenticate};
use crate::problem::ApiError;
use crate::routes::rest::conversations::view;

/// Socket buffers: watchers are few, but frames can be long (whole messages).
const SOCKET_BUFFER_BYTES: usize = 16 * 1024;
/// The largest client frame (`subscribe`, `ping`).
const MAX_CLIENT_FRAME_BYTES: usize = 4 * 1024;
/// How long a watcher's socket may take to accept a frame before the watcher is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The most conversations one snapshot lists.
const SNAPSHOT_LIMIT: usize = 500;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveQuery {
    /// The token, where a browser cannot set `Authorization`.
    token: Option<String>,
    /// The creator to watch: required for admins, optional (and only their own) for creators and agents.
    creator: Option<String>,
    /// Watch only this conversation (its id); all of the creator's when absent.
    conversation: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/live",
    tag = "live",
    summary = "The live view of a creator's conversations (WebSocket upgrade)",
    description = "Creator, agent or admin token. A `snapshot` of the active conversations, then `event` frames; \
                   `lagged` and a fresh `snapshot` when the watcher fell behind. Protocol: docs/LIVE.md.",
    params(LiveQuery),
    security(("bearer" = []), ("queryToken" = [])),
    responses(
        (status = 101, description = "Switching protocols; JSON text frames follow"),
        (status = 400, description = "Not a WebSocket upgrade, or an admin without `creator`", body = crate::problem::Problem),
        (status = 401, description = "Missing, expired or invalid token", body = crate::problem::Problem),
        (status = 403, description = "An end-user token", body = crate::problem::Problem),
        (status = 404, description = "No such creator (or another tenant's), or no such conversation", body = crate::problem::Problem),
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let caller = Caller(authenticate(&state, &headers, query.token.as_deref()).await?);
    caller.require(&[Role::Creator, Role::Agent, Role::Admin])?;
    let creator = match (&query.creator, caller.identity().role) {
        (Some(slug), _) => caller.scope(slug)?,
        (None, Role::Admin) => {
            return Err(ApiError::bad_request("admins name the creator to watch: `?creator=<slug>`"));
        }
        (None, _) => caller.identity().creator,
    };
    let filter = match &query.conversation {
        None => None,
        Some(raw) => Some(conversation_of(&state, creator, raw).await?),
    };
    let ws = ws.map_err(|rejection| ApiError::bad_request(format!("not a WebSocket upgrade: {rejection}")))?;
    Ok(ws
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_message_size(MAX_CLIENT_FRAME_BYTES)
        .on_upgrade(move |socket| watch(state, creator, filter, socket)))
}

/// A conversation id of this creator, or the 404 of one that does not exist.
async fn conversation_of(state: &AppState, creator: CreatorId, raw: &str) -> Result<ConversationId, ApiError> {
    let missing = || ApiError::not_found(format!("no conversation {raw:?}"));
    let id = uuid::Uuid::parse_str(raw).map(ConversationId).map_err(|_| missing())?;
    let found = state.store.conversations_page(creator, &ConversationFilter::Id(id), 1).await;
    match found {
        Ok(found) if !found.is_empty() => Ok(id),
        Ok(_) => Err(missing()),
        Err(error) => Err(ApiError::unavailable(error.to_string())),
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    /// Watch one conversation (`conversation`), or all of the creator's (absent or null).
    Subscribe {
        conversation: Option<String>,
    },
    Ping,
}

async fn watch(state: AppState, creator: CreatorId, mut filter: Option<ConversationId>, socket: WebSocket) {
    // Subscribe before the snapshot: nothing that happens in between is missed.
    let mut events = state.live.subscribe(creator);
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = state.shutdown.clone();
    let mut outgoing = vec![snapshot(&state, creator, filter).await];
    loop {
        for frame in outgoing.drain(..) {
            let sent =
                tokio::time::timeout(SEND_TIMEOUT, sink.send(WsMessage::Text(Utf8Bytes::from(frame.to_string()))));
            if !matches!(sent.await, Ok(Ok(()))) {
                return; // Gone, or not draining: the watcher is dropped, conversations never wait.
            }
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    let _ = sink.send(WsMessage::Close(None)).await;
                    return;
                }
            }
            event = events.recv() => match event {
                Ok(event) => {
                    if wanted(&event, filter) {
                        outgoing.push(crate::live_wire::event_frame(&event));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    outgoing.push(json!({"type": "lagged", "missed": missed}));
                    outgoing.push(snapshot(&state, creator, filter).await);
                }
                Err(RecvError::Closed) => return,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => match serde_json::from_str::<ClientFrame>(&text) {
                    Ok(ClientFrame::Ping) => outgoing.push(json!({"type": "pong"})),
                    Ok(ClientFrame::Subscribe { conversation }) => {
                        match conversation {
                            None => filter = None,
                            Some(raw) => match conversation_of(&state, creator, &raw).await {
                                Ok(id) => filter = Some(id),
                                Err(error) => {
                                    outgoing.push(json!({"type": "error", "code": "not_found", "message": error.detail}));
                                    continue;
                                }
                            },
                        }
                        outgoing.push(snapshot(&state, creator, filter).await);
                    }
                    Err(error) => outgoing.push(json!({"type": "error", "code": "bad_frame", "message": error.to_string()})),
                },
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {} // pings, pongs, binary: nothing to do
            },
        }
    }
}

fn wanted(event: &LiveEvent, filter: Option<ConversationId>) -> bool {
    filter.is_none_or(|id| event.conversation == id)
}

/// `{"type":"snapshot","conversations":[…],"truncated":bool}`: the conversations in memory now
/// (active lately), with their program position and last activity; the watched one only when
/// filtered.
async fn snapshot(state: &AppState, creator: CreatorId, filter: Option<ConversationId>) -> Value {
    let ids: Vec<ConversationId> = match filter {
        Some(id) => vec![id],
        None => state.engine.active_conversations(creator).iter().map(|key| key.id()).collect(),
    };
    let truncated = ids.len() > SNAPSHOT_LIMIT;
    let mut conversations = Vec::new();
    let drafts = crate::routes::rest::conversations::creator_drafts(state, creator).await;
    for id in ids.into_iter().take(SNAPSHOT_LIMIT) {
        match state.store.conversations_page(creator, &ConversationFilter::Id(id), 1).await {
            Ok(found) => {
                conversations.extend(found.iter().map(|summary| crate::routes::rest::to_json(&view(summary, drafts))))
            }
            Err(error) => tracing::warn!(%error, "live snapshot: a conversation could not be read"),
        }
    }
    json!({"type": "snapshot", "conversations": conversations, "truncated": truncated})
}
