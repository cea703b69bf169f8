//! The technician's actions. Each one checks its input against the documents first (so bad
//! input changes nothing), then writes the documents directly and returns once the change is
//! committed to the replica. Each runs in one [`Replica::write`](crate::Replica) scope, so the
//! documents it checks and edits are the latest on disk even with another process writing.

use std::path::Path;

use automerge::AutoCommit;
use automerge::transaction::CommitOptions;
use rusqlite::OptionalExtension;
use schemas::checklist::{Checklist, ChecklistItem, ItemValue};
use schemas::job::{Job, JobHeader, NewJob, Signoff};
use schemas::parts::{NewPartLine, Parts};
use schemas::photo::{NewPhoto, Photo};
use schemas::template::ItemKind;
use schemas::{DocKind, JobStatus, checklist, job, parts, photo, template};
use uuid::Uuid;

pub use schemas::view::JobView;

use crate::events::Origin;
use crate::{Error, Replica, Result, blobs};

impl Replica {
    /// A job id from its full form, or a unique prefix or suffix of at least 4 characters (what
    /// people type; lists show the last 8 characters, the random part of a UUIDv7).
    pub fn resolve_job(&self, id_or_prefix: &str) -> Result<Uuid> {
        let needle = id_or_prefix.trim().to_ascii_lowercase();
        if let Ok(id) = Uuid::parse_str(&needle) {
            return Ok(id);
        }
        if needle.len() < 4 || !needle.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(Error::JobNotFound(id_or_prefix.to_string()));
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT id FROM q_jobs WHERE id LIKE ?1 || '%' OR id LIKE '%' || ?1 LIMIT 2",
        )?;
        let ids: Vec<String> = stmt
            .query_map([&needle], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        match ids.as_slice() {
            [one] => Uuid::parse_str(one).map_err(|e| Error::InvalidValue(e.to_string())),
            _ => Err(Error::JobNotFound(id_or_prefix.to_string())),
        }
    }

    fn read_job(&mut self, id: Uuid) -> Result<Job> {
        match self.loaded(id) {
            Ok(l) if l.kind == DocKind::Job => Ok(job::read(&l.doc)?),
            Ok(_) | Err(Error::DocNotFound(_)) => Err(Error::JobNotFound(id.to_string())),
            Err(e) => Err(e),
        }
    }

    fn header(&mut self, id: Uuid) -> Result<JobHeader> {
        match self.loaded(id) {
            Ok(l) if l.kind == DocKind::Job => Ok(job::read_header(&l.doc)?),
            Ok(_) | Err(Error::DocNotFound(_)) => Err(Error::JobNotFound(id.to_string())),
            Err(e) => Err(e),
        }
    }

    /// `e` as [`Error::Broken`] when it is a document that does not decode.
    fn broken(&mut self, job: Uuid, doc: Uuid, kind: DocKind, e: Error) -> Error {
        if !matches!(e, Error::Doc(_)) {
            return e;
        }
        let json = match self.loaded(doc) {
            Ok(l) => schemas::read_json(&l.doc),
            Err(_) => return e,
        };
        let mut reasons = schemas::validate::diagnose(kind, &json);
        if reasons.is_empty() {
            reasons.push(e.to_string());
        }
        Error::Broken { job, kind, reasons }
    }

    fn read_checklist(&mut self, id: Uuid) -> Result<Checklist> {
        Ok(checklist::read(&self.loaded(id)?.doc)?)
    }

    fn read_parts(&mut self, id: Uuid) -> Result<Parts> {
        Ok(parts::read(&self.loaded(id)?.doc)?)
    }

