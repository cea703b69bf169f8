//! Showing the upload queue: a progress bar on a terminal, one JSON event per line with
//! `--json`, and the list `status` prints.

use client_core::Replica;
use client_core::sync::upload::{self, UploadEvent, UploadSummary};
use client_core::uploads::{Upload, UploadState};
use indicatif::{ProgressBar, ProgressStyle};

/// Send what is waiting, showing progress. `json`: events on stdout, one per line.
pub fn send(
    r: &Replica,
    server: &str,
    token: &str,
    json: bool,
) -> client_core::Result<UploadSummary> {
    let mut bar: Option<ProgressBar> = None;
    let mut on_event = |e: &UploadEvent| {
        if json {
            if let Ok(line) = serde_json::to_string(e) {
                println!("{line}");
            }
            return;
        }
        match e {
            UploadEvent::Started {
                sha256,
                kind,
                size,
                from,
            } => {
                // Hidden by indicatif itself when stderr is not a terminal.
                let b = ProgressBar::new(*size).with_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_message(format!("uploading {} {}", kind.as_str(), short(sha256)));
                b.set_position(*from);
                bar = Some(b);
            }
            UploadEvent::Progress { sent, .. } => {
                if let Some(b) = &bar {
                    b.set_position(*sent);
                }
            }
            UploadEvent::Done { sha256, skipped } => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
                eprintln!(
                    "uploaded {}{}",
                    short(sha256),
                    if *skipped {
                        " (the server already had it)"
                    } else {
                        ""
                    }
                );
            }
            UploadEvent::Refused { sha256, reason } => {
                if let Some(b) = bar.take() {
                    b.abandon();
                }
                eprintln!("upload of {} refused: {reason}", short(sha256));
            }
        }
    };
    let result = upload::upload_pending(r, server, token, chunk_bytes(), &mut on_event);
    if let Some(b) = bar.take() {
        b.abandon();
    }
    result
}

/// The chunk size: `FIELDSYNC_UPLOAD_CHUNK_KB` (smaller chunks lose less to a cut on a poor
/// link, larger ones cost fewer requests), else the client's default of 1 MiB. A value that is
/// not a whole number of KiB from 16 to 65536 is ignored with a warning.
fn chunk_bytes() -> usize {
    let Ok(text) = std::env::var("FIELDSYNC_UPLOAD_CHUNK_KB") else {
        return upload::DEFAULT_CHUNK_BYTES;
    };
    match text.trim().parse::<usize>() {
        Ok(kb) if (16..=65_536).contains(&kb) => kb * 1024,
        _ => {
            eprintln!(
                "warning: FIELDSYNC_UPLOAD_CHUNK_KB={text} is not a size from 16 to 65536 (KiB); using {} KiB",
                upload::DEFAULT_CHUNK_BYTES / 1024
            );
            upload::DEFAULT_CHUNK_BYTES
        }
    }
}

/// The queue as `status` shows it.
pub fn describe(waiting: &[Upload]) -> String {
    if waiting.is_empty() {
        return String::new();
    }
    let mut text = format!("\n{} upload(s) waiting:", waiting.len());
    for u in waiting {
        let what = match u.state {
            UploadState::Refused => format!(
                "refused: {}",
                u.error.as_deref().unwrap_or("no reason given")
            ),
            _ if u.sent > 0 => format!("{} of {} bytes sent", u.sent, u.size),
            _ => format!("{} bytes, not started", u.size),
        };
        let last_error = match (u.state, &u.error) {
            (UploadState::Pending, Some(e)) => format!(" (last try: {e})"),
            _ => String::new(),
        };
        text.push_str(&format!(
            "\n  {} {} of job {}: {what}{last_error}",
            u.kind.as_str(),
            short(&u.sha256),
            short(&u.job_id.to_string())
        ));
    }
    text
}

fn short(s: &str) -> &str {
    &s[..s.len().min(8)]
}
