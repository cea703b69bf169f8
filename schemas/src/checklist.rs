//! The **checklist** document: a job's checklist items, made from a template.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ROOT, ScalarValue};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::DocError;
use crate::doc::{self, DocKind, get_obj, put_json};
use crate::job::ts;
use crate::parts::Parts;
use crate::template::{ItemKind, Template, TemplateItem};

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Checklist {
    pub kind: DocKind,
    pub schema_version: u64,
    pub id: Uuid,
    pub job_id: Uuid,
    /// The name of the template the checklist was made from.
    pub template: String,
    /// The template's version (0: the built-in pack): later versions never change this checklist.
    #[serde(default)]
    pub template_version: u32,
    #[serde(default)]
    pub title: String,
    pub items: Vec<ChecklistItem>,
}

/// A checklist item: the template's item it was made from, and its answer, in one flat map.
// The template's fields are flattened, so the document format is what it was before the item
// embedded them, and a field added to `TemplateItem` reaches every checklist without being
// repeated here. `item.label` reads through `Deref`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChecklistItem {
    #[serde(flatten)]
    pub template: TemplateItem,
    #[serde(default)]
    pub value: Option<ItemValue>,
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// An item's answer: a number for `number` items, text for every other kind
/// (`pass`/`fail`/`na`, the free text, the chosen option, the photo document's id).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ItemValue {
    Number(f64),
    Text(String),
}

impl ItemValue {
    /// Parse a value typed on a command line for an item of `kind`.
    pub fn parse_for(kind: ItemKind, raw: &str) -> Result<ItemValue, String> {
        match kind {
            ItemKind::Number => raw
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(ItemValue::Number)
                .ok_or_else(|| format!("`{raw}` is not a number")),
            _ => Ok(ItemValue::Text(raw.to_string())),
        }
    }

    fn to_scalar(&self) -> ScalarValue {
        match self {
            ItemValue::Number(n) => ScalarValue::F64(*n),
            ItemValue::Text(s) => ScalarValue::Str(s.as_str().into()),
        }
    }
}

pub const PASS_FAIL_VALUES: [&str; 3] = ["pass", "fail", "na"];

impl std::ops::Deref for ChecklistItem {
    type Target = TemplateItem;
    fn deref(&self) -> &TemplateItem {
        &self.template
    }
}

impl ChecklistItem {
    /// A fresh, unanswered item made from a template's item.
    pub fn new(template: TemplateItem) -> ChecklistItem {
        ChecklistItem {
            template,
            value: None,
            by: None,
            at: None,
        }
    }

    /// Whether `value` is an acceptable answer for this item; the message says why not.
    pub fn check_value(&self, value: &ItemValue) -> Result<(), String> {
        match (self.kind, value) {
            (ItemKind::PassFail, ItemValue::Text(s)) if PASS_FAIL_VALUES.contains(&s.as_str()) => {
                Ok(())
            }
            (ItemKind::PassFail, _) => Err(format!("`{}` takes pass, fail or na", self.id)),
            (ItemKind::Number, ItemValue::Number(n)) => {
                if !n.is_finite() {
                    return Err(format!("`{}` needs a finite number", self.id));
                }
                if let Some(min) = self.min.filter(|min| n < min) {
                    return Err(format!("`{}` must be at least {min}", self.id));
                }
                if let Some(max) = self.max.filter(|max| n > max) {
                    return Err(format!("`{}` must be at most {max}", self.id));
                }
                Ok(())
            }
            (ItemKind::Number, ItemValue::Text(_)) => Err(format!("`{}` takes a number", self.id)),
            (ItemKind::Choice, ItemValue::Text(s)) if self.choices.contains(s) => Ok(()),
            (ItemKind::Choice, _) => Err(format!(
                "`{}` takes one of: {}",
                self.id,
                self.choices.join(", ")
            )),
            (ItemKind::Text, ItemValue::Text(_)) => Ok(()),
            (ItemKind::Text, _) => Err(format!("`{}` takes text", self.id)),
            (ItemKind::PhotoRequired, ItemValue::Text(s)) if Uuid::parse_str(s).is_ok() => Ok(()),
            (ItemKind::PhotoRequired, _) => {
                Err(format!("`{}` is answered by attaching a photo", self.id))
            }
        }
    }

