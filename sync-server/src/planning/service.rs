//! Planning's IO: loads what [`suggest::rank`] and [`routes::plan`] need from the store, and
//! writes what a dispatcher accepts (an auto-assignment at creation, a route plan's times) through
//! the job service, like any other edit, so devices receive it live.

use std::collections::HashSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use schemas::api::PatchJob;
use schemas::job::Schedule;
use schemas::planning::{
    AppliedRoutes, ApplyRoutes, PlanningSettings, Point, RoutePlan, RoutePlanRequest, Suggestions,
};
use uuid::Uuid;

use super::routes::{self, RouteJob, RouteProblem, RouteTechnician};
use super::suggest::{self, Block, BlockKind, Candidate, DayJob, Target};
use crate::error::ApiError;
use crate::jobs::{self, Actor};
use crate::state::AppState;
use crate::store::planning::{PlanJob, PlanTechnician};

/// A job type's requirements with its PM template's: the skills of both, the PM template's
/// duration first, then the job type's, then the org's default.
async fn needs(
    app: &AppState,
    org: Uuid,
    template: Option<&str>,
    pm_minutes: Option<u32>,
    pm_skills: &[String],
    settings: &PlanningSettings,
) -> Result<(Vec<String>, i64), ApiError> {
    let types = app.store.planning().job_types(org).await?;
    let ty = template.and_then(|t| types.into_iter().find(|x| x.template == t));
    let mut skills: Vec<String> = pm_skills.to_vec();
    for s in ty.iter().flat_map(|t| t.skills.iter()) {
        if !skills.iter().any(|k| k.eq_ignore_ascii_case(s)) {
            skills.push(s.clone());
        }
    }
    let minutes = pm_minutes
        .or(ty.and_then(|t| t.estimated_minutes))
        .unwrap_or(settings.default_duration_min);
    Ok((skills, i64::from(minutes.max(1))))
}

fn block(b: &crate::store::planning::TimeBlock) -> Block {
    Block {
        start: b.starts_at,
        end: b.ends_at,
        kind: match b.kind.as_str() {
            "available" => BlockKind::Available,
            "break" => BlockKind::Break,
            _ => BlockKind::TimeOff,
        },
    }
}

fn candidate(t: &PlanTechnician) -> Candidate {
    Candidate {
        name: t.name.clone(),
        display_name: t.display_name.clone(),
        home: t.home,
        skills: t.skills.clone(),
        blocks: t.blocks.iter().map(block).collect(),
    }
}

fn day_job(j: &PlanJob) -> DayJob {
    DayJob {
        id: j.id,
        assignees: j.assignees.clone(),
        start: j.scheduled_start,
        end: j.scheduled_end,
        at: j.at,
        open: j.open(),
    }
}

/// The UTC day around an instant.
fn day_of(at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = at
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc();
    (start, start + Duration::days(1))
}

/// What a job to be ranked is: its id, window, place, template and PM needs.
pub struct JobFacts {
    pub id: Uuid,
    pub schedule: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    pub at: Option<Point>,
    pub template: Option<String>,
    pub pm_minutes: Option<u32>,
    pub pm_skills: Vec<String>,
}

/// The org's technicians ranked for a job described by `facts`.
pub async fn rank(
    app: &AppState,
    org: Uuid,
    facts: &JobFacts,
    now: DateTime<Utc>,
) -> Result<Suggestions, ApiError> {
    let planning = app.store.planning();
    let settings = planning.planning_settings(org).await?;
    let (skills, minutes) = needs(
        app,
        org,
        facts.template.as_deref(),
        facts.pm_minutes,
        &facts.pm_skills,
        &settings,
    )
    .await?;
    let window = match facts.schedule {
        Some((start, Some(end))) if end > start => (start, end),
        Some((start, _)) => (start, start + Duration::minutes(minutes)),
        None => (now, now + Duration::minutes(minutes)),
    };
    let (day_start, day_end) = day_of(window.0);
    let techs = planning
        .planning_technicians(
            org,
            window.0 - Duration::hours(12),
            window.1 + Duration::hours(12),
        )
        .await?;
    let day: Vec<DayJob> = planning
        .planning_jobs(org, day_start, day_end.max(window.1))
        .await?
        .iter()
        .map(day_job)
        .collect();
    let target = Target {
        id: facts.id,
        window,
        duration_min: minutes,
        at: facts.at,
        required_skills: skills.clone(),
    };
    let candidates: Vec<Candidate> = techs.iter().map(candidate).collect();
    Ok(Suggestions {
        job_id: facts.id,
        window_start: window.0,
        window_end: window.1,
        required_skills: skills,
        suggestions: suggest::rank(&target, &candidates, &day),
    })
}

