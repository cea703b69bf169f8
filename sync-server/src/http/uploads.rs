//! The tus 1.0.0 endpoint at `/api/v1/uploads` (core, creation, creation-with-upload, checksum
//! with sha256, termination, expiration), with the device's bearer token. `Upload-Metadata`
//! names the document that references the blob (`doc`: a photo document, or a job document for
//! its signature) and the blob's `sha256`; only documents in the caller's document set, whose
//! sha256 is that one, may be uploaded. A blob the org already holds is complete at once.
//! Every refusal has the JSON error body and `Tus-Resumable`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::blobs;
use crate::error::ApiError;
use crate::http::{Caller, PathParam};
use crate::jobs::readable_doc;
use crate::state::AppState;
use crate::uploads::UploadInfo;

pub const TUS_VERSION: &str = "1.0.0";
const OFFSET_STREAM: &str = "application/offset+octet-stream";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/uploads", post(create).options(options))
        .route(
            "/api/v1/uploads/{id}",
            patch(append).head(head).delete(terminate).options(options),
        )
        .layer(axum::middleware::map_response(tus_resumable))
}

async fn tus_resumable(mut res: Response) -> Response {
    res.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    res
}

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Rejected(status, code, message.into())
}

/// Count a refusal by its code, and pass it on.
fn counted(app: &AppState, e: ApiError) -> ApiError {
    let code = match &e {
        ApiError::Rejected(_, code, _) => code,
        ApiError::Unauthorized(_) => "unauthorized",
        ApiError::Forbidden(_) => "forbidden",
        ApiError::NotFound(_) => "not-found",
        ApiError::BadRequest(_) => "bad-request",
        ApiError::Unavailable(_) => "store-unavailable",
        _ => "internal",
    };
    app.metrics.upload_failed(code);
    e
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// `Tus-Resumable: 1.0.0` is required on every request but OPTIONS.
fn check_version(h: &HeaderMap) -> Result<(), ApiError> {
    match header_str(h, "tus-resumable") {
        Some(TUS_VERSION) => Ok(()),
        other => Err(refuse(
            StatusCode::PRECONDITION_FAILED,
            "tus-version",
            format!(
                "this server speaks tus {TUS_VERSION} (Tus-Resumable: {})",
                other.unwrap_or("missing")
            ),
        )),
    }
}

fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

async fn options(State(app): State<Arc<AppState>>) -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            ("tus-version", TUS_VERSION.to_string()),
            (
                "tus-extension",
                "creation,creation-with-upload,checksum,termination,expiration".to_string(),
            ),
            ("tus-max-size", app.uploads.config.max_bytes.to_string()),
            ("tus-checksum-algorithm", "sha256".to_string()),
        ],
    )
        .into_response()
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs.
fn metadata(h: &HeaderMap) -> Result<Vec<(String, String)>, ApiError> {
    let bad = |m: &str| refuse(StatusCode::BAD_REQUEST, "bad-metadata", m.to_string());
    let mut out = Vec::new();
    for pair in header_str(h, "upload-metadata").unwrap_or("").split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once(' ').unwrap_or((pair, ""));
        let v = B64
            .decode(v.trim())
            .ok()
            .and_then(|v| String::from_utf8(v).ok())
            .ok_or_else(|| bad("Upload-Metadata values must be base64 of UTF-8 text"))?;
        out.push((k.to_string(), v));
    }
    Ok(out)
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The sha256 (and size, for a photo) the document says the blob has.
async fn referenced(
    app: &AppState,
    meta: &crate::store::DocMeta,
) -> Result<(Option<String>, Option<u64>), ApiError> {
    let sd = app.docs.lock(meta).await?;
    let json = schemas::read_json(&sd.doc);
    Ok(match meta.kind.as_str() {
        "photo" => (
            json["sha256"].as_str().map(str::to_string),
            json["size"].as_u64(),
        ),
        "job" => (
            json["signoff"]["signature_sha256"]
                .as_str()
                .map(str::to_string),
            None,
        ),
        _ => (None, None),
    })
}

