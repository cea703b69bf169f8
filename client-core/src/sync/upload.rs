//! Sending the upload queue ([`crate::uploads`]) to the server: a tus 1.0.0 client
//! (<https://tus.io/protocols/resumable-upload>) over `ureq`.
//!
//! Each blob is created once on the server (`POST /api/v1/uploads` with its length and, in
//! `Upload-Metadata`, the document that references it and its sha256) and then sent in chunks
//! (`PATCH` at the server's offset, each with an `Upload-Checksum`). The queue records the
//! upload's URL and every offset the server confirms, so after a cut — the network, this
//! process, the server — the next attempt asks the server where it stands (`HEAD`) and sends
//! only the rest: at most one chunk is ever sent twice. A blob the server already holds is
//! answered complete at creation and not sent at all.

use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::uploads::{BlobKind, Upload};
use crate::{Error, Replica, Result, blobs};

pub const TUS_VERSION: &str = "1.0.0";
/// Bytes per PATCH: big enough that a phone photo takes a few requests, small enough that a cut
/// costs little to send again.
pub const DEFAULT_CHUNK_BYTES: usize = 1024 * 1024;

/// What happens, for a progress bar or a JSON event stream.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum UploadEvent {
    /// Starting (or resuming from `from`) the upload of one blob.
    Started {
        sha256: String,
        kind: BlobKind,
        size: u64,
        from: u64,
    },
    /// The server confirmed `sent` of `size` bytes.
    Progress {
        sha256: String,
        sent: u64,
        size: u64,
    },
    /// The server holds the blob; `skipped` when it already did and nothing was sent.
    Done { sha256: String, skipped: bool },
    /// The server refused the blob as it is; it will not be tried again.
    Refused { sha256: String, reason: String },
}

/// What one pass over the queue did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct UploadSummary {
    pub done: usize,
    pub skipped: usize,
    pub refused: usize,
    pub bytes_sent: u64,
}

/// Send every pending upload, oldest first. Stops at the first failure that may pass (offline,
/// the server unavailable) with that error, after recording it; a refusal is recorded on its
/// upload and the pass goes on with the next one.
pub fn upload_pending(
    r: &Replica,
    server: &str,
    token: &str,
    chunk_bytes: usize,
    on_event: &mut dyn FnMut(&UploadEvent),
) -> Result<UploadSummary> {
    let client = Client::new(server, token)?;
    let mut summary = UploadSummary::default();
    // A blob goes once the server acknowledged the document naming it: before, the server
    // does not hold that document (or not the version naming this sha256) and would refuse the
    // upload for good. A sync that runs beside the uploads (the app's) gets there first.
    let mut waiting = Vec::new();
    for u in r.uploads_waiting()? {
        if u.state == crate::uploads::UploadState::Pending && r.unacked_count(u.doc_id)? == 0 {
            waiting.push(u);
        }
    }
    for upload in waiting {
        match send_one(
            r,
            &client,
            &upload,
            chunk_bytes.max(1),
            on_event,
            &mut summary,
        ) {
            Ok(()) => {}
            Err(Step::Refused(reason)) => {
                r.set_upload_refused(&upload.sha256, &reason)?;
                summary.refused += 1;
                on_event(&UploadEvent::Refused {
                    sha256: upload.sha256.clone(),
                    reason,
                });
            }
            Err(Step::Failed(e)) => {
                r.note_upload_failure(&upload.sha256, &e.to_string())?;
                return Err(e);
            }
        }
    }
    Ok(summary)
}

/// How sending one blob stopped short.
enum Step {
    /// For good: the server refused it as it is.
    Refused(String),
    /// For now: try again later.
    Failed(Error),
}

impl From<Error> for Step {
    fn from(e: Error) -> Step {
        Step::Failed(e)
    }
}

fn send_one(
    r: &Replica,
    client: &Client,
    upload: &Upload,
    chunk_bytes: usize,
    on_event: &mut dyn FnMut(&UploadEvent),
    summary: &mut UploadSummary,
) -> std::result::Result<(), Step> {
    let path = blobs::blob_path(r.data_dir(), &upload.sha256);
    let mut file = std::fs::File::open(&path).map_err(|e| {
        Step::Refused(format!(
            "the file {} is gone from this device: {e}",
            path.display()
        ))
    })?;
    // Where the server stands: its offset on a known upload, or a new upload.
    let mut known = match &upload.url {
        Some(url) => client.offset(url)?.map(|offset| (url.clone(), offset)),
        None => None,
    };
    let (url, mut offset) = match known.take() {
        Some(found) => found,
        None => {
            let (url, offset) = client.create(upload)?;
            r.set_upload_url(&upload.sha256, Some(&url))?;
            (url, offset)
        }
    };
    if offset >= upload.size {
        // Complete at creation: the server already held these bytes.
        r.set_upload_done(&upload.sha256)?;
        summary.done += 1;
        summary.skipped += 1;
        on_event(&UploadEvent::Done {
            sha256: upload.sha256.clone(),
            skipped: true,
        });
        return Ok(());
    }
    on_event(&UploadEvent::Started {
        sha256: upload.sha256.clone(),
        kind: upload.kind,
        size: upload.size,
        from: offset,
    });
    let mut chunk = vec![0u8; chunk_bytes];
    while offset < upload.size {
        let len = (upload.size - offset).min(chunk_bytes as u64) as usize;
        file.seek(SeekFrom::Start(offset))
            .and_then(|_| file.read_exact(&mut chunk[..len]))
            .map_err(|e| Step::Refused(format!("the file cannot be read: {e}")))?;
        let confirmed = client.patch(&url, offset, &chunk[..len])?;
        summary.bytes_sent += confirmed.saturating_sub(offset);
        offset = confirmed;
        r.set_upload_sent(&upload.sha256, offset)?;
        on_event(&UploadEvent::Progress {
            sha256: upload.sha256.clone(),
            sent: offset,
            size: upload.size,
        });
    }
    r.set_upload_done(&upload.sha256)?;
    summary.done += 1;
    on_event(&UploadEvent::Done {
        sha256: upload.sha256.clone(),
        skipped: false,
    });
    Ok(())
}