/// `GET /api/v1/jobs/{id}/suggestions`: from the job's projected row.
pub async fn suggestions(
    app: &AppState,
    me: &Actor,
    job_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Suggestions, ApiError> {
    me.dispatcher()?;
    let job = app
        .store
        .planning()
        .planning_job(me.org_id, job_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("job {job_id}")))?;
    let facts = JobFacts {
        id: job.id,
        schedule: job.scheduled_start.map(|s| (s, job.scheduled_end)),
        at: job.at,
        template: job.template.clone(),
        pm_minutes: job.pm_minutes,
        pm_skills: job.pm_skills.clone(),
    };
    rank(app, me.org_id, &facts, now).await
}

/// The technician a new job without assignees goes to when the org lets rules auto-assign:
/// the first suggestion when eligible and free (`suggest::auto_pick`). `None` when the org does
/// not auto-assign or nobody qualifies.
pub async fn auto_assignee(
    app: &AppState,
    org: Uuid,
    facts: &JobFacts,
) -> Result<Option<String>, ApiError> {
    if !app
        .store
        .planning()
        .planning_settings(org)
        .await?
        .auto_assign
    {
        return Ok(None);
    }
    let ranked = rank(app, org, facts, Utc::now()).await?;
    let pick = suggest::auto_pick(&ranked.suggestions).map(|s| s.technician.clone());
    tracing::info!(job = %facts.id, technician = ?pick, "auto-assignment");
    Ok(pick)
}

/// The bounds of the solver's time budget, seconds.
pub const MAX_SOLVE_SECONDS: u32 = 60;

