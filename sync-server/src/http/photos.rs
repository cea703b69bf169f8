//! `GET /api/v1/photos/{id}`: a photo's record, with URLs for its original and thumbnails that
//! the caller may fetch (presigned on S3; on the local store, the authenticated routes
//! `/api/v1/photos/{id}/original` and `/api/v1/photos/{id}/thumbnails/{px}` served here).
//! Technicians see the photos of their assigned jobs, the org-wide roles those of their org.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::blobs;
use crate::error::ApiError;
use crate::http::{Caller, PathParam};
use crate::jobs::readable_doc;
use crate::state::AppState;
use crate::store::DocMeta;

/// How long a presigned URL handed out here works.
const URL_TTL: Duration = Duration::from_secs(15 * 60);

async fn photo_doc(
    app: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<(DocMeta, Value), ApiError> {
    let meta = readable_doc(app, &caller.0.user, id).await?;
    if meta.kind != "photo" {
        return Err(ApiError::NotFound(format!("photo {id}")));
    }
    let sd = app.docs.lock(&meta).await?;
    Ok((meta, schemas::read_json(&sd.doc)))
}

async fn url_for(app: &AppState, key: &str, local: String) -> Result<String, ApiError> {
    Ok(app
        .blobs
        .presigned_get(key, URL_TTL)
        .await
        .map_err(ApiError::internal)?
        .unwrap_or(local))
}

#[utoipa::path(get, path = "/api/v1/photos/{id}", tag = "photos", params(("id" = Uuid, Path)), responses((status = 200, description = "the photo's record: sha256, size, width, height, taken_at, review, uploaded, URLs", body = Object), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn get_photo(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let (meta, doc) = photo_doc(&app, &caller, id).await?;
    let sha = doc["sha256"].as_str().unwrap_or_default().to_string();
    let org = meta.org_id;
    let info = app.store.photo(org, &sha).await?;
    let uploaded = info.is_some()
        && app
            .blobs
            .size(&blobs::original_key(org, &sha))
            .await
            .map_err(ApiError::internal)?
            .is_some();
    let mut original_url = Value::Null;
    let mut thumbnails = serde_json::Map::new();
    if uploaded {
        original_url = url_for(
            &app,
            &blobs::original_key(org, &sha),
            format!("/api/v1/photos/{id}/original"),
        )
        .await?
        .into();
        for px in info
            .as_ref()
            .map(|i| i.thumbnails.clone())
            .unwrap_or_default()
        {
            let url = url_for(
                &app,
                &blobs::thumb_key(org, &sha, px),
                format!("/api/v1/photos/{id}/thumbnails/{px}"),
            )
            .await?;
            thumbnails.insert(px.to_string(), url.into());
        }
    }
    let info = info.filter(|_| uploaded);
    Ok(Json(json!({
        "id": id,
        "job_id": meta.job_id,
        "sha256": sha,
        "size": info.as_ref().map_or(doc["size"].clone(), |i| i.size.into()),
        "mime": info.as_ref().map_or(doc["mime"].clone(), |i| i.mime.clone().into()),
        "width": info.as_ref().map_or(doc["width"].clone(), |i| i.width.into()),
        "height": info.as_ref().map_or(doc["height"].clone(), |i| i.height.into()),
        "taken_at": info.as_ref().and_then(|i| i.taken_at).map_or(doc["taken_at"].clone(), |t| json!(t)),
        "location": info.as_ref().and_then(|i| i.location).map_or(doc["location"].clone(), |l| json!(l)),
        "review": doc["review"].clone(),
        "uploaded": uploaded,
        "original_url": original_url,
        "thumbnails": thumbnails,
    })))
}

async fn serve_blob(app: &AppState, key: &str, mime: &str) -> Result<Response, ApiError> {
    match app.blobs.get(key).await {
        Ok(bytes) => Ok((
            [
                (header::CONTENT_TYPE, mime.to_string()),
                (header::CACHE_CONTROL, "private, max-age=3600".to_string()),
            ],
            bytes,
        )
            .into_response()),
        Err(blobs::BlobError::NotFound(_)) => Err(ApiError::NotFound("blob".into())),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// The original, from the local store (S3 callers get a presigned URL instead, but this works too).
#[utoipa::path(get, path = "/api/v1/photos/{id}/original", tag = "photos", params(("id" = Uuid, Path)), responses((status = 200, description = "the original image", content_type = "image/*", body = Vec<u8>), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn get_original(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> Result<Response, ApiError> {
    let (meta, doc) = photo_doc(&app, &caller, id).await?;
    let sha = doc["sha256"].as_str().unwrap_or_default();
    let mime = doc["mime"].as_str().unwrap_or("application/octet-stream");
    serve_blob(&app, &blobs::original_key(meta.org_id, sha), mime).await
}

#[utoipa::path(get, path = "/api/v1/photos/{id}/thumbnails/{px}", tag = "photos", params(("id" = Uuid, Path), ("px" = u32, Path, description = "320 or 1280")), responses((status = 200, description = "a JPEG thumbnail", content_type = "image/jpeg", body = Vec<u8>), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn get_thumbnail(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam((id, px)): PathParam<(Uuid, u32)>,
) -> Result<Response, ApiError> {
    if !blobs::THUMB_SIZES.contains(&px) {
        return Err(ApiError::NotFound(format!("thumbnail size {px}")));
    }
    let (meta, doc) = photo_doc(&app, &caller, id).await?;
    let sha = doc["sha256"].as_str().unwrap_or_default();
    serve_blob(&app, &blobs::thumb_key(meta.org_id, sha, px), "image/jpeg").await
}
