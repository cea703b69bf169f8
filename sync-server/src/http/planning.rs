//! Planning over HTTP (issue 11, sections 4 and 5): the org's planning settings and job types,
//! technicians' homes and time blocks, sites' locations, assignment suggestions for a job, and
//! route plans for a day (planned, then applied). Dispatchers and admins only; the work is in
//! `planning::service`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use schemas::planning::{
    AppliedRoutes, ApplyRoutes, JobTypeRequirements, NewTimeBlock, PlanningSettings, Point,
    RoutePlan, RoutePlanRequest, Suggestions, TimeBlockKind, TimeBlockRecord,
};
use uuid::Uuid;

use super::auth::Caller;
use super::extract::{Body, PathParam};
use super::records::{Params, bad_param};
use crate::error::ApiError;
use crate::planning::service;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::planning::TimeBlock;

/// `GET /api/v1/planning/settings`
#[utoipa::path(get, path = "/api/v1/planning/settings", tag = "planning", responses((status = 200, body = PlanningSettings), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn get_settings(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<PlanningSettings>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    Ok(Json(
        app.store.planning().planning_settings(me.org_id).await?,
    ))
}

/// `PUT /api/v1/planning/settings`
#[utoipa::path(put, path = "/api/v1/planning/settings", tag = "planning", request_body = PlanningSettings, responses((status = 200, body = PlanningSettings), (status = 400, description = "names the bad field", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn put_settings(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<PlanningSettings>,
) -> Result<Json<PlanningSettings>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    app.store
        .planning()
        .put_planning_settings(me.org_id, &body)
        .await?;
    Ok(Json(body))
}

/// `GET /api/v1/planning/job-types`
#[utoipa::path(get, path = "/api/v1/planning/job-types", tag = "planning", responses((status = 200, body = Vec<JobTypeRequirements>), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn job_types(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<JobTypeRequirements>>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    Ok(Json(app.store.planning().job_types(me.org_id).await?))
}

/// `PUT /api/v1/planning/job-types/{template}`: the skills and visit length of a type of work.
#[utoipa::path(put, path = "/api/v1/planning/job-types/{template}", tag = "planning", params(("template" = String, Path, description = "a checklist template's name")), request_body = JobTypeRequirements, responses((status = 200, body = JobTypeRequirements), (status = 400, description = "names the bad field", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, description = "the org has no such checklist template", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn put_job_type(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(template): PathParam<String>,
    Body(body): Body<JobTypeRequirements>,
) -> Result<Json<JobTypeRequirements>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let template = template.trim().to_string();
    if let Err(e) = crate::templates::resolve(&app, me.org_id, &template).await {
        return Err(match e {
            ApiError::BadRequest(_) | ApiError::NotFound(_) => {
                ApiError::NotFound(format!("checklist template `{template}`"))
            }
            other => other,
        });
    }
    let mut skills: Vec<String> = body.skills.iter().map(|s| s.trim().to_string()).collect();
    skills.sort();
    skills.dedup();
    let t = JobTypeRequirements {
        template,
        skills,
        estimated_minutes: body.estimated_minutes,
    };
    app.store.planning().put_job_type(me.org_id, &t).await?;
    Ok(Json(t))
}

/// `PUT /api/v1/technicians/{id}/home`: where a technician's day starts and ends (`null`
/// clears it).
#[utoipa::path(put, path = "/api/v1/technicians/{id}/home", tag = "planning", params(("id" = Uuid, Path)), request_body = Option<Point>, responses((status = 200, body = Option<Point>), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, description = "no technician profile with that id in the org", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn put_home(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(home): Body<Option<Point>>,
) -> Result<Json<Option<Point>>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    if !app.store.planning().set_home(me.org_id, id, home).await? {
        return Err(ApiError::NotFound(format!(
            "technician profile {id} (PUT /api/v1/technicians/{id} first)"
        )));
    }
    Ok(Json(home))
}

/// `PUT /api/v1/sites/{id}/location`: a site's place on the map (`null` clears it).
#[utoipa::path(put, path = "/api/v1/sites/{id}/location", tag = "planning", params(("id" = Uuid, Path)), request_body = Option<Point>, responses((status = 200, body = Option<Point>), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn put_site_location(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(at): Body<Option<Point>>,
) -> Result<Json<Option<Point>>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    if !app
        .store
        .planning()
        .set_site_location(me.org_id, id, at)
        .await?
    {
        return Err(ApiError::NotFound(format!("site {id}")));
    }
    Ok(Json(at))
}

