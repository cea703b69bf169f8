//! Sending an upload's bytes to the blob store while they are still arriving, on stores with
//! parts (S3's multipart upload; the local folder has none and gets the whole file at the end).
//! After each request that kept bytes, a task per upload sends every whole [`SHIP_PART`] the
//! upload has kept and not yet sent; at the last byte [`super::Uploads::finish`] sends the rest
//! while it checks the hash and the image, and makes the object visible only if they pass
//! (otherwise the parts are dropped). What the store holds is recorded in `{id}.parts.json`, so a
//! restarted node goes on from there; a part lost in flight is sent again from the part file.
//!
//! Only kept bytes are sent: a request's bytes are kept once the request ended (its checksum
//! matched, or it had none), so bytes a later refusal truncates are never in a part.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::blobs::{BlobStore, PartTag};

/// Size of the parts sent ahead (S3 wants at least 5 MiB for every part but the last).
pub const SHIP_PART: u64 = 8 * 1024 * 1024;

/// What the blob store holds of an upload: a parts upload and its parts, in order, covering the
/// bytes `0..end()`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shipped {
    pub upload_id: String,
    pub parts: Vec<PartTag>,
}

impl Shipped {
    pub fn end(&self) -> u64 {
        self.parts.last().map_or(0, |p| p.end)
    }

    pub fn next_number(&self) -> i32 {
        self.parts.len() as i32 + 1
    }
}

pub fn parts_path(dir: &Path, id: Uuid) -> PathBuf {
    dir.join(format!("{}.parts.json", id.simple()))
}

pub async fn load(dir: &Path, id: Uuid) -> Option<Shipped> {
    let bytes = tokio::fs::read(parts_path(dir, id)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub async fn save(dir: &Path, id: Uuid, shipped: &Shipped) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{}.parts.tmp", id.simple()));
    tokio::fs::write(&tmp, serde_json::to_vec(shipped).expect("serializable")).await?;
    tokio::fs::rename(&tmp, parts_path(dir, id)).await
}

/// The MIME type the first bytes of the part file suggest, for the object's `Content-Type` (the
/// image checks at the end refuse anything else before the object becomes visible).
pub async fn sniff(part: &Path) -> &'static str {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 32];
    let n = match tokio::fs::File::open(part).await {
        Ok(mut f) => f.read(&mut head).await.unwrap_or(0),
        Err(_) => 0,
    };
    match image::guess_format(&head[..n]) {
        Ok(image::ImageFormat::Jpeg) => "image/jpeg",
        Ok(image::ImageFormat::Png) => "image/png",
        Ok(image::ImageFormat::WebP) => "image/webp",
        _ => "application/octet-stream",
    }
}

/// The recorded parts upload of `id`, or a new one (`None` when the store has no parts).
pub async fn begin(
    dir: &Path,
    id: Uuid,
    blobs: &Arc<dyn BlobStore>,
    key: &str,
    part: &Path,
) -> Result<Option<Shipped>, crate::blobs::BlobError> {
    if let Some(s) = load(dir, id).await {
        return Ok(Some(s));
    }
    let Some(upload_id) = blobs.begin_parts(key, sniff(part).await).await? else {
        return Ok(None);
    };
    let shipped = Shipped {
        upload_id,
        parts: Vec::new(),
    };
    save(dir, id, &shipped).await?;
    Ok(Some(shipped))
}

/// The task that sends whole parts of what `kept` says the upload kept, until nothing whole is
/// left to send. A failure stops it (logged): the end sends what is missing.
pub async fn ship_ahead(
    dir: PathBuf,
    id: Uuid,
    blobs: Arc<dyn BlobStore>,
    key: String,
    part: PathBuf,
    kept: Arc<AtomicU64>,
) {
    let result = async {
        let Some(mut shipped) = begin(&dir, id, &blobs, &key, &part).await? else {
            return Ok(());
        };
        loop {
            let (end, kept) = (shipped.end(), kept.load(Ordering::SeqCst));
            let whole = kept.saturating_sub(end) / SHIP_PART * SHIP_PART;
            if whole == 0 {
                return Ok(());
            }
            let tags = blobs
                .put_parts(
                    &key,
                    &shipped.upload_id,
                    shipped.next_number(),
                    &part,
                    end,
                    end + whole,
                    SHIP_PART,
                )
                .await?;
            shipped.parts.extend(tags);
            save(&dir, id, &shipped).await?;
        }
    }
    .await;
    if let Err(e) = result {
        let e: crate::blobs::BlobError = e;
        tracing::warn!(upload = %id, error = %e, "could not send an upload's parts ahead; they go at the end");
    }
}

/// How long a request waits for the blob store to take the next bytes of a part it streams.
const STALL: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the end of a request waits for a part whose bytes were all handed over.
const PART_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The smallest part S3 accepts but for an object's last.
const MIN_PART: u64 = 5 * 1024 * 1024;