    pub fn is_done(&self) -> bool {
        self.value.is_some()
    }
}

/// Counts shown on the job list.
#[derive(
    utoipa::ToSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
pub struct Progress {
    pub total: u32,
    pub done: u32,
    pub required_total: u32,
    pub required_done: u32,
}

impl Checklist {
    pub fn item(&self, id: &str) -> Option<&ChecklistItem> {
        self.items.iter().find(|i| i.id == id)
    }

    pub fn progress(&self) -> Progress {
        let mut p = Progress::default();
        for item in &self.items {
            p.total += 1;
            p.done += item.is_done() as u32;
            if item.required {
                p.required_total += 1;
                p.required_done += item.is_done() as u32;
            }
        }
        p
    }

    /// Required items without an answer.
    pub fn missing_required(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter(|i| i.required && !i.is_done())
            .map(|i| i.id.as_str())
            .collect()
    }
}

/// Create a job's checklist document from a template.
pub fn create(
    actor: &automerge::ActorId,
    id: Uuid,
    job_id: Uuid,
    template: &Template,
) -> Result<AutoCommit, DocError> {
    let mut d = doc::new_doc(DocKind::Checklist, id, actor)?;
    let items = template
        .items
        .iter()
        .map(|t| serde_json::to_value(ChecklistItem::new(t.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    d.put(ROOT, "job_id", job_id.to_string())?;
    d.put(ROOT, "template", template.name.as_str())?;
    if template.version > 0 {
        d.put(ROOT, "template_version", template.version as u64)?;
    }
    d.put(ROOT, "title", template.title.as_str())?;
    put_json(&mut d, &ROOT, "items", &serde_json::Value::Array(items))?;
    Ok(d)
}

/// Set (or clear, with `None`) an item's value. The value check is the caller's, against the
/// item read from the same document.
pub fn set_value(
    doc: &mut AutoCommit,
    item_id: &str,
    value: Option<&ItemValue>,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), DocError> {
    let items = get_obj(doc, &ROOT, "items", "items")?;
    let (_, item) = doc::find_in_list(doc, &items, item_id)
        .ok_or_else(|| DocError::UnknownItem(item_id.into()))?;
    doc.put(
        &item,
        "value",
        value.map_or(ScalarValue::Null, ItemValue::to_scalar),
    )?;
    doc.put(&item, "by", by)?;
    doc.put(&item, "at", ts(at))?;
    Ok(())
}

pub fn read(doc: &AutoCommit) -> Result<Checklist, DocError> {
    doc::read_state(doc, DocKind::Checklist)
}

/// The hash the customer's sign-off commits to: sha256 over a canonical JSON rendering of the
/// checklist answers and the parts lines (sorted by line id), as shown to the signer. The server
/// recomputes it to tell whether anything changed after the customer signed.
pub fn signoff_summary_hash(checklist: &Checklist, parts: &Parts) -> String {
    summary_hash(&checklist.items, parts.lines.values())
}

/// [`signoff_summary_hash`] over the items and the part lines (in line-id order) themselves, for
/// views that hold them outside their documents.
pub fn summary_hash<'a>(
    items: &[ChecklistItem],
    lines: impl IntoIterator<Item = &'a crate::parts::PartLine>,
) -> String {
    let items: Vec<serde_json::Value> = items
        .iter()
        .map(|i| serde_json::json!([i.id, i.label, i.value]))
        .collect();
    let lines: Vec<serde_json::Value> = lines
        .into_iter()
        .map(|l| serde_json::json!([l.id, l.sku, l.description, l.qty, l.unit]))
        .collect();
    let canonical = serde_json::json!({"checklist": items, "parts": lines}).to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}