fn upload_headers(info: &UploadInfo, offset: u64) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("upload-offset", offset.to_string()),
        ("upload-length", info.length.to_string()),
        ("cache-control", "no-store".to_string()),
    ];
    if !info.complete {
        h.push(("upload-expires", http_date(info.expires_at)));
    }
    h
}

fn with_headers(status: StatusCode, headers: Vec<(&'static str, String)>) -> Response {
    let mut res = status.into_response();
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            res.headers_mut().insert(k, v);
        }
    }
    res
}

/// POST: create an upload (and take its first bytes, creation-with-upload).
#[utoipa::path(post, path = "/api/v1/uploads", tag = "uploads", description = "tus 1.0.0 creation (and creation-with-upload): `Upload-Length`, `Upload-Metadata` with `doc` and `sha256`", params(("Tus-Resumable" = String, Header), ("Upload-Length" = u64, Header), ("Upload-Metadata" = String, Header)), responses((status = 201, description = "created: `Location` names the upload"), (status = 204, description = "the org holds this blob already"), (status = 401, body = schemas::api::ErrorBody), (status = 403, description = "blob-not-referenced and other refusals", body = schemas::api::ErrorBody), (status = 413, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    create_inner(&app, caller, headers, body)
        .await
        .map_err(|e| counted(&app, e))
}

async fn create_inner(
    app: &Arc<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let user = &caller.0.user;
    let length: u64 = header_str(&headers, "upload-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                "bad-length",
                "Upload-Length is required (deferred lengths are not supported)",
            )
        })?;
    let max = app.uploads.config.max_bytes;
    if length > max {
        return Err(refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the upload is {length} bytes; the most this server takes is {max}"),
        ));
    }
    let meta = metadata(&headers)?;
    let get = |k: &str| meta.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let doc_id = get("doc")
        .and_then(|d| Uuid::try_parse(d).ok())
        .ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                "bad-metadata",
                "Upload-Metadata needs `doc`, the id of the photo (or job) document",
            )
        })?;
    let sha256 = get("sha256")
        .filter(|s| is_sha256(s))
        .ok_or_else(|| {
            refuse(
                StatusCode::BAD_REQUEST,
                "bad-metadata",
                "Upload-Metadata needs `sha256`, the blob's lowercase hex sha256",
            )
        })?
        .to_string();
    let doc = readable_doc(app, user, doc_id).await?;
    let (want_sha, want_size) = referenced(app, &doc).await?;
    if want_sha.as_deref() != Some(sha256.as_str()) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "blob-not-referenced",
            format!("document {doc_id} does not reference a blob with sha256 {sha256}"),
        ));
    }
    if let Some(size) = want_size.filter(|s| *s != length) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "length-mismatch",
            format!("the photo document says {size} bytes, Upload-Length says {length}"),
        ));
    }
    let now = Utc::now();
    let mut info = UploadInfo {
        id: Uuid::now_v7(),
        org_id: user.org_id,
        user_id: user.id,
        doc_id,
        sha256,
        length,
        created_at: now,
        expires_at: now
            + chrono::Duration::from_std(app.uploads.config.expires_after)
                .unwrap_or(chrono::Duration::days(1)),
        complete: false,
    };
    // Held: its row says it was stored, and the blob store has it (a blob stored without its row,
    // by a node that stopped in between, is received again).
    let held = app.store.photo(info.org_id, &info.sha256).await?.is_some()
        && app
            .blobs
            .size(&blobs::original_key(info.org_id, &info.sha256))
            .await
            .map_err(ApiError::internal)?
            .is_some();
    if held {
        // Stored already (the same photo on another job, or a retry): complete, nothing sent.
        info.complete = true;
    }
    app.uploads.save(&info).await.map_err(ApiError::internal)?;
    let location = format!("/api/v1/uploads/{}", info.id.simple());
    if info.complete {
        crate::jobs::mark_uploaded(app, &doc).await?;
        let mut h = upload_headers(&info, info.length);
        h.push(("location", location));
        return Ok(with_headers(StatusCode::CREATED, h));
    }
    app.metrics.uploads_in_progress.inc();
    let with_body = header_str(&headers, header::CONTENT_TYPE.as_str()) == Some(OFFSET_STREAM);
    let offset = if with_body {
        let lock = app.uploads.lock(info.id);
        let _held = lock.lock().await;
        receive(app, &mut info, 0, &headers, body).await?
    } else {
        0
    };
    let mut h = upload_headers(&info, offset);
    h.push(("location", location));
    Ok(with_headers(StatusCode::CREATED, h))
}

