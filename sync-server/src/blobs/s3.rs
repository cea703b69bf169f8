//! The S3 blob store (`aws-sdk-s3`, path-style addressing so any S3-compatible server works:
//! Garage in the tests). Large blobs go up as multipart uploads; an object is visible only once
//! its upload completed, and a failed multipart upload is aborted.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use futures_util::{StreamExt, TryStreamExt};

use super::{BlobError, BlobResult, BlobStore, PartTag};
use crate::config::S3Config;

/// Blobs larger than this go up in parts of this size.
pub const PART_BYTES: u64 = 16 * 1024 * 1024;
/// Parts of one object uploaded at once.
const PARTS_IN_FLIGHT: usize = 4;

pub struct S3Blobs {
    client: Client,
    bucket: String,
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> BlobError {
    BlobError::Backend(Box::new(e))
}

impl S3Blobs {
    pub fn new(c: &S3Config) -> S3Blobs {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&c.endpoint)
            .region(Region::new(c.region.clone()))
            .credentials_provider(Credentials::new(
                &c.access_key_id,
                &c.secret_access_key,
                None,
                None,
                "fieldsync-config",
            ))
            .force_path_style(true)
            // The SDK's default adds CRC checksums in a streamed trailer, which S3-compatible
            // servers do not all take (Garage 2.5 answers "Invalid payload signature"): only
            // where an operation requires one.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            // A store that stops answering fails calls instead of holding them (and the
            // requests waiting on them) forever.
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            )
            .build();
        S3Blobs {
            client: Client::from_conf(conf),
            bucket: c.bucket.clone(),
        }
    }

    async fn put_multipart(
        &self,
        key: &str,
        path: &Path,
        len: u64,
        content_type: &str,
    ) -> BlobResult<()> {
        let upload_id = self
            .begin_parts(key, content_type)
            .await?
            .expect("S3 has multipart uploads");
        let done = async {
            let parts = self
                .put_parts(key, &upload_id, 1, path, 0, len, PART_BYTES)
                .await?;
            self.complete_parts(key, &upload_id, &parts).await
        }
        .await;
        if done.is_err() {
            let _ = self.abort_parts(key, &upload_id).await;
        }
        done
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn begin_parts(&self, key: &str, content_type: &str) -> BlobResult<Option<String>> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(backend)?;
        Ok(Some(
            created
                .upload_id()
                .ok_or_else(|| BlobError::Backend("S3 gave no multipart upload id".into()))?
                .to_string(),
        ))
    }

    async fn put_parts(
        &self,
        key: &str,
        upload_id: &str,
        first_number: i32,
        path: &Path,
        from: u64,
        to: u64,
        part_bytes: u64,
    ) -> BlobResult<Vec<PartTag>> {
        // Parts go up a few at a time: one stream to the store is slower than the link.
        let ranges: Vec<(i32, u64, u64)> = (0..(to - from).div_ceil(part_bytes))
            .map(|i| {
                let offset = from + i * part_bytes;
                (first_number + i as i32, offset, part_bytes.min(to - offset))
            })
            .collect();
        futures_util::stream::iter(ranges)
            .map(|(number, offset, size)| async move {
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(size))
                    .build()
                    .await
                    .map_err(backend)?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(backend)?;
                Ok::<_, BlobError>(PartTag {
                    number,
                    etag: part.e_tag().unwrap_or_default().to_string(),
                    end: offset + size,
                })
            })
            .buffered(PARTS_IN_FLIGHT)
            .try_collect()
            .await
    }

    async fn put_part_stream(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        len: u64,
        body: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> BlobResult<String> {
        let frames = futures_util::stream::unfold(body, |mut rx| async move {
            rx.recv().await.map(|b| {
                (
                    Ok::<_, std::convert::Infallible>(http_body::Frame::data(b)),
                    rx,
                )
            })
        });
        let body = ByteStream::from_body_1_x(http_body_util::StreamBody::new(frames));
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(len as i64)
            .body(body)
            .send()
            .await
            .map_err(backend)?;
        Ok(part.e_tag().unwrap_or_default().to_string())
    }

    fn streams_puts(&self) -> bool {
        true
    }

    async fn put_stream(
        &self,
        key: &str,
        content_type: &str,
        len: u64,
        body: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    ) -> BlobResult<()> {
        // A body that ends short of `len` ends in an error, not a short body: the request is
        // then broken off and S3 stores nothing (it keeps an object only once its announced
        // length arrived).
        let frames = futures_util::stream::unfold((body, 0u64), move |(mut rx, sent)| async move {
            match rx.recv().await {
                Some(b) => {
                    let sent = sent + b.len() as u64;
                    Some((Ok(http_body::Frame::data(b)), (rx, sent)))
                }
                None if sent < len => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the body ended at {sent} of {len} bytes"),
                    )),
                    (rx, len),
                )),
                None => None,
            }
        });
        let body = ByteStream::from_body_1_x(http_body_util::StreamBody::new(frames));
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(len as i64)
            .body(body)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn complete_parts(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[PartTag],
    ) -> BlobResult<()> {
        let parts = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .e_tag(&p.etag)
                    .part_number(p.number)
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn abort_parts(&self, key: &str, upload_id: &str) -> BlobResult<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn size(&self, key: &str) -> BlobResult<Option<u64>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(Some(o.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> BlobResult<()> {
        let len = tokio::fs::metadata(path).await?.len();
        if len > PART_BYTES {
            return self.put_multipart(key, path, len, content_type).await;
        }
        let body = ByteStream::from_path(path).await.map_err(backend)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> BlobResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> BlobResult<Vec<u8>> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => Ok(o.body.collect().await.map_err(backend)?.to_vec()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                Err(BlobError::NotFound(key.to_string()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn delete(&self, key: &str) -> BlobResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn presigned_get(&self, key: &str, ttl: Duration) -> BlobResult<Option<String>> {
        let presigned = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(PresigningConfig::expires_in(ttl).map_err(backend)?)
            .await
            .map_err(backend)?;
        Ok(Some(presigned.uri().to_string()))
    }
}
