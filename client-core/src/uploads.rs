//! The upload queue: photos and signatures this device made, on their way to the server's blob
//! store.
//!
//! A blob joins the queue in the same SQLite transaction as the local change that references
//! it ([`queue_for`], called by `Replica::persist`), so no crash can leave a photo the queue
//! does not know. The network side (`sync::upload`, a tus client) works through the queue
//! whenever the device syncs and records the server's progress here after every chunk, so an
//! upload resumes from the server's offset after a cut, a killed process or a server restart.
//! The file stays in the data dir after the upload: it is still the technician's copy.

use std::path::Path;

use automerge::AutoCommit;
use rusqlite::{Connection, OptionalExtension, params};
use schemas::DocKind;
use uuid::Uuid;

use crate::{Replica, Result, blobs};

/// What kind of blob an upload carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobKind {
    Photo,
    Signature,
}

impl BlobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlobKind::Photo => "photo",
            BlobKind::Signature => "signature",
        }
    }

    fn parse(s: &str) -> BlobKind {
        if s == "signature" {
            BlobKind::Signature
        } else {
            BlobKind::Photo
        }
    }
}

/// Where an upload stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// Waiting, or part way (`sent` bytes confirmed by the server).
    Pending,
    /// The server holds every byte and verified the hash.
    Done,
    /// The server refused the blob as it is (not an image, too large, not this device's to
    /// send); trying again would not help, and `error` says why.
    Refused,
}

impl UploadState {
    fn parse(s: &str) -> UploadState {
        match s {
            "done" => UploadState::Done,
            "refused" => UploadState::Refused,
            _ => UploadState::Pending,
        }
    }
}

/// One row of the queue.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Upload {
    pub sha256: String,
    pub doc_id: Uuid,
    pub job_id: Uuid,
    pub kind: BlobKind,
    pub size: u64,
    /// The tus upload's URL on the server, once created.
    pub url: Option<String>,
    /// Bytes the server has confirmed.
    pub sent: u64,
    pub state: UploadState,
    pub error: Option<String>,
    pub attempts: u32,
}

/// Queue the blobs a document made on this device references, if their files are here and they
/// are not queued yet. Runs inside `persist`'s transaction.
pub(crate) fn queue_for(
    conn: &Connection,
    data_dir: &Path,
    id: Uuid,
    kind: DocKind,
    job_id: Uuid,
    doc: &AutoCommit,
    now: &str,
) -> Result<()> {
    let blob = match kind {
        DocKind::Photo => schemas::photo::read(doc)
            .ok()
            .map(|p| (p.sha256, BlobKind::Photo)),
        DocKind::Job => schemas::job::read(doc)
            .ok()
            .and_then(|j| j.signoff)
            .map(|s| (s.signature_sha256, BlobKind::Signature)),
        DocKind::Checklist | DocKind::Parts => None,
    };
    let Some((sha256, blob_kind)) = blob else {
        return Ok(());
    };
    // Only what this device holds can be sent (a peer's photo arrives as a record only).
    let Ok(meta) = std::fs::metadata(blobs::blob_path(data_dir, &sha256)) else {
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT OR IGNORE INTO uploads (sha256, doc_id, job_id, kind, size, queued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        sha256,
        id.to_string(),
        job_id.to_string(),
        blob_kind.as_str(),
        meta.len() as i64,
        now
    ])?;
    Ok(())
}

