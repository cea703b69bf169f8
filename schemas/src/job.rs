//! The **job** document: the work order as the technician sees it.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc, ScalarValue};
use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::doc::{self, DocKind, get_obj, put_json};
use crate::{DocError, JobStatus, Priority};

/// The typed state of a job document.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    pub kind: DocKind,
    pub schema_version: u64,
    pub id: Uuid,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub customer: Customer,
    #[serde(default)]
    pub site: Site,
    #[serde(default)]
    pub asset: Option<Asset>,
    /// User names of the technicians the job is assigned to.
    #[serde(default)]
    pub assignees: Vec<String>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub priority: Priority,
    pub status: JobStatus,
    #[serde(default)]
    pub status_history: Vec<StatusChange>,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub time_entries: Vec<TimeEntry>,
    #[serde(default)]
    pub signoff: Option<Signoff>,
    pub checklist_id: Uuid,
    pub parts_id: Uuid,
    /// The job this one follows up, when a technician created it on site.
    #[serde(default)]
    pub follow_up_of: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// What opened the job when the server did so by itself (a sensor's trigger rule); set at
    /// creation and never changed (the server's guard puts it back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<JobSource>,
}

/// What opened a job that no person created: `{"sensor": id}` for a sensor's trigger rule.
#[derive(
    utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JobSource {
    /// The sensor whose readings crossed its thresholds.
    Sensor(Uuid),
}

#[derive(
    utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema,
)]
pub struct Customer {
    /// The customer's row in the dispatcher's records, when the job was made from them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(
    utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema,
)]
pub struct Site {
    /// The site's row in the dispatcher's records, when the job was made from them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub name: String,
    #[serde(default)]
    pub address: Option<String>,
}

#[derive(
    utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema,
)]
pub struct Asset {
    /// The asset's row in the dispatcher's records, when the job was made from them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub name: String,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// The window the customer was promised.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Schedule {
    pub start: DateTime<Utc>,
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusChange {
    pub from: Option<JobStatus>,
    pub to: JobStatus,
    pub by: String,
    /// The device's clock when the change was made.
    pub at: DateTime<Utc>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TimeEntry {
    pub id: String,
    pub by: String,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub stopped_at: Option<DateTime<Utc>>,
}

/// The customer's sign-off, recorded on the technician's device.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Signoff {
    pub signer_name: String,
    /// sha256 of the signature PNG, stored as a blob under that hash.
    pub signature_sha256: String,
    pub signed_at: DateTime<Utc>,
    /// sha256 over the checklist and parts exactly as shown to the signer
    /// (see [`crate::checklist::signoff_summary_hash`]).
    pub summary_sha256: String,
    pub by: String,
}

/// What a new job is made of.
#[derive(utoipa::ToSchema, Clone, Debug, Default, Serialize, Deserialize)]
pub struct NewJob {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub customer: Customer,
    #[serde(default)]
    pub site: Site,
    #[serde(default)]
    pub asset: Option<Asset>,
    #[serde(default)]
    pub assignees: Vec<String>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default)]
    pub follow_up_of: Option<Uuid>,
}

impl NewJob {
    /// A job at a customer's site, optionally scheduled: what demo data and quick entry need.
    pub fn at_site(
        title: &str,
        customer: &str,
        site: &str,
        start: Option<DateTime<Utc>>,
        priority: Priority,
    ) -> NewJob {
        NewJob {
            title: title.into(),
            customer: Customer {
                name: customer.into(),
                ..Default::default()
            },
            site: Site {
                name: site.into(),
                ..Default::default()
            },
            schedule: start.map(|start| Schedule { start, end: None }),
            priority,
            ..Default::default()
        }
    }
}

