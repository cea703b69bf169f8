//! Sending an upload's bytes to the blob store while they are still arriving, on stores with
//! parts (S3's multipart upload; the local folder has none and gets the whole file at the end).
//! A request's body goes into parts as it arrives ([`Tee`]); the request is answered once its
//! bytes are synced to the part file, and its parts are recorded when the store has them, while
//! the next request's already go. Bytes that arrived without a tee go ahead after their request,
//! a task per upload sending every whole [`SHIP_PART`] kept and not yet sent; at the last byte
//! [`super::Uploads::finish`] waits for the parts, sends the rest while it checks the hash and
//! the image, and makes the object visible only if they pass (otherwise the parts are dropped).
//! What the store holds is recorded in `{id}.parts.json`, so a restarted node goes on from
//! there; a part lost in flight is sent again from the part file.
//!
//! A request that carries the whole upload skips the parts: it is streamed into one PUT
//! ([`Whole`]) whose last bytes wait for the checks.
//!
//! Only kept bytes are recorded: a request's bytes are kept once the request ended (its
//! checksum matched, or it had none) and the part file is synced, so bytes a later refusal
//! truncates, or a power cut loses, are never in a recorded part.

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
    sniff_bytes(&head[..n])
}

/// The MIME type an image's first bytes suggest (at least [`SNIFF_BYTES`] of them, or all).
pub fn sniff_bytes(head: &[u8]) -> &'static str {
    match image::guess_format(head) {
        Ok(image::ImageFormat::Jpeg) => "image/jpeg",
        Ok(image::ImageFormat::Png) => "image/png",
        Ok(image::ImageFormat::WebP) => "image/webp",
        _ => "application/octet-stream",
    }
}

/// How many first bytes [`sniff_bytes`] looks at.
pub const SNIFF_BYTES: usize = 32;

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
/// channel. The request is answered once its bytes are synced to the part file; its parts may
/// still be on their way then, and are recorded after those of the requests before it
/// ([`Tee::record`]), while the next request's parts already go. Only pieces of a request whose
/// bytes are kept are recorded; a part sent for bytes that are then dropped is replaced by the
/// next part with its number, or left out at completion. Dropping a tee breaks off its parts.
pub struct Tee {
    key: String,
    upload_id: String,
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
    /// A tee for a request carrying `len` bytes at `offset` of an upload of `length`, into
    /// parts upload `upload_id` from part `first_number` on (the parts before it end at
    /// `offset`); `None` when the request cannot be cut into parts S3 accepts (under 5 MiB and
    /// not the upload's end).
    pub fn new(
        key: String,
        upload_id: String,
        first_number: i32,
        blobs: &Arc<dyn BlobStore>,
        offset: u64,
        len: u64,
        length: u64,
    ) -> Option<Tee> {
        let end = offset + len;
        if len == 0 || (len < MIN_PART && end < length) {
            return None;
        }
        let mut pieces = Vec::new();
        let mut start = offset;
        let mut number = first_number;
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
            upload_id,
            blobs: blobs.clone(),
            pieces,
            at: offset,
            open: None,
            sending: Vec::new(),
            abandoned: false,
        })
    }

    pub fn upload_id(&self) -> &str {
        &self.upload_id
    }

    /// The number the part after this tee's takes.
    pub fn next_number(&self) -> i32 {
        self.pieces.last().map_or(1, |p| p.0 + 1)
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
                let (blobs, key, upload_id) =
                    (self.blobs.clone(), self.key.clone(), self.upload_id.clone());
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

    /// Record the parts of a request whose bytes are kept and synced (`synced` says so once
    /// the part file is; false drops them): the parts that went through, from the first on
    /// without a gap, are added to the parts file when they follow on from what it holds. Run
    /// after the previous request's tee recorded its own. Returns where the recorded parts end.
    pub async fn record(
        mut self,
        dir: &Path,
        id: Uuid,
        synced: impl std::future::Future<Output = bool>,
    ) -> u64 {
        self.open = None;
        let sending = std::mem::take(&mut self.sending);
        // Parts not waited for yet are broken off should this be dropped half way.
        let _unfinished = AbortOnDrop(sending.iter().map(|t| t.2.abort_handle()).collect());
        let first = self.pieces.first().map(|p| (p.0, p.1));
        let mut tags = Vec::new();
        let mut whole = !self.abandoned;
        for (number, end, task) in sending {
            if !whole {
                task.abort();
                continue;
            }
            let abort = task.abort_handle();
            let Ok(sent) = tokio::time::timeout(PART_WAIT, task).await else {
                abort.abort();
                whole = false;
                continue;
            };
            match sent {
                Ok(Ok(etag)) => tags.push(PartTag { number, etag, end }),
                Ok(Err(e)) => {
                    tracing::debug!(upload = %id, part = number, error = %e, "a streamed part failed; it goes again from the file");
                    whole = false;
                }
                Err(_) => whole = false,
            }
        }
        // Nothing is recorded of bytes the part file may not hold after a power cut.
        let synced = synced.await;
        let Some(mut shipped) = load(dir, id).await else {
            return 0;
        };
        let follows = first.is_some_and(|(number, start)| {
            shipped.upload_id == self.upload_id
                && shipped.end() == start
                && shipped.next_number() == number
        });
        if !synced || !follows || tags.is_empty() {
            return shipped.end();
        }
        shipped.parts.extend(tags);
        if let Err(e) = save(dir, id, &shipped).await {
            tracing::warn!(upload = %id, error = %e, "could not record the parts sent");
            return 0;
        }
        shipped.end()
    }
}

