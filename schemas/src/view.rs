//! The merged view of one job and its documents, as both the device (`mobile-shell job show
//! --json`) and the server (`GET /api/v1/jobs/{id}`) present it. One type, so the field names
//! cannot drift apart.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::checklist::{Checklist, ChecklistItem, Progress};
use crate::job::{Asset, Customer, Job, Schedule, Signoff, Site, StatusChange, TimeEntry};
use crate::parts::{PartLine, Parts};
use crate::photo::Photo;
use crate::{JobStatus, Priority};

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub status: JobStatus,
    pub priority: Priority,
    pub customer: Customer,
    pub site: Site,
    pub asset: Option<Asset>,
    pub assignees: Vec<String>,
    pub schedule: Option<Schedule>,
    pub notes: String,
    pub status_history: Vec<StatusChange>,
    pub time_entries: Vec<TimeEntry>,
    pub follow_up_of: Option<Uuid>,
    /// What opened the job when no person did: `{"sensor": id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::job::JobSource>,
    pub checklist: ChecklistView,
    pub parts: Vec<PartLine>,
    pub photos: Vec<Photo>,
    pub signoff: Option<Signoff>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChecklistView {
    pub id: Uuid,
    pub template: String,
    pub title: String,
    pub progress: Progress,
    pub items: Vec<ChecklistItem>,
}

impl JobView {
    /// Assemble the view. Photos are listed oldest first.
    pub fn assemble(
        job: Job,
        checklist: Checklist,
        parts: Parts,
        mut photos: Vec<Photo>,
    ) -> JobView {
        photos.sort_by_key(|a| (a.taken_at, a.id));
        JobView {
            id: job.id,
            title: job.title,
            description: job.description,
            status: job.status,
            priority: job.priority,
            customer: job.customer,
            site: job.site,
            asset: job.asset,
            assignees: job.assignees,
            schedule: job.schedule,
            notes: job.notes,
            status_history: job.status_history,
            time_entries: job.time_entries,
            follow_up_of: job.follow_up_of,
            source: job.source,
            checklist: ChecklistView {
                id: checklist.id,
                progress: checklist.progress(),
                template: checklist.template,
                title: checklist.title,
                items: checklist.items,
            },
            parts: parts.lines.into_values().collect(),
            photos,
            signoff: job.signoff,
        }
    }

    /// Whether the checklist and parts still hash to the summary the customer signed: `None`
    /// without a sign-off, `Some(false)` when something changed after signing.
    pub fn signoff_matches(&self) -> Option<bool> {
        let signoff = self.signoff.as_ref()?;
        let mut lines: Vec<&PartLine> = self.parts.iter().collect();
        lines.sort_by(|a, b| a.id.cmp(&b.id));
        Some(crate::checklist::summary_hash(&self.checklist.items, lines) == signoff.summary_sha256)
    }
}