/// `POST /api/v1/routes/plan`.
pub async fn plan_routes(
    app: &AppState,
    me: &Actor,
    req: RoutePlanRequest,
) -> Result<RoutePlan, ApiError> {
    me.dispatcher()?;
    let date = NaiveDate::parse_from_str(&req.date, "%Y-%m-%d").map_err(|_| {
        ApiError::BadRequest(format!("`date`: {:?} is not a date YYYY-MM-DD", req.date))
    })?;
    let settings = app.store.planning().planning_settings(me.org_id).await?;
    let speed = req.speed_kmh.unwrap_or(settings.speed_kmh);
    if !speed.is_finite() || !(1.0..=200.0).contains(&speed) {
        return Err(ApiError::BadRequest(
            "`speed_kmh`: must be between 1 and 200".into(),
        ));
    }
    let max_seconds = req.max_seconds.unwrap_or(10);
    if !(1..=MAX_SOLVE_SECONDS).contains(&max_seconds) {
        return Err(ApiError::BadRequest(format!(
            "`max_seconds`: must be between 1 and {MAX_SOLVE_SECONDS}"
        )));
    }
    let day_start = date.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let day_end = day_start + Duration::days(1);
    let planning = app.store.planning();
    let all_techs = planning
        .planning_technicians(me.org_id, day_start, day_end)
        .await?;
    let jobs = planning
        .planning_jobs(me.org_id, day_start, day_end)
        .await?;
    // Jobs that can still be moved: scheduled that day, assigned, not started or finished.
    let movable: Vec<&PlanJob> = jobs
        .iter()
        .filter(|j| j.scheduled_start.is_some() && !j.assignees.is_empty())
        .filter(|j| matches!(j.status.as_str(), "pending" | "assigned"))
        .collect();
    let wanted: Option<HashSet<&str>> = req
        .technicians
        .as_ref()
        .map(|v| v.iter().map(String::as_str).collect());
    if let Some(w) = &wanted {
        for name in w {
            if !all_techs.iter().any(|t| t.name == *name) {
                return Err(ApiError::BadRequest(format!(
                    "`technicians`: `{name}` is not a technician of this organisation with a profile"
                )));
            }
        }
    }
    let techs: Vec<&PlanTechnician> = all_techs
        .iter()
        .filter(|t| match &wanted {
            Some(w) => w.contains(t.name.as_str()),
            None => movable.iter().any(|j| j.assignees[0] == t.name),
        })
        .collect();
    let names: HashSet<&str> = techs.iter().map(|t| t.name.as_str()).collect();
    let mut route_jobs = Vec::new();
    for j in movable
        .iter()
        .filter(|j| names.contains(j.assignees[0].as_str()))
    {
        let (_, minutes) = needs(
            app,
            me.org_id,
            j.template.as_deref(),
            j.pm_minutes,
            &j.pm_skills,
            &settings,
        )
        .await?;
        let start = j.scheduled_start.expect("filtered");
        route_jobs.push(RouteJob {
            id: j.id,
            title: j.title.clone(),
            technician: j.assignees[0].clone(),
            at: j.at,
            // The promised window; a job with a start only may start any time that day.
            window: match j.scheduled_end {
                Some(end) if end > start => Some((start, end)),
                _ => None,
            },
            duration_s: minutes * 60,
            scheduled_start: Some(start),
        });
    }
    let technicians = techs
        .iter()
        .map(|t| {
            // The shift: their available blocks that day, else 08:00–18:00 UTC.
            let avail: Vec<_> = t.blocks.iter().filter(|b| b.kind == "available").collect();
            let (shift_start, shift_end) = match (
                avail.iter().map(|b| b.starts_at).min(),
                avail.iter().map(|b| b.ends_at).max(),
            ) {
                (Some(a), Some(b)) => (a, b),
                _ => (
                    day_start + Duration::hours(8),
                    day_start + Duration::hours(18),
                ),
            };
            RouteTechnician {
                name: t.name.clone(),
                start: t.home,
                end: t.home,
                shift_start,
                shift_end,
            }
        })
        .collect();
    let problem = RouteProblem {
        date: date.to_string(),
        speed_kmh: speed,
        technicians,
        jobs: route_jobs,
        max_seconds,
        max_generations: 3000,
    };
    // The solver is CPU-bound and uses its own threads: keep it off the async workers.
    tokio::task::spawn_blocking(move || routes::plan(&problem))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// `POST /api/v1/routes/apply`: each stop's times become its job's schedule. Every job must be
/// one of the org's, assigned to the route's technician; nothing is written when one is not.
pub async fn apply_routes(
    app: &AppState,
    me: &Actor,
    body: ApplyRoutes,
) -> Result<AppliedRoutes, ApiError> {
    me.dispatcher()?;
    let mut seen = HashSet::new();
    let mut checked = Vec::new();
    for route in &body.routes {
        for stop in &route.stops {
            if !seen.insert(stop.job_id) {
                return Err(ApiError::BadRequest(format!(
                    "job {} appears twice in the plan",
                    stop.job_id
                )));
            }
            if stop.end < stop.start {
                return Err(ApiError::BadRequest(format!(
                    "job {}: `end` is before `start`",
                    stop.job_id
                )));
            }
            // The document, not the projected row: rows lag the writes just made.
            let job = jobs::job_view(app, me.org_id, stop.job_id).await?;
            if !job.assignees.iter().any(|a| a == &route.technician) {
                return Err(ApiError::Conflict(format!(
                    "job {} is not assigned to {} any more: plan again",
                    stop.job_id, route.technician
                )));
            }
            checked.push((job, stop.clone()));
        }
    }
    let mut out = AppliedRoutes {
        updated: 0,
        unchanged: 0,
    };
    for (job, stop) in checked {
        let planned = Schedule {
            start: stop.start,
            end: Some(stop.end),
        };
        if job.schedule.as_ref() == Some(&planned) {
            out.unchanged += 1;
            continue;
        }
        let patch = PatchJob {
            schedule: Some(Some(planned)),
            ..Default::default()
        };
        jobs::patch_job(app, me, job.id, patch, None).await?;
        out.updated += 1;
    }
    Ok(out)
}
