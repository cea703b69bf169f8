//! `/api/v1/pm`: preventive maintenance. PM templates (a checklist template, an estimated
//! duration, required skills) and schedules per asset, whose jobs the scheduler makes
//! (`planning::scheduler`). Dispatchers and admins write; the org's readers list; technicians
//! get their PM jobs like any other job.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use schemas::api::{
    NewPmSchedule, NewPmTemplate, PmOccurrenceRecord, PmScheduleDetail, PmScheduleRecord,
    PmTemplateRecord,
};
use uuid::Uuid;

use super::auth::Caller;
use super::extract::{Body, PathParam};
use super::records::Params;
use crate::error::ApiError;
use crate::planning::{pm, scheduler};
use crate::state::AppState;
use crate::store::pm::{self as stored, PmOccurrence, PmSchedule, PmTemplate};
use crate::store::{Role, StoreError};

/// `GET /api/v1/pm/templates`
#[utoipa::path(get, path = "/api/v1/pm/templates", tag = "pm", responses((status = 200, body = Vec<PmTemplateRecord>), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn list_templates(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<PmTemplateRecord>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&[])?;
    let rows = app.store.pm().pm_templates(me.org_id).await?;
    Ok(Json(rows.into_iter().map(template_record).collect()))
}

/// `POST /api/v1/pm/templates`
#[utoipa::path(post, path = "/api/v1/pm/templates", tag = "pm", request_body = NewPmTemplate, responses((status = 201, body = PmTemplateRecord), (status = 400, description = "names the bad field (an unknown checklist template too)", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 409, description = "the org has a PM template of that name", body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn create_template(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<NewPmTemplate>,
) -> Result<(StatusCode, Json<PmTemplateRecord>), ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let checklist = body.checklist_template.trim().to_string();
    if let Err(e) = crate::templates::resolve(&app, me.org_id, &checklist).await {
        return Err(match e {
            ApiError::NotFound(_) | ApiError::BadRequest(_) => ApiError::BadRequest(format!(
                "`checklist_template`: the org has no checklist template `{checklist}`"
            )),
            other => other,
        });
    }
    let mut skills: Vec<String> = body
        .required_skills
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    skills.sort();
    skills.dedup();
    let t = PmTemplate {
        id: Uuid::now_v7(),
        org_id: me.org_id,
        name: body.name.trim().to_string(),
        checklist_template: checklist,
        estimated_minutes: body.estimated_minutes,
        required_skills: skills,
        created_at: Utc::now(),
    };
    app.store
        .pm()
        .create_pm_template(&t)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::Conflict(format!(
                "`name`: the org has a PM template named `{}`",
                t.name
            )),
            e => e.into(),
        })?;
    Ok((StatusCode::CREATED, Json(template_record(t))))
}

/// `GET /api/v1/pm/schedules`
#[utoipa::path(get, path = "/api/v1/pm/schedules", tag = "pm", responses((status = 200, body = Vec<PmScheduleRecord>), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn list_schedules(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<PmScheduleRecord>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&[])?;
    let store = app.store.pm();
    let schedules = store.pm_schedules(Some(me.org_id), None).await?;
    let occurrences = store.pm_occurrences(Some(me.org_id), None).await?;
    Ok(Json(
        schedules
            .iter()
            .map(|s| schedule_record(s, &occurrences))
            .collect(),
    ))
}

