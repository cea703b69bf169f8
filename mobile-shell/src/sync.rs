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
        // Then the photos and signatures: the documents naming them are on the server now.
        let uploaded = crate::uploads::send(r, &server, &token, out.json)?;
        // And the org's checklist templates, for jobs made here offline.
        let templates = client_core::sync::templates::refresh(r, &server, &token)?;
        // And the parts catalog with the van's stock, for the parts search offline; a server
        // that cannot say does not fail the sync.
        let catalog = match client_core::sync::catalog::refresh(r, &server, &token) {
            Ok(n) => Some(n),
            Err(e) => {
                eprintln!("parts catalog not refreshed: {e}");
                None
            }
        };
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
        let text = if uploaded.done + uploaded.refused > 0 {
            format!(
                "{text}; {} upload(s) done ({} already on the server), {} refused",
                uploaded.done, uploaded.skipped, uploaded.refused
            )
        } else {
            text
        };
        let mut json = serde_json::to_value(&stats)?;
        json["uploads"] = serde_json::to_value(&uploaded)?;
        json["templates"] = serde_json::to_value(&templates)?;
        json["catalog"] = serde_json::to_value(catalog)?;
        if out.json {
            // One JSON value per line: the upload events above, then this summary.
            println!("{}", serde_json::to_string(&json)?);
            return Ok(());
        }
        return out.value(json, &text);
    }
    // Continuous: uploads on a thread of their own (blocking HTTP, with their own handle on the
    // replica), and client-core's reconnect loop; this shell only says what happens.
    let dir = r.data_dir().to_path_buf();
    let json = out.json;
    std::thread::spawn(move || upload_loop(&dir, json));
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

/// Send the upload queue whenever something waits, backing off while the server is out of
/// reach. Runs for as long as continuous sync does.
fn upload_loop(dir: &std::path::Path, json: bool) {
    let mut r = match Replica::open(dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("uploads stopped: {e}");
            return;
        }
    };
    let mut pause = Duration::from_secs(2);
    let mut templates_at: Option<std::time::Instant> = None;
    loop {
        // The org's templates once a minute while online (a 304 when nothing changed).
        if templates_at.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            let fetched = account::credentials(&mut r).and_then(|(server, token)| {
                client_core::sync::templates::refresh(&r, &server, &token)
            });
            match fetched {
                Ok(_) => templates_at = Some(std::time::Instant::now()),
                Err(e) if e.is_retryable() => {}
                Err(e) => eprintln!("templates not refreshed: {e}"),
            }
        }
        let pending = r.uploads_waiting().map(|w| {
            w.iter()
                .any(|u| u.state == client_core::uploads::UploadState::Pending)
        });
        let outcome = match pending {
            Ok(false) => Ok(()),
            Ok(true) => account::credentials(&mut r)
                .and_then(|(server, token)| crate::uploads::send(&r, &server, &token, json))
                .map(drop),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => pause = Duration::from_secs(2),
            Err(e) => {
                eprintln!("uploads paused ({e}); trying again in {}s", pause.as_secs());
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
