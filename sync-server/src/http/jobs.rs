//! The dispatcher's job endpoints: thin handlers over the job service ([`crate::jobs`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use schemas::api::{AssignRequest, CreateJob, PatchJob};
use schemas::view::JobView;
use uuid::Uuid;

use super::ApiResult;
use super::auth::Caller;
use super::extract::{Body, PathParam};
use crate::error::ApiError;
use crate::jobs;
use crate::state::AppState;

#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = schemas::api::CreateJob, responses((status = 201, body = schemas::view::JobView), (status = 400, body = schemas::api::ErrorBody), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn create_job(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<CreateJob>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let view = jobs::create_job(&app, &caller.actor(), body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A job as the dispatcher sees it: the device's `job show` view plus the flags the server
/// raised on it (repairs of changes that broke the contract or the writer's role, changes that
/// arrived after an unassignment), oldest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct JobReply {
    /// The org's job number (`WO-000123`), once the projection has seen the job.
    pub number: Option<String>,
    #[serde(flatten)]
    pub view: JobView,
    /// The flags not yet resolved.
    pub flags: Vec<Flag>,
    /// The job's whole audit trail, oldest first (flags, their resolutions, repairs).
    pub audit: Vec<crate::store::AuditRecord>,
    /// The part lines with the catalog's prices (as projected: a line synced a moment ago may
    /// not be here yet).
    pub parts_priced: Vec<schemas::api::PricedLine>,
    /// The sum of the priced lines' totals, in cents.
    pub parts_total_cents: i64,
    /// Its SLA clocks and the breaches recorded, when an SLA policy applies to it.
    pub sla: Option<schemas::api::JobSla>,
}

/// A flag on a job: a stable `code` (the audit action: `repair`, `conflict`, `after_unassign`,
/// `changed_after_signoff`), a sentence, and the audit row it comes from.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Flag {
    pub code: String,
    pub message: String,
    #[serde(flatten)]
    pub record: crate::store::AuditRecord,
}

impl From<crate::store::AuditRecord> for Flag {
    fn from(record: crate::store::AuditRecord) -> Flag {
        Flag {
            code: record.action.clone(),
            message: record.reasons.join("; "),
            record,
        }
    }
}

/// The job, with its version in `ETag` (send it back in `If-Match` when editing).
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path)), responses((status = 200, body = JobReply, headers(("ETag" = String, description = "the job's version: send it in If-Match"))), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn get_job(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    let (view, tag) = jobs::job_view_tagged(&app, me.org_id, id).await?;
    let audit = app.store.job_audit(id).await?;
    let resolved = jobs::resolved_flags(&audit);
    let flags = audit
        .iter()
        .filter(|a| a.flagged && !resolved.contains(&a.id))
        .cloned()
        .map(Flag::from)
        .collect();
    let parts_priced = app.store.records().job_parts(me.org_id, id).await?;
    let parts_total_cents = parts_priced.iter().filter_map(|l| l.total_cents).sum();
    let number = app
        .store
        .records()
        .job_number(me.org_id, id)
        .await?
        .map(schemas::api::job_number);
    let sla = super::sla::job_sla(&app, me.org_id, id).await?;
    Ok((
        [(header::ETAG, tag)],
        Json(JobReply {
            number,
            view,
            flags,
            audit,
            parts_priced,
            parts_total_cents,
            sla,
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/assign", tag = "jobs", params(("id" = Uuid, Path)), request_body = schemas::api::AssignRequest, responses((status = 200, body = schemas::view::JobView), (status = 400, body = schemas::api::ErrorBody), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn assign(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<AssignRequest>,
) -> ApiResult<JobView> {
    let view = jobs::change_assignment(&app, &caller.actor(), id, &body.user, true).await?;
    Ok(Json(view))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/unassign", tag = "jobs", params(("id" = Uuid, Path)), request_body = schemas::api::AssignRequest, responses((status = 200, body = schemas::view::JobView), (status = 400, body = schemas::api::ErrorBody), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn unassign(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<AssignRequest>,
) -> ApiResult<JobView> {
    let view = jobs::change_assignment(&app, &caller.actor(), id, &body.user, false).await?;
    Ok(Json(view))
}

/// `If-Match` (optional) is the `ETag` the edit is based on; see [`jobs::patch_job`]. The reply
/// carries the new version in `ETag`.
#[utoipa::path(patch, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "the ETag the edit is based on")), request_body = schemas::api::PatchJob, responses((status = 200, body = schemas::view::JobView), (status = 400, body = schemas::api::ErrorBody), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody), (status = 412, description = "stale-version: the job changed since it was read", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn patch_job(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    headers: HeaderMap,
    Body(body): Body<PatchJob>,
) -> Result<impl IntoResponse, ApiError> {
    let if_match = headers
        .get(header::IF_MATCH)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::BadRequest("If-Match is not text".into()))
        })
        .transpose()?;
    let me = caller.actor();
    jobs::patch_job(&app, &me, id, body, if_match).await?;
    let (view, tag) = jobs::job_view_tagged(&app, me.org_id, id).await?;
    Ok(([(header::ETAG, tag)], Json(view)))
}

/// `POST /api/v1/jobs/{id}/flags/{flag}/resolve`
#[utoipa::path(post, path = "/api/v1/jobs/{id}/flags/{flag}/resolve", tag = "jobs", params(("id" = Uuid, Path), ("flag" = Uuid, Path)), request_body = schemas::api::ResolveFlag, responses((status = 200, body = schemas::api::FlagResolved), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody), (status = 409, description = "resolved already", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn resolve_flag(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam((id, flag)): PathParam<(Uuid, Uuid)>,
    Body(body): Body<schemas::api::ResolveFlag>,
) -> ApiResult<schemas::api::FlagResolved> {
    jobs::resolve_flag(&app, &caller.actor(), id, flag, &body.note).await?;
    Ok(Json(schemas::api::FlagResolved { resolved: flag }))
}
