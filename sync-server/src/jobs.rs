//! The job service: what a dispatcher does to jobs (create, edit, assign, unassign) and the
//! server's view of a job, for a plain [`Actor`] rather than an HTTP request, so the HTTP
//! handlers ([`crate::http::jobs`]), the demo data and tests share one implementation.
//!
//! A dispatcher's edit is an Automerge change made by the server on the job's documents, stored
//! in the same change log as a device's and fanned out the same way.

use automerge::AutoCommit;
use automerge::transaction::CommitOptions;
use axum::http::StatusCode;
use chrono::Utc;
use schemas::api::{CreateJob, PatchJob};
use schemas::job::NewJob;
use schemas::view::JobView;
use schemas::{DocKind, JobStatus, checklist, job, parts, photo, template};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{AuditRecord, DocMeta, Role, User};

/// Who acts: a user's id, org, role, and name (recorded in the job's history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub role: Role,
    pub name: String,
}

impl From<&User> for Actor {
    fn from(u: &User) -> Actor {
        Actor {
            user_id: u.id,
            org_id: u.org_id,
            role: u.role,
            name: u.name.clone(),
        }
    }
}

impl Actor {
    /// `Forbidden` unless the actor has one of `roles`; `name` says which in the refusal.
    pub fn require(&self, roles: &[Role], name: &'static str) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(name))
        }
    }

    /// Dispatchers and admins.
    pub fn dispatcher(&self) -> Result<(), ApiError> {
        self.require(&[Role::Dispatcher, Role::Admin], "dispatcher")
    }

    /// Who may read any job of the org: dispatchers, admins, back office.
    pub fn org_reader(&self) -> Result<(), ApiError> {
        self.require(
            &[Role::Dispatcher, Role::Admin, Role::BackOffice],
            "dispatcher or back office",
        )
    }
}

/// A dispatcher creates a job: its documents, assigned to the technicians named in `body`.
/// Returns the new job's view.
pub async fn create_job(app: &AppState, me: &Actor, body: CreateJob) -> Result<JobView, ApiError> {
    create_job_with(app, me, body, None).await
}

/// The ids of a job's three documents, chosen before the job is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobIds {
    pub job: Uuid,
    pub checklist: Uuid,
    pub parts: Uuid,
}

/// [`create_job`], with the documents' ids given (`None`: fresh ones). With given ids it may be
/// called again for the same job after an interruption (a node killed half way): it makes only
/// the documents not yet stored, and the assignments again, so it ends with one complete job.
pub async fn create_job_with(
    app: &AppState,
    me: &Actor,
    body: CreateJob,
    ids: Option<JobIds>,
) -> Result<JobView, ApiError> {
    create_job_from(app, me, body, ids, None).await
}

