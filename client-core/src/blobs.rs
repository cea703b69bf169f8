//! Photo and signature files, stored in the data dir under their sha256.
//!
//! A file is written to a temporary name in the blob folder, fsynced, renamed into place and the
//! folder fsynced, so a blob either exists whole under its hash or not at all, and a photo never
//! depends on a file left in a camera's temporary folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::Result;

pub const BLOB_DIR: &str = "blobs";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredBlob {
    pub sha256: String,
    pub size: u64,
    pub path: PathBuf,
}

pub fn blob_path(data_dir: &Path, sha256: &str) -> PathBuf {
    data_dir.join(BLOB_DIR).join(sha256)
}

/// Store `bytes` under their hash (a no-op when that blob is already stored).
pub fn store(data_dir: &Path, bytes: &[u8]) -> Result<StoredBlob> {
    let sha256 = hex::encode(Sha256::digest(bytes));
    let dir = data_dir.join(BLOB_DIR);
    let path = dir.join(&sha256);
    if !path.exists() {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::now_v7()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()?;
    }
    Ok(StoredBlob {
        sha256,
        size: bytes.len() as u64,
        path,
    })
}

/// What a decoded image is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Check that `bytes` are a whole, decodable JPEG, PNG or WebP image. The full decode catches
/// truncated uploads that a header check would let through.
pub fn inspect_image(bytes: &[u8]) -> std::result::Result<ImageInfo, String> {
    use image::ImageFormat;
    let format = image::guess_format(bytes).map_err(|_| "unrecognised file format".to_string())?;
    let mime = match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
        ImageFormat::WebP => "image/webp",
        other => {
            return Err(format!(
                "{other:?} images are not accepted (JPEG, PNG or WebP)"
            ));
        }
    };
    let img = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| format!("cannot decode: {e}"))?;
    if img.width() == 0 || img.height() == 0 {
        return Err("image has no pixels".into());
    }
    Ok(ImageInfo {
        mime,
        width: img.width(),
        height: img.height(),
    })
}
