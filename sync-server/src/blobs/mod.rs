//! Blob stores: where the bytes of photos and signatures live, behind one trait with two
//! implementations, a folder under the data dir ([`local::LocalBlobs`], the embedded default) and
//! S3 ([`s3::S3Blobs`], any S3-compatible server). Keys are content-addressed per org
//! (`{org}/{sha256}` for an original, [`thumb_key`] beside it), so the same photo
//! on two jobs of one org is stored once. A blob becomes visible only once complete: the local
//! store renames a finished temp file, S3 shows an object once its PUT (or multipart upload)
//! completed.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

pub mod local;
pub mod s3;

pub use local::LocalBlobs;
pub use s3::S3Blobs;

/// Why a blob store call failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("blob store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob store: {0}")]
    Backend(#[source] crate::store::BoxError),
}

pub type BlobResult<T> = Result<T, BlobError>;

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// The size of the blob under `key`, or `None` when there is none.
    async fn size(&self, key: &str) -> BlobResult<Option<u64>>;
    /// Store the file at `path` under `key` (copying it: the file stays). Nothing is visible under
    /// `key` until every byte is stored; storing a key again replaces it whole.
    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> BlobResult<()>;
    /// Store `bytes` under `key`, as [`BlobStore::put_file`].
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> BlobResult<()>;
    /// The whole blob. [`BlobError::NotFound`] when there is none.
    async fn get(&self, key: &str) -> BlobResult<Vec<u8>>;
    async fn delete(&self, key: &str) -> BlobResult<()>;
    /// A URL anyone holding it may GET for `ttl` (S3's presigned URL), or `None` when the store
    /// has no such thing and the server serves the bytes itself (the local folder).
    async fn presigned_get(&self, key: &str, ttl: Duration) -> BlobResult<Option<String>>;

    // Storing a blob in parts (S3's multipart upload), so an upload's bytes can go to the store
    // while they are still arriving: nothing is visible under `key` until `complete_parts`, and
    // `abort_parts` drops what was sent. A store without parts (the local folder) answers `None`
    // to `begin_parts`, and callers use `put_file` instead.

    /// Start storing `key` in parts: the id of the parts upload, or `None` without parts.
    async fn begin_parts(&self, _key: &str, _content_type: &str) -> BlobResult<Option<String>> {
        Ok(None)
    }

    /// Store bytes `from..to` of the file at `path` as parts of `part_bytes` (the last one
    /// shorter), numbered from `first_number`. Every part but the last of an object must be at
    /// least 5 MiB on S3.
    #[allow(clippy::too_many_arguments)]
    async fn put_parts(
        &self,
        _key: &str,
        _upload_id: &str,
        _first_number: i32,
        _path: &Path,
        _from: u64,
        _to: u64,
        _part_bytes: u64,
    ) -> BlobResult<Vec<PartTag>> {
        Err(BlobError::Backend("this blob store has no parts".into()))
    }

    /// Store `len` bytes arriving on `body` as part `number` (streamed as they come: the part
    /// is sent while the upload's request is still being received). A body that ends short of
    /// `len` fails the part.
    async fn put_part_stream(
        &self,
        _key: &str,
        _upload_id: &str,
        _number: i32,
        _len: u64,
        _body: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> BlobResult<String> {
        Err(BlobError::Backend("this blob store has no parts".into()))
    }

    /// Make the object of `parts` (in order, covering the whole blob) visible under `key`.
    async fn complete_parts(
        &self,
        _key: &str,
        _upload_id: &str,
        _parts: &[PartTag],
    ) -> BlobResult<()> {
        Err(BlobError::Backend("this blob store has no parts".into()))
    }

    /// Drop a parts upload and what it stored.
    async fn abort_parts(&self, _key: &str, _upload_id: &str) -> BlobResult<()> {
        Ok(())
    }

    /// Whether [`BlobStore::put_stream`] stores a blob in one request as its bytes arrive
    /// (S3's PutObject); the local folder gets the whole file instead.
    fn streams_puts(&self) -> bool {
        false
    }

    /// Store `len` bytes arriving on `body` under `key` in one request, sent as they come.
    /// Nothing is visible under `key` unless all `len` bytes arrive: a body that ends short
    /// (its sender dropped early) fails the request, and the store keeps nothing of it.
    async fn put_stream(
        &self,
        _key: &str,
        _content_type: &str,
        _len: u64,
        _body: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> BlobResult<()> {
        Err(BlobError::Backend(
            "this blob store takes no streamed puts".into(),
        ))
    }
}

/// One stored part: its number, the store's tag for it, and the blob offset it ends at.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartTag {
    pub number: i32,
    pub etag: String,
    pub end: u64,
}

/// Thumbnail widths made for every photo (the longer side, in pixels).
pub const THUMB_SIZES: [u32; 2] = [320, 1280];

/// The original's key: `{org}/{sha256}`.
pub fn original_key(org: Uuid, sha256: &str) -> String {
    format!("{org}/{sha256}")
}

/// A thumbnail's key: `{org}/{sha256}.{px}.jpg`.
pub fn thumb_key(org: Uuid, sha256: &str, px: u32) -> String {
    format!("{org}/{sha256}.{px}.jpg")
}

/// The configured store: S3 when `config.s3` is set, else the folder `blobs/` in the data dir.
pub fn open(config: &crate::Config) -> std::sync::Arc<dyn BlobStore> {
    match &config.s3 {
        Some(s3) => std::sync::Arc::new(S3Blobs::new(s3)),
        None => std::sync::Arc::new(LocalBlobs::new(config.data_dir.join("blobs"))),
    }
}

/// True for a key this module makes: an org id, `/`, lowercase hex and dots and digits only
/// (no `..`, no other separators), so a key never leaves the store's folder.
pub fn valid_key(key: &str) -> bool {
    let Some((org, rest)) = key.split_once('/') else {
        return false;
    };
    Uuid::parse_str(org).is_ok()
        && !rest.is_empty()
        && !rest.starts_with('.')
        && !rest.contains("..")
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_store() {
        let org = Uuid::now_v7();
        assert!(valid_key(&original_key(org, &"ab".repeat(32))));
        assert!(valid_key(&thumb_key(org, &"ab".repeat(32), 320)));
        assert!(!valid_key("../etc/passwd"));
        assert!(!valid_key(&format!("{org}/../x")));
        assert!(!valid_key(&format!("{org}/a/b")));
        assert!(!valid_key(&format!("{org}/.hidden")));
    }
}
