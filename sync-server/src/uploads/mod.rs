//! Uploads of photo and signature blobs, as the tus endpoint ([`crate::http::uploads`]) drives
//! them. An upload in progress is two files in `uploads/` under the data dir: `{id}.json` (who,
//! for which document, which sha256, how long, until when) and `{id}.part` (the bytes so far; its
//! length is the offset), so uploads resume after a restart. On S3 the kept bytes go to the store
//! in parts while the rest arrives ([`ship`], `{id}.parts.json`), or, when one request carries
//! them all, in one PUT whose last bytes wait for the checks. At the end [`Uploads::finish`]
//! checks the sha256 against the document (hashed as the bytes arrived), the image's header
//! ([`image::inspect`]) and, but for a JPEG, its pixels ([`image::decode`]), while the last part
//! is sent; the object is completed only if the checks passed. Then what was read from the image
//! goes into the store's `photos` row ([`PhotoRecord`]), the upload's files are removed and the
//! thumbnails are queued on a bounded pool, off the request path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::blobs::{self, BlobStore};
use crate::config::UploadConfig;
use crate::metrics::Metrics;
use crate::store::{PhotoRecord, Store};

pub mod image;
pub mod ship;

/// An upload's bytes kept so far, and the task sending them ahead ([`ship::ship_ahead`]).
type Shipper = (Arc<AtomicU64>, Option<tokio::task::JoinHandle<()>>);

/// The parts of an upload's last request still on their way ([`ship::Tee::record`]): where
/// that request ended, the parts upload and the number the next part takes, and the task that
/// records them (after the requests before it) and says where the recorded parts end.
struct Recording {
    end: u64,
    upload_id: String,
    next_number: i32,
    task: tokio::task::JoinHandle<u64>,
}

/// Whether an image's pixels are decoded before it is stored. A JPEG's are not: JPEG decoders
/// fill damaged or missing data rather than fail, so once its header and end marker are checked
/// a full decode refuses next to nothing more, and it was most of an upload's time (measured:
/// 0.6 s of 0.83 s for 48 MB); the thumbnail pool decodes it within the same limits. A PNG or
/// WebP (signatures, mostly small) is decoded: its compressed data is checked.
fn decodes_here(checked: &image::Checked) -> bool {
    checked.mime != "image/jpeg"
}

fn unavailable(e: &crate::blobs::BlobError) -> Failure {
    Failure {
        code: "blob-store-unavailable",
        message: format!("could not store the blob: {e}"),
        client: false,
    }
}

/// An upload, as kept in `{id}.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UploadInfo {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    /// The photo (or job, for a signature) document that references the blob.
    pub doc_id: Uuid,
    pub sha256: String,
    pub length: u64,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The blob store holds the bytes (received here, or held already).
    pub complete: bool,
}

/// Why finishing an upload failed: a stable code, a sentence, and whether the client is at fault.
#[derive(Debug)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    pub client: bool,
}

/// The uploads of this node: their folder, a lock per upload, the thumbnail pool.
pub struct Uploads {
    dir: PathBuf,
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    thumbs: Arc<Semaphore>,
    /// Final checks (hash and full decode of an image) at once: each may take up to
    /// `max_image_alloc` of memory, so they are bounded like the thumbnails.
    checks: Arc<Semaphore>,
    /// The blob store, for sending parts ahead ([`ship`]).
    blobs: Arc<dyn BlobStore>,
    /// Per upload sending parts ahead: what it kept so far, and the task sending it.
    shippers: Mutex<HashMap<Uuid, Shipper>>,
    /// Per upload, the parts its last teed request streamed, being recorded.
    recording: Mutex<HashMap<Uuid, Recording>>,
    /// Per upload, the sha256 of its first bytes as they arrived here, and how many: the end
    /// then need not read the file again. Lost on a restart (the end then hashes the file).
    running: Mutex<HashMap<Uuid, (u64, Sha256)>>,
    pub config: UploadConfig,
}

impl Uploads {
    pub fn new(dir: PathBuf, config: UploadConfig, blobs: Arc<dyn BlobStore>) -> Uploads {
        Uploads {
            dir,
            locks: Mutex::default(),
            blobs,
            shippers: Mutex::default(),
            recording: Mutex::default(),
            running: Mutex::default(),
            thumbs: Arc::new(Semaphore::new(config.thumbnail_workers.max(1))),
            checks: Arc::new(Semaphore::new(config.thumbnail_workers.max(1))),
            config,
        }
    }

