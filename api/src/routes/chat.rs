//! `GET /v1/chat`: the end-user chat socket. Authenticates before the upgrade, then runs one
//! session: client frames in (parsed by the wire module, routed to the conversation), frames from
//! the conversation out (through the session hub), until either side ends.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use std::sync::Arc;

use tokio::sync::watch;
use twin_actors::{ConversationKey, EngineError, EngineHandle};
use twin_channels::websocket::SessionHub;
use twin_channels::websocket::wire::{self, ClientFrame, FrameError, MAX_FRAME_BYTES, TRANSPORT_LIMIT_BYTES};
use twin_engine::ports::{ErrorCode, Outbound};
use twin_engine::{CreatorId, Event, SessionId, TwinSnapshot};

use super::AppState;
use crate::auth::{Role, authenticate};
use crate::problem::ApiError;
use crate::telemetry as t;

/// Socket buffers sized for many idle sockets (DEPENDENCIES.md: the library default costs 134 KiB
/// per idle socket; 4 KiB costs about 6 KiB).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;
/// How long a socket may take to accept our frames before it is considered gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a socket closed for an oversized frame is kept before it is dropped.
const CLOSE_LINGER: Duration = Duration::from_millis(250);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The end user's token, where `Authorization` cannot be set (browsers).
    token: Option<String>,
    /// A web widget's ticket (`POST /v1/creators/{slug}/widget/ticket`) instead of a token: it
    /// opens one socket, once, within its lifetime, from the origin it was issued to.
    ticket: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/chat",
    tag = "chat",
    summary = "End-user chat (WebSocket upgrade)",
    description = "JSON text frames follow the upgrade; the protocol is in CONTRACT.md and docs/PROTOCOL.md. \
                   Authenticated by an end-user token, or by a web widget's ticket (docs/WIDGET.md).",
    params(TokenQuery),
    security(("bearer" = []), ("queryToken" = [])),
    responses(
        (status = 101, description = "Switching protocols; JSON text frames follow"),
        (status = 400, description = "Not a WebSocket upgrade, or both a ticket and a token", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 401, description = "Missing, expired or invalid token; unknown, used or expired ticket", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 403, description = "Not an end-user token, unknown creator or origin not allowed (a ticket: not the origin it was issued to)", content_type = "application/problem+json", body = super::openapi::Problem),
        (status = 503, description = "The engine (or the ticket store) is unavailable", content_type = "application/problem+json", body = super::openapi::Problem),
    )
)]
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let (key, ws) = match query.ticket.as_deref() {
        Some(ticket) => {
            if query.token.is_some() || headers.contains_key(header::AUTHORIZATION) {
                return Err(ApiError::bad_request("send a ticket or a token, not both"));
            }
            // Only a real upgrade spends the ticket.
            let ws = upgrade_request(ws)?;
            (redeem(&state, &headers, ticket).await?, ws)
        }
        None => {
            // Authenticate first: a request without a valid token learns nothing else.
            let identity = authenticate(&state, &headers, query.token.as_deref()).await?;
            if identity.role != Role::User {
                // Creators and agents watch and take over through the live view, not as an end user.
                return Err(ApiError::forbidden("chat sockets are for end-user tokens (role `user`)"));
            }
            let ws = upgrade_request(ws)?;
            let twin = twin(&state, identity.creator).await?;
            if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
                let allowed = &twin.profile.allowed_origins;
                // The server's own pages (the dashboard's preview) may always open token sockets.
                let own = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .is_some_and(|host| crate::origin::is_same_host(origin, host));
                if !allowed.is_empty() && !own && !crate::origin::is_allowed(allowed, origin) {
                    return Err(ApiError::forbidden(format!(
                        "origin {origin} may not open chat sockets for this creator"
                    )));
                }
            }
            (ConversationKey { creator: identity.creator, user: identity.subject }, ws)
        }
    };
    Ok(ws
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .max_write_buffer_size(TRANSPORT_LIMIT_BYTES)
        .max_message_size(TRANSPORT_LIMIT_BYTES)
        .max_frame_size(TRANSPORT_LIMIT_BYTES)
        .on_upgrade(move |socket| session(Session::of(&state), key, socket)))
}