    fn job_photos(&mut self, job_id: Uuid) -> Result<Vec<Photo>> {
        let ids: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT id FROM q_photos WHERE job_id = ?1")?;
            stmt.query_map([job_id.to_string()], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        ids.iter()
            .map(|id| {
                let id = Uuid::parse_str(id).map_err(|e| Error::InvalidValue(e.to_string()))?;
                Ok(photo::read(&self.loaded(id)?.doc)?)
            })
            .collect()
    }

    /// Run `f` on document `id`; on failure the uncommitted operations are discarded.
    fn edit<R>(
        &mut self,
        id: Uuid,
        f: impl FnOnce(&mut AutoCommit) -> Result<R, schemas::DocError>,
    ) -> Result<R> {
        let l = self.loaded(id)?;
        match f(&mut l.doc) {
            Ok(r) => Ok(r),
            Err(e) => {
                l.doc.rollback();
                Err(e.into())
            }
        }
    }

    /// Commit the pending operations on `ids` as one change each and persist them together.
    fn commit(&mut self, ids: &[Uuid], message: &str) -> Result<()> {
        let time = self.now().timestamp();
        for id in ids {
            let options = CommitOptions::default()
                .with_message(message.to_string())
                .with_time(time);
            self.loaded(*id)?.doc.commit_with(options);
        }
        self.persist(ids, Origin::Local)
    }

    /// Checklist, parts and photos may change only while the job is open and not signed off.
    fn ensure_work_editable(&self, job: &JobHeader) -> Result<()> {
        if job.status.is_terminal() {
            return Err(Error::JobClosed {
                job: job.id,
                status: job.status,
            });
        }
        if job.signed_off {
            return Err(Error::SignedOff(job.id));
        }
        Ok(())
    }

    /// Create a job (with its checklist from `template` and an empty parts list) on the device.
    pub fn create_job(&mut self, mut new: NewJob, template_name: Option<&str>) -> Result<JobView> {
        self.write(|r| {
            if new.title.trim().is_empty() {
                return Err(Error::InvalidValue("a job needs a title".into()));
            }
            let name = template_name.unwrap_or(template::DEFAULT_TEMPLATE);
            let tpl = r
                .template(name)?
                .ok_or_else(|| Error::UnknownTemplate(name.to_string()))?;
            if new.assignees.is_empty() {
                new.assignees.push(r.user.clone());
            }
            let now = r.now();
            let b = job::new_bundle(&r.actor, &new, &tpl, &r.user, now)?;
            let (job_id, checklist_id, parts_id) = (b.job_id, b.checklist_id, b.parts_id);
            r.insert_new(job_id, DocKind::Job, job_id, b.job);
            r.insert_new(checklist_id, DocKind::Checklist, job_id, b.checklist);
            r.insert_new(parts_id, DocKind::Parts, job_id, b.parts);
            r.commit(&[job_id, checklist_id, parts_id], "create job")?;
            r.job(job_id)
        })
    }

    /// Create a follow-up job for the same customer, site and asset, assigned to this technician.
    pub fn create_follow_up(
        &mut self,
        of: Uuid,
        title: &str,
        template_name: Option<&str>,
    ) -> Result<JobView> {
        let original = self.read_job(of)?;
        let new = NewJob {
            title: title.to_string(),
            description: format!("Follow-up of \"{}\"", original.title),
            customer: original.customer,
            site: original.site,
            asset: original.asset,
            assignees: vec![self.user.clone()],
            schedule: None,
            priority: original.priority,
            follow_up_of: Some(of),
        };
        self.create_job(new, template_name)
    }

    /// The job with its checklist, parts, photos and sign-off.
    /// The whole job. A document of it that cannot be read gives [`Error::Broken`] with the
    /// reasons, for the app to show in its place.
    pub fn job(&mut self, id: Uuid) -> Result<JobView> {
        let job = self
            .read_job(id)
            .map_err(|e| self.broken(id, id, DocKind::Job, e))?;
        let checklist = self
            .read_checklist(job.checklist_id)
            .map_err(|e| self.broken(id, job.checklist_id, DocKind::Checklist, e))?;
        let parts = self
            .read_parts(job.parts_id)
            .map_err(|e| self.broken(id, job.parts_id, DocKind::Parts, e))?;
        let photos = self.job_photos(id)?;
        Ok(JobView::assemble(job, checklist, parts, photos))
    }

    /// Move the job through its workflow, appending a history entry with who and when.
    pub fn set_status(&mut self, id: Uuid, to: JobStatus) -> Result<()> {
        self.write(|r| {
            let job = r.header(id)?;
            if !job.status.can_transition_to(to) {
                return Err(Error::InvalidTransition {
                    from: job.status,
                    to,
                });
            }
            if to == JobStatus::Completed {
                ensure_complete(&r.read_checklist(job.checklist_id)?)?;
            }
            let (user, now) = (r.user.clone(), r.now());
            r.edit(id, |d| job::set_status(d, job.status, to, &user, now))?;
            r.commit(&[id], &format!("status {to}"))
        })
    }

    pub fn set_notes(&mut self, id: Uuid, text: &str) -> Result<()> {
        self.write(|r| {
            r.header(id)?;
            r.edit(id, |d| job::set_notes(d, text))?;
            r.commit(&[id], "notes")
        })
    }

    /// Add a note as its own line at the end of the job's notes (see [`job::append_note`]): notes
    /// added on two devices at once both stay, on lines of their own.
    pub fn append_note(&mut self, id: Uuid, note: &str) -> Result<()> {
        if note.trim().is_empty() {
            return Err(Error::InvalidValue("a note needs some text".into()));
        }
        self.write(|r| {
            r.header(id)?;
            r.edit(id, |d| job::append_note(d, note))?;
            r.commit(&[id], "note")
        })
    }

    /// Start timing work on the job; returns the time entry's id.
    pub fn start_time(&mut self, id: Uuid) -> Result<String> {
        self.write(|r| {
            let job = r.read_job(id)?;
            if job.status.is_terminal() {
                return Err(Error::JobClosed {
                    job: id,
                    status: job.status,
                });
            }
            if job
                .time_entries
                .iter()
                .any(|t| t.by == r.user && t.stopped_at.is_none())
            {
                return Err(Error::TimeEntryRunning(r.user.clone()));
            }
            let entry = schemas::new_id().to_string();
            let (user, now) = (r.user.clone(), r.now());
            r.edit(id, |d| job::start_time_entry(d, &entry, &user, now))?;
            r.commit(&[id], "start time")?;
            Ok(entry)
        })
    }

    /// Stop this technician's running time entry on the job.
    pub fn stop_time(&mut self, id: Uuid) -> Result<()> {
        self.write(|r| {
            let job = r.read_job(id)?;
            let entry = job
                .time_entries
                .iter()
                .find(|t| t.by == r.user && t.stopped_at.is_none())
                .ok_or_else(|| Error::NoRunningTimeEntry(r.user.clone()))?
                .id
                .clone();
            let now = r.now();
            r.edit(id, |d| job::stop_time_entry(d, &entry, now))?;
            r.commit(&[id], "stop time")
        })
    }

    /// Set (or clear, with `None`) a checklist item's value.
    pub fn set_check(
        &mut self,
        job_id: Uuid,
        item_id: &str,
        value: Option<ItemValue>,
    ) -> Result<()> {
        self.set_check_with(job_id, item_id, |_| Ok(value))
    }

    /// Set a checklist item from text as typed (numbers for number items).
    pub fn set_check_str(&mut self, job_id: Uuid, item_id: &str, raw: &str) -> Result<()> {
        self.set_check_with(job_id, item_id, |item| {
            ItemValue::parse_for(item.kind, raw)
                .map(Some)
                .map_err(Error::InvalidValue)
        })
    }

    /// The hot path of a technician's day: one header read, one checklist read, one write.
    fn set_check_with(
        &mut self,
        job_id: Uuid,
        item_id: &str,
        value: impl FnOnce(&ChecklistItem) -> Result<Option<ItemValue>>,
    ) -> Result<()> {
        self.write(|r| {
            let job = r.header(job_id)?;
            r.ensure_work_editable(&job)?;
            let checklist = r.read_checklist(job.checklist_id)?;
            let item = checklist.item(item_id).ok_or_else(|| Error::UnknownItem {
                job: job_id,
                item: item_id.to_string(),
            })?;
            let value = value(item)?;
            if let Some(v) = &value {
                item.check_value(v).map_err(Error::InvalidValue)?;
            }
            let (user, now) = (r.user.clone(), r.now());
            r.edit(job.checklist_id, |d| {
                checklist::set_value(d, item_id, value.as_ref(), &user, now)
            })?;
            r.commit(&[job.checklist_id], &format!("check {item_id}"))
        })
    }

    /// Record a part used; returns the new line's id.
    pub fn add_part(&mut self, job_id: Uuid, line: NewPartLine) -> Result<String> {
        self.write(|r| {
            let job = r.header(job_id)?;
            r.ensure_work_editable(&job)?;
            if line.sku.trim().is_empty() {
                return Err(Error::InvalidValue("a part line needs a SKU".into()));
            }
            parts::check_qty(line.qty).map_err(Error::InvalidValue)?;
            let line_id = schemas::new_id().to_string();
            let (user, now) = (r.user.clone(), r.now());
            r.edit(job.parts_id, |d| {
                parts::add_line(d, &line_id, &line, &user, now)
            })?;
            r.commit(&[job.parts_id], "add part")?;
            Ok(line_id)
        })
    }

    /// A part line's id from its full form or a unique prefix or suffix.
    pub fn resolve_part_line(&mut self, job_id: Uuid, id_or_prefix: &str) -> Result<String> {
        let job = self.header(job_id)?;
        let parts = self.read_parts(job.parts_id)?;
        let matches: Vec<&String> = parts
            .lines
            .keys()
            .filter(|k| k.starts_with(id_or_prefix) || k.ends_with(id_or_prefix))
            .collect();
        match matches.as_slice() {
            [one] if !id_or_prefix.is_empty() => Ok((*one).clone()),
            _ => Err(Error::UnknownPartLine {
                job: job_id,
                line: id_or_prefix.to_string(),
            }),
        }
    }

    pub fn set_part_qty(&mut self, job_id: Uuid, line_id: &str, qty: f64) -> Result<()> {
        self.write(|r| {
            let job = r.header(job_id)?;
            r.ensure_work_editable(&job)?;
            parts::check_qty(qty).map_err(Error::InvalidValue)?;
            if !r.read_parts(job.parts_id)?.lines.contains_key(line_id) {
                return Err(Error::UnknownPartLine {
                    job: job_id,
                    line: line_id.to_string(),
                });
            }
            let (user, now) = (r.user.clone(), r.now());
            r.edit(job.parts_id, |d| {
                parts::set_qty(d, line_id, qty, &user, now)
            })?;
            r.commit(&[job.parts_id], "change part")
        })
    }

    pub fn remove_part(&mut self, job_id: Uuid, line_id: &str) -> Result<()> {
        self.write(|r| {
            let job = r.header(job_id)?;
            r.ensure_work_editable(&job)?;
            if !r.read_parts(job.parts_id)?.lines.contains_key(line_id) {
                return Err(Error::UnknownPartLine {
                    job: job_id,
                    line: line_id.to_string(),
                });
            }
            r.edit(job.parts_id, |d| parts::remove_line(d, line_id))?;
            r.commit(&[job.parts_id], "remove part")
        })
    }

    /// Attach a photo: the file is checked to be a whole image, copied into the data dir under its
    /// sha256, and a photo document is created. When `item` is a photo-required checklist item,
    /// the photo answers it in the same commit.
    pub fn attach_photo(
        &mut self,
        job_id: Uuid,
        file: &Path,
        item: Option<&str>,
        caption: &str,
    ) -> Result<Photo> {
        // Read and check the file before taking the write lock: a big photo must not hold up
        // other writers, and a file that is not an image is refused from its first bytes.
        let (bytes, info) = blobs::read_image(file).map_err(|reason| Error::NotAnImage {
            path: file.display().to_string(),
            reason,
        })?;
        self.write(|r| {
            let job = r.header(job_id)?;
            r.ensure_work_editable(&job)?;
            let answers_item = match item {
                Some(item_id) => {
                    let checklist = r.read_checklist(job.checklist_id)?;
                    let item = checklist.item(item_id).ok_or_else(|| Error::UnknownItem {
                        job: job_id,
                        item: item_id.to_string(),
                    })?;
                    item.kind == ItemKind::PhotoRequired
                }
                None => false,
            };
            let blob = blobs::store(&r.dir, &bytes)?;
            let photo_id = schemas::new_id();
            let new = NewPhoto {
                job_id,
                checklist_item: item.map(String::from),
                sha256: blob.sha256,
                size: blob.size,
                mime: info.mime.to_string(),
                width: info.width,
                height: info.height,
                taken_at: r.now(),
                location: None,
                caption: caption.to_string(),
            };
            let doc = photo::create(&r.actor, photo_id, &new, &r.user)?;
            r.insert_new(photo_id, DocKind::Photo, job_id, doc);
            let mut ids = vec![photo_id];
            if let (true, Some(item_id)) = (answers_item, item) {
                let (user, now) = (r.user.clone(), r.now());
                let value = ItemValue::Text(photo_id.to_string());
                r.edit(job.checklist_id, |d| {
                    checklist::set_value(d, item_id, Some(&value), &user, now)
                })?;
                ids.push(job.checklist_id);
            }
            r.commit(&ids, "attach photo")?;
            Ok(photo::read(&r.loaded(photo_id)?.doc)?)
        })
    }

    /// Record the customer's sign-off: the signer's name, their signature (a PNG, stored as a
    /// blob), the device time, and a hash over the checklist and parts as shown to the signer.
    /// After it, the checklist and parts are locked on this device.
    pub fn sign_off(
        &mut self,
        job_id: Uuid,
        signer_name: &str,
        signature_png: &Path,
    ) -> Result<Signoff> {
        self.write(|r| {
            let job = r.header(job_id)?;
            r.ensure_work_editable(&job)?;
            if job.status != JobStatus::InProgress {
                return Err(Error::InvalidValue(format!(
                    "a job is signed off while in progress (this one is {})",
                    job.status
                )));
            }
            if signer_name.trim().is_empty() {
                return Err(Error::InvalidValue("the signer's name is required".into()));
            }
            let checklist = r.read_checklist(job.checklist_id)?;
            ensure_complete(&checklist)?;
            let parts = r.read_parts(job.parts_id)?;
            let not_image = |reason: String| Error::NotAnImage {
                path: signature_png.display().to_string(),
                reason,
            };
            let (bytes, info) = blobs::read_image(signature_png).map_err(not_image)?;
            if info.mime != "image/png" {
                return Err(not_image(format!(
                    "a signature must be a PNG, this is {}",
                    info.mime
                )));
            }
            let blob = blobs::store(&r.dir, &bytes)?;
            let signoff = Signoff {
                signer_name: signer_name.trim().to_string(),
                signature_sha256: blob.sha256,
                signed_at: r.now(),
                summary_sha256: checklist::signoff_summary_hash(&checklist, &parts),
                by: r.user.clone(),
            };
            r.edit(job_id, |d| job::set_signoff(d, &signoff))?;
            r.commit(&[job_id], "sign-off")?;
            Ok(signoff)
        })
    }

    /// The photo document `id`, if the device holds it.
    pub fn photo(&mut self, id: Uuid) -> Result<Option<Photo>> {
        let exists: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM q_photos WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        Ok(Some(photo::read(&self.loaded(id)?.doc)?))
    }
}

/// Completing a job and the customer's sign-off both need every required item answered.
fn ensure_complete(checklist: &Checklist) -> Result<()> {
    let missing: Vec<String> = checklist
        .missing_required()
        .into_iter()
        .map(String::from)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::ChecklistIncomplete(missing))
    }
}
