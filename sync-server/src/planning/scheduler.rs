//! The preventive-maintenance scheduler: a task on every node that, every
//! `FIELDSYNC_PM_INTERVAL_MS`, notes completed PM jobs, asks [`super::pm::decide`] which
//! occurrences are due for a job, and makes each one's job through the job service
//! ([`crate::jobs::create_job_with`], the path of the dispatcher's `POST /api/v1/jobs`).
//!
//! **Exactly one job per (schedule, due date)**, with several nodes and across crashes:
//!
//! 1. The occurrence is *claimed* first: its row, keyed by (schedule, due date), is inserted
//!    with the ids the job's three documents will have (`ON CONFLICT DO NOTHING`). Only the node
//!    whose insert went in goes on; a second node, or a restarted one, finds the row and skips.
//! 2. That node makes the job with those ids, then marks the row `job_created_at`.
//! 3. A node killed between 1 and 2 leaves a claimed row without a job (or with part of one).
//!    After `FIELDSYNC_PM_CLAIM_LEASE_MS` any node takes the claim over (one node wins the
//!    compare-and-set on the claim time) and makes the job again *with the same ids*: documents
//!    already stored are kept, missing ones made, so it ends as the one job of that occurrence.
//!
//! The claim comes before the job rather than in one transaction with it because the job is
//! made by the job service through the change log and the document cache, which commit on their
//! own; a row written first and finished later is what makes a crash at any point recoverable
//! without ever making a second job. The cost is a delay of one lease for an occurrence whose
//! node died mid-way.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemas::api::CreateJob;
use schemas::job::{Customer, Schedule, Site};
use uuid::Uuid;

use super::pm;
use crate::error::ApiError;
use crate::jobs::{self, Actor, JobIds};
use crate::state::AppState;
use crate::store::Role;
use crate::store::pm::{PmOccurrence, PmSchedule};

/// The name PM jobs are created by (their history's first entry).
pub const SCHEDULER_NAME: &str = "pm-scheduler";

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    /// Occurrences this node claimed and made a job for.
    pub created: usize,
    /// Stale claims of other (dead) runs this node finished.
    pub taken_over: usize,
    /// Occurrences whose job was completed since the last run.
    pub completed: u64,
}