/// [`create_job_with`], for a job the server opens by itself: `source` says what opened it (a
/// sensor's rule), written into the job document before its first commit.
pub async fn create_job_from(
    app: &AppState,
    me: &Actor,
    body: CreateJob,
    ids: Option<JobIds>,
    source: Option<job::JobSource>,
) -> Result<JobView, ApiError> {
    me.dispatcher()?;
    if body.title.trim().is_empty() {
        return Err(ApiError::BadRequest("a job needs a title".into()));
    }
    let tpl_name = body
        .template
        .as_deref()
        .unwrap_or(template::DEFAULT_TEMPLATE);
    let tpl = crate::templates::resolve(app, me.org_id, tpl_name).await?;
    let names = if body.assignees.is_empty() {
        auto_assignees(app, me.org_id, &body, tpl_name, ids).await?
    } else {
        body.assignees.clone()
    };
    let mut assignees = Vec::new();
    for name in &names {
        match app.store.user_by_name(name).await? {
            Some(u) if u.org_id == me.org_id && u.role == Role::Technician => assignees.push(u),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "`{name}` is not a technician of this organisation"
                )));
            }
        }
    }
    // Ids name the org's own records: another org's customer or a site of another customer is
    // refused, not written into the job.
    let records = app.store.records();
    let customer_id = body.customer.as_ref().and_then(|c| c.id);
    if let Some(id) = customer_id
        && !records.customer_exists(me.org_id, id).await?
    {
        return Err(ApiError::BadRequest(format!(
            "`customer.id`: {id} is not a customer of this organisation"
        )));
    }
    if let Some(id) = body.site.as_ref().and_then(|s| s.id) {
        match records.site_customer(me.org_id, id).await? {
            None => {
                return Err(ApiError::BadRequest(format!(
                    "`site.id`: {id} is not a site of this organisation"
                )));
            }
            Some(owner) if customer_id.is_some_and(|c| c != owner) => {
                return Err(ApiError::BadRequest(format!(
                    "`site.id`: {id} is not a site of customer {}",
                    customer_id.unwrap_or_default()
                )));
            }
            Some(_) => {}
        }
    }
    if let Some(id) = body.asset.as_ref().and_then(|a| a.id) {
        let site_id = body.site.as_ref().and_then(|s| s.id);
        match records.asset_site(me.org_id, id).await? {
            None => {
                return Err(ApiError::BadRequest(format!(
                    "`asset.id`: {id} is not an asset of this organisation"
                )));
            }
            Some(at) if site_id.is_some_and(|s| s != at) => {
                return Err(ApiError::BadRequest(format!(
                    "`asset.id`: {id} is not at site {}",
                    site_id.unwrap_or_default()
                )));
            }
            Some(_) => {}
        }
    }
    let new = NewJob {
        title: body.title.trim().to_string(),
        description: body.description,
        customer: body.customer.unwrap_or_default(),
        site: body.site.unwrap_or_default(),
        asset: body.asset,
        assignees: assignees.iter().map(|u| u.name.clone()).collect(),
        schedule: body.schedule,
        priority: body.priority.unwrap_or_default(),
        follow_up_of: None,
    };
    let job_id = match ids {
        None if source.is_none() => create_job_documents(app, me, &new, &tpl).await?,
        None => {
            let ids = JobIds {
                job: schemas::new_id(),
                checklist: schemas::new_id(),
                parts: schemas::new_id(),
            };
            create_job_documents_once(app, me, &new, &tpl, ids, source.as_ref()).await?
        }
        Some(ids) => create_job_documents_once(app, me, &new, &tpl, ids, source.as_ref()).await?,
    };
    for u in &assignees {
        app.store.assign(job_id, u.id).await?;
    }
    let users: Vec<Uuid> = assignees.iter().map(|u| u.id).collect();
    app.sets_changed(&users, me.org_id).await;
    job_view(app, me.org_id, job_id).await
}

/// Who a job made without assignees goes to: nobody, unless the org lets rules auto-assign
/// (`planning::service::auto_assignee`). A job being completed after an interruption (`ids`
/// given, its document stored) keeps the assignees its document already names, so a second
/// attempt never picks someone else.
async fn auto_assignees(
    app: &AppState,
    org: Uuid,
    body: &CreateJob,
    template: &str,
    ids: Option<JobIds>,
) -> Result<Vec<String>, ApiError> {
    if let Some(ids) = ids
        && app.store.document(ids.job).await?.is_some()
    {
        return Ok(job_view(app, org, ids.job)
            .await
            .map(|v| v.assignees)
            .unwrap_or_default());
    }
    let at = match body.site.as_ref().and_then(|s| s.id) {
        Some(site) => app.store.planning().site_location(org, site).await?,
        None => None,
    };
    let facts = crate::planning::service::JobFacts {
        id: ids.map_or_else(Uuid::now_v7, |i| i.job),
        schedule: body.schedule.as_ref().map(|s| (s.start, s.end)),
        at,
        template: Some(template.to_string()),
        pm_minutes: None,
        pm_skills: Vec::new(),
    };
    Ok(crate::planning::service::auto_assignee(app, org, &facts)
        .await?
        .into_iter()
        .collect())
}

/// Make a job's three documents on the server and write them to the log.
pub async fn create_job_documents(
    app: &AppState,
    by: &Actor,
    new: &NewJob,
    tpl: &template::Template,
) -> Result<Uuid, ApiError> {
    let actor = automerge::ActorId::random();
    let now = Utc::now();
    let bundle = job::new_bundle(&actor, new, tpl, &by.name, now)?;
    let job_id = bundle.job_id;
    for (id, kind, mut doc) in bundle.into_docs() {
        let meta = first_commit(&mut doc, now, id, kind, by.org_id, job_id);
        store_new_document(app, &meta, &mut doc).await?;
    }
    Ok(job_id)
}