fn block_record(b: TimeBlock) -> TimeBlockRecord {
    TimeBlockRecord {
        id: b.id,
        technician_id: b.user_id,
        starts_at: b.starts_at,
        ends_at: b.ends_at,
        kind: TimeBlockKind::parse(&b.kind).unwrap_or(TimeBlockKind::Pto),
    }
}

/// `POST /api/v1/technicians/{id}/time-blocks`
#[utoipa::path(post, path = "/api/v1/technicians/{id}/time-blocks", tag = "planning", params(("id" = Uuid, Path)), request_body = NewTimeBlock, responses((status = 201, body = TimeBlockRecord), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, description = "no technician profile with that id in the org", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn add_time_block(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    Body(body): Body<NewTimeBlock>,
) -> Result<(StatusCode, Json<TimeBlockRecord>), ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let b = TimeBlock {
        id: Uuid::now_v7(),
        user_id: id,
        starts_at: body.starts_at,
        ends_at: body.ends_at,
        kind: body.kind.as_str().to_string(),
    };
    app.store
        .planning()
        .add_time_block(me.org_id, &b)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::NotFound(format!(
                "technician profile {id} (PUT /api/v1/technicians/{id} first)"
            )),
            e => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(block_record(b))))
}

fn time_param(params: &Params, name: &str) -> Result<DateTime<Utc>, ApiError> {
    let v = params
        .get(name)
        .ok_or_else(|| bad_param(name, "required: an RFC 3339 time"))?;
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad_param(name, "not an RFC 3339 time"))
}

/// `GET /api/v1/technicians/{id}/time-blocks?from=&to=`: the blocks overlapping the range.
#[utoipa::path(get, path = "/api/v1/technicians/{id}/time-blocks", tag = "planning", params(("id" = Uuid, Path), ("from" = String, Query, description = "RFC 3339"), ("to" = String, Query, description = "RFC 3339")), responses((status = 200, body = Vec<TimeBlockRecord>), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn time_blocks(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    params: Params,
) -> Result<Json<Vec<TimeBlockRecord>>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    params.only(&["from", "to"])?;
    let (from, to) = (time_param(&params, "from")?, time_param(&params, "to")?);
    if to <= from {
        return Err(bad_param("to", "must be after from"));
    }
    let tech = app
        .store
        .planning()
        .planning_technicians(me.org_id, from, to)
        .await?
        .into_iter()
        .find(|t| t.user_id == id)
        .ok_or_else(|| ApiError::NotFound(format!("technician profile {id}")))?;
    Ok(Json(tech.blocks.into_iter().map(block_record).collect()))
}

/// `DELETE /api/v1/technicians/{id}/time-blocks/{block}`
#[utoipa::path(delete, path = "/api/v1/technicians/{id}/time-blocks/{block}", tag = "planning", params(("id" = Uuid, Path), ("block" = Uuid, Path)), responses((status = 204), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn delete_time_block(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam((_, block)): PathParam<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    if !app
        .store
        .planning()
        .delete_time_block(me.org_id, block)
        .await?
    {
        return Err(ApiError::NotFound(format!("time block {block}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/jobs/{id}/suggestions`: the org's technicians ranked for the job, with reasons.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/suggestions", tag = "planning", params(("id" = Uuid, Path)), responses((status = 200, body = Suggestions), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, description = "no such job in the org (or not projected yet)", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn suggestions(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> Result<Json<Suggestions>, ApiError> {
    let me = caller.actor();
    Ok(Json(service::suggestions(&app, &me, id, Utc::now()).await?))
}

/// `POST /api/v1/routes/plan`: a plan for one day; nothing is written.
#[utoipa::path(post, path = "/api/v1/routes/plan", tag = "planning", request_body = RoutePlanRequest, responses((status = 200, body = RoutePlan), (status = 400, description = "names the bad field", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn plan_routes(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<RoutePlanRequest>,
) -> Result<Json<RoutePlan>, ApiError> {
    let me = caller.actor();
    Ok(Json(service::plan_routes(&app, &me, body).await?))
}

/// `POST /api/v1/routes/apply`: a plan's visits become the jobs' schedules.
#[utoipa::path(post, path = "/api/v1/routes/apply", tag = "planning", request_body = ApplyRoutes, responses((status = 200, body = AppliedRoutes), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody), (status = 409, description = "a job is no longer assigned to the route's technician", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn apply_routes(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<ApplyRoutes>,
) -> Result<Json<AppliedRoutes>, ApiError> {
    let me = caller.actor();
    Ok(Json(service::apply_routes(&app, &me, body).await?))
}
