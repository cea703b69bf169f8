//! Concurrent edits made visible. When two writers set the same field while apart, Automerge
//! keeps both values and shows one (picked by actor order): the replicas agree, but the other
//! value would vanish without a trace. After a device's changes merge, the server looks at the
//! fields where that matters (a job's status, priority, title and schedule; each checklist
//! item's value; each parts line's quantity) for conflicts those changes created, and records
//! each with every value and which one is shown, flagged for the dispatcher. Pure logic over an
//! `AutoCommit`: no IO.

use automerge::{AutoCommit, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, Value as AmValue};
use schemas::DocKind;

/// A field set concurrently to different values.
#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// Where: `status`, `items[arrived_on_site].value`, `lines[<id>].qty`, ...
    pub path: String,
    /// The value every replica shows.
    pub shown: serde_json::Value,
    /// The values set concurrently, the shown one first.
    pub values: Vec<serde_json::Value>,
}

impl Conflict {
    /// A sentence for the audit log and the dispatcher.
    pub fn describe(&self) -> String {
        let others: Vec<String> = self.values[1..].iter().map(|v| v.to_string()).collect();
        format!(
            "{}: set concurrently to {} (shown) and {}",
            self.path,
            self.shown,
            others.join(", ")
        )
    }
}

/// The conflicts in `doc` that were not there at `before` (the heads before a writer's changes
/// were merged).
pub fn new_conflicts(kind: DocKind, doc: &AutoCommit, before: &[ChangeHash]) -> Vec<Conflict> {
    let mut out = Vec::new();
    let mut check = |obj: &ObjId, key: &str, path: String| {
        let now = doc.get_all(obj, key).unwrap_or_default();
        if now.len() < 2 {
            return;
        }
        let then = doc.get_all_at(obj, key, before).unwrap_or_default();
        let values: Vec<serde_json::Value> = now.iter().map(|(v, _)| json_of(v)).collect();
        if values.iter().all(|v| *v == values[0]) || then.len() == now.len() {
            return;
        }
        let shown = doc
            .get(obj, key)
            .ok()
            .flatten()
            .map_or(serde_json::Value::Null, |(v, _)| json_of(&v));
        let mut ordered = vec![shown.clone()];
        let mut skipped = false;
        for v in values {
            if v == shown && !skipped {
                skipped = true;
            } else {
                ordered.push(v);
            }
        }
        out.push(Conflict {
            path,
            shown,
            values: ordered,
        });
    };
    match kind {
        DocKind::Job => {
            for key in ["status", "priority", "title", "schedule"] {
                check(&ROOT, key, key.to_string());
            }
        }
        DocKind::Checklist => {
            if let Some(items) = object(doc, &ROOT, "items", ObjType::List) {
                for i in 0..doc.length(&items) {
                    let Some((AmValue::Object(ObjType::Map), item)) =
                        doc.get(&items, i).ok().flatten()
                    else {
                        continue;
                    };
                    let id = scalar_text(doc, &item, "id").unwrap_or_else(|| i.to_string());
                    check(&item, "value", format!("items[{id}].value"));
                }
            }
        }
        DocKind::Parts => {
            if let Some(lines) = object(doc, &ROOT, "lines", ObjType::Map) {
                for id in doc.keys(&lines).collect::<Vec<_>>() {
                    if let Some((AmValue::Object(ObjType::Map), line)) =
                        doc.get(&lines, id.as_str()).ok().flatten()
                    {
                        check(&line, "qty", format!("lines[{id}].qty"));
                    }
                }
            }
        }
        DocKind::Photo => {}
    }
    out
}

