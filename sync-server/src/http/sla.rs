//! `/api/v1/sla`: SLA timers. Policies per (job type, priority) with their limits and business
//! hours (dispatchers and admins write, the org's readers list), and the SLA of the org's jobs,
//! computed at the request (`planning::sla`) with the breaches the watcher recorded
//! (`planning::sla_watch`). The board shows `GET /api/v1/sla/jobs`; `GET /api/v1/jobs/{id}`
//! carries its job's as `sla`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use schemas::api::{JobSla, NewSlaPolicy, SlaPolicyRecord};
use uuid::Uuid;

use super::auth::Caller;
use super::extract::{Body, PathParam};
use super::records::{Params, bad_param};
use crate::error::ApiError;
use crate::planning::sla::Hours;
use crate::planning::sla_watch;
use crate::state::AppState;
use crate::store::sla::{SlaJobs, SlaPolicy};

/// `GET /api/v1/sla/policies`
#[utoipa::path(get, path = "/api/v1/sla/policies", tag = "sla", responses((status = 200, body = Vec<SlaPolicyRecord>), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn list_policies(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<SlaPolicyRecord>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&[])?;
    let rows = app.store.sla().sla_policies(Some(me.org_id)).await?;
    Ok(Json(rows.into_iter().map(record).collect()))
}

/// `POST /api/v1/sla/policies`: set the policy of (job type, priority); 201 when new, 200 when
/// it replaced the one set before.
#[utoipa::path(post, path = "/api/v1/sla/policies", tag = "sla", request_body = NewSlaPolicy, responses((status = 201, description = "a new policy", body = SlaPolicyRecord), (status = 200, description = "the policy of that job type and priority, replaced", body = SlaPolicyRecord), (status = 400, description = "names the bad field (an unknown checklist template or time zone too)", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn put_policy(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<NewSlaPolicy>,
) -> Result<(StatusCode, Json<SlaPolicyRecord>), ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let job_type = body.job_type.trim().to_string();
    if job_type != "*"
        && let Err(e) = crate::templates::resolve(&app, me.org_id, &job_type).await
    {
        return Err(match e {
            ApiError::NotFound(_) | ApiError::BadRequest(_) => ApiError::BadRequest(format!(
                "`job_type`: the org has no checklist template `{job_type}` (or use `*`)"
            )),
            other => other,
        });
    }
    let mut business_hours = body.business_hours.clone();
    if let Some(b) = &mut business_hours {
        b.time_zone = b.time_zone.trim().to_string();
        if b.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ApiError::BadRequest(format!(
                "`business_hours.time_zone`: unknown time zone `{}` (an IANA name such as \
                 Europe/London)",
                b.time_zone
            )));
        }
    }
    Hours::from_api(business_hours.as_ref())
        .map_err(|e| ApiError::BadRequest(format!("`business_hours`: {e}")))?;
    let now = Utc::now();
    let p = SlaPolicy {
        id: Uuid::now_v7(),
        org_id: me.org_id,
        job_type,
        priority: body.priority.clone(),
        acknowledge_within_seconds: body.acknowledge_seconds(),
        resolve_within_seconds: body.resolve_seconds(),
        business_hours,
        created_at: now,
        updated_at: now,
    };
    let (stored, new) = app.store.sla().put_sla_policy(&p).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record(stored))))
}

/// `GET /api/v1/sla/jobs`: the SLA of the org's open jobs that a policy applies to, breached
/// first, then by the nearest deadline. `?breached=true` keeps the breached ones only.
#[utoipa::path(get, path = "/api/v1/sla/jobs", tag = "sla", params(("breached" = Option<bool>, Query, description = "only jobs with a breached clock")), responses((status = 200, body = Vec<JobSla>), (status = 400, description = "bad-query: names the parameter", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn list_jobs(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<JobSla>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&["breached"])?;
    let only_breached = match params.get("breached") {
        None => false,
        Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(bad_param("breached", "must be true or false")),
    };
    let now = Utc::now();
    let store = app.store.sla();
    let policies = org_policies(&app, me.org_id).await?;
    let jobs = store.sla_jobs(SlaJobs::Open(Some(me.org_id), now)).await?;
    let mut out: Vec<JobSla> = jobs
        .iter()
        .filter(|j| !matches!(j.status.as_str(), "completed" | "cancelled"))
        .filter_map(|j| {
            let p = policies.of(j)?;
            Some(sla_watch::job_sla(p, j, now, app.config.sla_approaching))
        })
        .filter(|s| !only_breached || s.breached)
        .collect();
    out.sort_by_key(|s| {
        let next = [&s.acknowledge, &s.resolve]
            .iter()
            .filter(|c| c.stopped_at.is_none())
            .filter_map(|c| c.deadline)
            .min();
        (!s.breached, next.is_none(), next)
    });
    Ok(Json(out))
}

/// `GET /api/v1/sla/jobs/{id}`: one job's SLA (any status).
#[utoipa::path(get, path = "/api/v1/sla/jobs/{id}", tag = "sla", params(("id" = Uuid, Path)), responses((status = 200, body = JobSla), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, description = "no such job of the org, or no policy applies to it", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn get_job(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> Result<Json<JobSla>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    job_sla(&app, me.org_id, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("an SLA of job {id}")))
}

/// A job's SLA, `None` when the job is not (yet) projected or no policy applies.
pub async fn job_sla(app: &AppState, org_id: Uuid, id: Uuid) -> Result<Option<JobSla>, ApiError> {
    let policies = org_policies(app, org_id).await?;
    if policies.is_empty() {
        return Ok(None);
    }
    let jobs = app.store.sla().sla_jobs(SlaJobs::One(org_id, id)).await?;
    let now = Utc::now();
    Ok(jobs.first().and_then(|j| {
        let p = policies.of(j)?;
        Some(sla_watch::job_sla(p, j, now, app.config.sla_approaching))
    }))
}

async fn org_policies(app: &AppState, org_id: Uuid) -> Result<sla_watch::Policies, ApiError> {
    Ok(sla_watch::Policies::new(
        &app.store.sla().sla_policies(Some(org_id)).await?,
    ))
}

fn record(p: SlaPolicy) -> SlaPolicyRecord {
    SlaPolicyRecord {
        id: p.id,
        job_type: p.job_type,
        priority: p.priority,
        acknowledge_within_seconds: p.acknowledge_within_seconds,
        resolve_within_seconds: p.resolve_within_seconds,
        business_hours: p.business_hours,
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}
