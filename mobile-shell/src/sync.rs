//! `mobile-shell sync`: once until quiet, or continuously with reconnects.

use std::time::Duration;

use client_core::Replica;
use client_core::sync::{SyncError, account, sync_once};

use crate::output::Out;

pub fn run(r: &mut Replica, out: &Out, once: bool, limit: Duration) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if once {
        let (server, token) = account::credentials(r)?;
        let stats = rt.block_on(sync_once(r, &server, &token, limit))?;
        let text = format!(
            "sent {} message(s), received {}, {} document(s) updated, {} change(s) acknowledged, {} removed{}",
            stats.sent,
            stats.received,
            stats.docs_updated,
            stats.acknowledged,
            stats.removed,
            if stats.errors.is_empty() {
                String::new()
            } else {
                format!("; server said: {}", stats.errors.join("; "))
            }
        );
        return out.value(serde_json::to_value(&stats)?, &text);
    }
    // Continuous: stay connected, receive changes as they happen and send this device's edits
    // (made by other commands meanwhile); reconnect with backoff when the connection drops.
    let mut backoff = Duration::from_secs(1);
    loop {
        let result =
            account::credentials(r)
                .map_err(SyncError::from)
                .and_then(|(server, token)| {
                    rt.block_on(client_core::sync::sync_until(
                        r,
                        &server,
                        &token,
                        Duration::from_secs(600),
                        |_| false,
                    ))
                });
        match result {
            Ok(_) | Err(SyncError::Timeout(_)) => backoff = Duration::from_secs(1),
            Err(SyncError::Unauthorized(m)) => anyhow::bail!("the server refused this device: {m}"),
            Err(e) => {
                eprintln!(
                    "sync interrupted ({e}); reconnecting in {}s",
                    backoff.as_secs()
                );
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}