/// The tus requests, with the bearer token.
struct Client {
    agent: ureq::Agent,
    server: String,
    token: String,
}

impl Client {
    fn new(server: &str, token: &str) -> Result<Client> {
        // Statuses are the protocol here (409, 410, 460): the agent reads them, not fails.
        let agent = crate::tls::agent(Duration::from_secs(10), Duration::from_secs(120), false)?;
        Ok(Client {
            agent,
            server: server.trim_end_matches('/').to_string(),
            token: token.to_string(),
        })
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// `POST` a new upload. Returns its URL and the server's offset (the whole length when the
    /// server already holds the blob).
    fn create(&self, u: &Upload) -> std::result::Result<(String, u64), Step> {
        let metadata = [
            ("doc", u.doc_id.to_string()),
            ("sha256", u.sha256.clone()),
            ("kind", u.kind.as_str().to_string()),
        ]
        .iter()
        .map(|(k, v)| format!("{k} {}", B64.encode(v)))
        .collect::<Vec<_>>()
        .join(",");
        let mut resp = self
            .agent
            .post(format!("{}/api/v1/uploads", self.server))
            .header("Authorization", &self.bearer())
            .header("Tus-Resumable", TUS_VERSION)
            .header("Upload-Length", &u.size.to_string())
            .header("Upload-Metadata", &metadata)
            .send_empty()
            .map_err(|e| self.offline(e))?;
        let status = resp.status().as_u16();
        if status != 201 && status != 200 && status != 204 {
            return Err(self.refusal(status, &mut resp));
        }
        let location = header(&resp, "Location").ok_or_else(|| {
            Step::Failed(Error::Io(std::io::Error::other(
                "the server created the upload without saying where (no Location)",
            )))
        })?;
        // Kept as the server gave it (a path): resolved against the server at each use.
        let url = location;
        let offset = header(&resp, "Upload-Offset")
            .and_then(|o| o.parse().ok())
            .unwrap_or(0);
        Ok((url, offset))
    }

    /// `HEAD`: the server's offset, or `None` when it no longer knows the upload (expired,
    /// terminated), which starts it over.
    fn offset(&self, url: &str) -> std::result::Result<Option<u64>, Step> {
        let mut resp = self
            .agent
            .head(self.absolute(url))
            .header("Authorization", &self.bearer())
            .header("Tus-Resumable", TUS_VERSION)
            .call()
            .map_err(|e| self.offline(e))?;
        match resp.status().as_u16() {
            200 | 204 => Ok(header(&resp, "Upload-Offset").and_then(|o| o.parse().ok())),
            404 | 410 => Ok(None),
            status => Err(self.refusal(status, &mut resp)),
        }
    }

    /// `PATCH` one chunk at `offset`; returns the server's new offset.
    fn patch(&self, url: &str, offset: u64, chunk: &[u8]) -> std::result::Result<u64, Step> {
        let checksum = format!("sha256 {}", B64.encode(Sha256::digest(chunk)));
        let mut resp = self
            .agent
            .patch(self.absolute(url))
            .header("Authorization", &self.bearer())
            .header("Tus-Resumable", TUS_VERSION)
            .header("Upload-Offset", &offset.to_string())
            .header("Upload-Checksum", &checksum)
            .header("Content-Type", "application/offset+octet-stream")
            .send(chunk)
            .map_err(|e| self.offline(e))?;
        match resp.status().as_u16() {
            200 | 204 => header(&resp, "Upload-Offset")
                .and_then(|o| o.parse().ok())
                .ok_or_else(|| {
                    Step::Failed(Error::Io(std::io::Error::other(
                        "the server accepted a chunk without saying its offset",
                    )))
                }),
            // The offsets disagree (another attempt got further) or the chunk arrived damaged:
            // ask again where the server stands and go on from there.
            409 | 460 => self.offset(url)?.ok_or_else(|| {
                Step::Failed(Error::Io(std::io::Error::other(
                    "the server forgot the upload",
                )))
            }),
            status => Err(self.refusal(status, &mut resp)),
        }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            format!("{}/{}", self.server, location.trim_start_matches('/'))
        }
    }

    fn offline(&self, e: ureq::Error) -> Step {
        let reason = match e {
            // A refused certificate is not offline: said as such, the pass stops.
            ureq::Error::Io(e) => return Step::Failed(crate::tls::io_failure(&self.server, &e)),
            ureq::Error::HostNotFound => "host not found".into(),
            ureq::Error::ConnectionFailed => "connection failed".into(),
            ureq::Error::Timeout(_) => "timed out".into(),
            e => e.to_string(),
        };
        Step::Failed(Error::Offline {
            server: self.server.clone(),
            reason,
        })
    }

    /// A status that is not the protocol's: 401 and 5xx may pass, any other 4xx is a refusal
    /// of this blob, with the server's message.
    fn refusal(&self, status: u16, resp: &mut ureq::http::Response<ureq::Body>) -> Step {
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or_else(|| body.trim().chars().take(300).collect());
        match status {
            401 => Step::Failed(Error::Unauthorized(format!(
                "the server refused the sign-in token for uploads: {message}"
            ))),
            s if s >= 500 => Step::Failed(Error::ServerUnavailable { status: s }),
            s => Step::Refused(if message.is_empty() {
                format!("refused by the server (HTTP {s})")
            } else {
                format!("{message} (HTTP {s})")
            }),
        }
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}