/// `POST /api/v1/pm/schedules`
#[utoipa::path(post, path = "/api/v1/pm/schedules", tag = "pm", request_body = NewPmSchedule, responses((status = 201, body = PmScheduleDetail), (status = 400, description = "names the bad field (an asset or template of another org too)", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn create_schedule(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<NewPmSchedule>,
) -> Result<(StatusCode, Json<PmScheduleDetail>), ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let records = app.store.records();
    if records
        .asset_site(me.org_id, body.asset_id)
        .await?
        .is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "`asset_id`: {} is not an asset of this organisation",
            body.asset_id
        )));
    }
    let assignee = body.assignee.as_deref().map(str::trim).map(str::to_string);
    if let Some(name) = &assignee {
        match app.store.user_by_name(name).await? {
            Some(u) if u.org_id == me.org_id && u.role == Role::Technician => {}
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "`assignee`: `{name}` is not a technician of this organisation"
                )));
            }
        }
    }
    let id = Uuid::now_v7();
    let now = Utc::now();
    let mut s = stored::NewPmSchedule {
        id,
        org_id: me.org_id,
        asset_id: body.asset_id,
        template_id: body.template_id,
        rule: body.rule,
        anchor: body.anchor,
        horizon_days: body.horizon_days.unwrap_or(app.config.pm_horizon_days),
        start_date: now.date_naive(),
        assignee,
        created_at: now,
    };
    s.start_date = match body.start_date {
        Some(d) => d,
        None => {
            // Today where the asset is.
            let zone = site_zone(&app, me.org_id, body.asset_id).await?;
            now.with_timezone(&zone).date_naive()
        }
    };
    app.store
        .pm()
        .create_pm_schedule(&s)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(m) if m.starts_with("template") => ApiError::BadRequest(format!(
                "`template_id`: {} is not a PM template of this organisation",
                s.template_id
            )),
            StoreError::NotFound(_) => ApiError::BadRequest(format!(
                "`asset_id`: {} is not an asset of this organisation",
                s.asset_id
            )),
            e => e.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(detail(&app, me.org_id, id).await?),
    ))
}

/// `GET /api/v1/pm/schedules/{id}`: the schedule, its next due date and its occurrences.
#[utoipa::path(get, path = "/api/v1/pm/schedules/{id}", tag = "pm", params(("id" = Uuid, Path)), responses((status = 200, body = PmScheduleDetail), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn get_schedule(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> Result<Json<PmScheduleDetail>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    Ok(Json(detail(&app, me.org_id, id).await?))
}

async fn detail(app: &AppState, org_id: Uuid, id: Uuid) -> Result<PmScheduleDetail, ApiError> {
    let store = app.store.pm();
    let s = store
        .pm_schedules(Some(org_id), Some(id))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound(format!("PM schedule {id}")))?;
    let occurrences = store.pm_occurrences(Some(org_id), Some(id)).await?;
    let schedule = schedule_record(&s, &occurrences);
    let mut occurrences: Vec<PmOccurrenceRecord> =
        occurrences.into_iter().map(occurrence_record).collect();
    occurrences.reverse();
    Ok(PmScheduleDetail {
        schedule,
        occurrences,
    })
}

async fn site_zone(app: &AppState, org_id: Uuid, asset: Uuid) -> Result<chrono_tz::Tz, ApiError> {
    let site = app.store.records().asset_site(org_id, asset).await?;
    let customers = app.store.records().customers(org_id).await?;
    let zone = customers
        .iter()
        .flat_map(|(_, sites)| sites)
        .find(|s| Some(s.id) == site)
        .map(|s| pm::zone(&s.time_zone))
        .unwrap_or(chrono_tz::Tz::UTC);
    Ok(zone)
}

fn template_record(t: PmTemplate) -> PmTemplateRecord {
    PmTemplateRecord {
        id: t.id,
        name: t.name,
        checklist_template: t.checklist_template,
        estimated_minutes: t.estimated_minutes,
        required_skills: t.required_skills,
        created_at: t.created_at,
    }
}

fn schedule_record(s: &PmSchedule, occurrences: &[PmOccurrence]) -> PmScheduleRecord {
    let mine: Vec<pm::Occurrence> = occurrences
        .iter()
        .filter(|o| o.schedule_id == s.schedule.id)
        .map(|o| pm::Occurrence {
            schedule_id: o.schedule_id,
            due_date: o.due_date,
            completed_at: o.completed_at,
        })
        .collect();
    PmScheduleRecord {
        id: s.schedule.id,
        asset_id: s.schedule.asset_id,
        site_id: s.site_id,
        template_id: s.schedule.template_id,
        rule: s.schedule.rule.clone(),
        anchor: s.schedule.anchor,
        horizon_days: s.schedule.horizon_days,
        start_date: s.schedule.start_date,
        assignee: s.schedule.assignee.clone(),
        time_zone: s.time_zone.clone(),
        last_due_date: s.last_due_date,
        last_completed_at: s.last_completed_at,
        next_due_date: pm::next_due(&scheduler::input(s), &mine),
    }
}

fn occurrence_record(o: PmOccurrence) -> PmOccurrenceRecord {
    PmOccurrenceRecord {
        due_date: o.due_date,
        job_id: o.job_id,
        scheduled_start: o.scheduled_start,
        job_created: o.job_created_at.is_some(),
        completed_at: o.completed_at,
    }
}
