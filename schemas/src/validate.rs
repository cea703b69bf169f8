//! Validation of a document's state. It works on the document's JSON rather than the typed
//! struct, so a document that is broken in several places reports every violation, each with
//! its path (`items[3].value`), instead of failing at the first field that does not decode.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checklist::{ChecklistItem, ItemValue};
use crate::doc::DocKind;
use crate::{JobStatus, Priority, SCHEMA_VERSION};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Where, as a JSON path from the document root: `lines.l1.qty`, `items[2].value`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Validate a document of `kind`, given as its JSON state (see [`crate::read_json`]).
pub fn validate(kind: DocKind, doc: &Value) -> Vec<Violation> {
    let mut c = Checker::default();
    if !doc.is_object() {
        c.fail("", "document is not a map");
        return c.out;
    }
    match doc.get("kind").and_then(Value::as_str) {
        Some(k) if k == kind.as_str() => {}
        Some(k) => c.fail("kind", format!("expected `{kind}`, found `{k}`")),
        None => c.fail("kind", "missing"),
    }
    match doc.get("schema_version").and_then(Value::as_u64) {
        Some(v) if (1..=SCHEMA_VERSION).contains(&v) => {}
        Some(v) => c.fail("schema_version", format!("unsupported version {v}")),
        None => c.fail("schema_version", "missing"),
    }
    c.uuid(doc, "id");
    match kind {
        DocKind::Job => job(&mut c, doc),
        DocKind::Checklist => checklist(&mut c, doc),
        DocKind::Parts => parts(&mut c, doc),
        DocKind::Photo => photo(&mut c, doc),
    }
    // Whatever the checks above do not cover (a customer that is a number, a schedule without a
    // start): the document must also decode into its typed state, or readers fail on it.
    if c.out.is_empty() {
        let typed = match kind {
            DocKind::Job => decodes::<crate::job::Job>(doc),
            DocKind::Checklist => decodes::<crate::checklist::Checklist>(doc),
            DocKind::Parts => decodes::<crate::parts::Parts>(doc),
            DocKind::Photo => decodes::<crate::photo::Photo>(doc),
        };
        if let Err((path, message)) = typed {
            c.fail(path, message);
        }
    }
    c.out
}

/// Whether `doc` decodes as `T`; else the path of the first field that does not, and why.
fn decodes<T: serde::de::DeserializeOwned>(doc: &Value) -> Result<(), (String, String)> {
    match serde_path_to_error::deserialize::<_, T>(doc) {
        Ok(_) => Ok(()),
        Err(e) => {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            // serde_path_to_error writes list positions as `.3`; the rest of this module uses
            // `[3]`.
            let path = path.split('.').fold(String::new(), |mut out, seg| {
                if seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty() {
                    out.push_str(&format!("[{seg}]"));
                } else {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(seg);
                }
                out
            });
            Err((if path == "." { String::new() } else { path }, message))
        }
    }
}

fn job(c: &mut Checker, doc: &Value) {
    c.non_empty_str(doc, "title", "title");
    c.one_of(
        doc.get("status"),
        "status",
        &JobStatus::ALL.map(JobStatus::as_str),
    );
    c.one_of(
        doc.get("priority"),
        "priority",
        &Priority::ALL.map(Priority::as_str),
    );
    c.uuid(doc, "checklist_id");
    c.uuid(doc, "parts_id");
    c.time(doc.get("created_at"), "created_at");
    if let Some(v) = doc.get("follow_up_of").filter(|v| !v.is_null())
        && v.as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .is_none()
    {
        c.fail("follow_up_of", "not a UUID");
    }
    for (i, a) in c.array(doc, "assignees").iter().enumerate() {
        if a.as_str().is_none_or(|s| s.is_empty()) {
            c.fail(format!("assignees[{i}]"), "must be a user name");
        }
    }
    for (i, h) in c.array(doc, "status_history").iter().enumerate() {
        let p = format!("status_history[{i}]");
        if !h.get("from").is_some_and(Value::is_null) {
            c.one_of(
                h.get("from"),
                &format!("{p}.from"),
                &JobStatus::ALL.map(JobStatus::as_str),
            );
        }
        c.one_of(
            h.get("to"),
            &format!("{p}.to"),
            &JobStatus::ALL.map(JobStatus::as_str),
        );
        c.non_empty_str(h, "by", &format!("{p}.by"));
        c.time(h.get("at"), &format!("{p}.at"));
    }
    for (i, t) in c.array(doc, "time_entries").iter().enumerate() {
        let p = format!("time_entries[{i}]");
        let start = c.time(t.get("started_at"), &format!("{p}.started_at"));
        if let Some(stop) = t.get("stopped_at").filter(|v| !v.is_null()) {
            let stop = c.time(Some(stop), &format!("{p}.stopped_at"));
            if let (Some(a), Some(b)) = (start, stop)
                && b < a
            {
                c.fail(format!("{p}.stopped_at"), "before started_at");
            }
        }
    }
    if let Some(s) = doc.get("signoff").filter(|v| !v.is_null()) {
        c.non_empty_str(s, "signer_name", "signoff.signer_name");
        c.sha256(s.get("signature_sha256"), "signoff.signature_sha256");
        c.sha256(s.get("summary_sha256"), "signoff.summary_sha256");
        c.time(s.get("signed_at"), "signoff.signed_at");
    }
}

