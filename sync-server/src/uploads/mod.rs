//! Uploads of photo and signature blobs, as the tus endpoint ([`crate::http::uploads`]) drives
//! them. An upload in progress is two files in `uploads/` under the data dir: `{id}.json` (who,
//! for which document, which sha256, how long, until when) and `{id}.part` (the bytes so far; its
//! length is the offset), so uploads resume after a restart. At the end [`Uploads::finish`]
//! checks the sha256 against the document and the image's header ([`image::inspect`]), then
//! stores the original untouched in the blob store while decoding its pixels ([`image::decode`]),
//! then what was read from it in the store's `photos` row
//! ([`PhotoRecord`]), removes the upload's files and queues the thumbnails on a bounded pool, off
//! the request path.

use std::collections::HashMap;
use std::path::PathBuf;
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
    pub config: UploadConfig,
}

impl Uploads {
    pub fn new(dir: PathBuf, config: UploadConfig) -> Uploads {
        Uploads {
            dir,
            locks: Mutex::default(),
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

    /// Remove the upload's files (nothing left behind).
    pub async fn remove(&self, id: Uuid) {
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
    pub async fn finish(
        &self,
        info: &mut UploadInfo,
        blobs: &Arc<dyn BlobStore>,
        store: &Arc<dyn Store>,
        metrics: &Arc<Metrics>,
    ) -> Result<(), Failure> {
        let part = self.part_path(info.id);
        let fail = |code, message: String, client| Failure {
            code,
            message,
            client,
        };
        // First what is quick: the hash against the document and the image's header.
        let (config, path) = (self.config.clone(), part.clone());
        let inspected = tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            let mut f = std::fs::File::open(&path)?;
            std::io::copy(&mut f, &mut hasher)?;
            Ok::<_, std::io::Error>((
                hex::encode(hasher.finalize()),
                image::inspect(&path, &config),
            ))
        })
        .await;
        let result = match inspected {
            Err(e) => Err(fail("internal", e.to_string(), false)),
            Ok(Err(e)) => Err(fail("internal", e.to_string(), false)),
            Ok(Ok((sha, _))) if sha != info.sha256 => Err(fail(
                "sha256-mismatch",
                format!(
                    "the bytes received hash to {sha}, not to the document's {}",
                    info.sha256
                ),
                true,
            )),
            Ok(Ok((_, Err(refusal)))) => Err(fail(refusal.code, refusal.message, true)),
            Ok(Ok((_, Ok(checked)))) => Ok(checked),
        };
        let checked = match result {
            Ok(c) => c,
            Err(f) => {
                self.remove(info.id).await;
                return Err(f);
            }
        };
        // Then the two slow steps side by side: the original goes to the blob store while its
        // pixels are decoded within the limits (which refuses corrupt data the header hides).
        // The photo is not uploaded until its `photos` row exists, written only when both
        // succeeded, so an original stored beside a failed decode is never shown, and is
        // deleted.
        let key = blobs::original_key(info.org_id, &info.sha256);
        let (config, path) = (self.config.clone(), part.clone());
        // Held by the blocking work itself, so a request given up on still counts until it ends.
        // A JPEG's pixels are not decoded here: JPEG decoders fill damaged or missing data
        // rather than fail, so once the header and the end marker are checked a full decode
        // refuses next to nothing more, and it was most of the time an upload took (measured:
        // 0.6 s of 0.83 s for 48 MB). The thumbnail pool decodes it within the same limits. A PNG
        // or WebP (signatures, mostly small) is decoded here: its compressed data is checked.
        let decode_now = checked.mime != "image/jpeg";
        let permit = self.checks.clone().acquire_owned().await;
        let decoding = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if decode_now {
                image::decode(&path, &config)
            } else {
                Ok(())
            }
        });
        let (stored, decoded) = tokio::join!(blobs.put_file(&key, &part, checked.mime), decoding);
        let refusal = match decoded {
            Ok(Ok(())) => None,
            Ok(Err(refusal)) => Some(fail(refusal.code, refusal.message, true)),
            Err(e) => Some(fail("internal", e.to_string(), false)),
        };
        if let Some(f) = refusal {
            if stored.is_ok()
                && let Err(e) = blobs.delete(&key).await
            {
                tracing::warn!(key, error = %e, "could not delete the original of a refused image");
            }
            if f.client {
                self.remove(info.id).await;
            }
            return Err(f);
        }
        if let Err(e) = stored {
            // The bytes stay for a retry of the last PATCH; the blob store may come back.
            return Err(fail(
                "blob-store-unavailable",
                format!("could not store the blob: {e}"),
                false,
            ));
        }
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
            return Err(fail(
                "store-unavailable",
                format!("could not record the photo: {e}"),
                false,
            ));
        }
        info.complete = true;
        if let Err(e) = self.save(info).await {
            tracing::warn!(upload = %info.id, error = %e, "could not mark an upload complete");
        }
        let _ = tokio::fs::remove_file(&part).await;
        self.queue_thumbnails(photo, blobs.clone(), store.clone(), metrics.clone());
        Ok(())
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
