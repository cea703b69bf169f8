//! The server's guard on every merged state: the contract (`schemas::validate`) and the writer's
//! role, with a repair instead of a refusal.
//!
//! A device's changes that parse but break the contract or the writer's role are not refused:
//! later changes of the same device depend on them, and refusing one would strand the rest. They
//! are kept in the history, and the server adds one change of its own on top that puts back the
//! last valid value of each offending field. Both are stored in the same commit, before anything
//! is acknowledged or fanned out, so no reader ever sees the invalid state and every replica
//! receives the repair with the change it repairs.
//!
//! What is repaired, per document kind, is a *unit*: a top-level field, one parts line, one
//! checklist item. A unit the writer's role may not change is put back as it was; a unit that
//! breaks the contract is put back as it was before the changes, dropped when it did not exist
//! before, and set to a default when it has no valid earlier value. Pure logic over an
//! `AutoCommit`: no IO.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value as AmValue};
use schemas::validate::validate;
use schemas::{DocError, DocKind};
use serde_json::{Map, Value};

use crate::store::Role;

/// What the guard did to a document.
#[derive(Clone, Debug, PartialEq)]
pub struct Repair {
    /// One sentence per repaired unit, for people.
    pub reasons: Vec<String>,
    /// The units as they were after the writer's changes, and as the repair left them.
    pub before: Value,
    pub after: Value,
    /// Violations the repair could not fix (the document is then shown as broken).
    pub unresolved: Vec<String>,
}

/// Fields nobody changes once a document exists.
fn immutable(kind: DocKind) -> &'static [&'static str] {
    match kind {
        DocKind::Job => &[
            "kind",
            "schema_version",
            "id",
            "checklist_id",
            "parts_id",
            "created_at",
            "created_by",
            // What opened the job (a sensor): the server sets it at creation only.
            "source",
        ],
        DocKind::Checklist => &["kind", "schema_version", "id", "job_id", "template"],
        DocKind::Parts => &["kind", "schema_version", "id", "job_id"],
        DocKind::Photo => &["kind", "schema_version", "id", "job_id", "sha256"],
    }
}

/// Whether `role` may change the top-level field `key` of an existing document of `kind`.
pub fn may_write(role: Role, kind: DocKind, key: &str) -> bool {
    if immutable(kind).contains(&key) {
        return false;
    }
    match role {
        Role::Dispatcher | Role::Admin => true,
        // The back office reviews photos, and nothing else.
        Role::BackOffice => kind == DocKind::Photo && key == "review",
        Role::Technician => match kind {
            DocKind::Job => !matches!(key, "assignees" | "customer" | "site"),
            DocKind::Photo => key != "review",
            DocKind::Checklist | DocKind::Parts => true,
        },
    }
}

/// Check `doc` as it is after changes by a writer of `role` that started from `before` (the
/// heads before they were applied), and repair it with a server change when needed. `None` when
/// the document is fine.
pub fn check(
    kind: DocKind,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
    role: Role,
) -> Option<Repair> {
    let after = schemas::read_json(doc);
    let role_units = role_units(kind, doc, before, &after, role);
    if role_units.is_empty() && validate(kind, &after).is_empty() {
        return None;
    }
    let old = schemas::doc::read_json_at(doc, before);
    let mut plan = Plan::default();
    for key in role_units {
        plan.restore(
            Unit::Key(key.clone()),
            &old,
            &after,
            format!("{key}: a {} may not change it; put back", role.as_str()),
        );
    }
    // Apply the role repairs to a working copy, then fix what still breaks the contract.
    let mut fixed = plan.apply_json(&after);
    // Each round fixes what validation reports; the typed decoding reports one field at a time.
    for _ in 0..8 {
        let violations = validate(kind, &fixed);
        if violations.is_empty() {
            break;
        }
        for v in violations {
            let unit = Unit::of(kind, &v.path, &fixed);
            let reason = format!("{}: {}", v.path, v.message);
            if plan.has(&unit) {
                // Already put back and still invalid: the earlier value was no good either.
                plan.set_default(unit, kind, reason);
            } else {
                plan.restore(unit, &old, &fixed, reason);
            }
        }
        fixed = plan.apply_json(&after);
    }
    let unresolved: Vec<String> = validate(kind, &fixed)
        .iter()
        .map(ToString::to_string)
        .collect();
    let (before_units, after_units) = plan.record(&after);
    if let Err(e) = plan.apply_doc(doc) {
        tracing::error!(error = %e, "a repair could not be written");
    }
    doc.commit_with(
        automerge::transaction::CommitOptions::default().with_message("fieldsync: server repair"),
    );
    Some(Repair {
        reasons: plan.reasons.into_iter().map(|(_, r)| r).collect(),
        before: before_units,
        after: after_units,
        unresolved,
    })
}