fn upgrade_request(ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>) -> Result<WebSocketUpgrade, ApiError> {
    ws.map_err(|rejection| ApiError::bad_request(format!("not a WebSocket upgrade: {rejection}")))
}

async fn twin(state: &AppState, creator: CreatorId) -> Result<Arc<TwinSnapshot>, ApiError> {
    state.engine.twin(creator).await.map_err(|e| match e {
        EngineError::UnknownCreator(_) => ApiError::forbidden("the token's creator does not exist"),
        EngineError::Unavailable(cause) => ApiError::unavailable(cause),
    })
}

/// The conversation a widget ticket opens. The ticket is spent first, whatever follows: one used
/// from another origin (copied out of the page) is gone, not left for another try.
async fn redeem(state: &AppState, headers: &HeaderMap, text: &str) -> Result<ConversationKey, ApiError> {
    let redeemed = state.widget.tickets.redeem(text).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let Some(ticket) = redeemed else {
        metrics::counter!(t::HTTP_AUTH_FAILURES).increment(1);
        return Err(ApiError::unauthorized("the ticket is unknown, used or expired: ask for a new one"));
    };
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if origin != Some(ticket.origin.as_str()) {
        return Err(ApiError::forbidden(format!(
            "a ticket opens a socket only from the page origin it was issued to ({})",
            ticket.origin
        )));
    }
    let twin = twin(state, ticket.creator).await?;
    // The creator may have taken the origin off its list since the ticket was issued.
    if !crate::origin::is_allowed(&twin.profile.allowed_origins, &ticket.origin) {
        return Err(ApiError::forbidden(format!("origin {} may no longer open chat sockets", ticket.origin)));
    }
    Ok(ConversationKey { creator: ticket.creator, user: ticket.user })
}

/// What a live socket keeps: only the handles it uses, not the whole application state (which
/// also holds the token keys and their validation tables, copied per clone).
struct Session {
    engine: EngineHandle,
    hub: Arc<SessionHub>,
    shutdown: watch::Receiver<bool>,
}

impl Session {
    fn of(state: &AppState) -> Self {
        Self { engine: state.engine.clone(), hub: state.hub.clone(), shutdown: state.shutdown.clone() }
    }
}

async fn session(state: Session, key: ConversationKey, socket: WebSocket) {
    let conversation = key.id();
    let (session, outbound) = state.hub.register(conversation);
    // In a cluster, the conversation's owner sends this node its frames while the socket is here.
    state.engine.watch(conversation, true).await;
    metrics::gauge!(t::WS_SESSIONS_ACTIVE).increment(1.0);
    let (mut sink, mut stream) = socket.split();
    let mut shutdown = state.shutdown.clone();
    let close = 'session: loop {
        tokio::select! {
            () = stopping(&mut shutdown) => {
                break Some(CloseFrame { code: close_code::RESTART, reason: "server restarting; reconnect and resume".into() });
            }
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    metrics::counter!(t::WS_FRAMES_IN).increment(1);
                    // Boxed: the session task lives as long as the socket, and an inline handler
                    // future would make every idle socket carry its state machine.
                    for frame in Box::pin(handle_text(&state, &key, session, text.as_str())).await {
                        if send(&mut sink, frame).await.is_err() {
                            break 'session None;
                        }
                    }
                }
                Some(Ok(WsMessage::Binary(_))) => {
                    metrics::counter!(t::WS_FRAME_ERRORS).increment(1);
                    if send(&mut sink, wire::encode_frame_error(&FrameError::binary())).await.is_err() {
                        break None;
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None => break None,
                Some(Ok(_)) => {} // ping/pong: answered by the library
                Some(Err(error)) => break Some(transport_close(&error)),
            },
            out = outbound.recv() => match out {
                Some(frame) => {
                    if send_frame(&mut sink, WsMessage::Text(Utf8Bytes::from(&*frame))).await.is_err() {
                        break None;
                    }
                }
                // The hub dropped us: we fell behind on durable frames. The client resumes.
                None => break Some(CloseFrame { code: close_code::AGAIN, reason: "too slow; reconnect and resume".into() }),
            },
        }
    };
    state.hub.unregister(conversation, session);
    state.engine.watch(conversation, false).await;
    metrics::gauge!(t::WS_SESSIONS_ACTIVE).decrement(1.0);
    if let Some(frame) = close {
        let oversized = frame.code == close_code::SIZE;
        let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(WsMessage::Close(Some(frame)))).await;
        if oversized {
            // The refused payload is still unread in the kernel; closing now would reset the
            // connection and could destroy our close frame before the client reads it.
            tokio::time::sleep(CLOSE_LINGER).await;
        }
    }
}

