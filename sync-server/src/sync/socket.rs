//! The sync endpoint's socket: authenticate before the upgrade, then move frames between axum's
//! WebSocket and the socketless [`Connection`], and close with the code it asks for.
//!
//! Everything protocol-related (handshake, document sets, sync, acks, notices, token checks)
//! lives in [`super::connection`]; this file only reads the clock and moves bytes.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use schemas::wire::{self, close};

use tokio::sync::mpsc;

use super::connection::{Connection, Now};
use crate::auth::{self, Principal};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::TokenKind;

/// The WebSocket layer's read buffer per connection. tungstenite's default (128 KiB) is
/// zero-filled at the first read: with 10,000 idle devices the server's RSS was 260-350 MiB
/// higher than with this (`benches/sync_load.rs`, `idle`). A frame larger than this is still
/// read whole (the buffer grows to the frame), in more reads.
const READ_BUFFER_BYTES: usize = 8 * 1024;

pub async fn handler(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let token = auth::bearer(
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let principal = match auth::authenticate(
        app.store.as_ref(),
        token,
        TokenKind::Access,
        chrono::Utc::now(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    // A plain GET (no upgrade headers) gets the API's JSON error body like any other refusal.
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::Rejected(e.status(), "websocket-required", e.body_text())
                .into_response();
        }
    };
    // Frames up to twice the limit are read and refused with an error frame; beyond that the
    // WebSocket layer drops the connection without reading the whole message into memory.
    ws.max_message_size(app.config.max_frame_bytes.saturating_mul(2))
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let user = principal.user.id;
            let span = tracing::info_span!("sync", %user, device = ?principal.device);
            let _ = tracing::Instrument::instrument(connection(app, principal, socket), span).await;
        })
}

/// Frames read ahead of the connection while it handles one: enough to keep the socket drained
/// (so arrival times are real), small enough that a flooding client is held back by TCP.
const READ_AHEAD: usize = 64;

/// How long to wait for the client's close frame after sending ours, so it reads the reason
/// before the socket goes away.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

async fn connection(app: Arc<AppState>, principal: Principal, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (mut c, mut notices) = Connection::open(app.clone(), principal, Now::system());
    // A reader task stamps each frame with its arrival time, so the rate limit counts frames as
    // they arrive, not as the connection gets to them.
    let (frames_tx, mut frames) = mpsc::channel::<(Now, Result<Message, axum::Error>)>(READ_AHEAD);
    let reader = tokio::spawn(async move {
        while let Some(frame) = stream.next().await {
            let end = !matches!(
                frame,
                Ok(Message::Binary(_) | Message::Text(_) | Message::Ping(_) | Message::Pong(_))
            );
            if frames_tx.send((Now::system(), frame)).await.is_err() || end {
                break;
            }
        }
        stream
    });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let close_with: Option<(u16, String)> = loop {
        let outcome = tokio::select! {
            frame = frames.recv() => match frame {
                Some((now, Ok(Message::Binary(bytes)))) => c.on_frame(now, &bytes).await,
                Some((now, Ok(Message::Text(_)))) => {
                    c.on_text_frame(now);
                    None
                }
                Some((_, Ok(Message::Close(_)))) | None => break None,
                Some((_, Ok(_))) => None,
                Some((_, Err(e))) => {
                    tracing::debug!(error = %e, "socket error");
                    break Some((close::PROTOCOL, format!("connection error: {e}")));
                }
            },
            Some(first) = notices.recv() => {
                let mut batch = vec![first];
                while let Ok(n) = notices.try_recv() {
                    batch.push(n);
                }
                c.on_notices(Now::system(), batch).await
            }
            _ = tick.tick() => c.on_tick(Now::system()).await,
        };
        // Queued, then flushed once: an ack and its sync reply leave in one write.
        let mut failed = false;
        let output = c.take_output();
        let any = !output.is_empty();
        for m in output {
            if sink
                .feed(Message::Binary(wire::encode(&m).into()))
                .await
                .is_err()
            {
                failed = true;
                break;
            }
        }
        if failed || (any && sink.flush().await.is_err()) {
            break None;
        }
        if let Some(reason) = outcome {
            break Some(reason);
        }
    };
    if let Some((code, reason)) = close_with {
        let sent = sink
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
        // The closing handshake: wait (briefly) for the client's close, discarding what it still
        // sends, so our close frame is not lost to a reset of a socket with unread data.
        if sent.is_ok() {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                while let Some((_, frame)) = frames.recv().await {
                    if !matches!(
                        frame,
                        Ok(Message::Binary(_)
                            | Message::Text(_)
                            | Message::Ping(_)
                            | Message::Pong(_))
                    ) {
                        break;
                    }
                }
            })
            .await;
        }
    }
    drop(frames);
    reader.abort();
    c.close().await;
}