/// Put back every checklist item or parts line that changed since `before`: the customer signed
/// the state at `before`, and nothing of it may change afterwards. The writer's changes stay in
/// the history; one server change on top restores the signed values (a line added since is
/// removed, a removed one comes back). `None` when nothing signed changed.
pub fn freeze(
    kind: DocKind,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
    why: &str,
) -> Option<Repair> {
    let after = schemas::read_json(doc);
    let old = schemas::doc::read_json_at(doc, before);
    let mut plan = Plan::default();
    match kind {
        DocKind::Parts => {
            let empty = Map::new();
            let (was, now) = (
                old["lines"].as_object().unwrap_or(&empty),
                after["lines"].as_object().unwrap_or(&empty),
            );
            let mut keys: Vec<&String> = was.keys().chain(now.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                if was.get(k) != now.get(k) {
                    plan.restore(
                        Unit::Line(k.clone()),
                        &old,
                        &after,
                        format!("lines.{k}: {why}"),
                    );
                }
            }
        }
        DocKind::Checklist => {
            for (i, item) in after["items"].as_array().into_iter().flatten().enumerate() {
                let signed = old["items"]
                    .as_array()
                    .and_then(|items| items.iter().find(|o| o["id"] == item["id"]));
                if signed != Some(item) {
                    let id = item["id"].as_str().unwrap_or("?");
                    plan.restore(Unit::Item(i), &old, &after, format!("items[{id}]: {why}"));
                }
            }
        }
        DocKind::Job | DocKind::Photo => {}
    }
    if plan.fixes.is_empty() {
        return None;
    }
    let (before_units, after_units) = plan.record(&after);
    if let Err(e) = plan.apply_doc(doc) {
        tracing::error!(error = %e, "a sign-off freeze could not be written");
    }
    doc.commit_with(
        automerge::transaction::CommitOptions::default()
            .with_message("fieldsync: frozen after sign-off"),
    );
    Some(Repair {
        reasons: plan.reasons.into_iter().map(|(_, r)| r).collect(),
        before: before_units,
        after: after_units,
        unresolved: Vec::new(),
    })
}

/// The heads of the latest state of `doc`'s history that passes validation, looking back at most
/// `depth` changes; empty heads (the empty document) when none does. Healing a document stored
/// broken restores values from there: the last valid ones.
pub fn last_valid_heads(kind: DocKind, doc: &mut AutoCommit, depth: usize) -> Vec<ChangeHash> {
    let changes = doc.get_changes(&[]);
    for change in changes.iter().rev().take(depth) {
        let heads = change.deps().to_vec();
        if !heads.is_empty() && validate(kind, &schemas::doc::read_json_at(doc, &heads)).is_empty()
        {
            return heads;
        }
    }
    Vec::new()
}

/// Top-level fields that `role` changed but may not. A document being created (no earlier
/// heads) is its creator's to fill in. Only the fields the changes touched are compared (found
/// with a diff, which costs what the changes cost), so an allowed edit costs no second read.
fn role_units(
    kind: DocKind,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
    after: &Value,
    role: Role,
) -> Vec<String> {
    if before.is_empty() {
        // A document a device creates: only the server says what opened a job.
        let forged = kind == DocKind::Job && after.get("source").is_some_and(|v| !v.is_null());
        return if forged {
            vec!["source".to_string()]
        } else {
            Vec::new()
        };
    }
    let heads = doc.get_heads();
    let mut touched: Vec<String> = doc
        .diff(before, &heads)
        .into_iter()
        .filter_map(|p| match p.path.first() {
            Some((_, automerge::Prop::Map(key))) => Some(key.clone()),
            Some(_) => None,
            None => match p.action {
                automerge::PatchAction::PutMap { key, .. }
                | automerge::PatchAction::DeleteMap { key } => Some(key),
                _ => None,
            },
        })
        .filter(|k| !may_write(role, kind, k))
        .collect();
    if touched.is_empty() {
        return touched;
    }
    touched.sort();
    touched.dedup();
    let old = schemas::doc::read_json_at(doc, before);
    if old.as_object().is_none_or(Map::is_empty) {
        return Vec::new();
    }
    touched.retain(|k| old.get(k) != after.get(k));
    touched
}