/// After concurrent status changes the merged status history may end on an entry that is not
/// the status every replica shows (each writer appended its own). Append the entry that leads
/// to the shown status, as the server (`by`), so the history ends where the job is. Returns
/// whether it did; the caller commits.
pub fn settle_status_history(
    doc: &mut AutoCommit,
    by: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, schemas::DocError> {
    let state = schemas::read_json(doc);
    let (Some(status), Some(last)) = (
        state["status"].as_str().and_then(schemas::JobStatus::parse),
        state["status_history"]
            .as_array()
            .and_then(|h| h.last())
            .and_then(|e| e["to"].as_str())
            .and_then(schemas::JobStatus::parse),
    ) else {
        return Ok(false);
    };
    if status == last {
        return Ok(false);
    }
    // `set_status` writes the status again (the same value, which also settles the register)
    // and appends the entry.
    schemas::job::set_status(doc, last, status, by, at)?;
    Ok(true)
}

fn object(doc: &AutoCommit, parent: &ObjId, key: &str, want: ObjType) -> Option<ObjId> {
    match doc.get(parent, key).ok().flatten() {
        Some((AmValue::Object(t), id)) if t == want => Some(id),
        _ => None,
    }
}

fn scalar_text(doc: &AutoCommit, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok().flatten()? {
        (AmValue::Scalar(s), _) => s.as_str().map(str::to_string),
        _ => None,
    }
}

/// A value as JSON: scalars as themselves, an object (a map or list set concurrently, such as a
/// schedule) as its kind.
fn json_of(v: &AmValue<'_>) -> serde_json::Value {
    match v {
        AmValue::Scalar(s) => match s.as_ref() {
            automerge::ScalarValue::Str(t) => serde_json::Value::String(t.to_string()),
            automerge::ScalarValue::Int(n) => (*n).into(),
            automerge::ScalarValue::Uint(n) => (*n).into(),
            automerge::ScalarValue::F64(f) => serde_json::json!(f),
            automerge::ScalarValue::Boolean(b) => (*b).into(),
            automerge::ScalarValue::Null => serde_json::Value::Null,
            other => serde_json::Value::String(other.to_string()),
        },
        AmValue::Object(t) => serde_json::Value::String(format!("({t})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    fn forked() -> (AutoCommit, AutoCommit, Vec<ChangeHash>) {
        let mut a = AutoCommit::new();
        a.put(ROOT, "status", "assigned").unwrap();
        a.put(ROOT, "title", "Boiler").unwrap();
        let items = a.put_object(ROOT, "items", ObjType::List).unwrap();
        let item = a.insert_object(&items, 0, ObjType::Map).unwrap();
        a.put(&item, "id", "filter").unwrap();
        a.put(&item, "value", automerge::ScalarValue::Null).unwrap();
        a.commit();
        let b = a.fork();
        let heads = a.get_heads();
        (a, b, heads)
    }

    #[test]
    fn concurrent_different_values_are_a_conflict_with_both_values() {
        let (mut a, mut b, before) = forked();
        a.put(ROOT, "status", "en_route").unwrap();
        a.commit();
        b.put(ROOT, "status", "cancelled").unwrap();
        b.commit();
        let merged_at = a.get_heads();
        a.merge(&mut b).unwrap();
        let found = new_conflicts(DocKind::Job, &a, &merged_at);
        assert_eq!(found.len(), 1, "{found:?}");
        let c = &found[0];
        assert_eq!(c.path, "status");
        let mut values = c.values.clone();
        values.sort_by_key(|v| v.to_string());
        assert_eq!(
            values,
            vec![
                serde_json::json!("cancelled"),
                serde_json::json!("en_route")
            ]
        );
        assert_eq!(c.values[0], c.shown);
        assert!(c.describe().contains("(shown)"));
        // Already there before the next writer's changes: not new.
        let now = a.get_heads();
        assert!(new_conflicts(DocKind::Job, &a, &now).is_empty());
        // Relative to the common ancestor it is new as well.
        assert_eq!(new_conflicts(DocKind::Job, &a, &before).len(), 1);
    }

    #[test]
    fn the_same_value_twice_or_one_writer_is_no_conflict() {
        let (mut a, mut b, _) = forked();
        a.put(ROOT, "status", "en_route").unwrap();
        a.commit();
        b.put(ROOT, "status", "en_route").unwrap();
        b.commit();
        let at = a.get_heads();
        a.merge(&mut b).unwrap();
        assert!(new_conflicts(DocKind::Job, &a, &at).is_empty());
        let (mut a, _, before) = forked();
        a.put(ROOT, "title", "Boiler 2").unwrap();
        a.commit();
        assert!(new_conflicts(DocKind::Job, &a, &before).is_empty());
    }

    #[test]
    fn a_checklist_item_set_two_ways_names_the_item() {
        let (mut a, mut b, _) = forked();
        for (doc, value) in [(&mut a, "pass"), (&mut b, "fail")] {
            let items = object(doc, &ROOT, "items", ObjType::List).unwrap();
            let (_, item) = doc.get(&items, 0).unwrap().unwrap();
            doc.put(&item, "value", value).unwrap();
            doc.commit();
        }
        let at = a.get_heads();
        a.merge(&mut b).unwrap();
        let found = new_conflicts(DocKind::Checklist, &a, &at);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "items[filter].value");
    }
}
