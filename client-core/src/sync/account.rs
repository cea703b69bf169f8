//! Signing in and keeping the tokens, in the replica's `meta` table.
//!
//! HTTP goes through `ureq` (small, blocking, no async runtime needed for two requests).

pub use schemas::api::Tokens;
use schemas::api::{LoginReply, LoginRequest, RefreshReply, RefreshRequest};

use crate::{Error, Replica, Result};

/// Keep the class of an HTTP failure: no answer at all (offline), the server failing (5xx),
/// the sign-in refused (401), or the request refused as it stands (other 4xx).
fn http_error(server: &str, e: ureq::Error) -> Error {
    let offline = |reason: String| Error::Offline {
        server: server.to_string(),
        reason,
    };
    match e {
        ureq::Error::StatusCode(401) => {
            Error::Unauthorized("the server refused the user name or password".into())
        }
        ureq::Error::StatusCode(status) if status >= 500 => Error::ServerUnavailable { status },
        ureq::Error::StatusCode(status) => Error::Refused { status },
        ureq::Error::Io(e) => crate::tls::io_failure(server, &e),
        ureq::Error::HostNotFound => offline("host not found".into()),
        ureq::Error::ConnectionFailed => offline("connection failed".into()),
        ureq::Error::Timeout(_) => offline("timed out".into()),
        ureq::Error::Rustls(e) => Error::Io(std::io::Error::other(crate::tls::refused(server, &e))),
        e => Error::Io(std::io::Error::other(format!(
            "unexpected answer from {server}: {e}"
        ))),
    }
}

/// The agent of sign-in and refresh: the device's TLS roots, an error status an `Err`.
fn http_agent() -> Result<ureq::Agent> {
    crate::tls::agent(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(60),
        true,
    )
}

/// Sign in, register this device, and keep the server URL and tokens in the replica.
pub fn login(
    r: &mut Replica,
    server: &str,
    user: &str,
    password: &str,
    device_name: &str,
) -> Result<uuid::Uuid> {
    let server = server.trim_end_matches('/');
    let body = LoginRequest {
        name: user.to_owned(),
        password: password.to_owned(),
        device_name: Some(device_name.to_owned()),
    };
    let reply: LoginReply = http_agent()?
        .post(format!("{server}/api/v1/auth/login"))
        .send_json(&body)
        .map_err(|e| http_error(server, e))?
        .body_mut()
        .read_json()
        .map_err(|e| http_error(server, e))?;
    let device = reply
        .device_id
        .ok_or_else(|| Error::InvalidValue("the server registered no device".into()))?;
    r.set_meta("server", server)?;
    r.set_meta("device_id", &device.to_string())?;
    save_tokens(r, &reply.tokens)?;
    r.set_user(&reply.user.name)?;
    Ok(device)
}

fn save_tokens(r: &Replica, t: &Tokens) -> Result<()> {
    r.set_meta("access_token", &t.access_token)?;
    r.set_meta("access_expires_at", &t.access_expires_at.to_rfc3339())?;
    r.set_meta("refresh_token", &t.refresh_token)?;
    Ok(())
}

/// The server URL and a usable access token, refreshing it when it is about to expire.
pub fn credentials(r: &mut Replica) -> Result<(String, String)> {
    let server = r
        .meta("server")?
        .ok_or_else(|| Error::InvalidValue("not signed in: run `login` first".into()))?;
    let access = r.meta("access_token")?.unwrap_or_default();
    let expires = r
        .meta("access_expires_at")?
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.to_utc());
    let fresh = expires.is_some_and(|t| t - chrono::Utc::now() > chrono::Duration::seconds(60));
    if fresh && !access.is_empty() {
        return Ok((server, access));
    }
    let refresh = r
        .meta("refresh_token")?
        .ok_or_else(|| Error::InvalidValue("not signed in: run `login` first".into()))?;
    let reply: RefreshReply = http_agent()?
        .post(format!("{server}/api/v1/auth/refresh"))
        .send_json(RefreshRequest {
            refresh_token: refresh,
        })
        .map_err(|e| match e {
            ureq::Error::StatusCode(401) => Error::Unauthorized(
                "the sign-in expired or the device was revoked: run `login` again".into(),
            ),
            e => http_error(&server, e),
        })?
        .body_mut()
        .read_json()
        .map_err(|e| http_error(&server, e))?;
    save_tokens(r, &reply.tokens)?;
    Ok((server, reply.tokens.access_token))
}