/// [`create_job_documents`] with the ids given, making only the documents that do not hold
/// changes yet: after an interrupted creation it completes the same job rather than making a
/// second one. (A document registered but left without changes by a crash gets them now; one
/// that holds changes is kept as it is.) `source`, when given, is written into the job document.
pub async fn create_job_documents_once(
    app: &AppState,
    by: &Actor,
    new: &NewJob,
    tpl: &template::Template,
    ids: JobIds,
    source: Option<&job::JobSource>,
) -> Result<Uuid, ApiError> {
    let actor = automerge::ActorId::random();
    let now = Utc::now();
    let bundle = job::new_bundle_with_ids(
        &actor,
        (ids.job, ids.checklist, ids.parts),
        new,
        tpl,
        &by.name,
        now,
    )?;
    for (id, kind, mut doc) in bundle.into_docs() {
        if let (DocKind::Job, Some(source)) = (kind, source) {
            job::set_source(&mut doc, source)?;
        }
        let meta = first_commit(&mut doc, now, id, kind, by.org_id, ids.job);
        if app.store.document(id).await?.is_none() {
            match store_new_document(app, &meta, &mut doc).await {
                // Registered meanwhile by another writer of the same job: filled below if empty.
                Err(ApiError::Conflict(_)) => {}
                other => {
                    other?;
                    continue;
                }
            }
        }
        let mut sd = app.docs.lock(&meta).await?;
        if !sd.doc.get_heads().is_empty() {
            continue;
        }
        let before = sd.doc.get_heads();
        sd.doc.merge(&mut doc).map_err(ApiError::internal)?;
        match app.docs.persist(&mut sd, &before).await {
            Ok(Some(seq)) => app.doc_changed(meta.id, seq, None),
            Ok(None) => {}
            Err(e) => {
                app.docs.discard(sd);
                return Err(e.into());
            }
        }
    }
    Ok(ids.job)
}

/// Commit a new job document's creation (at `now`) and say what it is, for the store.
fn first_commit(
    doc: &mut AutoCommit,
    now: chrono::DateTime<Utc>,
    id: Uuid,
    kind: DocKind,
    org_id: Uuid,
    job_id: Uuid,
) -> DocMeta {
    doc.commit_with(
        CommitOptions::default()
            .with_message("create job")
            .with_time(now.timestamp()),
    );
    DocMeta {
        id,
        org_id,
        kind: kind.as_str().to_string(),
        job_id,
    }
}

/// Register a document the server made (`doc`, committed) and store its changes like any other:
/// in the change log, through the document cache.
pub async fn store_new_document(
    app: &AppState,
    meta: &DocMeta,
    doc: &mut AutoCommit,
) -> Result<(), ApiError> {
    app.store.create_document(meta).await?;
    let mut sd = app.docs.lock(meta).await?;
    let before = sd.doc.get_heads();
    sd.doc.merge(doc).map_err(ApiError::internal)?;
    match app.docs.persist(&mut sd, &before).await {
        // Wakes the projection: the new job's rows come with this commit, not the next tick.
        Ok(Some(seq)) => app.doc_changed(meta.id, seq, None),
        Ok(None) => {}
        Err(e) => {
            app.docs.discard(sd);
            return Err(e.into());
        }
    }
    Ok(())
}

/// A job's registry entry, if it is a job of `org`.
async fn job_meta(app: &AppState, org: Uuid, id: Uuid) -> Result<DocMeta, ApiError> {
    match app.store.document(id).await? {
        Some(m) if m.org_id == org && m.kind == DocKind::Job.as_str() => Ok(m),
        _ => Err(ApiError::NotFound(format!("job {id}"))),
    }
}