/// The caller's own upload, or 404.
async fn own_upload(app: &AppState, caller: &Caller, id: &str) -> Result<UploadInfo, ApiError> {
    let missing = || {
        refuse(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no upload {id}"),
        )
    };
    let id = Uuid::try_parse(id).map_err(|_| missing())?;
    match app
        .uploads
        .load(id, Utc::now())
        .await
        .map_err(ApiError::internal)?
    {
        Some(info) if info.user_id == caller.0.user.id && info.org_id == caller.0.user.org_id => {
            Ok(info)
        }
        _ => Err(missing()),
    }
}

/// HEAD: the offset to resume from.
#[utoipa::path(head, path = "/api/v1/uploads/{id}", tag = "uploads", description = "tus: the upload's offset", params(("id" = String, Path)), responses((status = 200, description = "`Upload-Offset` and `Upload-Length`"), (status = 401, body = schemas::api::ErrorBody), (status = 403, description = "blob-not-referenced and other refusals", body = schemas::api::ErrorBody), (status = 404, description = "unknown or expired upload")), security(("bearer" = [])))]
pub(crate) async fn head(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let info = own_upload(&app, &caller, &id).await?;
    // A PATCH still taking bytes (its client cut away) finishes first: the offset is then final.
    let lock = app.uploads.lock(info.id);
    let _held = lock.lock().await;
    let mut info = own_upload(&app, &caller, &id).await?;
    let offset = app
        .uploads
        .offset(&info)
        .await
        .map_err(ApiError::internal)?;
    if !info.complete && offset == info.length {
        complete(&app, &mut info, None)
            .await
            .map_err(|e| counted(&app, e))?;
    }
    Ok(with_headers(StatusCode::OK, upload_headers(&info, offset)))
}

/// PATCH: bytes at `Upload-Offset`.
#[utoipa::path(patch, path = "/api/v1/uploads/{id}", tag = "uploads", description = "tus: bytes at `Upload-Offset`, optionally with `Upload-Checksum: sha256 …`", params(("id" = String, Path), ("Upload-Offset" = u64, Header)), request_body(content = Vec<u8>, content_type = "application/offset+octet-stream"), responses((status = 204, description = "stored: the new `Upload-Offset`"), (status = 409, description = "the offset is not the upload's"), (status = 422, description = "not an image this server accepts, or the sha256 differs", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, description = "blob-not-referenced and other refusals", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn append(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    async {
        check_version(&headers)?;
        if header_str(&headers, header::CONTENT_TYPE.as_str()) != Some(OFFSET_STREAM) {
            return Err(refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                format!("PATCH needs Content-Type: {OFFSET_STREAM}"),
            ));
        }
        let claimed: u64 = header_str(&headers, "upload-offset")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    "bad-offset",
                    "Upload-Offset is required",
                )
            })?;
        let mut info = own_upload(&app, &caller, &id).await?;
        let lock = app.uploads.lock(info.id);
        let _held = lock.lock().await;
        let offset = receive(&app, &mut info, claimed, &headers, body).await?;
        Ok(with_headers(
            StatusCode::NO_CONTENT,
            upload_headers(&info, offset),
        ))
    }
    .await
    .map_err(|e| counted(&app, e))
}

