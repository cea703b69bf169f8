//! A bare protocol client for tests that send what a well-behaved device never would.
//!
//! ```no_run
//! # async fn demo(url: &str, token: &str) {
//! use fieldsync_test_support::raw;
//! let mut client = raw::connect(url, Some(token)).await.unwrap();
//! client.hello().await;
//! client.send_bytes(vec![0xff, 0x00]).await; // not CBOR
//! let (code, _doc) = client.next_error().await;
//! # let _ = code;
//! # }
//! ```

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use schemas::wire::{self, ClientMsg, ErrorCode, ServerMsg};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

pub struct RawClient {
    ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

/// What came back: a message, or the server closing with a code and reason.
#[derive(Debug, PartialEq)]
pub enum Received {
    Msg(ServerMsg),
    Closed(u16, String),
}

/// Connect to `/sync`; an HTTP refusal before the upgrade comes back as `Err(status, body)`.
pub async fn connect(server_url: &str, token: Option<&str>) -> Result<RawClient, (u16, String)> {
    let url = sync_url(server_url);
    let mut request = url.into_client_request().unwrap();
    if let Some(t) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(RawClient { ws }),
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((resp.status().as_u16(), body))
        }
        Err(e) => panic!("connect failed: {e}"),
    }
}

/// `http://host:port` → `ws://host:port/sync` (`https` → `wss`).
pub fn sync_url(server_url: &str) -> String {
    let base = server_url.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/sync")
}

impl RawClient {
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    pub async fn send(&mut self, msg: &ClientMsg) {
        self.send_bytes(wire::encode(msg)).await;
    }

    /// The next message or close, waiting at most five seconds.
    pub async fn recv(&mut self) -> Received {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("no answer from the server within 5 s");
            match next {
                Some(Ok(Message::Binary(b))) => {
                    return Received::Msg(
                        wire::decode_server(&b, usize::MAX).expect("server frame decodes"),
                    );
                }
                Some(Ok(Message::Close(c))) => {
                    return c.map_or(Received::Closed(1005, String::new()), |c| {
                        Received::Closed(c.code.into(), c.reason.to_string())
                    });
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Received::Closed(1006, e.to_string()),
                None => return Received::Closed(1006, "socket closed".into()),
            }
        }
    }

    /// Say hello and return the welcome, skipping the initial sync frames.
    pub async fn hello(&mut self) -> ServerMsg {
        self.send(&ClientMsg::Hello {
            protocol: wire::PROTOCOL_VERSION,
            client: "raw".into(),
        })
        .await;
        match self.recv().await {
            Received::Msg(m @ ServerMsg::Welcome { .. }) => m,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// The next error frame, skipping other messages.
    pub async fn next_error(&mut self) -> (ErrorCode, Option<Uuid>) {
        loop {
            match self.recv().await {
                Received::Msg(ServerMsg::Error { code, doc, .. }) => return (code, doc),
                Received::Msg(_) => continue,
                Received::Closed(code, reason) => {
                    panic!("closed ({code} {reason}) instead of an error frame")
                }
            }
        }
    }

    /// Ping and wait for the pong: proves the connection is alive and everything before was
    /// handled. Returns the messages seen on the way.
    pub async fn round_trip(&mut self, id: u64) -> Vec<ServerMsg> {
        self.send(&ClientMsg::Ping { id }).await;
        let mut seen = Vec::new();
        loop {
            match self.recv().await {
                Received::Msg(ServerMsg::Pong { id: got }) if got == id => return seen,
                Received::Msg(m) => seen.push(m),
                Received::Closed(code, reason) => panic!("closed ({code} {reason}) before pong"),
            }
        }
    }

    /// Wait for the server to close the connection; returns the close code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            if let Received::Closed(code, _) = self.recv().await {
                return code;
            }
        }
    }
}