    pub fn part_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{}.part", id.simple()))
    }

    fn info_path(&self, id: Uuid) -> PathBuf {
        self.dir.join(format!("{}.json", id.simple()))
    }

    /// The upload's lock: one request at a time writes to an upload.
    pub fn lock(&self, id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("upload locks")
            .entry(id)
            .or_default()
            .clone()
    }

    /// Save `info` (temp file, then rename) and, for an upload still receiving, an empty part.
    pub async fn save(&self, info: &UploadInfo) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        if !info.complete {
            let part = self.part_path(info.id);
            if tokio::fs::metadata(&part).await.is_err() {
                tokio::fs::File::create(&part).await?.sync_all().await?;
            }
        }
        let tmp = self.dir.join(format!(".{}.tmp", info.id.simple()));
        tokio::fs::write(&tmp, serde_json::to_vec(info).expect("serializable")).await?;
        tokio::fs::rename(&tmp, self.info_path(info.id)).await
    }

    /// The upload, or `None` when there is none (or it expired: then it is removed).
    pub async fn load(&self, id: Uuid, now: DateTime<Utc>) -> std::io::Result<Option<UploadInfo>> {
        let bytes = match tokio::fs::read(self.info_path(id)).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Ok(info) = serde_json::from_slice::<UploadInfo>(&bytes) else {
            return Ok(None);
        };
        if info.expires_at <= now {
            self.remove(id).await;
            return Ok(None);
        }
        Ok(Some(info))
    }

    /// Bytes received so far.
    pub async fn offset(&self, info: &UploadInfo) -> std::io::Result<u64> {
        if info.complete {
            return Ok(info.length);
        }
        Ok(tokio::fs::metadata(self.part_path(info.id)).await?.len())
    }

    /// The upload kept its bytes up to `offset` (a request ended): on a store with parts, send
    /// every whole part of them ahead, in a task of its own ([`ship::ship_ahead`]). Nothing is
    /// started while a request's parts are being recorded, nor when they end at `offset`.
    pub fn kept(&self, info: &UploadInfo, offset: u64) {
        if offset < ship::SHIP_PART || offset >= info.length {
            return;
        }
        if let Some(r) = self.recording.lock().expect("recordings").get(&info.id)
            && (!r.task.is_finished() || r.end == offset)
        {
            return;
        }
        let mut shippers = self.shippers.lock().expect("shippers");
        let entry = shippers
            .entry(info.id)
            .or_insert_with(|| (Arc::new(AtomicU64::new(0)), None));
        entry.0.store(offset, Ordering::SeqCst);
        if entry.1.as_ref().is_none_or(|t| t.is_finished()) {
            entry.1 = Some(tokio::spawn(ship::ship_ahead(
                self.dir.clone(),
                info.id,
                self.blobs.clone(),
                blobs::original_key(info.org_id, &info.sha256),
                self.part_path(info.id),
                entry.0.clone(),
            )));
        }
    }

    /// A tee sending the body of a request (`len` bytes at `offset`) to the blob store as it
    /// arrives ([`ship::Tee`]): on a store with parts, when no task is sending parts ahead for
    /// this upload and every byte before `offset` is in recorded parts.
    pub async fn tee(&self, info: &UploadInfo, offset: u64, len: u64) -> Option<ship::Tee> {
        if let Some((_, Some(task))) = self.shippers.lock().expect("shippers").get(&info.id)
            && !task.is_finished()
        {
            return None;
        }
        let key = blobs::original_key(info.org_id, &info.sha256);
        // The parts of the request before are still on their way: this one's follow them.
        let pending = self
            .recording
            .lock()
            .expect("recordings")
            .get(&info.id)
            .filter(|r| !r.task.is_finished())
            .map(|r| (r.end, r.upload_id.clone(), r.next_number));
        if let Some((end, upload_id, next_number)) = pending {
            if end != offset {
                return None;
            }
            return ship::Tee::new(
                key,
                upload_id,
                next_number,
                &self.blobs,
                offset,
                len,
                info.length,
            );
        }
        let part = self.part_path(info.id);
        // Starting the parts upload is one small call; a store slow to answer it is not
        // waited for (the body then goes to the file alone, and to the store later).
        let begun = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            ship::begin(&self.dir, info.id, &self.blobs, &key, &part),
        )
        .await;
        let shipped = begun.ok()?.ok()??;
        if shipped.end() != offset {
            return None;
        }
        ship::Tee::new(
            key,
            shipped.upload_id.clone(),
            shipped.next_number(),
            &self.blobs,
            offset,
            len,
            info.length,
        )
    }

    /// A tee storing a request that carries every byte of the upload in one streamed PUT
    /// ([`ship::Whole`]): on a store that takes them, when nothing of the upload went to the
    /// store in parts yet. Other requests go into parts ([`Uploads::tee`]).
    pub async fn whole(&self, info: &UploadInfo, offset: u64, len: u64) -> Option<ship::Whole> {
        if offset != 0 || len != info.length || !self.blobs.streams_puts() {
            return None;
        }
        if let Some((_, Some(task))) = self.shippers.lock().expect("shippers").get(&info.id)
            && !task.is_finished()
        {
            return None;
        }
        if ship::load(&self.dir, info.id)
            .await
            .is_some_and(|s| s.end() > 0)
        {
            return None;
        }
        ship::Whole::new(
            blobs::original_key(info.org_id, &info.sha256),
            &self.blobs,
            len,
        )
    }

    /// The tee of a request whose bytes are kept up to `end` ended: its parts are recorded in
    /// a task of their own, after those of the request before, once `synced` says the part
    /// file holds the bytes ([`ship::Tee::record`]); the request need not wait for them.
    /// [`Uploads::finish`] does.
    pub fn tee_done(
        &self,
        tee: ship::Tee,
        id: Uuid,
        end: u64,
        synced: impl std::future::Future<Output = bool> + Send + 'static,
    ) {
        let mut recording = self.recording.lock().expect("recordings");
        let before = recording.remove(&id);
        let (upload_id, next_number) = (tee.upload_id().to_string(), tee.next_number());
        let dir = self.dir.clone();
        let task = tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.task.await;
            }
            tee.record(&dir, id, synced).await
        });
        recording.insert(
            id,
            Recording {
                end,
                upload_id,
                next_number,
                task,
            },
        );
    }

    /// Wait until the parts of upload `id`'s requests are recorded.
    async fn recorded(&self, id: Uuid) {
        let pending = self.recording.lock().expect("recordings").remove(&id);
        if let Some(r) = pending {
            let _ = r.task.await;
        }
    }

    /// The running sha256 of upload `id` if it covers exactly its first `offset` bytes (a new
    /// hasher at offset 0), to go on with; `None` when this node did not see them all.
    pub fn running_hash(&self, id: Uuid, offset: u64) -> Option<Sha256> {
        if offset == 0 {
            return Some(Sha256::new());
        }
        match self.running.lock().expect("running hashes").get(&id) {
            Some((at, h)) if *at == offset => Some(h.clone()),
            _ => None,
        }
    }

    /// Record the running sha256 of the first `offset` bytes of upload `id` (or forget it).
    pub fn set_running_hash(&self, id: Uuid, offset: u64, hash: Option<Sha256>) {
        let mut running = self.running.lock().expect("running hashes");
        match hash {
            Some(h) => running.insert(id, (offset, h)),
            None => running.remove(&id),
        };
    }

    /// Remove the upload's files (nothing left behind).
    pub async fn remove(&self, id: Uuid) {
        if let Some((_, Some(task))) = self.shippers.lock().expect("shippers").remove(&id) {
            task.abort();
        }
        let recording = self.recording.lock().expect("recordings").remove(&id);
        if let Some(r) = recording {
            r.task.abort();
            let _ = r.task.await;
        }
        self.running.lock().expect("running hashes").remove(&id);
        // Parts sent ahead are dropped from the blob store too.
        if let Some(shipped) = ship::load(&self.dir, id).await
            && let Ok(bytes) = tokio::fs::read(self.info_path(id)).await
            && let Ok(info) = serde_json::from_slice::<UploadInfo>(&bytes)
        {
            let key = blobs::original_key(info.org_id, &info.sha256);
            if let Err(e) = self.blobs.abort_parts(&key, &shipped.upload_id).await {
                tracing::warn!(upload = %id, error = %e, "could not drop an upload's parts");
            }
        }
        let _ = tokio::fs::remove_file(ship::parts_path(&self.dir, id)).await;
        let _ = tokio::fs::remove_file(self.part_path(id)).await;
        let _ = tokio::fs::remove_file(self.info_path(id)).await;
        self.locks.lock().expect("upload locks").remove(&id);
    }

    /// Remove expired uploads; returns how many unfinished ones remain (at start, for the gauge).
    pub async fn sweep(&self, now: DateTime<Utc>) -> usize {
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return 0;
        };
        let mut open = 0;
        while let Ok(Some(e)) = entries.next_entry().await {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(id) = name
                .strip_suffix(".json")
                .and_then(|s| Uuid::try_parse(s).ok())
            else {
                continue;
            };
            if let Ok(Some(info)) = self.load(id, now).await
                && !info.complete
            {
                open += 1;
            }
        }
        open
    }

    /// The upload received its last byte: check it and store it. On failure the upload is
    /// removed (nothing is left behind) and the reason returned.
    ///
    /// `whole` is the tee of a request that carried every byte in one streamed PUT: the checks
    /// run first, then its held bytes go and the object appears; should that PUT fail, the
    /// file is stored instead.
    pub async fn finish(
        &self,
        info: &mut UploadInfo,
        blobs: &Arc<dyn BlobStore>,
        store: &Arc<dyn Store>,
        metrics: &Arc<Metrics>,
        whole: Option<ship::Whole>,
    ) -> Result<(), Failure> {
        let part = self.part_path(info.id);
        let mut checked = None;
        let mut stored = false;
        if let Some(whole) = whole {
            let c = match self.check(info).await {
                Ok(c) => c,
                Err(f) => {
                    whole.abort();
                    return Err(self.refused(info.id, f).await);
                }
            };
            match whole.release().await {
                Ok(()) => {
                    stored = true;
                    // A parts upload begun for an earlier request that kept nothing.
                    if let Some(shipped) = ship::load(&self.dir, info.id).await {
                        let key = blobs::original_key(info.org_id, &info.sha256);
                        let _ = blobs.abort_parts(&key, &shipped.upload_id).await;
                        let _ = tokio::fs::remove_file(ship::parts_path(&self.dir, info.id)).await;
                    }
                }
                Err(e) => {
                    tracing::debug!(upload = %info.id, error = %e, "a streamed put failed; the file is stored instead");
                }
            }
            checked = Some(c);
        }
        let checked = if stored {
            checked.expect("checked before it was stored")
        } else {
            self.store_file(info, blobs, checked).await?
        };
        let photo = PhotoRecord {
            org_id: info.org_id,
            sha256: info.sha256.clone(),
            size: info.length,
            mime: checked.mime.to_string(),
            width: checked.width,
            height: checked.height,
            taken_at: checked.taken_at,
            location: checked.location,
            thumbnails: Vec::new(),
            stored_at: Utc::now(),
        };
        if let Err(e) = store.put_photo(&photo).await {
            return Err(Failure {
                code: "store-unavailable",
                message: format!("could not record the photo: {e}"),
                client: false,
            });
        }
        info.complete = true;
        if let Err(e) = self.save(info).await {
            tracing::warn!(upload = %info.id, error = %e, "could not mark an upload complete");
        }
        let _ = tokio::fs::remove_file(&part).await;
        self.queue_thumbnails(photo, blobs.clone(), store.clone(), metrics.clone());
        Ok(())
    }

    /// Store the part file of a whole upload: checked (unless `checked` says it was) while, on
    /// a store with parts, the parts sent ahead finish and the rest is sent; the object becomes
    /// visible only once both are done and the checks passed. The local folder gets the whole
    /// file after the checks.
    async fn store_file(
        &self,
        info: &UploadInfo,
        blobs: &Arc<dyn BlobStore>,
        checked: Option<image::Checked>,
    ) -> Result<image::Checked, Failure> {
        let part = self.part_path(info.id);
        let key = blobs::original_key(info.org_id, &info.sha256);
        let ahead = self
            .shippers
            .lock()
            .expect("shippers")
            .remove(&info.id)
            .and_then(|(_, task)| task);
        let sending = async {
            self.recorded(info.id).await;
            if let Some(task) = ahead {
                let _ = task.await;
            }
            let Some(shipped) = ship::begin(&self.dir, info.id, blobs, &key, &part).await? else {
                return Ok(None);
            };
            let rest = if shipped.end() >= info.length {
                Vec::new()
            } else {
                blobs
                    .put_parts(
                        &key,
                        &shipped.upload_id,
                        shipped.next_number(),
                        &part,
                        shipped.end(),
                        info.length,
                        ship::SHIP_PART,
                    )
                    .await?
            };
            Ok::<_, crate::blobs::BlobError>(Some((shipped, rest)))
        };
        let checking = async {
            match checked {
                Some(c) => Ok(c),
                None => self.check(info).await,
            }
        };
        let (checked, sent) = tokio::join!(checking, sending);
        let checked = match checked {
            Ok(c) => c,
            Err(f) => return Err(self.refused(info.id, f).await),
        };
        match sent.map_err(|e| unavailable(&e))? {
            Some((shipped, rest)) => {
                let mut parts = shipped.parts;
                parts.extend(rest);
                if let Err(e) = blobs.complete_parts(&key, &shipped.upload_id, &parts).await {
                    // Start the parts over next time rather than trust an upload id that may
                    // be gone.
                    let _ = blobs.abort_parts(&key, &shipped.upload_id).await;
                    let _ = tokio::fs::remove_file(ship::parts_path(&self.dir, info.id)).await;
                    return Err(unavailable(&e));
                }
                let _ = tokio::fs::remove_file(ship::parts_path(&self.dir, info.id)).await;
            }
            None => blobs
                .put_file(&key, &part, checked.mime)
                .await
                .map_err(|e| unavailable(&e))?,
        }
        Ok(checked)
    }

    /// The checks of a whole upload, on a blocking thread: its sha256 against the document's
    /// (hashed as it arrived when this node saw every byte), the image's header
    /// ([`image::inspect`]) and its pixels when [`decodes_here`] says so ([`image::decode`]).
    async fn check(&self, info: &UploadInfo) -> Result<image::Checked, Failure> {
        let (config, path, want) = (
            self.config.clone(),
            self.part_path(info.id),
            info.sha256.clone(),
        );
        // Hashed as the bytes arrived, when this node saw them all.
        let known = self
            .running
            .lock()
            .expect("running hashes")
            .remove(&info.id)
            .filter(|(at, _)| *at == info.length)
            .map(|(_, h)| hex::encode(h.finalize()));
        // Held by the blocking work itself, so a request given up on still counts until it ends.
        let permit = self.checks.clone().acquire_owned().await;
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let sha = match known {
                Some(sha) => sha,
                None => {
                    let mut hasher = Sha256::new();
                    let mut f = std::fs::File::open(&path)?;
                    std::io::copy(&mut f, &mut hasher)?;
                    hex::encode(hasher.finalize())
                }
            };
            if sha != want {
                return Ok(Err(Failure {
                    code: "sha256-mismatch",
                    message: format!(
                        "the bytes received hash to {sha}, not to the document's {want}"
                    ),
                    client: true,
                }));
            }
            let checked = image::inspect(&path, &config).and_then(|c| {
                if decodes_here(&c) {
                    image::decode(&path, &config)?;
                }
                Ok(c)
            });
            Ok::<_, std::io::Error>(checked.map_err(|r| Failure {
                code: r.code,
                message: r.message,
                client: true,
            }))
        })
        .await;
        match checked {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(Failure {
                code: "internal",
                message: e.to_string(),
                client: false,
            }),
            Err(e) => Err(Failure {
                code: "internal",
                message: e.to_string(),
                client: false,
            }),
        }
    }

    /// A refused upload: removed when the client is at fault (nothing left behind; its parts
    /// are dropped from the store), kept for a retry otherwise.
    async fn refused(&self, id: Uuid, f: Failure) -> Failure {
        if f.client {
            self.remove(id).await;
        }
        f
    }

    /// Make the thumbnails of a stored original on the bounded pool (a permit per image, the
    /// work on a blocking thread), then note them in its `photos` row.
    pub fn queue_thumbnails(
        &self,
        mut photo: PhotoRecord,
        blobs: Arc<dyn BlobStore>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
    ) {
        let permits = self.thumbs.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let started = Instant::now();
            let org = photo.org_id;
            let made = async {
                let bytes = blobs
                    .get(&blobs::original_key(org, &photo.sha256))
                    .await
                    .map_err(|e| e.to_string())?;
                let thumbs = tokio::task::spawn_blocking(move || {
                    image::thumbnails(&bytes, &blobs::THUMB_SIZES, &config)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|r| r.message)?;
                for (px, jpg) in thumbs {
                    blobs
                        .put_bytes(&blobs::thumb_key(org, &photo.sha256, px), jpg, "image/jpeg")
                        .await
                        .map_err(|e| e.to_string())?;
                    photo.thumbnails.push(px);
                }
                store.put_photo(&photo).await.map_err(|e| e.to_string())
            }
            .await;
            metrics
                .thumbnail_seconds
                .observe(started.elapsed().as_secs_f64());
            if let Err(e) = made {
                metrics.upload_failed("thumbnail");
                tracing::warn!(sha256 = %photo.sha256, error = %e, "could not make thumbnails");
            }
        });
    }
}
