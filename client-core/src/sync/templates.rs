//! Fetching the org's checklist templates when the device syncs: `GET /api/v1/templates` with
//! the `ETag` of the set held, so an unchanged set costs one 304.

use std::time::Duration;

use schemas::api::TemplateRecord;

use crate::{Error, Replica, Result};

/// What a refresh did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refreshed {
    /// False when the server said the held set is current.
    pub changed: bool,
    /// Templates the device now holds (the org's and the built-in ones).
    pub templates: usize,
}

/// Ask the server for the org's templates and keep them.
pub fn refresh(r: &Replica, server: &str, token: &str) -> Result<Refreshed> {
    let agent = crate::tls::agent(Duration::from_secs(10), Duration::from_secs(60), false)?;
    let url = format!("{}/api/v1/templates", server.trim_end_matches('/'));
    let mut req = agent
        .get(&url)
        .header("authorization", &format!("Bearer {token}"));
    let held = r.meta(crate::templates::ETAG_KEY)?;
    if let Some(tag) = &held {
        req = req.header("if-none-match", tag);
    }
    let mut resp = req.call().map_err(|e| match e {
        ureq::Error::Io(e) => crate::tls::io_failure(server, &e),
        e => Error::Offline {
            server: server.to_string(),
            reason: e.to_string(),
        },
    })?;
    let status = resp.status().as_u16();
    match status {
        304 => Ok(Refreshed {
            changed: false,
            templates: r.templates()?.len(),
        }),
        200 => {
            let tag = resp
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = resp
                .body_mut()
                .with_config()
                .limit(16 * 1024 * 1024)
                .read_to_string()
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
            let set: Vec<TemplateRecord> = serde_json::from_str(&body).map_err(|e| {
                Error::Io(std::io::Error::other(format!(
                    "the server's templates do not parse: {e}"
                )))
            })?;
            let set: Vec<_> = set.into_iter().map(|t| t.template).collect();
            r.replace_templates(&set, &tag)?;
            Ok(Refreshed {
                changed: true,
                templates: r.templates()?.len(),
            })
        }
        401 => Err(Error::Unauthorized(
            "the server refused the sign-in token for templates; sign in again".into(),
        )),
        s if s >= 500 => Err(Error::ServerUnavailable { status: s }),
        s => Err(Error::Refused { status: s }),
    }
}