/// Where a repair applies.
#[derive(Clone, Debug, PartialEq)]
enum Unit {
    /// A top-level field.
    Key(String),
    /// One line of a parts document, by its key.
    Line(String),
    /// One checklist item, by its position after the changes.
    Item(usize),
}

impl Unit {
    /// The unit a violation at `path` belongs to.
    fn of(kind: DocKind, path: &str, state: &Value) -> Unit {
        let top = path.split(['.', '[']).next().unwrap_or(path).to_string();
        match kind {
            DocKind::Parts if top == "lines" => match path.strip_prefix("lines.") {
                Some(rest) => {
                    // Line keys are ids the device chose; find the longest key the path starts
                    // with, since an id may itself contain dots.
                    let key = state["lines"]
                        .as_object()
                        .and_then(|m| {
                            m.keys()
                                .filter(|k| rest.starts_with(k.as_str()))
                                .max_by_key(|k| k.len())
                                .cloned()
                        })
                        .unwrap_or_else(|| rest.split('.').next().unwrap_or(rest).to_string());
                    Unit::Line(key)
                }
                None => Unit::Key(top),
            },
            DocKind::Checklist if path.starts_with("items[") => path["items[".len()..]
                .split(']')
                .next()
                .and_then(|i| i.parse().ok())
                .map_or(Unit::Key(top), Unit::Item),
            _ => Unit::Key(top),
        }
    }
}

/// The value a unit gets: `None` removes it.
#[derive(Default)]
struct Plan {
    fixes: Vec<(Unit, Option<Value>)>,
    /// One sentence per unit, the last decision about it.
    reasons: Vec<(Unit, String)>,
}

impl Plan {
    fn has(&self, unit: &Unit) -> bool {
        self.fixes.iter().any(|(u, _)| u == unit)
    }

    fn set(&mut self, unit: Unit, value: Option<Value>, reason: String) {
        self.fixes.retain(|(u, _)| *u != unit);
        self.reasons.retain(|(u, _)| *u != unit);
        self.fixes.push((unit.clone(), value));
        self.reasons.push((unit, reason));
    }

    /// Put the unit back as it was in `old` (remove it if it was not there).
    fn restore(&mut self, unit: Unit, old: &Value, current: &Value, reason: String) {
        let value = match &unit {
            Unit::Key(k) => old.get(k).cloned(),
            Unit::Line(id) => old["lines"].get(id).cloned(),
            // The same item (by id) as it was, or none: an item added by the changes goes.
            Unit::Item(i) => current["items"][*i]["id"].as_str().and_then(|id| {
                old["items"]
                    .as_array()?
                    .iter()
                    .find(|it| it["id"].as_str() == Some(id))
                    .cloned()
            }),
        };
        let what = if value.is_some() {
            "put back its last valid value"
        } else {
            "removed it"
        };
        self.set(unit, value, format!("{reason}; {what}"));
    }

    /// Give the unit the contract's default, when there is one; otherwise remove it.
    fn set_default(&mut self, unit: Unit, kind: DocKind, reason: String) {
        let value = match (&unit, kind) {
            (Unit::Key(k), DocKind::Job) => match k.as_str() {
                "title" => Some(Value::from("(untitled job)")),
                "status" => Some(Value::from(schemas::JobStatus::Pending.as_str())),
                "priority" => Some(Value::from(schemas::Priority::default().as_str())),
                "assignees" | "status_history" | "time_entries" => Some(Value::Array(vec![])),
                "signoff" | "follow_up_of" | "source" => Some(Value::Null),
                _ => None,
            },
            (Unit::Key(k), DocKind::Parts) if k == "lines" => Some(Value::Object(Map::new())),
            (Unit::Key(k), DocKind::Checklist) if k == "items" => Some(Value::Array(vec![])),
            (Unit::Key(k), DocKind::Photo) if k == "review" => Some(Value::Null),
            (Unit::Key(k), DocKind::Photo) if k == "upload" => Some(Value::from("pending")),
            _ => None,
        };
        if value.is_none() && matches!(unit, Unit::Key(_)) {
            // Nothing valid to put there; keep the (invalid) value so readers show why.
            self.reasons.retain(|(u, _)| *u != unit);
            self.reasons
                .push((unit, format!("{reason}; no valid value to put back")));
            return;
        }
        self.set(unit, value, format!("{reason}; set to its default"));
    }

