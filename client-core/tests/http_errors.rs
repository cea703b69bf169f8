//! Failures keep their class: no answer (offline), a failing server (5xx), a refused sign-in
//! (401) and a refused request (other 4xx) are told apart, for sign-in, token refresh and sync.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use client_core::sync::{SyncError, account, sync_once};
use client_core::{Error, Replica};

/// A one-line HTTP server on port 0 that answers every request with `status` and no body.
fn answering(status: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            // Read the whole request first: closing on unread bytes would reset the connection.
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    url
}

/// The URL of a port nothing listens on.
fn nobody_listening() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn login(server: &str) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::open(dir.path()).unwrap();
    account::login(&mut r, server, "ana", "pw", "phone").unwrap_err()
}

#[test]
fn a_server_answering_503_is_unavailable_and_retryable_not_bad_input() {
    let err = login(&answering("503 Service Unavailable"));
    assert!(
        matches!(err, Error::ServerUnavailable { status: 503 }),
        "{err:?}"
    );
    assert!(err.is_retryable() && !err.is_bad_input());
    assert_eq!(
        err.to_string(),
        "the server is unavailable (HTTP 503); try again later"
    );
}

#[test]
fn no_server_listening_is_offline() {
    let url = nobody_listening();
    let err = login(&url);
    assert!(matches!(err, Error::Offline { .. }), "{err:?}");
    assert!(err.is_retryable() && !err.is_bad_input());
    assert_eq!(
        err.to_string(),
        format!("offline: cannot reach {url} (connection refused)")
    );
}

#[test]
fn a_refused_password_is_unauthorized_and_another_4xx_is_bad_input() {
    let err = login(&answering("401 Unauthorized"));
    assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
    assert!(!err.is_retryable() && !err.is_bad_input());
    assert!(err.to_string().contains("user name or password"), "{err}");

    let err = login(&answering("400 Bad Request"));
    assert!(matches!(err, Error::Refused { status: 400 }), "{err:?}");
    assert!(err.is_bad_input() && !err.is_retryable());
}

#[test]
fn an_expired_sign_in_is_unauthorized_when_refreshing() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::open(dir.path()).unwrap();
    r.set_meta("server", &answering("401 Unauthorized"))
        .unwrap();
    r.set_meta("refresh_token", "old").unwrap();
    let err = account::credentials(&mut r).unwrap_err();
    assert!(matches!(err, Error::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains("run `login` again"), "{err}");

    r.set_meta("server", &answering("502 Bad Gateway")).unwrap();
    let err = account::credentials(&mut r).unwrap_err();
    assert!(
        matches!(err, Error::ServerUnavailable { status: 502 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn sync_tells_offline_from_an_unavailable_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::open(dir.path()).unwrap();
    let limit = Duration::from_secs(30);

    let url = nobody_listening();
    let err = sync_once(&mut r, &url, "token", limit).await.unwrap_err();
    assert!(matches!(err, SyncError::Offline { .. }), "{err:?}");
    assert!(err.is_retryable() && !err.is_bad_input());
    assert_eq!(
        err.to_string(),
        format!("offline: cannot reach {url} (connection refused)")
    );

    let err = sync_once(
        &mut r,
        &answering("503 Service Unavailable"),
        "token",
        limit,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SyncError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "the server is unavailable (HTTP 503); try again later"
    );
}