fn row_to_upload(row: &rusqlite::Row<'_>) -> rusqlite::Result<Upload> {
    let uuid = |i: usize| -> rusqlite::Result<Uuid> {
        let s: String = row.get(i)?;
        Uuid::parse_str(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    Ok(Upload {
        sha256: row.get(0)?,
        doc_id: uuid(1)?,
        job_id: uuid(2)?,
        kind: BlobKind::parse(&row.get::<_, String>(3)?),
        size: row.get::<_, i64>(4)? as u64,
        url: row.get(5)?,
        sent: row.get::<_, i64>(6)? as u64,
        state: UploadState::parse(&row.get::<_, String>(7)?),
        error: row.get(8)?,
        attempts: row.get::<_, i64>(9)? as u32,
    })
}

const COLUMNS: &str = "sha256, doc_id, job_id, kind, size, url, sent, state, error, attempts";

impl Replica {
    /// Every upload not yet done (pending or refused), oldest first.
    pub fn uploads_waiting(&self) -> Result<Vec<Upload>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM uploads WHERE state != 'done' ORDER BY queued_at, sha256"
        ))?;
        let rows = stmt.query_map([], row_to_upload)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// One upload by the blob's hash.
    pub fn upload(&self, sha256: &str) -> Result<Option<Upload>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM uploads WHERE sha256 = ?1"))?
            .query_row([sha256], row_to_upload)
            .optional()?)
    }

    /// The server created the tus upload at `url` (or forgot it: `None` starts over).
    pub fn set_upload_url(&self, sha256: &str, url: Option<&str>) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE uploads SET url = ?2, sent = 0 WHERE sha256 = ?1")?
            .execute(params![sha256, url])?;
        Ok(())
    }

    /// The server confirmed `sent` bytes.
    pub fn set_upload_sent(&self, sha256: &str, sent: u64) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE uploads SET sent = ?2, error = NULL WHERE sha256 = ?1")?
            .execute(params![sha256, sent as i64])?;
        Ok(())
    }

    /// The server holds the whole blob.
    pub fn set_upload_done(&self, sha256: &str) -> Result<()> {
        let now = schemas::job::ts(self.now());
        self.conn
            .prepare_cached(
                "UPDATE uploads SET state = 'done', sent = size, error = NULL, done_at = ?2
                 WHERE sha256 = ?1",
            )?
            .execute(params![sha256, now])?;
        Ok(())
    }

    /// The server refused the blob for good; `reason` is shown to the technician.
    pub fn set_upload_refused(&self, sha256: &str, reason: &str) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE uploads SET state = 'refused', error = ?2 WHERE sha256 = ?1")?
            .execute(params![sha256, reason])?;
        Ok(())
    }

    /// Free the space of blobs the device no longer needs: the server confirmed them (`done`),
    /// their job has left the device, and no photo still here names them. The file goes first,
    /// then its row, so a crash in between only leaves a row that the next prune removes.
    /// Returns how many blobs were removed. Pending and refused blobs are always kept.
    pub fn prune_blobs(&self) -> Result<usize> {
        let gone: Vec<String> = self
            .conn
            .prepare_cached(
                "SELECT sha256 FROM uploads
                 WHERE state = 'done'
                   AND job_id NOT IN (SELECT id FROM q_jobs)
                   AND sha256 NOT IN (SELECT sha256 FROM q_photos)",
            )?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for sha in &gone {
            match std::fs::remove_file(blobs::blob_path(&self.dir, sha)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.conn
                .prepare_cached("DELETE FROM uploads WHERE sha256 = ?1 AND state = 'done'")?
                .execute([sha])?;
        }
        Ok(gone.len())
    }

    /// An attempt failed in a way that may pass (offline, server busy): counted, kept pending.
    pub fn note_upload_failure(&self, sha256: &str, reason: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE uploads SET attempts = attempts + 1, error = ?2 WHERE sha256 = ?1",
            )?
            .execute(params![sha256, reason])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png() -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(3, 2, image::Rgb([9, 8, 7]))
            .write_to(&mut bytes, image::ImageFormat::Png)
            .unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_confirmed_blob_is_removed_only_once_its_job_has_left_the_device() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Replica::open(dir.path()).unwrap();
        r.set_user("tess").unwrap();
        let mut job = |title: &str| {
            r.create_job(
                schemas::job::NewJob {
                    title: title.into(),
                    ..Default::default()
                },
                None,
            )
            .unwrap()
        };
        let (a, b) = (job("Boiler"), job("Chiller"));
        let file = dir.path().join("photo.png");
        std::fs::write(&file, png()).unwrap();
        let pa = r.attach_photo(a.id, &file, None, "").unwrap();
        let blob = blobs::blob_path(dir.path(), &pa.sha256);
        let remove_job = |r: &mut Replica, view: &crate::JobView, photos: &[Uuid]| {
            for id in [view.id, view.checklist.id]
                .into_iter()
                .chain(photos.iter().copied())
            {
                r.remove_document(id).unwrap();
            }
        };

        // Still pending: kept even with its job gone.
        remove_job(&mut r, &a, &[pa.id]);
        assert_eq!(r.prune_blobs().unwrap(), 0);
        assert!(blob.exists());

        // Confirmed, and the same bytes are a photo of a job still here: kept.
        let pb = r.attach_photo(b.id, &file, None, "").unwrap();
        assert_eq!(pb.sha256, pa.sha256);
        r.set_upload_done(&pa.sha256).unwrap();
        assert_eq!(r.prune_blobs().unwrap(), 0);
        assert!(blob.exists());

        // That job leaves too: the file and its row go.
        remove_job(&mut r, &b, &[pb.id]);
        assert_eq!(r.prune_blobs().unwrap(), 1);
        assert!(!blob.exists());
        assert!(r.upload(&pa.sha256).unwrap().is_none());
        assert_eq!(r.prune_blobs().unwrap(), 0);
    }

    #[test]
    fn a_photo_joins_the_queue_with_its_document_and_the_queue_records_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Replica::open(dir.path()).unwrap();
        r.set_user("tess").unwrap();
        let job = r
            .create_job(
                schemas::job::NewJob {
                    title: "Boiler".into(),
                    ..Default::default()
                },
                None,
            )
            .unwrap();
        let file = dir.path().join("photo.png");
        std::fs::write(&file, png()).unwrap();
        let photo = r.attach_photo(job.id, &file, None, "front").unwrap();
        let waiting = r.uploads_waiting().unwrap();
        assert_eq!(waiting.len(), 1);
        let u = &waiting[0];
        assert_eq!(
            (u.sha256.as_str(), u.doc_id, u.job_id, u.kind, u.state),
            (
                photo.sha256.as_str(),
                photo.id,
                job.id,
                BlobKind::Photo,
                UploadState::Pending
            )
        );
        assert_eq!(u.size, png().len() as u64);
        // The same picture attached again is one upload.
        r.attach_photo(job.id, &file, None, "again").unwrap();
        assert_eq!(r.uploads_waiting().unwrap().len(), 1);

        r.set_upload_url(&u.sha256, Some("http://server/api/v1/uploads/1"))
            .unwrap();
        r.set_upload_sent(&u.sha256, 10).unwrap();
        let now = r.upload(&u.sha256).unwrap().unwrap();
        assert_eq!(
            (now.url.as_deref(), now.sent),
            (Some("http://server/api/v1/uploads/1"), 10)
        );
        r.set_upload_done(&u.sha256).unwrap();
        assert!(r.uploads_waiting().unwrap().is_empty());
        assert_eq!(
            r.upload(&u.sha256).unwrap().unwrap().state,
            UploadState::Done
        );
    }
}