/// The frames to answer one text frame with (the ack and replies come later, through the hub).
async fn handle_text(state: &Session, key: &ConversationKey, session: SessionId, text: &str) -> Vec<String> {
    if text.len() > MAX_FRAME_BYTES {
        metrics::counter!(t::WS_FRAME_ERRORS).increment(1);
        return vec![wire::encode_frame_error(&FrameError::too_large(text.len()))];
    }
    let frame = match wire::decode(text) {
        Ok(frame) => frame,
        Err(error) => {
            metrics::counter!(t::WS_FRAME_ERRORS).increment(1);
            return vec![wire::encode_frame_error(&error)];
        }
    };
    match frame {
        ClientFrame::Message { id, text } | ClientFrame::Choice { id, value: text } => {
            let event = Event::UserMessage { client_id: id.clone(), text, session: Some(session), channel: None };
            match state.engine.route(key, event).await {
                Ok(()) => Vec::new(),
                Err(error) => {
                    vec![wire::encode(&Outbound::Error {
                        code: ErrorCode::Unavailable,
                        message: error.to_string(),
                        client_id: Some(id),
                    })]
                }
            }
        }
        ClientFrame::Resume { after, limit } => match state.engine.history(key, after, limit + 1).await {
            Ok(mut messages) => {
                let more = messages.len() > limit as usize;
                messages.truncate(limit as usize);
                let up_to = messages.last().map_or(after, |m| m.seq).max(after);
                let mut frames: Vec<String> = messages.iter().map(wire::encode_message).collect();
                frames.push(wire::encode_resumed(up_to, more));
                frames
            }
            Err(error) => vec![wire::encode_error(ErrorCode::Unavailable, &error.to_string(), None)],
        },
        ClientFrame::Ping => vec![wire::encode_pong()],
    }
}

/// Resolves when the server starts shutting down.
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    if shutdown.wait_for(|stopping| *stopping).await.is_err() {
        // The sender is gone only when the server is gone.
        std::future::pending::<()>().await;
    }
}

async fn send<S>(sink: &mut S, text: String) -> Result<(), ()>
where
    S: futures::Sink<WsMessage> + Unpin,
{
    send_frame(sink, WsMessage::Text(text.into())).await
}

async fn send_frame<S>(sink: &mut S, message: WsMessage) -> Result<(), ()>
where
    S: futures::Sink<WsMessage> + Unpin,
{
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// The close frame for a transport error: 1009 when the client sent more than the transport takes.
fn transport_close(error: &axum::Error) -> CloseFrame {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let too_big = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<WsError>())
        .is_some_and(|e| matches!(e, WsError::Capacity(_)));
    if too_big {
        CloseFrame { code: close_code::SIZE, reason: "message too big".into() }
    } else {
        CloseFrame { code: close_code::PROTOCOL, reason: "protocol error".into() }
    }
}
