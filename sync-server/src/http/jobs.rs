//! The dispatcher's job endpoints: thin handlers over the job service ([`crate::jobs`]).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use schemas::api::{AssignRequest, CreateJob, PatchJob};
use schemas::view::JobView;
use uuid::Uuid;

use super::ApiResult;
use super::auth::Caller;
use super::extract::{Body, PathParam};
use crate::error::ApiError;
use crate::jobs;
use crate::state::AppState;

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
#[derive(serde::Serialize)]
pub struct JobReply {
    #[serde(flatten)]
    pub view: JobView,
    pub flags: Vec<crate::store::AuditRecord>,
}

pub async fn get_job(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<JobReply> {
    let me = caller.actor();
    me.org_reader()?;
    let view = jobs::job_view(&app, me.org_id, id).await?;
    let flags = app
        .store
        .job_audit(id)
        .await?
        .into_iter()
        .filter(|a| a.flagged)
        .collect();
    Ok(Json(JobReply { view, flags }))
}

pub async fn assign(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<AssignRequest>,
) -> ApiResult<JobView> {
    let view = jobs::change_assignment(&app, &caller.actor(), id, &body.user, true).await?;
    Ok(Json(view))
}

pub async fn unassign(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<AssignRequest>,
) -> ApiResult<JobView> {
    let view = jobs::change_assignment(&app, &caller.actor(), id, &body.user, false).await?;
    Ok(Json(view))
}

pub async fn patch_job(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<PatchJob>,
) -> ApiResult<JobView> {
    Ok(Json(
        jobs::patch_job(&app, &caller.actor(), id, body).await?,
    ))
}
