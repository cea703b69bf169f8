//! The local blob store: a folder (`blobs/` in the data dir). A blob is written to a temp file in
//! the same folder, synced, then renamed into place, so a reader sees the whole blob or none.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{BlobError, BlobResult, BlobStore, valid_key};

pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    pub fn new(root: impl Into<PathBuf>) -> LocalBlobs {
        LocalBlobs { root: root.into() }
    }

    /// Where `key` lives; refuses keys that could leave the folder.
    fn path(&self, key: &str) -> BlobResult<PathBuf> {
        if !valid_key(key) {
            return Err(BlobError::NotFound(key.to_string()));
        }
        Ok(self.root.join(key))
    }

    /// A temp file beside `dest`, and its name.
    async fn temp_beside(dest: &Path) -> BlobResult<(tokio::fs::File, PathBuf)> {
        let dir = dest.parent().expect("a key has a folder");
        tokio::fs::create_dir_all(dir).await?;
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::now_v7().simple()));
        Ok((tokio::fs::File::create(&tmp).await?, tmp))
    }

    async fn commit(file: tokio::fs::File, tmp: &Path, dest: &Path) -> BlobResult<()> {
        let done = async {
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(tmp, dest).await
        }
        .await;
        if let Err(e) = done {
            let _ = tokio::fs::remove_file(tmp).await;
            return Err(e.into());
        }
        Ok(())
    }
}

#[async_trait]
impl BlobStore for LocalBlobs {
    async fn size(&self, key: &str) -> BlobResult<Option<u64>> {
        match tokio::fs::metadata(self.path(key)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn put_file(&self, key: &str, path: &Path, _content_type: &str) -> BlobResult<()> {
        let dest = self.path(key)?;
        let (file, tmp) = Self::temp_beside(&dest).await?;
        drop(file);
        // `std::fs::copy` lets the kernel copy (copy_file_range), on one blocking thread: a tokio
        // copy would cross to the blocking pool for every 8 KiB.
        let (src, to) = (path.to_path_buf(), tmp.clone());
        let copied = tokio::task::spawn_blocking(move || std::fs::copy(&src, &to))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
        if let Err(e) = copied {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        let file = match tokio::fs::OpenOptions::new().write(true).open(&tmp).await {
            Ok(f) => f,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e.into());
            }
        };
        Self::commit(file, &tmp, &dest).await
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>, _content_type: &str) -> BlobResult<()> {
        let dest = self.path(key)?;
        let (mut file, tmp) = Self::temp_beside(&dest).await?;
        if let Err(e) = file.write_all(&bytes).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e.into());
        }
        Self::commit(file, &tmp, &dest).await
    }

    async fn get(&self, key: &str) -> BlobResult<Vec<u8>> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(BlobError::NotFound(key.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn presigned_get(&self, _key: &str, _ttl: Duration) -> BlobResult<Option<String>> {
        Ok(None)
    }
}
