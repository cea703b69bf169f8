//! Checklist templates per org. The built-in pack (`schemas::template`, version 0) is every org's
//! starting point; an org writes its own templates and new versions of them through the API,
//! each version kept (`checklist_templates`). A job's checklist copies the version it is made
//! from, so a new version changes only the jobs made after it. Devices fetch the org's current
//! set when they sync (`GET /api/v1/templates`, with its `ETag`).

use axum::http::StatusCode;
use chrono::Utc;
use schemas::api::TemplateRecord;
use schemas::template::{self, Template};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::jobs::Actor;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::records::StoredTemplate;

/// The org's current templates by name: its own latest versions, and the built-in ones it has
/// not replaced.
pub async fn current(app: &AppState, org: Uuid) -> Result<Vec<TemplateRecord>, ApiError> {
    let own = app.store.records().templates(org).await?;
    let mut all: Vec<TemplateRecord> = template::builtin()
        .into_iter()
        .filter(|b| !own.iter().any(|o| o.template.name == b.name))
        .map(builtin_record)
        .collect();
    all.extend(own.into_iter().map(record));
    all.sort_by(|a, b| a.template.name.cmp(&b.template.name));
    Ok(all)
}

/// The `ETag` of [`current`]'s answer: it moves whenever a template is added or versioned, so a
/// device that holds the set asks with `If-None-Match` and gets a 304.
pub fn set_tag(set: &[TemplateRecord]) -> String {
    let mut h = Sha256::new();
    for t in set {
        h.update(t.template.name.as_bytes());
        h.update(b":");
        h.update(t.template.version.to_string().as_bytes());
        h.update(b"\n");
    }
    format!("\"{}\"", &hex::encode(h.finalize())[..32])
}

/// One version of a template (`None`: the current one). Version 0 is the built-in one.
pub async fn find(
    app: &AppState,
    org: Uuid,
    name: &str,
    version: Option<u32>,
) -> Result<Option<TemplateRecord>, ApiError> {
    if version != Some(0)
        && let Some(own) = app.store.records().template(org, name, version).await?
    {
        return Ok(Some(record(own)));
    }
    Ok(match version {
        None | Some(0) => template::find(name).map(builtin_record),
        Some(_) => None,
    })
}

/// The template a new job of the org gets when it names `name`: the org's current version.
pub async fn resolve(app: &AppState, org: Uuid, name: &str) -> Result<Template, ApiError> {
    find(app, org, name, None)
        .await?
        .map(|r| r.template)
        .ok_or_else(|| {
            ApiError::BadRequest(format!("`template`: unknown checklist template `{name}`"))
        })
}

/// What a write expects to find.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// `POST`: a name the org has no template of, built-in or its own.
    New,
    /// `PUT`: a template that exists; with a version (from `If-Match`), that one must be current.
    Existing(Option<u32>),
}

/// Write `t` as the next version of its name. The checks name each bad field; the version is
/// the server's to give.
pub async fn write(
    app: &AppState,
    me: &Actor,
    mut t: Template,
    expect: Expect,
) -> Result<TemplateRecord, ApiError> {
    me.dispatcher()?;
    t.name = t.name.trim().to_string();
    t.title = t.title.trim().to_string();
    let problems = template::problems(&t);
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems.join("; ")));
    }
    let current = find(app, me.org_id, &t.name, None).await?;
    let latest = match (expect, &current) {
        (Expect::New, None) => 0,
        (Expect::New, Some(c)) => {
            return Err(ApiError::Conflict(format!(
                "`name`: the organisation has a template `{}` already (version {}); send a new version with PUT /api/v1/templates/{}",
                t.name, c.template.version, t.name
            )));
        }
        (Expect::Existing(_), None) => {
            return Err(ApiError::NotFound(format!(
                "template `{}` (create it with POST /api/v1/templates)",
                t.name
            )));
        }
        (Expect::Existing(Some(v)), Some(c)) if v != c.template.version => {
            return Err(stale(&t.name, v, c.template.version));
        }
        (Expect::Existing(_), Some(c)) => c.template.version,
    };
    t.version = latest + 1;
    let stored = StoredTemplate {
        org_id: me.org_id,
        template: t,
        created_by: me.name.clone(),
        created_at: Utc::now(),
    };
    match app.store.records().add_template_version(&stored).await {
        Ok(()) => {}
        // Someone else wrote this version between our read and our write.
        Err(StoreError::Conflict(_)) => {
            return Err(stale(&stored.template.name, latest, latest + 1));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(
        org = %me.org_id,
        template = %stored.template.name,
        version = stored.template.version,
        by = %me.name,
        "template version written"
    );
    Ok(record(stored))
}

fn stale(name: &str, read: u32, now: u32) -> ApiError {
    ApiError::Rejected(
        StatusCode::PRECONDITION_FAILED,
        "stale-version",
        format!("template `{name}` is at version {now}, not {read}: read it again"),
    )
}

fn record(s: StoredTemplate) -> TemplateRecord {
    TemplateRecord {
        template: s.template,
        builtin: false,
        updated_by: Some(s.created_by),
        updated_at: Some(s.created_at),
    }
}

fn builtin_record(t: Template) -> TemplateRecord {
    TemplateRecord {
        template: t,
        builtin: true,
        updated_by: None,
        updated_at: None,
    }
}