pub fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Create a job document. The initial status is `assigned` when there are assignees,
/// `pending` otherwise.
pub fn create(
    actor: &automerge::ActorId,
    id: Uuid,
    checklist_id: Uuid,
    parts_id: Uuid,
    new: &NewJob,
    by: &str,
    at: DateTime<Utc>,
) -> Result<AutoCommit, DocError> {
    let mut d = doc::new_doc(DocKind::Job, id, actor)?;
    let status = if new.assignees.is_empty() {
        JobStatus::Pending
    } else {
        JobStatus::Assigned
    };
    let fields = serde_json::json!({
        "title": new.title,
        "description": new.description,
        "customer": new.customer,
        "site": new.site,
        "asset": new.asset,
        "assignees": new.assignees,
        "schedule": new.schedule,
        "priority": new.priority,
        "status": status,
        "status_history": [{"from": null, "to": status, "by": by, "at": ts(at)}],
        "time_entries": [],
        "signoff": null,
        "checklist_id": checklist_id,
        "parts_id": parts_id,
        "follow_up_of": new.follow_up_of,
        "created_at": ts(at),
        "created_by": by,
    });
    for (k, v) in fields.as_object().expect("object literal") {
        put_json(&mut d, &ROOT, k, v)?;
    }
    d.put_object(ROOT, "notes", ObjType::Text)?;
    Ok(d)
}

/// A new job's three documents: the job, its checklist made from a template, and its empty
/// parts list, linked by their ids. Made the same way on a device and on the server.
pub struct JobBundle {
    pub job_id: Uuid,
    pub checklist_id: Uuid,
    pub parts_id: Uuid,
    pub job: AutoCommit,
    pub checklist: AutoCommit,
    pub parts: AutoCommit,
}

impl JobBundle {
    /// The documents with their ids and kinds, the job first.
    pub fn into_docs(self) -> [(Uuid, DocKind, AutoCommit); 3] {
        [
            (self.job_id, DocKind::Job, self.job),
            (self.checklist_id, DocKind::Checklist, self.checklist),
            (self.parts_id, DocKind::Parts, self.parts),
        ]
    }
}

/// Make a new job's documents (uncommitted) with fresh ids, written by `actor`, created by `by`
/// at `at`.
pub fn new_bundle(
    actor: &automerge::ActorId,
    new: &NewJob,
    template: &crate::template::Template,
    by: &str,
    at: DateTime<Utc>,
) -> Result<JobBundle, DocError> {
    let ids = (crate::new_id(), crate::new_id(), crate::new_id());
    new_bundle_with_ids(actor, ids, new, template, by, at)
}

/// [`new_bundle`] with the ids (job, checklist, parts) chosen beforehand: the server's scheduler
/// records them before it makes the job, so finishing an interrupted creation makes the same job.
pub fn new_bundle_with_ids(
    actor: &automerge::ActorId,
    (job_id, checklist_id, parts_id): (Uuid, Uuid, Uuid),
    new: &NewJob,
    template: &crate::template::Template,
    by: &str,
    at: DateTime<Utc>,
) -> Result<JobBundle, DocError> {
    Ok(JobBundle {
        job_id,
        checklist_id,
        parts_id,
        job: create(actor, job_id, checklist_id, parts_id, new, by, at)?,
        checklist: crate::checklist::create(actor, checklist_id, job_id, template)?,
        parts: crate::parts::create(actor, parts_id, job_id)?,
    })
}

/// Record what opened a new job (before its first commit: `source` is a creation field).
pub fn set_source(doc: &mut AutoCommit, source: &JobSource) -> Result<(), DocError> {
    let v = serde_json::to_value(source)?;
    put_json(doc, &ROOT, "source", &v)?;
    Ok(())
}

/// Replace the job's title.
pub fn set_title(doc: &mut AutoCommit, title: &str) -> Result<(), DocError> {
    doc.put(ROOT, "title", title)?;
    Ok(())
}

/// Move the job to `to`, appending a history entry. The workflow check is the caller's
/// (a dispatcher may override what a technician may not).
pub fn set_status(
    doc: &mut AutoCommit,
    from: JobStatus,
    to: JobStatus,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), DocError> {
    doc.put(ROOT, "status", to.as_str())?;
    let history = get_obj(doc, &ROOT, "status_history", "status_history")?;
    let idx = doc.length(&history);
    let entry = doc.insert_object(&history, idx, ObjType::Map)?;
    doc.put(&entry, "from", from.as_str())?;
    doc.put(&entry, "to", to.as_str())?;
    doc.put(&entry, "by", by)?;
    doc.put(&entry, "at", ts(at))?;
    Ok(())
}

/// Replace the notes, as a text diff so concurrent edits on two devices merge character by
/// character instead of one overwriting the other.
pub fn set_notes(doc: &mut AutoCommit, text: &str) -> Result<(), DocError> {
    let notes = match doc.get(ROOT, "notes")? {
        Some((automerge::Value::Object(ObjType::Text), id)) => id,
        _ => doc.put_object(ROOT, "notes", ObjType::Text)?,
    };
    doc.update_text(&notes, text)?;
    Ok(())
}

