//! `mobile-shell sync`: once until quiet, or continuously with reconnects.

use std::time::Duration;

use client_core::Replica;
use client_core::sync::{LiveEvent, SyncError, account, sync_once};

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
    // Continuous: client-core's reconnect loop; this shell only says what happens.
    let result = rt.block_on(client_core::sync::Reconnect::default().run(
        r,
        |_| false,
        |LiveEvent::Retrying { error, delay }| {
            eprintln!(
                "sync interrupted ({error}); reconnecting in {}s",
                delay.as_secs()
            )
        },
        tokio::time::sleep,
    ));
    match result {
        Ok(()) => Ok(()),
        Err(SyncError::Unauthorized(m)) => anyhow::bail!("the server refused this device: {m}"),
        Err(e) => Err(e.into()),
    }
}