/// DELETE: drop an upload and its bytes.
#[utoipa::path(delete, path = "/api/v1/uploads/{id}", tag = "uploads", description = "tus termination", params(("id" = String, Path)), responses((status = 204, description = "terminated"), (status = 401, body = schemas::api::ErrorBody), (status = 403, description = "blob-not-referenced and other refusals", body = schemas::api::ErrorBody), (status = 404)), security(("bearer" = [])))]
pub(crate) async fn terminate(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_version(&headers)?;
    let info = own_upload(&app, &caller, &id).await?;
    let lock = app.uploads.lock(info.id);
    let _held = lock.lock().await;
    if !info.complete {
        app.metrics.uploads_in_progress.dec();
    }
    app.uploads.remove(info.id).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `Upload-Checksum: sha256 <base64>`, if given.
fn checksum(h: &HeaderMap) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(v) = header_str(h, "upload-checksum") else {
        return Ok(None);
    };
    let (alg, sum) = v.split_once(' ').unwrap_or((v, ""));
    if !alg.eq_ignore_ascii_case("sha256") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "checksum-algorithm",
            format!("checksum algorithm {alg} is not supported: use sha256"),
        ));
    }
    B64.decode(sum.trim()).map(Some).map_err(|_| {
        refuse(
            StatusCode::BAD_REQUEST,
            "bad-checksum",
            "Upload-Checksum must be `sha256 <base64 digest>`",
        )
    })
}

/// Append the body at `claimed` (which must be the current offset), then finish the upload when
/// it is whole. Bytes of a cut request stay (the client resumes from HEAD's offset) unless the
/// request carried a checksum, which they can no longer match: then they are dropped.
async fn receive(
    app: &Arc<AppState>,
    info: &mut UploadInfo,
    claimed: u64,
    headers: &HeaderMap,
    body: Body,
) -> Result<u64, ApiError> {
    let offset = app.uploads.offset(info).await.map_err(ApiError::internal)?;
    if info.complete {
        return Ok(offset);
    }
    if claimed != offset {
        return Err(refuse(
            StatusCode::CONFLICT,
            "offset-mismatch",
            format!("the upload is at offset {offset}, not {claimed}: resume from HEAD's offset"),
        ));
    }
    let expected = checksum(headers)?;
    let path = app.uploads.part_path(info.id);
    let file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await
        .map_err(ApiError::internal)?;
    // The body arrives in frames of a few KiB; each write to a tokio file is a trip to a
    // blocking thread, so they are gathered into 1 MiB writes.
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let room = info.length - offset;
    // On S3, the body also goes into parts as it arrives (when its length is announced).
    let announced = header_str(headers, header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n <= room);
    // A request that carries the whole upload goes into one PUT instead (S3 only).
    let mut one_put = match announced {
        Some(len) => app.uploads.whole(info, offset, len).await,
        None => None,
    };
    let mut tee = match announced {
        Some(len) if one_put.is_none() => app.uploads.tee(info, offset, len).await,
        _ => None,
    };
    // The whole upload's sha256 so far, when this node saw every byte before this request.
    let mut whole = app.uploads.running_hash(info.id, offset);
    // The request's own sha256, when it carries a checksum; from offset 0 the whole upload's
    // running hash is the same one.
    let mut hasher = (expected.is_some() && !(offset == 0 && whole.is_some())).then(Sha256::new);
    let mut written: u64 = 0;
    let mut stream = body.into_data_stream();
    let mut cut = None;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                cut = Some(refuse(
                    StatusCode::BAD_REQUEST,
                    "body-cut",
                    format!("the request body ended early: {e}"),
                ));
                break;
            }
        };
        if written + chunk.len() as u64 > room {
            cut = Some(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!(
                    "the upload's length is {}: more bytes were sent",
                    info.length
                ),
            ));
            break;
        }
        if let Err(e) = file.write_all(&chunk).await {
            cut = Some(ApiError::internal(e));
            break;
        }
        if let Some(t) = tee.as_mut() {
            t.feed(chunk.clone()).await;
        }
        if let Some(w) = one_put.as_mut() {
            w.feed(chunk.clone()).await;
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&chunk);
        }
        if let Some(h) = whole.as_mut() {
            h.update(&chunk);
        }
        written += chunk.len() as u64;
        app.metrics.upload_bytes.inc_by(chunk.len() as u64);
    }
    // A cut request's bytes cannot be checked against its checksum: drop them all.
    let mut keep = !(cut.is_some() && expected.is_some());
    let request_sum = || match (&hasher, &whole) {
        (Some(h), _) | (None, Some(h)) => h.clone().finalize(),
        (None, None) => unreachable!("a request with a checksum is hashed"),
    };
    if let (None, Some(sum)) = (&cut, &expected)
        && request_sum().as_slice() != sum.as_slice()
    {
        keep = false;
        cut = Some(refuse(
            StatusCode::from_u16(460).expect("valid status"),
            "checksum-mismatch",
            "the chunk's sha256 does not match Upload-Checksum: it was dropped, send it again",
        ));
    }
    if !keep {
        written = 0;
    }
    let flushed = file.flush().await;
    let file = file.into_inner();
    if !keep {
        if let Some(w) = one_put {
            w.abort();
        }
        // The request's parts are broken off, unrecorded.
        drop(tee);
        let truncated = flushed.and(file.set_len(offset).await);
        drop(file);
        truncated.map_err(ApiError::internal)?;
        return Err(cut.expect("bytes are dropped only with a reason"));
    }
    flushed.map_err(ApiError::internal)?;
    let now_at = offset + written;
    app.uploads.set_running_hash(info.id, now_at, whole);
    if cut.is_none() && now_at == info.length {
        // The last byte: the bytes are checked and stored. Once stored, the file no longer
        // matters (it is removed, its pages never written); if storing fails, the file is
        // synced before the answer, keeping the bytes for a retry.
        let Some(t) = tee else {
            let completed = complete(app, info, one_put).await;
            if completed.is_err()
                && let Err(e) = file.sync_data().await
            {
                tracing::debug!(upload = %info.id, error = %e, "the part file of an upload not stored did not sync");
            }
            drop(file);
            completed?;
            return Ok(now_at);
        };
        // Streamed into parts: they are recorded once the file is synced, meanwhile the bytes
        // are checked and the rest is stored.
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let synced = async move { synced_rx.await.unwrap_or(false) };
        app.uploads.tee_done(t, info.id, now_at, synced);
        let syncing = async {
            let synced = file.sync_data().await;
            let _ = synced_tx.send(synced.is_ok());
            synced
        };
        let (synced, completed) = tokio::join!(syncing, complete(app, info, one_put));
        drop(file);
        completed?;
        if let Err(e) = synced {
            tracing::debug!(upload = %info.id, error = %e, "the part file of a stored upload did not sync");
        }
        return Ok(now_at);
    }
    // A cut request's single PUT is broken off: the rest comes in parts.
    drop(one_put);
    // The request is answered once its bytes are synced; its parts may still be on their way,
    // and are recorded meanwhile (after the request's before), while the next request's go.
    let synced = file.sync_data().await;
    drop(file);
    synced.map_err(ApiError::internal)?;
    if let Some(t) = tee {
        app.uploads
            .tee_done(t, info.id, now_at, std::future::ready(true));
    }
    // On a store with parts, what is kept and not in parts yet starts towards the blob store.
    app.uploads.kept(info, now_at);
    if let Some(e) = cut {
        return Err(e);
    }
    Ok(now_at)
}

