//! A rule fired: claim the firing in the store (one claim per firing, across nodes), then make
//! its job through the job service, like the PM scheduler does (`planning/scheduler.rs`): from
//! the rule's template, with its priority, at the sensor's asset, `source: {"sensor": id}`, and
//! assigned to [`assignee_for`]'s choice, so that technician's device receives it live.

use std::sync::Arc;

use chrono::Utc;
use schemas::api::CreateJob;
use schemas::job::{Customer, JobSource, Schedule, Site};
use uuid::Uuid;

use super::Def;
use crate::error::ApiError;
use crate::jobs::{self, Actor, JobIds};
use crate::state::AppState;
use crate::store::Role;
use crate::store::sensors::{Reading, Sensor, SensorJob};

/// The name sensor jobs are created by (their history's first entry).
pub const RULES_NAME: &str = "sensor-rules";

/// Claim the firing at reading `r` and, when this node won the claim, make its job.
pub async fn fire(app: Arc<AppState>, def: Arc<Def>, r: Reading) {
    let s = &def.sensor;
    let j = SensorJob {
        sensor_id: s.id,
        fired_at: r.at,
        org_id: s.org_id,
        value: r.value,
        job_id: Uuid::now_v7(),
        checklist_id: Uuid::now_v7(),
        parts_id: Uuid::now_v7(),
        claimed_at: Utc::now(),
        job_created_at: None,
    };
    match app
        .store
        .sensor_store()
        .claim_sensor_job(&j, s.rule.cooldown_s)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(sensor = %s.id, "the firing was claimed already (another node, or \
                            the sensor was not re-armed)");
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, sensor = %s.id, "could not claim a sensor's firing");
            return;
        }
    }
    match make_job(&app, s, &j).await {
        Ok(()) => tracing::info!(sensor = %s.id, job = %j.job_id, value = r.value,
                                 "a sensor's rule opened a job"),
        Err(e) => tracing::warn!(error = %e, sensor = %s.id,
                                 "could not make a sensor's job; retried after the lease"),
    }
}

/// Who a sensor's job is assigned to: the rule's `assignee` when it is a technician of the org,
/// else the first assignment suggestion for the job (`planning::suggest`: every skill its
/// template needs and free now, nearest and least loaded first), else the technician of the
/// asset's latest assigned job, else nobody (the dispatcher assigns).
pub async fn assignee_for(
    app: &AppState,
    sensor: &Sensor,
    job: &JobIds,
    site: Option<Uuid>,
) -> Result<Option<String>, ApiError> {
    let is_tech = |name: String| async move {
        Ok::<_, ApiError>(match app.store.user_by_name(&name).await? {
            Some(u) if u.org_id == sensor.org_id && u.role == Role::Technician => Some(name),
            _ => None,
        })
    };
    if let Some(name) = &sensor.rule.assignee {
        if let Some(name) = is_tech(name.clone()).await? {
            return Ok(Some(name));
        }
        tracing::warn!(sensor = %sensor.id, assignee = %name,
                       "the rule's assignee is not a technician of the org; trying the suggestions");
    }
    let at = match site {
        Some(site) => {
            app.store
                .planning()
                .site_location(sensor.org_id, site)
                .await?
        }
        None => None,
    };
    let facts = crate::planning::service::JobFacts {
        id: job.job,
        schedule: None,
        at,
        template: Some(sensor.rule.template.clone()),
        pm_minutes: None,
        pm_skills: Vec::new(),
    };
    let ranked = crate::planning::service::rank(app, sensor.org_id, &facts, Utc::now()).await?;
    if let Some(pick) = crate::planning::suggest::auto_pick(&ranked.suggestions) {
        return Ok(Some(pick.technician.clone()));
    }
    match app
        .store
        .sensor_store()
        .asset_last_technician(sensor.org_id, sensor.asset_id)
        .await?
    {
        Some(name) => is_tech(name).await,
        None => Ok(None),
    }
}

/// Make (or finish making) the firing's job with its claimed ids, then mark it made.
pub async fn make_job(app: &AppState, s: &Sensor, j: &SensorJob) -> Result<(), ApiError> {
    let org_id = s.org_id;
    let actor = Actor {
        user_id: Uuid::nil(),
        org_id,
        role: Role::Dispatcher,
        name: RULES_NAME.into(),
    };
    let (asset, site, customer) = asset_place(app, s).await?;
    let ids = JobIds {
        job: j.job_id,
        checklist: j.checklist_id,
        parts: j.parts_id,
    };
    let assignees: Vec<String> = assignee_for(app, s, &ids, site.id)
        .await?
        .into_iter()
        .collect();
    let limits = |lo: Option<f64>, hi: Option<f64>| match (lo, hi) {
        (Some(lo), Some(hi)) => format!("{lo} to {hi}"),
        (Some(lo), None) => format!("at least {lo}"),
        (None, Some(hi)) => format!("at most {hi}"),
        (None, None) => String::new(),
    };
    let title: String = format!("{} {} {}: {}", s.kind, j.value, s.unit, asset.name)
        .chars()
        .take(schemas::api::limits::LINE)
        .collect();
    let body = CreateJob {
        title,
        description: format!(
            "Sensor {} ({}) read {} {} at {}, outside {} {}.",
            s.id,
            s.kind,
            j.value,
            s.unit,
            j.fired_at.to_rfc3339(),
            limits(s.min, s.max),
            s.unit
        ),
        template: Some(s.rule.template.clone()),
        priority: Some(s.rule.priority),
        customer: Some(customer),
        site: Some(site),
        asset: Some(asset),
        schedule: Some(Schedule {
            start: j.claimed_at,
            end: None,
        }),
        assignees,
    };
    jobs::create_job_from(app, &actor, body, Some(ids), Some(JobSource::Sensor(s.id))).await?;
    app.store
        .sensor_store()
        .sensor_job_created(j.job_id, Utc::now())
        .await?;
    app.metrics.sensors.jobs.inc();
    Ok(())
}

/// The sensor's asset, its site and the site's customer, as a job names them.
async fn asset_place(
    app: &AppState,
    s: &Sensor,
) -> Result<(schemas::job::Asset, Site, Customer), ApiError> {
    let records = app.store.records();
    let site_id = records
        .asset_site(s.org_id, s.asset_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("asset {}", s.asset_id)))?;
    let (asset, _) = records
        .assets(s.org_id, Some(site_id), None)
        .await?
        .into_iter()
        .find(|(a, _)| a.id == s.asset_id)
        .ok_or_else(|| ApiError::NotFound(format!("asset {}", s.asset_id)))?;
    let (customer, site) = records
        .customers(s.org_id)
        .await?
        .into_iter()
        .find_map(|(c, sites)| {
            let site = sites.into_iter().find(|x| x.id == site_id)?;
            Some((c, site))
        })
        .ok_or_else(|| ApiError::NotFound(format!("site {site_id}")))?;
    Ok((
        schemas::job::Asset {
            id: Some(asset.id),
            name: asset.name,
            serial: asset.serial,
            model: asset.model,
        },
        Site {
            id: Some(site.id),
            name: site.name,
            ..Site::default()
        },
        Customer {
            id: Some(customer.id),
            name: customer.name,
            ..Customer::default()
        },
    ))
}