/// Aborts its tasks when dropped (finished ones are left as they are).
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        for (_, _, task) in &self.sending {
            task.abort();
        }
    }
}

/// How many of an upload's last bytes [`Whole`] holds back until the upload is checked.
const HOLD: u64 = 64 * 1024;

/// A request that carries a whole upload, streamed into one PUT of the blob as it arrives
/// (besides going to the part file): one request to the store instead of a parts upload's
/// three. The last bytes ([`HOLD`]) are held back until the upload is checked (its sha256 and
/// its image): [`Whole::release`] sends them and the object appears; [`Whole::abort`] breaks the
/// PUT off short, and the store keeps nothing. A store that stops taking bytes gives the tee up
/// (the body goes on to the file alone, and [`super::Uploads::finish`] stores the file).
pub struct Whole {
    key: String,
    blobs: Arc<dyn BlobStore>,
    len: u64,
    /// The blob offset the next fed byte has.
    at: u64,
    /// Bytes not yet handed to the PUT: the first few until the type is known, then the tail.
    held: Vec<bytes::Bytes>,
    held_len: usize,
    sending: Option<(
        tokio::sync::mpsc::Sender<bytes::Bytes>,
        tokio::task::JoinHandle<crate::blobs::BlobResult<()>>,
    )>,
    abandoned: bool,
}

impl Whole {
    /// A tee for a request carrying all `len` bytes of an upload, from its offset 0; `None`
    /// when the store takes no streamed puts.
    pub fn new(key: String, blobs: &Arc<dyn BlobStore>, len: u64) -> Option<Whole> {
        if len == 0 || !blobs.streams_puts() {
            return None;
        }
        Some(Whole {
            key,
            blobs: blobs.clone(),
            len,
            at: 0,
            held: Vec::new(),
            held_len: 0,
            sending: None,
            abandoned: false,
        })
    }

    /// Start the PUT, its type sniffed from the bytes held so far.
    fn start(&mut self) {
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        for b in &self.held {
            head.extend_from_slice(&b[..b.len().min(SNIFF_BYTES - head.len())]);
            if head.len() == SNIFF_BYTES {
                break;
            }
        }
        let content_type = sniff_bytes(&head);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let (blobs, key, len) = (self.blobs.clone(), self.key.clone(), self.len);
        let task = tokio::spawn(async move { blobs.put_stream(&key, content_type, len, rx).await });
        self.sending = Some((tx, task));
    }

    /// Hand `piece` to the PUT; false when the store stopped taking bytes.
    async fn send(&mut self, piece: bytes::Bytes) -> bool {
        let Some((tx, _)) = self.sending.as_ref() else {
            return false;
        };
        // A PUT that failed stops reading: the file is stored at the end instead.
        matches!(
            tokio::time::timeout(STALL, tx.send(piece)).await,
            Ok(Ok(()))
        )
    }

    /// The next bytes of the body, in order.
    pub async fn feed(&mut self, mut chunk: bytes::Bytes) {
        if self.abandoned {
            return;
        }
        let hold_from = self.len.saturating_sub(HOLD);
        let end = self.at + chunk.len() as u64;
        self.at = end;
        if self.sending.is_none() {
            self.held_len += chunk.len();
            self.held.push(chunk);
            if self.held_len < SNIFF_BYTES || end > hold_from {
                return;
            }
            self.start();
            chunk = bytes::Bytes::new();
            for b in std::mem::take(&mut self.held) {
                if !self.send(b).await {
                    return self.abandon();
                }
            }
            self.held_len = 0;
        }
        // Bytes from `hold_from` on wait for the checks.
        let start = end - chunk.len() as u64;
        if end > hold_from {
            let keep = (end - hold_from.max(start)) as usize;
            let tail = chunk.split_off(chunk.len() - keep);
            self.held_len += tail.len();
            self.held.push(tail);
        }
        if !chunk.is_empty() && !self.send(chunk).await {
            self.abandon();
        }
    }

    fn abandon(&mut self) {
        tracing::warn!(key = %self.key, "the blob store stopped taking an upload; it goes from the file later");
        self.abandoned = true;
        self.held.clear();
        if let Some((_, task)) = self.sending.take() {
            task.abort();
        }
    }

    /// The upload passed its checks: send the held bytes and wait for the store to keep the
    /// object. An error (nothing stored) leaves the file to be stored instead.
    pub async fn release(mut self) -> crate::blobs::BlobResult<()> {
        let broken = || crate::blobs::BlobError::Backend("the streamed put was given up".into());
        if self.abandoned || self.at != self.len {
            return Err(broken());
        }
        if self.sending.is_none() {
            self.start();
        }
        for b in std::mem::take(&mut self.held) {
            if !self.send(b).await {
                return Err(broken());
            }
        }
        let (tx, task) = self.sending.take().expect("started");
        drop(tx);
        let abort = task.abort_handle();
        match tokio::time::timeout(PART_WAIT, task).await {
            Ok(Ok(stored)) => stored,
            Ok(Err(e)) => Err(crate::blobs::BlobError::Backend(Box::new(e))),
            Err(_) => {
                abort.abort();
                Err(broken())
            }
        }
    }

    /// The upload was refused, or its request cut: the PUT is broken off short (the store
    /// keeps nothing of it). Dropping the tee does the same.
    pub fn abort(self) {}
}

impl Drop for Whole {
    fn drop(&mut self) {
        if let Some((tx, task)) = self.sending.take() {
            drop(tx);
            task.abort();
        }
    }
}