/// Add a note at the end of the notes, as its own line: it is inserted with a line break after
/// it (and one before it when the notes do not end with one), so two notes added on two
/// devices at the same time merge as two lines, never glued into one.
pub fn append_note(doc: &mut AutoCommit, note: &str) -> Result<(), DocError> {
    let notes = match doc.get(ROOT, "notes")? {
        Some((automerge::Value::Object(ObjType::Text), id)) => id,
        _ => doc.put_object(ROOT, "notes", ObjType::Text)?,
    };
    let current = doc.text(&notes)?;
    let mut line = String::new();
    if !current.is_empty() && !current.ends_with('\n') {
        line.push('\n');
    }
    line.push_str(note.trim_end_matches('\n'));
    line.push('\n');
    let end = doc.length(&notes);
    doc.splice_text(&notes, end, 0, &line)?;
    Ok(())
}

pub fn start_time_entry(
    doc: &mut AutoCommit,
    entry_id: &str,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), DocError> {
    let list = get_obj(doc, &ROOT, "time_entries", "time_entries")?;
    let idx = doc.length(&list);
    let entry = doc.insert_object(&list, idx, ObjType::Map)?;
    doc.put(&entry, "id", entry_id)?;
    doc.put(&entry, "by", by)?;
    doc.put(&entry, "started_at", ts(at))?;
    doc.put(&entry, "stopped_at", ScalarValue::Null)?;
    Ok(())
}

pub fn stop_time_entry(
    doc: &mut AutoCommit,
    entry_id: &str,
    at: DateTime<Utc>,
) -> Result<(), DocError> {
    let list = get_obj(doc, &ROOT, "time_entries", "time_entries")?;
    let (_, entry) = doc::find_in_list(doc, &list, entry_id)
        .ok_or_else(|| DocError::Malformed(format!("time_entries[{entry_id}]")))?;
    doc.put(&entry, "stopped_at", ts(at))?;
    Ok(())
}

pub fn set_signoff(doc: &mut AutoCommit, signoff: &Signoff) -> Result<(), DocError> {
    put_json(doc, &ROOT, "signoff", &serde_json::to_value(signoff)?)
}

pub fn set_priority(doc: &mut AutoCommit, priority: Priority) -> Result<(), DocError> {
    doc.put(ROOT, "priority", priority.as_str())?;
    Ok(())
}

pub fn set_schedule(doc: &mut AutoCommit, schedule: Option<&Schedule>) -> Result<(), DocError> {
    put_json(doc, &ROOT, "schedule", &serde_json::to_value(schedule)?)
}

pub fn set_assignees(doc: &mut AutoCommit, assignees: &[String]) -> Result<(), DocError> {
    put_json(doc, &ROOT, "assignees", &serde_json::to_value(assignees)?)
}

/// The few fields checked before every edit on a job's work, read directly from the document
/// (microseconds) rather than reading the whole job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobHeader {
    pub id: Uuid,
    pub status: JobStatus,
    pub signed_off: bool,
    pub checklist_id: Uuid,
    pub parts_id: Uuid,
}

pub fn read_header(doc: &AutoCommit) -> Result<JobHeader, DocError> {
    let found = doc::kind_of(doc)?;
    if found != DocKind::Job.as_str() {
        return Err(DocError::WrongKind {
            expected: "job",
            found,
        });
    }
    let uuid = |key: &str| {
        doc::get_str(doc, &ROOT, key)
            .and_then(|s| Uuid::parse_str(&s).ok())
            .ok_or_else(|| DocError::Malformed(key.to_string()))
    };
    let status = doc::get_str(doc, &ROOT, "status")
        .and_then(|s| JobStatus::parse(&s))
        .ok_or_else(|| DocError::Malformed("status".into()))?;
    let signed_off = matches!(
        doc.get(ROOT, "signoff")?,
        Some((automerge::Value::Object(_), _))
    );
    Ok(JobHeader {
        id: uuid("id")?,
        status,
        signed_off,
        checklist_id: uuid("checklist_id")?,
        parts_id: uuid("parts_id")?,
    })
}

pub fn read(doc: &AutoCommit) -> Result<Job, DocError> {
    doc::read_state(doc, DocKind::Job)
}