/// The document, when `user` may read it: one of their org, and for a technician one of their
/// assigned jobs (their document set). Otherwise 404 `doc-unavailable`, telling nothing more.
pub async fn readable_doc(app: &AppState, user: &User, id: Uuid) -> Result<DocMeta, ApiError> {
    let unavailable = || {
        ApiError::Rejected(
            axum::http::StatusCode::NOT_FOUND,
            "doc-unavailable",
            format!("document {id} is not in your document set"),
        )
    };
    let meta = app.store.document(id).await?.ok_or_else(unavailable)?;
    if meta.org_id != user.org_id {
        return Err(unavailable());
    }
    if user.role == Role::Technician
        && !app
            .store
            .assigned_jobs(user.id)
            .await?
            .contains(&meta.job_id)
    {
        return Err(unavailable());
    }
    Ok(meta)
}

/// Make a server change on a document: edit, commit, append to the log, fan out.
pub async fn edit_doc(
    app: &AppState,
    meta: &DocMeta,
    message: &str,
    f: impl FnOnce(&mut AutoCommit) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let mut sd = app.docs.lock(meta).await?;
    let before = sd.doc.get_heads();
    if let Err(e) = f(&mut sd.doc) {
        sd.doc.rollback();
        return Err(e);
    }
    // The server holds its own edits to the contract it holds devices to.
    if let Some(kind) = DocKind::parse(&meta.kind) {
        let violations = schemas::validate::diagnose(kind, &schemas::read_json(&sd.doc));
        if !violations.is_empty() {
            sd.doc.rollback();
            return Err(ApiError::BadRequest(format!(
                "the edit would break the {kind}: {}",
                violations.join("; ")
            )));
        }
    }
    sd.doc.commit_with(
        CommitOptions::default()
            .with_message(message.to_string())
            .with_time(Utc::now().timestamp()),
    );
    match app.docs.persist(&mut sd, &before).await {
        Ok(Some(seq)) => {
            drop(sd);
            app.doc_changed(meta.id, seq, None);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            app.docs.discard(sd);
            Err(e.into())
        }
    }
}

/// Read a document as its typed state. One that does not decode (written before the server
/// checked every change, or left broken by an unresolvable repair) is healed first: the guard
/// puts valid values back, audited and flagged like any repair. What still cannot be read is
/// [`ApiError::Broken`] with the reasons, never a 500.
async fn read<T>(
    app: &AppState,
    meta: &DocMeta,
    f: impl Fn(&AutoCommit) -> Result<T, schemas::DocError>,
) -> Result<T, ApiError> {
    {
        let sd = app.docs.lock(meta).await?;
        if let Ok(v) = f(&sd.doc) {
            return Ok(v);
        }
    }
    heal(app, meta).await?;
    let sd = app.docs.lock(meta).await?;
    f(&sd.doc).map_err(|e| {
        let kind = DocKind::parse(&meta.kind).unwrap_or(DocKind::Job);
        let mut reasons = schemas::validate::diagnose(kind, &schemas::read_json(&sd.doc));
        if reasons.is_empty() {
            reasons.push(e.to_string());
        }
        ApiError::Broken { kind, reasons }
    })
}

