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

/// The largest photo or signature file accepted (a phone's full-resolution JPEG is 3-15 MiB).
pub const MAX_IMAGE_BYTES: u64 = 64 * 1024 * 1024;

/// Enough leading bytes for `image::guess_format` to recognise every accepted format.
const HEADER_BYTES: usize = 32;

/// Read an image file and check it ([`inspect_image`]), refusing a file that is not an image from
/// its first bytes and one over [`MAX_IMAGE_BYTES`] from its size, before reading it whole.
pub fn read_image(path: &Path) -> std::result::Result<(Vec<u8>, ImageInfo), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    read_image_from(file, len)
}

/// [`read_image`] over any reader of `len` bytes.
pub fn read_image_from(
    mut input: impl std::io::Read,
    len: u64,
) -> std::result::Result<(Vec<u8>, ImageInfo), String> {
    use std::io::Read;
    let mut head = Vec::with_capacity(HEADER_BYTES);
    input
        .by_ref()
        .take(HEADER_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read: {e}"))?;
    accepted_format(&head)?;
    if len > MAX_IMAGE_BYTES {
        return Err(format!(
            "the file is {} MiB, more than the {} MiB limit",
            len.div_ceil(1024 * 1024),
            MAX_IMAGE_BYTES / (1024 * 1024)
        ));
    }
    let mut bytes = head;
    bytes.reserve(len as usize);
    // `take` also stops a file that grows while being read from passing the limit.
    input
        .take(MAX_IMAGE_BYTES + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(format!(
            "the file is larger than the {} MiB limit",
            MAX_IMAGE_BYTES / (1024 * 1024)
        ));
    }
    let info = inspect_image(&bytes)?;
    Ok((bytes, info))
}

/// The MIME type of an accepted image format, from the file's first bytes.
fn accepted_format(head: &[u8]) -> std::result::Result<(image::ImageFormat, &'static str), String> {
    use image::ImageFormat;
    let format = image::guess_format(head).map_err(|_| "unrecognised file format".to_string())?;
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
    Ok((format, mime))
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
    let (format, mime) = accepted_format(bytes)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader of `len` bytes starting with `head` that fails the test if more than `allowed`
    /// bytes are read from it.
    struct Guarded {
        head: Vec<u8>,
        pos: u64,
        allowed: u64,
    }

    impl std::io::Read for Guarded {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(4096);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = self.head.get(self.pos as usize + i).copied().unwrap_or(0);
            }
            self.pos += n as u64;
            assert!(self.pos <= self.allowed, "read {} bytes", self.pos);
            Ok(n)
        }
    }

    const GIB: u64 = 1024 * 1024 * 1024;

    #[test]
    fn a_big_file_that_is_not_an_image_is_refused_from_its_first_bytes() {
        let text = Guarded {
            head: b"just some text, not a picture at all".to_vec(),
            pos: 0,
            allowed: 4096,
        };
        let err = read_image_from(text, GIB).unwrap_err();
        assert_eq!(err, "unrecognised file format");
    }

    #[test]
    fn an_image_over_the_limit_is_refused_before_it_is_read() {
        let png = Guarded {
            head: b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
            pos: 0,
            allowed: 4096,
        };
        let err = read_image_from(png, GIB).unwrap_err();
        assert!(err.contains("more than the 64 MiB limit"), "{err}");
    }

    #[test]
    fn a_small_image_is_read_and_decoded() {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(5, 4, image::Rgb([1, 2, 3]))
            .write_to(&mut bytes, image::ImageFormat::Png)
            .unwrap();
        let bytes = bytes.into_inner();
        let (read, info) = read_image_from(&bytes[..], bytes.len() as u64).unwrap();
        assert_eq!(read, bytes);
        assert_eq!((info.mime, info.width, info.height), ("image/png", 5, 4));
    }
}
