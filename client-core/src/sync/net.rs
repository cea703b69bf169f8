//! The sync connection: tokio-tungstenite around [`SyncEngine`].

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use schemas::wire::{self, ClientMsg};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use super::engine::{SyncEngine, SyncStats};
use crate::Replica;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("the server refused the sign-in token ({0}); sign in again")]
    Unauthorized(String),
    /// No answer at all: no network, a wrong address, the server down.
    #[error("offline: cannot reach {server} ({reason})")]
    Offline { server: String, reason: String },
    /// The server answered but cannot serve now: an HTTP 5xx on connect, or its store is down.
    #[error("the server is unavailable ({0}); try again later")]
    Unavailable(String),
    /// The connection could not even be attempted or was refused as it stands (a bad URL, an
    /// HTTP 4xx other than 401).
    #[error("cannot connect to the server: {0}")]
    Connect(String),
    #[error("connection lost: {0}")]
    Disconnected(String),
    #[error("the server closed the connection: {0}")]
    Closed(String),
    #[error("sync did not settle within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Replica(#[from] crate::Error),
}

impl SyncError {
    /// True when trying again later may succeed with nothing changed on this device.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Offline { .. }
            | SyncError::Unavailable(_)
            | SyncError::Disconnected(_)
            | SyncError::Closed(_)
            | SyncError::Timeout(_) => true,
            SyncError::Unauthorized(_) | SyncError::Connect(_) => false,
            SyncError::Replica(e) => e.is_retryable(),
        }
    }

    /// True when the caller's input was at fault.
    pub fn is_bad_input(&self) -> bool {
        match self {
            SyncError::Replica(e) => e.is_bad_input(),
            _ => false,
        }
    }
}

/// The WebSocket URL of a server given as `http(s)://host:port`.
pub fn sync_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{ws}/sync")
}

/// Connect, sync until nothing is left to send or receive, then close. Returns what moved.
pub async fn sync_once(
    r: &mut Replica,
    server: &str,
    access_token: &str,
    limit: Duration,
) -> Result<SyncStats, SyncError> {
    run(r, server, access_token, limit, Stop::WhenQuiet).await
}

/// Stay connected — receiving what others change as it happens and sending this device's edits
/// (from any process writing the replica) — until `done` holds or `limit` passes.
pub async fn sync_until(
    r: &mut Replica,
    server: &str,
    access_token: &str,
    limit: Duration,
    done: impl FnMut(&mut Replica) -> bool + Send,
) -> Result<SyncStats, SyncError> {
    run(r, server, access_token, limit, Stop::When(Box::new(done))).await
}

enum Stop<'a> {
    WhenQuiet,
    When(Box<dyn FnMut(&mut Replica) -> bool + Send + 'a>),
}

/// How one connection ended, and whether it got as far as syncing (see
/// [`SyncEngine::has_synced`]): a reconnect loop resets its backoff after such a session.
pub(crate) struct Outcome {
    pub result: Result<SyncStats, SyncError>,
    pub synced: bool,
}

async fn run(
    r: &mut Replica,
    server: &str,
    token: &str,
    limit: Duration,
    stop: Stop<'_>,
) -> Result<SyncStats, SyncError> {
    run_session(r, server, token, limit, stop).await.result
}

/// One live session: stay connected until `done` holds or `limit` passes.
pub(crate) async fn live_session(
    r: &mut Replica,
    server: &str,
    token: &str,
    limit: Duration,
    done: &mut (dyn FnMut(&mut Replica) -> bool + Send),
) -> Outcome {
    run_session(r, server, token, limit, Stop::When(Box::new(done))).await
}

async fn run_session(
    r: &mut Replica,
    server: &str,
    token: &str,
    limit: Duration,
    mut stop: Stop<'_>,
) -> Outcome {
    let mut engine = SyncEngine::new(server);
    let result =
        tokio::time::timeout(limit, session(r, &mut engine, server, token, &mut stop)).await;
    let synced = engine.has_synced();
    // Whatever happened, keep what was learned about the server's state.
    let result = engine
        .save_states(r)
        .map_err(SyncError::from)
        .and_then(|()| match result {
            Ok(Ok(())) => {
                r.set_meta("last_sync_at", &schemas::job::ts(chrono::Utc::now()))?;
                Ok(engine.stats)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SyncError::Timeout(limit)),
        });
    Outcome { result, synced }
}