fn checklist(c: &mut Checker, doc: &Value) {
    c.uuid(doc, "job_id");
    c.non_empty_str(doc, "template", "template");
    let mut seen = std::collections::HashSet::new();
    for (i, item) in c.array(doc, "items").iter().enumerate() {
        let p = format!("items[{i}]");
        if let Some(id) = item.get("id").and_then(Value::as_str)
            && !seen.insert(id.to_string())
        {
            c.fail(format!("{p}.id"), format!("duplicate item id `{id}`"));
        }
        c.non_empty_str(item, "id", &format!("{p}.id"));
        c.non_empty_str(item, "label", &format!("{p}.label"));
        c.one_of(
            item.get("kind"),
            &format!("{p}.kind"),
            &["pass_fail", "text", "number", "choice", "photo_required"],
        );
        if !item.get("required").is_none_or(Value::is_boolean) {
            c.fail(format!("{p}.required"), "must be true or false");
        }
        let value = item.get("value").filter(|v| !v.is_null());
        if let (Ok(typed), Some(v)) = (serde_json::from_value::<ChecklistItem>(item.clone()), value)
        {
            match serde_json::from_value::<ItemValue>(v.clone()) {
                Ok(v) => {
                    if let Err(m) = typed.check_value(&v) {
                        c.fail(format!("{p}.value"), m);
                    }
                }
                Err(_) => c.fail(format!("{p}.value"), "must be a number or text"),
            }
        }
    }
}

fn parts(c: &mut Checker, doc: &Value) {
    c.uuid(doc, "job_id");
    match doc.get("lines") {
        Some(Value::Object(lines)) => {
            for (key, line) in lines {
                let p = format!("lines.{key}");
                if line.get("id").and_then(Value::as_str) != Some(key) {
                    c.fail(format!("{p}.id"), "must equal the line's key");
                }
                c.non_empty_str(line, "sku", &format!("{p}.sku"));
                match line.get("qty").and_then(Value::as_f64) {
                    Some(q) => {
                        if let Err(m) = crate::parts::check_qty(q) {
                            c.fail(format!("{p}.qty"), m);
                        }
                    }
                    None => c.fail(format!("{p}.qty"), "missing or not a number"),
                }
            }
        }
        _ => c.fail("lines", "missing or not a map"),
    }
}

fn photo(c: &mut Checker, doc: &Value) {
    c.uuid(doc, "job_id");
    c.sha256(doc.get("sha256"), "sha256");
    if !doc
        .get("mime")
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with("image/"))
    {
        c.fail("mime", "must be an image/* type");
    }
    for key in ["width", "height"] {
        if doc.get(key).and_then(Value::as_u64).is_none_or(|n| n == 0) {
            c.fail(key, "must be a positive integer");
        }
    }
    if doc.get("size").and_then(Value::as_u64).is_none() {
        c.fail("size", "must be a non-negative integer");
    }
    c.time(doc.get("taken_at"), "taken_at");
    c.one_of(doc.get("upload"), "upload", &["pending", "uploaded"]);
    if let Some(r) = doc.get("review").filter(|v| !v.is_null()) {
        c.one_of(r.get("state"), "review.state", &["approved", "rejected"]);
    }
}

#[derive(Default)]
struct Checker {
    out: Vec<Violation>,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Violation {
            path: path.into(),
            message: message.into(),
        });
    }

    fn non_empty_str(&mut self, obj: &Value, key: &str, path: &str) {
        match obj.get(key).and_then(Value::as_str) {
            Some(s) if !s.trim().is_empty() => {}
            Some(_) => self.fail(path, "must not be empty"),
            None => self.fail(path, "missing or not text"),
        }
    }

    fn uuid(&mut self, obj: &Value, key: &str) {
        if obj
            .get(key)
            .and_then(Value::as_str)
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .is_none()
        {
            self.fail(key, "missing or not a UUID");
        }
    }

    fn one_of(&mut self, v: Option<&Value>, path: &str, allowed: &[&str]) {
        match v.and_then(Value::as_str) {
            Some(s) if allowed.contains(&s) => {}
            Some(s) => self.fail(path, format!("`{s}` is not one of {}", allowed.join(", "))),
            None => self.fail(path, "missing or not text"),
        }
    }

    fn time(&mut self, v: Option<&Value>, path: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let t = v
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        if t.is_none() {
            self.fail(path, "missing or not an RFC 3339 time");
        }
        t.map(|t| t.to_utc())
    }

    fn sha256(&mut self, v: Option<&Value>, path: &str) {
        let ok = v
            .and_then(Value::as_str)
            .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            self.fail(path, "must be a hex sha256");
        }
    }

    fn array<'a>(&mut self, obj: &'a Value, key: &str) -> &'a [Value] {
        match obj.get(key) {
            Some(Value::Array(a)) => a,
            _ => {
                self.fail(key, "missing or not a list");
                &[]
            }
        }
    }
}

/// Why a document cannot be read as its kind, one sentence per problem (empty when it can):
/// what a reader shows in place of a document it cannot show.
pub fn diagnose(kind: DocKind, doc: &Value) -> Vec<String> {
    validate(kind, doc)
        .iter()
        .map(ToString::to_string)
        .collect()
}