/// Every byte is here: check and store the blob ([`crate::uploads::Uploads::finish`]), then mark
/// the document. Called by the request that brought the last byte, and by a `HEAD` or `PATCH`
/// that finds every byte there but the upload not complete (the node stopped while finishing):
/// an offset equal to the length always means the blob is stored.
async fn complete(
    app: &Arc<AppState>,
    info: &mut UploadInfo,
    one_put: Option<crate::uploads::ship::Whole>,
) -> Result<(), ApiError> {
    match app
        .uploads
        .finish(info, &app.blobs, &app.store, &app.metrics, one_put)
        .await
    {
        Ok(()) => {
            app.metrics.uploads_in_progress.dec();
            // The blob is stored whatever happens next: a failure to mark the document is
            // logged, and the next creation for it (answered complete at once) marks it.
            let marked = match app.store.document(info.doc_id).await {
                Ok(Some(meta)) => crate::jobs::mark_uploaded(app, &meta).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = marked {
                tracing::warn!(doc = %info.doc_id, error = %e, "could not mark a photo uploaded");
            }
        }
        Err(f) => {
            if f.client {
                app.metrics.uploads_in_progress.dec();
                return Err(ApiError::Rejected(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    f.code,
                    f.message,
                ));
            }
            return Err(ApiError::internal(f.message));
        }
    }
    Ok(())
}