/// Repair a stored document that breaks the contract (see [`crate::sync::guard`]), as the server
/// and in one commit with its audit row; nothing happens to a valid document.
pub async fn heal(app: &AppState, meta: &DocMeta) -> Result<(), ApiError> {
    let Some(kind) = DocKind::parse(&meta.kind) else {
        return Ok(());
    };
    let mut sd = app.docs.lock(meta).await?;
    if sd.doc.is_empty()
        || schemas::validate::validate(kind, &schemas::read_json(&sd.doc)).is_empty()
    {
        return Ok(());
    }
    let before = sd.doc.get_heads();
    // Values come back from the last valid state in the history, not from the broken one.
    let valid = crate::sync::guard::last_valid_heads(kind, &mut sd.doc, 64);
    let Some(repair) = crate::sync::guard::check(kind, &mut sd.doc, &valid, Role::Admin) else {
        return Ok(());
    };
    let mut reasons = repair.reasons;
    reasons.extend(
        repair
            .unresolved
            .iter()
            .map(|v| format!("still invalid: {v}")),
    );
    tracing::warn!(doc = %meta.id, ?reasons, "healed a stored document that broke the contract");
    let audit = crate::store::AuditRecord {
        id: Uuid::now_v7(),
        org_id: meta.org_id,
        job_id: meta.job_id,
        doc_id: Some(meta.id),
        actor_user: None,
        actor_device: None,
        action: "repair".into(),
        reasons,
        before: Some(repair.before),
        after: Some(repair.after),
        at: Utc::now(),
        flagged: true,
    };
    match app
        .docs
        .persist_audited(&mut sd, &before, &[audit], None)
        .await
    {
        Ok(Some(seq)) => {
            drop(sd);
            app.doc_changed(meta.id, seq, None);
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(e) => {
            app.docs.discard(sd);
            Err(e.into())
        }
    }
}

/// The server's merged state of a job's documents, in the device's `job show --json` shape.
pub async fn job_view(app: &AppState, org: Uuid, id: Uuid) -> Result<JobView, ApiError> {
    let meta = job_meta(app, org, id).await?;
    let job = read(app, &meta, job::read).await?;
    let docs = app.store.job_documents(id).await?;
    let find = |kind: DocKind, want: Uuid| {
        docs.iter()
            .find(|d| d.kind == kind.as_str() && d.id == want)
            .cloned()
    };
    let cl_meta = find(DocKind::Checklist, job.checklist_id)
        .ok_or_else(|| ApiError::NotFound("the job's checklist".into()))?;
    let parts_meta = find(DocKind::Parts, job.parts_id)
        .ok_or_else(|| ApiError::NotFound("the job's parts".into()))?;
    let cl = read(app, &cl_meta, checklist::read).await?;
    let pl = read(app, &parts_meta, parts::read).await?;
    let mut photos = Vec::new();
    for m in docs.iter().filter(|d| d.kind == DocKind::Photo.as_str()) {
        // A photo document whose first changes have not arrived yet is skipped.
        if let Ok(p) = read(app, m, photo::read).await {
            photos.push(p);
        }
    }
    Ok(JobView::assemble(job, cl, pl, photos))
}

/// A dispatcher assigns (`assign`) or unassigns the technician called `name` to job `id`: the
/// assignment in the store and the job document's `assignees` change together or not at all.
pub async fn change_assignment(
    app: &AppState,
    me: &Actor,
    id: Uuid,
    name: &str,
    assign: bool,
) -> Result<JobView, ApiError> {
    me.dispatcher()?;
    let meta = job_meta(app, me.org_id, id).await?;
    let user = match app.store.user_by_name(name).await? {
        Some(u) if u.org_id == me.org_id && u.role == Role::Technician => u,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "`{name}` is not a technician of this organisation"
            )));
        }
    };
    // A job document that breaks the contract is healed first, so it can be reassigned.
    heal(app, &meta).await?;
    // Everything that can be refused is checked, and the document edit made (not yet committed),
    // before anything changes: a request that fails changes neither the assignment nor the job.
    // The job document stays locked throughout, so assignments of one job run one at a time.
    let mut sd = app.docs.lock(&meta).await?;
    let current = job::read(&sd.doc)?;
    let mut names = current.assignees.clone();
    names.retain(|n| n != &user.name);
    if assign {
        names.push(user.name.clone());
    }
    let edit = names != current.assignees;
    let before = sd.doc.get_heads();
    if edit {
        let edited = (|| -> Result<(), schemas::DocError> {
            job::set_assignees(&mut sd.doc, &names)?;
            // A pending job becomes assigned with its first technician.
            if assign && current.status == JobStatus::Pending {
                job::set_status(
                    &mut sd.doc,
                    JobStatus::Pending,
                    JobStatus::Assigned,
                    &me.name,
                    Utc::now(),
                )?;
            }
            Ok(())
        })();
        if let Err(e) = edited {
            sd.doc.rollback();
            return Err(e.into());
        }
    }
    let stored = if assign {
        app.store.assign(id, user.id).await
    } else {
        app.store.unassign(id, user.id).await
    };
    let store_changed = match stored {
        Ok(changed) => changed,
        Err(e) => {
            sd.doc.rollback();
            return Err(e.into());
        }
    };
    if edit {
        sd.doc.commit_with(
            CommitOptions::default()
                .with_message(if assign { "assign" } else { "unassign" })
                .with_time(Utc::now().timestamp()),
        );
        match app.docs.persist(&mut sd, &before).await {
            Ok(Some(seq)) => {
                drop(sd);
                app.doc_changed(meta.id, seq, None);
            }
            Ok(None) => {}
            Err(e) => {
                app.docs.discard(sd);
                // Put the assignment back as it was: the job document still says so.
                if store_changed {
                    let undone = if assign {
                        app.store.unassign(id, user.id).await
                    } else {
                        app.store.assign(id, user.id).await
                    };
                    if let Err(undo) = undone {
                        tracing::error!(job = %id, user = %user.id, error = %undo,
                            "could not undo an assignment change whose job edit failed");
                    }
                }
                return Err(e.into());
            }
        }
    } else {
        drop(sd);
    }
    app.sets_changed(&[user.id], me.org_id).await;
    job_view(app, me.org_id, id).await
}

