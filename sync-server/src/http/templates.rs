//! `/api/v1/templates`: the org's checklist templates (see `crate::templates`). Every role reads
//! them (devices make jobs offline from them); dispatchers and admins write new versions.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemas::api::TemplateRecord;
use schemas::template::Template;

use super::auth::Caller;
use super::extract::{Body, PathParam};
use super::records::Params;
use crate::error::ApiError;
use crate::state::AppState;
use crate::templates::{self, Expect};

/// `GET /api/v1/templates`: the current version of each template. `If-None-Match` with the last
/// answer's `ETag` gets a 304 while nothing changed.
#[utoipa::path(get, path = "/api/v1/templates", tag = "templates", params(("If-None-Match" = Option<String>, Header, description = "the ETag of the set the caller holds")), responses((status = 200, body = Vec<TemplateRecord>, headers(("ETag" = String, description = "the set's version"))), (status = 304, description = "the caller's set is current"), (status = 401, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let me = caller.actor();
    let set = templates::current(&app, me.org_id).await?;
    let tag = templates::set_tag(&set);
    let held = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if held.is_some_and(|h| h.split(',').any(|t| t.trim() == tag || t.trim() == "*")) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
    Ok(([(header::ETAG, tag)], Json(set)).into_response())
}

/// `GET /api/v1/templates/{name}?version=N`: the current version, or version `N` (0 is the
/// built-in one).
#[utoipa::path(get, path = "/api/v1/templates/{name}", tag = "templates", params(("name" = String, Path), ("version" = Option<u32>, Query, description = "a stored version; the current one when absent")), responses((status = 200, body = TemplateRecord, headers(("ETag" = String, description = "the version: send it in If-Match with PUT"))), (status = 400, description = "bad-query", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn get_one(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    params: Params,
) -> Result<Response, ApiError> {
    let me = caller.actor();
    params.only(&["version"])?;
    let version = params.parse("version", "not a version number", |v| v.parse::<u32>().ok())?;
    let found = templates::find(&app, me.org_id, &name, version)
        .await?
        .ok_or_else(|| match version {
            Some(v) => ApiError::NotFound(format!("version {v} of template `{name}`")),
            None => ApiError::NotFound(format!("template `{name}`")),
        })?;
    Ok(tagged(StatusCode::OK, found))
}

/// `POST /api/v1/templates`: a template the org does not have yet, as version 1.
#[utoipa::path(post, path = "/api/v1/templates", tag = "templates", request_body = Template, responses((status = 201, body = TemplateRecord), (status = 400, description = "names each bad field", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 409, description = "the name is taken (a built-in or the org's own): PUT a new version instead", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<Template>,
) -> Result<Response, ApiError> {
    let written = templates::write(&app, &caller.actor(), body, Expect::New).await?;
    Ok(tagged(StatusCode::CREATED, written))
}

/// `PUT /api/v1/templates/{name}`: the next version of a template (of a built-in one too: the
/// org's version then replaces it). `If-Match` with the version read refuses a stale edit.
#[utoipa::path(put, path = "/api/v1/templates/{name}", tag = "templates", params(("name" = String, Path), ("If-Match" = Option<String>, Header, description = "the ETag of the version the edit is based on")), request_body = Template, responses((status = 200, body = TemplateRecord), (status = 400, description = "names each bad field", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody), (status = 412, description = "stale-version: a newer version exists", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn put_version(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(name): PathParam<String>,
    headers: HeaderMap,
    Body(body): Body<Template>,
) -> Result<Response, ApiError> {
    if body.name.trim() != name {
        return Err(ApiError::BadRequest(format!(
            "`name`: the body names `{}`, the path `{name}`",
            body.name
        )));
    }
    let expected = match headers.get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|t| {
                    t.trim()
                        .trim_start_matches("W/")
                        .trim_matches('"')
                        .parse()
                        .ok()
                })
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "If-Match: not a template version's ETag (such as \"3\")".into(),
                    )
                })?,
        ),
    };
    let written = templates::write(&app, &caller.actor(), body, Expect::Existing(expected)).await?;
    Ok(tagged(StatusCode::OK, written))
}

fn tagged(status: StatusCode, t: TemplateRecord) -> Response {
    let tag = format!("\"{}\"", t.template.version);
    (status, [(header::ETAG, tag)], Json(t)).into_response()
}
