//! The back office's review: the page at `/review` (one self-contained HTML file: it signs in
//! through the API and calls the endpoints below with its bearer token) and its endpoints over
//! the review service ([`crate::review`]): the jobs with evidence, a photo's review, and a job's
//! signature image.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use schemas::api::{ReviewJob, ReviewRequest};
use schemas::photo::Review;
use uuid::Uuid;

use super::ApiResult;
use super::auth::Caller;
use super::extract::{Body, PathParam};
use crate::blobs;
use crate::error::ApiError;
use crate::jobs::readable_doc;
use crate::review;
use crate::state::AppState;

const PAGE: &str = include_str!("review.html");

/// `GET /review`: the page. It holds no data; everything comes from the API after sign-in.
pub async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-cache"),
            // The page runs only its own inline script and talks only to this server.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob: https: http:; \
                 script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

/// `GET /api/v1/review/jobs`.
#[utoipa::path(get, path = "/api/v1/review/jobs", tag = "photos", responses((status = 200, body = Vec<schemas::api::ReviewJob>), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn jobs(State(app): State<Arc<AppState>>, caller: Caller) -> ApiResult<Vec<ReviewJob>> {
    Ok(Json(review::queue(&app, &caller.actor()).await?))
}

/// `POST /api/v1/photos/{id}/review`.
#[utoipa::path(post, path = "/api/v1/photos/{id}/review", tag = "photos", params(("id" = Uuid, Path)), request_body = schemas::api::ReviewRequest, responses((status = 200, body = schemas::photo::Review), (status = 400, body = schemas::api::ErrorBody), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn review_photo(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<ReviewRequest>,
) -> ApiResult<Review> {
    Ok(Json(
        review::review_photo(&app, &caller.0.user, id, body).await?,
    ))
}

/// `GET /api/v1/jobs/{id}/signature`: the customer's signature PNG, once uploaded. Readable by
/// whoever may read the job.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/signature", tag = "photos", params(("id" = Uuid, Path)), responses((status = 200, description = "the signature PNG", content_type = "image/png", body = Vec<u8>), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn signature(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> Result<Response, ApiError> {
    let meta = readable_doc(&app, &caller.0.user, id).await?;
    if meta.kind != schemas::DocKind::Job.as_str() {
        return Err(ApiError::NotFound(format!("job {id}")));
    }
    let sha = {
        let sd = app.docs.lock(&meta).await?;
        schemas::read_json(&sd.doc)["signoff"]["signature_sha256"]
            .as_str()
            .map(str::to_string)
    };
    let sha = sha.ok_or_else(|| ApiError::NotFound(format!("a signature on job {id}")))?;
    match app.blobs.get(&blobs::original_key(meta.org_id, &sha)).await {
        Ok(bytes) => Ok((
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            bytes,
        )
            .into_response()),
        Err(blobs::BlobError::NotFound(_)) => Err(ApiError::NotFound(format!(
            "the signature of job {id} (not uploaded yet)"
        ))),
        Err(e) => Err(ApiError::internal(e)),
    }
}