/// A request's body streamed into parts as it arrives (besides going to the part file), so
/// receiving and storing overlap: the request's range is cut into [`SHIP_PART`] pieces (a short
/// tail joins the piece before it unless it ends the upload), each sent as a part fed by a
/// channel. Only pieces of a request whose bytes are kept are recorded; a part sent for bytes
/// that are then dropped is replaced by the next part with its number, or left out at completion.
pub struct Tee {
    key: String,
    shipped: Shipped,
    blobs: Arc<dyn BlobStore>,
    /// Planned pieces: (part number, start, end) in blob offsets.
    pieces: Vec<(i32, u64, u64)>,
    /// The blob offset the next fed byte has.
    at: u64,
    /// The open piece's index and its channel.
    open: Option<(usize, tokio::sync::mpsc::Sender<bytes::Bytes>)>,
    sending: Vec<(
        i32,
        u64,
        tokio::task::JoinHandle<crate::blobs::BlobResult<String>>,
    )>,
    /// The store stalled: nothing of this request is recorded.
    abandoned: bool,
}

impl Tee {
    /// A tee for a request carrying `len` bytes at `offset` of an upload of `length`, given
    /// what is recorded (`shipped`, which must end at `offset`); `None` when the request cannot
    /// be cut into parts S3 accepts (under 5 MiB and not the upload's end).
    pub fn new(
        key: String,
        shipped: Shipped,
        blobs: &Arc<dyn BlobStore>,
        offset: u64,
        len: u64,
        length: u64,
    ) -> Option<Tee> {
        let end = offset + len;
        if len == 0 || shipped.end() != offset || (len < MIN_PART && end < length) {
            return None;
        }
        let mut pieces = Vec::new();
        let mut start = offset;
        let mut number = shipped.next_number();
        while start < end {
            let mut stop = (start + SHIP_PART).min(end);
            if end - stop < MIN_PART && end < length {
                stop = end;
            }
            pieces.push((number, start, stop));
            number += 1;
            start = stop;
        }
        Some(Tee {
            key,
            shipped,
            blobs: blobs.clone(),
            pieces,
            at: offset,
            open: None,
            sending: Vec::new(),
            abandoned: false,
        })
    }

    /// The next bytes of the body, in order.
    pub async fn feed(&mut self, mut chunk: bytes::Bytes) {
        while !chunk.is_empty() {
            let Some(index) = self
                .pieces
                .iter()
                .position(|p| p.1 <= self.at && self.at < p.2)
            else {
                return; // more bytes than announced: the request is refused anyway
            };
            if self.open.as_ref().is_none_or(|(i, _)| *i != index) {
                let (number, start, stop) = self.pieces[index];
                let (tx, rx) = tokio::sync::mpsc::channel(64);
                let (blobs, key, upload_id) = (
                    self.blobs.clone(),
                    self.key.clone(),
                    self.shipped.upload_id.clone(),
                );
                let task = tokio::spawn(async move {
                    blobs
                        .put_part_stream(&key, &upload_id, number, stop - start, rx)
                        .await
                });
                self.sending.push((number, stop, task));
                self.open = Some((index, tx));
            }
            let stop = self.pieces[index].2;
            let take = ((stop - self.at) as usize).min(chunk.len());
            let piece = chunk.split_to(take);
            self.at += take as u64;
            let (_, tx) = self.open.as_ref().expect("a piece is open");
            // A part that failed stops reading: its bytes go at the end instead. A store that
            // stops taking bytes must not hold up the request: past a few seconds the tee is
            // given up (its open part fails) and the body goes on to the file alone.
            match tokio::time::timeout(STALL, tx.send(piece)).await {
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(key = %self.key, "the blob store stopped taking a part; it goes from the file later");
                    self.open = None;
                    self.pieces.clear();
                    self.abandoned = true;
                    return;
                }
            }
            if self.at == stop {
                self.open = None;
            }
        }
    }

    /// The request ended. When its bytes are kept (`keep`), the parts that went through, from
    /// the first on without a gap, are recorded in the parts file; the end of what is recorded
    /// is returned. Parts of dropped bytes are not recorded.
    pub async fn finish(mut self, dir: &Path, id: Uuid, keep: bool) -> u64 {
        self.open = None;
        let mut recorded = true;
        let keep = keep && !self.abandoned;
        for (number, end, task) in self.sending {
            if !keep || !recorded {
                task.abort();
                continue;
            }
            let abort = task.abort_handle();
            let Ok(sent) = tokio::time::timeout(PART_WAIT, task).await else {
                abort.abort();
                recorded = false;
                continue;
            };
            match sent {
                Ok(Ok(etag)) => self.shipped.parts.push(PartTag { number, etag, end }),
                Ok(Err(e)) => {
                    tracing::debug!(upload = %id, part = number, error = %e, "a streamed part failed; it goes again from the file");
                    recorded = false;
                }
                Err(_) => recorded = false,
            }
        }
        if keep && let Err(e) = save(dir, id, &self.shipped).await {
            tracing::warn!(upload = %id, error = %e, "could not record the parts sent");
            return 0;
        }
        self.shipped.end()
    }
}