    /// The JSON state with the plan applied.
    fn apply_json(&self, state: &Value) -> Value {
        let mut out = state.clone();
        let mut removed_items: Vec<usize> = Vec::new();
        for (unit, value) in &self.fixes {
            match (unit, value) {
                (Unit::Key(k), Some(v)) => {
                    out[k.as_str()] = v.clone();
                }
                (Unit::Key(k), None) => {
                    out.as_object_mut().map(|m| m.remove(k));
                }
                (Unit::Line(id), v) => {
                    if let Some(lines) = out["lines"].as_object_mut() {
                        match v {
                            Some(v) => {
                                lines.insert(id.clone(), v.clone());
                            }
                            None => {
                                lines.remove(id);
                            }
                        }
                    }
                }
                (Unit::Item(i), Some(v)) => {
                    if let Some(slot) = out["items"].get_mut(*i) {
                        *slot = v.clone();
                    }
                }
                (Unit::Item(i), None) => removed_items.push(*i),
            }
        }
        removed_items.sort_unstable();
        if let Some(items) = out["items"].as_array_mut() {
            for i in removed_items.into_iter().rev() {
                if i < items.len() {
                    items.remove(i);
                }
            }
        }
        out
    }

    /// The repaired units before and after, for the audit log.
    fn record(&self, after: &Value) -> (Value, Value) {
        let (mut b, mut a) = (Map::new(), Map::new());
        for (unit, value) in &self.fixes {
            let (name, was) = match unit {
                Unit::Key(k) => (k.clone(), after.get(k).cloned()),
                Unit::Line(id) => (format!("lines.{id}"), after["lines"].get(id).cloned()),
                Unit::Item(i) => (format!("items[{i}]"), after["items"].get(*i).cloned()),
            };
            b.insert(name.clone(), was.unwrap_or(Value::Null));
            a.insert(name, value.clone().unwrap_or(Value::Null));
        }
        (Value::Object(b), Value::Object(a))
    }

    /// Write the plan into the document as the server's change.
    fn apply_doc(&self, doc: &mut AutoCommit) -> Result<(), DocError> {
        let mut removed_items: Vec<usize> = Vec::new();
        for (unit, value) in &self.fixes {
            match unit {
                Unit::Key(k) => match value {
                    Some(v) => put(doc, &ROOT, k, v)?,
                    None => {
                        if doc.get(ROOT, k.as_str())?.is_some() {
                            doc.delete(ROOT, k.as_str())?;
                        }
                    }
                },
                Unit::Line(id) => {
                    let Some((AmValue::Object(ObjType::Map), lines)) = doc.get(ROOT, "lines")?
                    else {
                        continue;
                    };
                    match value {
                        Some(v) => put(doc, &lines, id, v)?,
                        None => {
                            if doc.get(&lines, id.as_str())?.is_some() {
                                doc.delete(&lines, id.as_str())?;
                            }
                        }
                    }
                }
                Unit::Item(i) => {
                    let Some((AmValue::Object(ObjType::List), items)) = doc.get(ROOT, "items")?
                    else {
                        continue;
                    };
                    match value {
                        Some(v) if *i < doc.length(&items) => {
                            let obj = doc.put_object(&items, *i, ObjType::Map)?;
                            for (k, v) in v.as_object().into_iter().flatten() {
                                put(doc, &obj, k, v)?;
                            }
                        }
                        Some(_) => {}
                        None => removed_items.push(*i),
                    }
                }
            }
        }
        removed_items.sort_unstable();
        if let Some((AmValue::Object(ObjType::List), items)) = doc.get(ROOT, "items")? {
            for i in removed_items.into_iter().rev() {
                if i < doc.length(&items) {
                    doc.delete(&items, i)?;
                }
            }
        }
        Ok(())
    }
}