async fn session(
    r: &mut Replica,
    engine: &mut SyncEngine,
    server: &str,
    token: &str,
    stop: &mut Stop<'_>,
) -> Result<(), SyncError> {
    let mut request = sync_url(server)
        .into_client_request()
        .map_err(|e| SyncError::Connect(e.to_string()))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|e| SyncError::Connect(e.to_string()))?;
    request.headers_mut().insert("authorization", bearer);
    // `true`: TCP_NODELAY, so a small frame (one edit) goes out at once rather than after the
    // server's delayed ACK.
    let tls = tokio_tungstenite::Connector::Rustls(crate::tls::rustls_config()?);
    let (ws, _) = match tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        true,
        Some(tls),
    )
    .await
    {
        Ok(ok) => ok,
        Err(tungstenite::Error::Http(resp)) if resp.status() == 401 => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            return Err(SyncError::Unauthorized(body));
        }
        Err(tungstenite::Error::Http(resp)) if resp.status().is_server_error() => {
            return Err(SyncError::Unavailable(format!(
                "HTTP {}",
                resp.status().as_u16()
            )));
        }
        Err(tungstenite::Error::Io(e)) => {
            return Err(SyncError::Offline {
                server: server.to_string(),
                reason: crate::error::io_reason(&e),
            });
        }
        Err(tungstenite::Error::Tls(e)) => {
            return Err(SyncError::Connect(crate::tls::refused(server, &e)));
        }
        Err(e) => return Err(SyncError::Connect(e.to_string())),
    };
    let (mut sink, mut stream) = ws.split();
    let disconnected = |e: tungstenite::Error| SyncError::Disconnected(e.to_string());
    sink.send(Message::Binary(wire::encode(&engine.hello()).into()))
        .await
        .map_err(disconnected)?;
    // In live mode, local edits are picked up from the replica on a short tick.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut marked_synced = false;
    loop {
        let mut out: Vec<ClientMsg> = Vec::new();
        tokio::select! {
            frame = stream.next() => {
                let Some(frame) = frame else { return Err(SyncError::Disconnected("the server closed the socket".into())) };
                let bytes = match frame.map_err(disconnected)? {
                    Message::Binary(b) => b,
                    Message::Close(c) => return Err(SyncError::Closed(c.map(|c| format!("{} {}", c.code, c.reason)).unwrap_or_default())),
                    _ => continue,
                };
                match wire::decode_server(&bytes, usize::MAX) {
                    Ok(msg) => out = engine.on_message(r, msg)?,
                    Err(e) => tracing::warn!(error = %e, "ignoring a frame from the server"),
                }
            }
            _ = tick.tick(), if matches!(stop, Stop::When(_)) => {
                let docs: std::collections::BTreeSet<uuid::Uuid> = r.unacked()?.into_iter().map(|(d, _)| d).collect();
                for doc in docs {
                    out.extend(engine.on_local_change(r, doc)?);
                }
            }
        }
        // Once in sync, say so: `status` shows it, and a live session may last for hours.
        if engine.has_synced() && !marked_synced {
            r.set_meta("last_sync_at", &schemas::job::ts(chrono::Utc::now()))?;
            marked_synced = true;
        }
        if let Some(why) = engine.failed() {
            return Err(if engine.store_unavailable() {
                SyncError::Unavailable(why.to_string())
            } else {
                SyncError::Closed(why.to_string())
            });
        }
        let finished = match stop {
            Stop::WhenQuiet => engine.is_quiet(),
            Stop::When(done) => done(r),
        };
        if finished {
            let _ = sink.send(Message::Close(None)).await;
            return Ok(());
        }
        let out = engine.with_ping(out);
        for m in out {
            sink.feed(Message::Binary(wire::encode(&m).into()))
                .await
                .map_err(disconnected)?;
        }
        sink.flush().await.map_err(disconnected)?;
    }
}
