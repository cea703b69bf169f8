//! What the server checks and reads in an uploaded image, on a blocking thread: that it decodes
//! within limits (dimensions read from the header before any pixel is decoded, and an allocation
//! budget), its EXIF time and place, and its thumbnails.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use image::{DynamicImage, ImageError, ImageFormat, ImageReader, Limits};

use crate::config::UploadConfig;

/// Why an image was refused: a stable code and a sentence for the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

/// An image that decoded within the limits.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub width: u32,
    pub height: u32,
    pub mime: &'static str,
    pub taken_at: Option<DateTime<Utc>>,
    pub location: Option<schemas::photo::GeoPoint>,
}

fn limits(c: &UploadConfig) -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(c.max_image_dimension);
    l.max_image_height = Some(c.max_image_dimension);
    l.max_alloc = Some(c.max_image_alloc);
    l
}

fn decode_error(e: ImageError) -> Refusal {
    match e {
        ImageError::Limits(e) => refuse(
            "image-too-large",
            format!("the image is larger than the server accepts: {e}"),
        ),
        ImageError::Unsupported(e) => refuse("not-an-image", format!("not a supported image: {e}")),
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            refuse("bad-image", "the image is truncated")
        }
        e => refuse("bad-image", format!("the image does not decode: {e}")),
    }
}

/// What the header says, checked before any pixel is decoded: the format (JPEG, PNG or WebP),
/// dimensions within the limits of `c` (a decompression bomb is refused here, from its header),
/// a whole file (a truncated one is refused), and the EXIF time and place. [`decode`] then
/// checks the pixels.
pub fn inspect(path: &Path, c: &UploadConfig) -> Result<Checked, Refusal> {
    let io = |e: std::io::Error| refuse("bad-image", format!("could not read the upload: {e}"));
    let mut reader = ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)?;
    let Some(format) = reader.format() else {
        return Err(refuse(
            "not-an-image",
            "not an image (JPEG, PNG or WebP expected)",
        ));
    };
    let mime = match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::Png => "image/png",
        ImageFormat::WebP => "image/webp",
        _ => {
            return Err(refuse("not-an-image", "not a JPEG, PNG or WebP image"));
        }
    };
    if !complete(path, format).map_err(io)? {
        return Err(refuse("bad-image", "the image is truncated"));
    }
    reader.limits(limits(c));
    let (width, height) = reader.into_dimensions().map_err(decode_error)?;
    let max = c.max_image_dimension;
    // Four bytes a pixel is what the decoder would allocate for RGBA; the header alone tells.
    if width > max || height > max || u64::from(width) * u64::from(height) * 4 > c.max_image_alloc {
        return Err(refuse(
            "image-too-large",
            format!(
                "the image is {width}×{height}: larger than the server accepts (at most {max} px a side, {} MiB decoded)",
                c.max_image_alloc >> 20
            ),
        ));
    }
    let (taken_at, location) = exif_of(path);
    Ok(Checked {
        width,
        height,
        mime,
        taken_at,
        location,
    })
}

/// Decode every pixel of the image at `path` within the limits of `c`: corrupt data that the
/// header does not show is refused here. The pixels are dropped (thumbnails are made later).
pub fn decode(path: &Path, c: &UploadConfig) -> Result<(), Refusal> {
    let io = |e: std::io::Error| refuse("bad-image", format!("could not read the upload: {e}"));
    let mut reader = ImageReader::open(path)
        .map_err(io)?
        .with_guessed_format()
        .map_err(io)?;
    reader.limits(limits(c));
    reader.decode().map(drop).map_err(decode_error)
}

/// [`inspect`], then [`decode`]: everything the server checks of an image, one after the other.
pub fn check(path: &Path, c: &UploadConfig) -> Result<Checked, Refusal> {
    let checked = inspect(path, c)?;
    decode(path, c)?;
    Ok(checked)
}

/// Whether the file is whole, as far as its format tells from its end: decoders fill a cut
/// image with grey rather than failing, so a truncated upload is caught here.
fn complete(path: &Path, format: ImageFormat) -> std::io::Result<bool> {
    match format {
        ImageFormat::Jpeg => jpeg_complete(path),
        ImageFormat::Png => png_complete(path),
        ImageFormat::WebP => webp_complete(path),
        _ => Ok(true),
    }
}