fn put(doc: &mut AutoCommit, obj: &ObjId, key: &str, v: &Value) -> Result<(), DocError> {
    schemas::doc::put_json(doc, obj, key, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ActorId;
    use chrono::Utc;
    use schemas::job::NewJob;
    use schemas::parts::NewPartLine;
    use uuid::Uuid;

    fn job() -> AutoCommit {
        let mut new = NewJob::at_site("Fix the AC", "Acme", "Main St", None, Default::default());
        new.assignees = vec!["ana".into()];
        let mut doc = schemas::job::create(
            &ActorId::random(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            &new,
            "dispatch",
            Utc::now(),
        )
        .unwrap();
        doc.commit();
        doc
    }

    /// A device's fork of `doc` edited by `edit`, merged back as the server would receive it.
    fn edited(doc: &mut AutoCommit, edit: impl FnOnce(&mut AutoCommit)) -> Vec<ChangeHash> {
        let before = doc.get_heads();
        let mut device = doc.fork().with_actor(ActorId::random());
        edit(&mut device);
        device.commit();
        doc.merge(&mut device).unwrap();
        before
    }

    fn valid(kind: DocKind, doc: &AutoCommit) -> bool {
        validate(kind, &schemas::read_json(doc)).is_empty()
    }

    #[test]
    fn a_valid_change_passes_untouched() {
        let mut doc = job();
        let before = edited(&mut doc, |d| {
            schemas::job::set_notes(d, "replaced the filter").unwrap();
        });
        let heads = doc.get_heads();
        assert_eq!(
            check(DocKind::Job, &mut doc, &before, Role::Technician),
            None
        );
        assert_eq!(doc.get_heads(), heads, "no server change");
    }

    #[test]
    fn an_invalid_status_and_a_deleted_title_are_put_back() {
        for (bad, field) in [
            (serde_json::json!(42), "status"),
            (serde_json::json!("teleported"), "status"),
        ] {
            let mut doc = job();
            let status = schemas::read_json(&doc)["status"].clone();
            let before = edited(&mut doc, |d| {
                schemas::doc::put_json(d, &ROOT, field, &bad).unwrap();
                d.delete(ROOT, "title").unwrap();
            });
            let repair = check(DocKind::Job, &mut doc, &before, Role::Technician).unwrap();
            let state = schemas::read_json(&doc);
            assert_eq!(state["status"], status);
            assert_eq!(state["title"], "Fix the AC");
            assert!(valid(DocKind::Job, &doc));
            assert!(
                repair.reasons.iter().any(|r| r.starts_with("status")),
                "{repair:?}"
            );
            assert!(
                repair.reasons.iter().any(|r| r.starts_with("title")),
                "{repair:?}"
            );
            assert!(repair.unresolved.is_empty());
        }
    }

    #[test]
    fn nobody_changes_what_opened_a_job() {
        let sensor = Uuid::now_v7();
        for (role, start) in [
            (Role::Technician, Some(sensor)),
            (Role::Dispatcher, Some(sensor)),
            (Role::Admin, None),
        ] {
            let mut doc = job();
            if let Some(s) = start {
                schemas::job::set_source(&mut doc, &schemas::job::JobSource::Sensor(s)).unwrap();
                doc.commit();
            }
            let was = schemas::read_json(&doc)["source"].clone();
            let before = edited(&mut doc, |d| {
                schemas::job::set_source(d, &schemas::job::JobSource::Sensor(Uuid::now_v7()))
                    .unwrap();
            });
            let repair = check(DocKind::Job, &mut doc, &before, role).unwrap();
            assert_eq!(schemas::read_json(&doc)["source"], was, "{role:?}");
            assert!(
                repair.reasons.iter().any(|r| r.starts_with("source")),
                "{repair:?}"
            );
            let job = schemas::job::read(&doc).unwrap();
            assert_eq!(job.source, start.map(schemas::job::JobSource::Sensor));
        }
        // Nor does a device creating a job say a sensor opened it.
        let mut doc = AutoCommit::new();
        let mut made = job();
        schemas::job::set_source(&mut made, &schemas::job::JobSource::Sensor(sensor)).unwrap();
        made.commit();
        doc.merge(&mut made).unwrap();
        let repair = check(DocKind::Job, &mut doc, &[], Role::Technician).unwrap();
        assert!(
            schemas::read_json(&doc).get("source").is_none(),
            "{repair:?}"
        );
        assert!(valid(DocKind::Job, &doc));
    }

    #[test]
    fn roles_limit_what_a_writer_may_change() {
        // A technician may not reassign the job or move it to another customer.
        let mut doc = job();
        let before = edited(&mut doc, |d| {
            schemas::job::set_assignees(d, &["mallory".into()]).unwrap();
            schemas::doc::put_json(d, &ROOT, "customer", &serde_json::json!({"name": "Other"}))
                .unwrap();
            schemas::job::set_notes(d, "kept").unwrap();
        });
        let repair = check(DocKind::Job, &mut doc, &before, Role::Technician).unwrap();
        let state = schemas::read_json(&doc);
        assert_eq!(state["assignees"], serde_json::json!(["ana"]));
        assert_eq!(state["customer"]["name"], "Acme");
        assert_eq!(
            state["notes"], "kept",
            "the allowed part of the change stays"
        );
        assert_eq!(repair.reasons.len(), 2, "{repair:?}");

        // A dispatcher may.
        let mut doc = job();
        let before = edited(&mut doc, |d| {
            schemas::job::set_assignees(d, &["ben".into()]).unwrap();
        });
        assert_eq!(
            check(DocKind::Job, &mut doc, &before, Role::Dispatcher),
            None
        );

        // The back office may not retitle a job.
        let mut doc = job();
        let before = edited(&mut doc, |d| {
            d.put(ROOT, "title", "Renamed").unwrap();
        });
        check(DocKind::Job, &mut doc, &before, Role::BackOffice).unwrap();
        assert_eq!(schemas::read_json(&doc)["title"], "Fix the AC");
    }

    #[test]
    fn a_bad_parts_line_is_put_back_or_removed() {
        let actor = ActorId::random();
        let mut doc = schemas::parts::create(&actor, Uuid::now_v7(), Uuid::now_v7()).unwrap();
        let line = |sku: &str, qty| NewPartLine {
            sku: sku.into(),
            qty,
            ..Default::default()
        };
        let l1 = "l1".to_string();
        schemas::parts::add_line(&mut doc, &l1, &line("FLT", 2.0), "ana", Utc::now()).unwrap();
        doc.commit();
        let before = edited(&mut doc, |d| {
            let lines = schemas::doc::get_obj(d, &ROOT, "lines", "lines").unwrap();
            let l = schemas::doc::get_obj(d, &lines, &l1, "line").unwrap();
            d.put(&l, "qty", -5.0).unwrap();
            let l2 = "l2";
            schemas::parts::add_line(d, l2, &line("CAP", 1.0), "ana", Utc::now()).unwrap();
            let l = schemas::doc::get_obj(d, &lines, l2, "line").unwrap();
            d.delete(&l, "sku").unwrap();
        });
        let repair = check(DocKind::Parts, &mut doc, &before, Role::Technician).unwrap();
        let state = schemas::read_json(&doc);
        assert_eq!(state["lines"][l1.as_str()]["qty"], 2.0);
        assert_eq!(state["lines"].as_object().unwrap().len(), 1, "{state}");
        assert!(valid(DocKind::Parts, &doc), "{repair:?}");

        // `lines` replaced by a string.
        let before = edited(&mut doc, |d| {
            d.put(ROOT, "lines", "gone").unwrap();
        });
        check(DocKind::Parts, &mut doc, &before, Role::Technician).unwrap();
        assert_eq!(schemas::read_json(&doc)["lines"][l1.as_str()]["sku"], "FLT");
    }

    #[test]
    fn a_document_created_invalid_gets_defaults() {
        let mut doc = AutoCommit::new();
        let before = edited(&mut doc, |d| {
            let mut fresh = job();
            fresh.put(ROOT, "status", "teleported").unwrap();
            fresh.commit();
            d.merge(&mut fresh).unwrap();
        });
        let repair = check(DocKind::Job, &mut doc, &before, Role::Technician).unwrap();
        assert_eq!(schemas::read_json(&doc)["status"], "pending");
        assert!(repair.unresolved.is_empty(), "{repair:?}");
    }
}

/// Random valid and invalid changes from two devices, merged in random order: whatever arrives,
/// the document the server keeps is valid and reads as its typed state.
#[cfg(test)]
mod properties {
    use super::*;
    use automerge::ActorId;
    use chrono::Utc;
    use proptest::prelude::*;
    use schemas::job::NewJob;
    use uuid::Uuid;

    #[derive(Clone, Debug)]
    enum Edit {
        Put(&'static str, serde_json::Value),
        Delete(&'static str),
        Notes(String),
        Status(schemas::JobStatus),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let keys = prop::sample::select(vec![
            "title",
            "status",
            "priority",
            "assignees",
            "customer",
            "checklist_id",
            "status_history",
            "time_entries",
            "signoff",
            "created_at",
            "kind",
        ]);
        let values = prop_oneof![
            Just(serde_json::json!(42)),
            Just(serde_json::json!("teleported")),
            Just(serde_json::json!("")),
            Just(serde_json::json!(null)),
            Just(serde_json::json!([1, 2])),
            Just(serde_json::json!({"name": "x"})),
            Just(serde_json::json!("in_progress")),
        ];
        prop_oneof![
            (keys.clone(), values).prop_map(|(k, v)| Edit::Put(k, v)),
            keys.prop_map(Edit::Delete),
            "[a-z ]{0,12}".prop_map(Edit::Notes),
            prop::sample::select(schemas::JobStatus::ALL.to_vec()).prop_map(Edit::Status),
        ]
    }

    fn apply(doc: &mut AutoCommit, e: &Edit) {
        match e {
            Edit::Put(k, v) => schemas::doc::put_json(doc, &ROOT, k, v).unwrap(),
            Edit::Delete(k) => {
                if doc.get(ROOT, *k).unwrap().is_some() {
                    doc.delete(ROOT, *k).unwrap();
                }
            }
            Edit::Notes(t) => schemas::job::set_notes(doc, t).unwrap(),
            Edit::Status(s) => {
                let from = schemas::read_json(doc)["status"]
                    .as_str()
                    .and_then(schemas::JobStatus::parse)
                    .unwrap_or(schemas::JobStatus::Pending);
                // Fails (and changes nothing) where the device's own copy lacks the history list.
                let _ = schemas::job::set_status(doc, from, *s, "ana", Utc::now());
            }
        }
        doc.commit();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn two_devices_never_leave_an_unreadable_document(
            a in prop::collection::vec(edit(), 1..6),
            b in prop::collection::vec(edit(), 1..6),
            order in prop::collection::vec(any::<bool>(), 12),
            roles in (prop::sample::select(vec![Role::Technician, Role::Dispatcher, Role::BackOffice]),
                      prop::sample::select(vec![Role::Technician, Role::Dispatcher])),
        ) {
            let mut new = NewJob::at_site("Fix", "Acme", "Main St", None, Default::default());
            new.assignees = vec!["ana".into()];
            let mut server = schemas::job::create(
                &ActorId::random(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(),
                &new, "dispatch", Utc::now(),
            ).unwrap();
            server.commit();
            let mut devices = [
                (server.fork().with_actor(ActorId::random()), a.into_iter(), roles.0),
                (server.fork().with_actor(ActorId::random()), b.into_iter(), roles.1),
            ];
            // Each step, one device (chosen by `order`) makes its next edit and syncs it in.
            for pick in order {
                let (doc, edits, role) = &mut devices[usize::from(pick)];
                let Some(e) = edits.next() else { continue };
                apply(doc, &e);
                let before = server.get_heads();
                server.merge(doc).unwrap();
                check(DocKind::Job, &mut server, &before, *role);
                let state = schemas::read_json(&server);
                prop_assert!(validate(DocKind::Job, &state).is_empty(), "{e:?} left {state}");
                prop_assert!(schemas::job::read(&server).is_ok());
                // The device receives the repair, as after its sync.
                doc.merge(&mut server).unwrap();
            }
        }
    }
}