/// The job document's version as an HTTP entity tag: its heads, hex, sorted, joined by `.`.
pub fn etag(heads: &[automerge::ChangeHash]) -> String {
    let mut hex: Vec<String> = heads.iter().map(|h| hex::encode(h.0)).collect();
    hex.sort();
    format!("\"{}\"", hex.join("."))
}

/// The heads an `If-Match` value names; `None` when it is not one of our entity tags.
pub fn parse_etag(value: &str) -> Option<Vec<automerge::ChangeHash>> {
    let inner = value.trim().strip_prefix('"')?.strip_suffix('"')?;
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner
        .split('.')
        .map(|h| {
            let bytes: [u8; 32] = hex::decode(h).ok()?.try_into().ok()?;
            Some(automerge::ChangeHash(bytes))
        })
        .collect()
}

/// The job's view and its version ([`etag`]).
pub async fn job_view_tagged(
    app: &AppState,
    org: Uuid,
    id: Uuid,
) -> Result<(JobView, String), ApiError> {
    let view = job_view(app, org, id).await?;
    let meta = job_meta(app, org, id).await?;
    let tag = etag(&app.docs.lock(&meta).await?.doc.get_heads());
    Ok((view, tag))
}

/// A dispatcher's edit. Any status may be set (dispatchers override the technician's workflow,
/// e.g. to cancel or reopen), and it is recorded in the status history like any other.
///
/// `if_match` is the version the dispatcher read ([`etag`]). When the job changed since, an
/// edit of the notes alone merges like a device's: the text is diffed against the version read,
/// so what others wrote meanwhile stays; any other field is refused with 412 (it would silently
/// undo a newer value). Without `if_match` the edit applies to the current version.
pub async fn patch_job(
    app: &AppState,
    me: &Actor,
    id: Uuid,
    body: PatchJob,
    if_match: Option<&str>,
) -> Result<JobView, ApiError> {
    me.dispatcher()?;
    let meta = job_meta(app, me.org_id, id).await?;
    if body.title.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(ApiError::BadRequest("the title cannot be empty".into()));
    }
    let current = read(app, &meta, job::read).await?;
    let stale =
        |msg: String| ApiError::Rejected(StatusCode::PRECONDITION_FAILED, "stale-version", msg);
    let read_at = match if_match {
        None => None,
        Some(v) if v.trim() == "*" => None,
        Some(v) => Some(parse_etag(v).ok_or_else(|| {
            stale(format!(
                "If-Match {v:?} is not a version of this job: read the job again"
            ))
        })?),
    };
    let only_notes = body.title.is_none()
        && body.priority.is_none()
        && body.schedule.is_none()
        && body.status.is_none();
    edit_doc(app, &meta, "dispatcher edit", |d| {
        if let Some(heads) = &read_at {
            let mut now = d.get_heads();
            now.sort();
            let mut then = heads.clone();
            then.sort();
            if now != then {
                if heads.iter().any(|h| d.get_change_by_hash(h).is_none()) {
                    return Err(stale(
                        "If-Match names a version this job never had: read the job again".into(),
                    ));
                }
                if !only_notes {
                    return Err(stale(
                        "the job changed since you read it: read it again and redo the edit".into(),
                    ));
                }
                if let Some(n) = &body.notes {
                    // The edit as it was meant: against the text the dispatcher read.
                    let mut then = d.fork_at(heads).map_err(ApiError::internal)?;
                    job::set_notes(&mut then, n)?;
                    then.commit_with(
                        CommitOptions::default()
                            .with_message("dispatcher edit".to_string())
                            .with_time(Utc::now().timestamp()),
                    );
                    d.merge(&mut then).map_err(ApiError::internal)?;
                }
                return Ok(());
            }
        }
        if let Some(t) = &body.title {
            job::set_title(d, t.trim())?;
        }
        if let Some(p) = body.priority {
            job::set_priority(d, p)?;
        }
        if let Some(s) = &body.schedule {
            job::set_schedule(d, s.as_ref())?;
        }
        if let Some(n) = &body.notes {
            job::set_notes(d, n)?;
        }
        if let Some(s) = body.status.filter(|s| *s != current.status) {
            job::set_status(d, current.status, s, &me.name, Utc::now())?;
        }
        Ok(())
    })
    .await?;
    job_view(app, me.org_id, id).await
}