/// Run the scheduler until the task is dropped.
pub async fn run(app: Arc<AppState>) {
    let mut ticker = tokio::time::interval(app.config.pm_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match run_once(&app, Utc::now()).await {
            Ok(run) if run != Run::default() => tracing::info!(?run, "preventive maintenance"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the preventive-maintenance run failed"),
        }
    }
}

/// One run at `now`.
pub async fn run_once(app: &AppState, now: DateTime<Utc>) -> Result<Run, ApiError> {
    let store = app.store.pm();
    let mut run = Run {
        completed: store.pm_note_completions(now).await?,
        ..Run::default()
    };
    let schedules = store.pm_schedules(None, None).await?;
    let by_id: HashMap<Uuid, &PmSchedule> = schedules.iter().map(|s| (s.schedule.id, s)).collect();

    let lease =
        chrono::Duration::from_std(app.config.pm_claim_lease).unwrap_or(chrono::Duration::MAX);
    let stale_before = now
        .checked_sub_signed(lease)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    for o in store.take_over_pm_occurrences(stale_before, now).await? {
        let Some(s) = by_id.get(&o.schedule_id) else {
            continue;
        };
        tracing::info!(schedule = %o.schedule_id, due = %o.due_date, "finishing a stale claim");
        match make_job(app, s, &o).await {
            Ok(()) => run.taken_over += 1,
            Err(e) => tracing::warn!(error = %e, schedule = %o.schedule_id, due = %o.due_date,
                                     "could not make a PM job; retried after the lease"),
        }
    }

    let occurrences: Vec<pm::Occurrence> = store
        .pm_latest_occurrences()
        .await?
        .into_iter()
        .map(|o| pm::Occurrence {
            schedule_id: o.schedule_id,
            due_date: o.due_date,
            completed_at: o.completed_at,
        })
        .collect();
    let inputs: Vec<pm::Schedule> = schedules.iter().map(input).collect();
    for c in pm::decide(&inputs, &occurrences, now, app.config.pm_start_time) {
        let Some(s) = by_id.get(&c.schedule_id) else {
            continue;
        };
        let o = PmOccurrence {
            schedule_id: c.schedule_id,
            due_date: c.due_date,
            org_id: s.schedule.org_id,
            job_id: Uuid::now_v7(),
            checklist_id: Uuid::now_v7(),
            parts_id: Uuid::now_v7(),
            scheduled_start: c.scheduled_start,
            claimed_at: now,
            job_created_at: None,
            completed_at: None,
        };
        if !store.claim_pm_occurrence(&o).await? {
            continue; // another node (or an earlier run) has it
        }
        match make_job(app, s, &o).await {
            Ok(()) => run.created += 1,
            Err(e) => tracing::warn!(error = %e, schedule = %o.schedule_id, due = %o.due_date,
                                     "could not make a PM job; retried after the lease"),
        }
    }
    Ok(run)
}

/// The decision's view of a stored schedule.
pub fn input(s: &PmSchedule) -> pm::Schedule {
    pm::Schedule {
        id: s.schedule.id,
        rule: s.schedule.rule.clone(),
        anchor: s.schedule.anchor,
        horizon_days: s.schedule.horizon_days,
        start_date: s.schedule.start_date,
        time_zone: pm::zone(&s.time_zone),
        last_due: s.last_due_date,
        last_completed_at: s.last_completed_at,
    }
}

/// Make (or finish making) the occurrence's job with its claimed ids, then mark it made.
async fn make_job(app: &AppState, s: &PmSchedule, o: &PmOccurrence) -> Result<(), ApiError> {
    let org_id = s.schedule.org_id;
    let actor = Actor {
        user_id: Uuid::nil(),
        org_id,
        role: Role::Dispatcher,
        name: SCHEDULER_NAME.into(),
    };
    let mut assignees = Vec::new();
    if let Some(name) = &s.schedule.assignee {
        match app.store.user_by_name(name).await? {
            Some(u) if u.org_id == org_id && u.role == Role::Technician => {
                assignees.push(name.clone());
            }
            _ => tracing::warn!(schedule = %s.schedule.id, assignee = %name,
                                "the schedule's assignee is no longer a technician of the org; \
                                 the job is left unassigned"),
        }
    }
    let title: String = format!("{}: {}", s.template.name, s.asset_name)
        .chars()
        .take(schemas::api::limits::LINE)
        .collect();
    let minutes = i64::from(s.template.estimated_minutes);
    let body = CreateJob {
        title,
        description: format!(
            "Preventive maintenance due {} (schedule {}).",
            o.due_date, s.schedule.id
        ),
        template: Some(s.template.checklist_template.clone()),
        priority: None,
        customer: Some(Customer {
            id: Some(s.customer_id),
            name: s.customer_name.clone(),
            ..Customer::default()
        }),
        site: Some(Site {
            id: Some(s.site_id),
            name: s.site_name.clone(),
            ..Site::default()
        }),
        asset: Some(schemas::job::Asset {
            id: Some(s.schedule.asset_id),
            name: s.asset_name.clone(),
            ..schemas::job::Asset::default()
        }),
        schedule: Some(Schedule {
            start: o.scheduled_start,
            end: Some(o.scheduled_start + chrono::Duration::minutes(minutes)),
        }),
        assignees,
    };
    let ids = JobIds {
        job: o.job_id,
        checklist: o.checklist_id,
        parts: o.parts_id,
    };
    jobs::create_job_with(app, &actor, body, Some(ids)).await?;
    app.store
        .pm()
        .pm_job_created(o.schedule_id, o.due_date, Utc::now())
        .await?;
    Ok(())
}