/// A PNG ends with its IEND chunk (length 0, type, CRC).
fn png_complete(path: &Path) -> std::io::Result<bool> {
    const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    if len < 12 {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - 12))?;
    let mut tail = [0u8; 12];
    f.read_exact(&mut tail)?;
    Ok(tail == IEND)
}

/// A WebP is a RIFF file whose header gives its length: the file must be at least that long.
fn webp_complete(path: &Path) -> std::io::Result<bool> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = [0u8; 8];
    if len < 8 {
        return Ok(false);
    }
    f.read_exact(&mut head)?;
    let riff = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
    Ok(len >= riff + 8)
}

/// A JPEG ends with the EOI marker (FF D9), after at most some zero padding. The JPEG decoder
/// fills a truncated scan with grey rather than failing, so a cut file is caught here; FF D9
/// cannot occur inside entropy-coded data (FF is always stuffed there).
fn jpeg_complete(path: &Path) -> std::io::Result<bool> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let tail = len.min(4096);
    f.seek(SeekFrom::Start(len - tail))?;
    let mut buf = Vec::with_capacity(tail as usize);
    f.read_to_end(&mut buf)?;
    while buf.last() == Some(&0) {
        buf.pop();
    }
    Ok(buf.ends_with(&[0xFF, 0xD9]))
}

/// EXIF `DateTimeOriginal` (or `DateTime`) and GPS position, when the image has them.
fn exif_of(path: &Path) -> (Option<DateTime<Utc>>, Option<schemas::photo::GeoPoint>) {
    let Ok(file) = std::fs::File::open(path) else {
        return (None, None);
    };
    let Ok(exif) = exif::Reader::new().read_from_container(&mut BufReader::new(file)) else {
        return (None, None);
    };
    let time = [exif::Tag::DateTimeOriginal, exif::Tag::DateTime]
        .iter()
        .find_map(|t| {
            let field = exif.get_field(*t, exif::In::PRIMARY)?;
            let exif::Value::Ascii(ref v) = field.value else {
                return None;
            };
            let dt = exif::DateTime::from_ascii(v.first()?).ok()?;
            let naive = NaiveDate::from_ymd_opt(dt.year.into(), dt.month.into(), dt.day.into())?
                .and_hms_opt(dt.hour.into(), dt.minute.into(), dt.second.into())?;
            // Without an offset the camera's local time is taken as UTC.
            let offset = i64::from(dt.offset.unwrap_or(0));
            Some(naive.and_utc() - chrono::Duration::minutes(offset))
        });
    let coord = |value: exif::Tag, reference: exif::Tag, negative: &str| -> Option<f64> {
        let field = exif.get_field(value, exif::In::PRIMARY)?;
        let exif::Value::Rational(ref parts) = field.value else {
            return None;
        };
        let mut deg = 0.0;
        for (i, p) in parts.iter().take(3).enumerate() {
            deg += p.to_f64() / [1.0, 60.0, 3600.0][i];
        }
        let sign = exif
            .get_field(reference, exif::In::PRIMARY)
            .map(|f| f.display_value().to_string())
            .filter(|r| r.trim_matches('"').eq_ignore_ascii_case(negative))
            .map_or(1.0, |_| -1.0);
        deg.is_finite().then_some(sign * deg)
    };
    let location = match (
        coord(exif::Tag::GPSLatitude, exif::Tag::GPSLatitudeRef, "S"),
        coord(exif::Tag::GPSLongitude, exif::Tag::GPSLongitudeRef, "W"),
    ) {
        (Some(lat), Some(lon)) => Some(schemas::photo::GeoPoint { lat, lon }),
        _ => None,
    };
    (time, location)
}

/// JPEG thumbnails of `bytes` (an image that passed [`check`]) fitting in each of `sizes`
/// (pixels on the longer side; never enlarged).
pub fn thumbnails(
    bytes: &[u8],
    sizes: &[u32],
    c: &UploadConfig,
) -> Result<Vec<(u32, Vec<u8>)>, Refusal> {
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| refuse("bad-image", e.to_string()))?;
    reader.limits(limits(c));
    let img = reader.decode().map_err(decode_error)?;
    let mut out = Vec::new();
    for &px in sizes {
        let small = if img.width().max(img.height()) <= px {
            img.clone()
        } else {
            img.thumbnail(px, px)
        };
        let rgb = DynamicImage::ImageRgb8(small.to_rgb8());
        let mut jpg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 80)
            .encode_image(&rgb)
            .map_err(|e| refuse("bad-image", e.to_string()))?;
        out.push((px, jpg));
    }
    Ok(out)
}