/// The blob of a photo document is stored: the server sets its `upload` to `uploaded` (a server
/// change like any other, so it reaches the devices holding the job). Nothing happens to a
/// document that says so already, or to another kind (a job's signature has no such field).
pub async fn mark_uploaded(app: &AppState, meta: &DocMeta) -> Result<(), ApiError> {
    if meta.kind != DocKind::Photo.as_str() {
        return Ok(());
    }
    {
        let sd = app.docs.lock(meta).await?;
        if schemas::read_json(&sd.doc)["upload"] == "uploaded" {
            return Ok(());
        }
    }
    edit_doc(app, meta, "photo uploaded", |d| {
        use automerge::transaction::Transactable;
        d.put(automerge::ROOT, "upload", "uploaded")
            .map_err(ApiError::internal)
    })
    .await
}

/// Ids of the job's flags a dispatcher has resolved (each by a `resolved` audit row naming it).
pub fn resolved_flags(audit: &[AuditRecord]) -> std::collections::HashSet<Uuid> {
    audit
        .iter()
        .filter(|a| a.action == "resolved")
        .filter_map(|a| a.before.as_ref()?.get("flag")?.as_str()?.parse().ok())
        .collect()
}

/// A dispatcher resolves one of the job's flags: an unflagged `resolved` audit row naming it
/// (the log stays append-only; the flag's own row is kept). 404 for a flag that is not the
/// job's, 409 for one resolved already.
pub async fn resolve_flag(
    app: &AppState,
    me: &Actor,
    job_id: Uuid,
    flag_id: Uuid,
    note: &str,
) -> Result<(), ApiError> {
    me.dispatcher()?;
    match app.store.document(job_id).await? {
        Some(meta) if meta.org_id == me.org_id && meta.kind == "job" => {}
        _ => return Err(ApiError::NotFound(format!("job {job_id}"))),
    }
    let audit = app.store.job_audit(job_id).await?;
    if !audit.iter().any(|a| a.id == flag_id && a.flagged) {
        return Err(ApiError::NotFound(format!(
            "flag {flag_id} of job {job_id}"
        )));
    }
    if resolved_flags(&audit).contains(&flag_id) {
        return Err(ApiError::Conflict(format!(
            "flag {flag_id} is resolved already"
        )));
    }
    let note = note.trim();
    let row = AuditRecord {
        id: Uuid::now_v7(),
        org_id: me.org_id,
        job_id,
        doc_id: Some(job_id),
        actor_user: Some(me.user_id),
        actor_device: None,
        action: "resolved".into(),
        reasons: vec![if note.is_empty() {
            format!("resolved by {}", me.name)
        } else {
            format!("resolved by {}: {note}", me.name)
        }],
        before: Some(serde_json::json!({ "flag": flag_id })),
        after: None,
        at: Utc::now(),
        flagged: false,
    };
    app.store
        .append_changes_audited(job_id, &[], std::slice::from_ref(&row))
        .await?;
    Ok(())
}
