//! The **parts** document: parts used on a job, from the technician's van or another stock
//! location. Lines are a map keyed by line id, so a line added on one device and a line changed
//! on another merge without touching each other.

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjType, ROOT, ReadDoc};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DocError;
use crate::doc::{self, DocKind, get_obj};
use crate::job::ts;

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Parts {
    pub kind: DocKind,
    pub schema_version: u64,
    pub id: Uuid,
    pub job_id: Uuid,
    /// Lines by line id.
    #[serde(default)]
    pub lines: BTreeMap<String, PartLine>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PartLine {
    pub id: String,
    /// Catalog item / SKU.
    pub sku: String,
    #[serde(default)]
    pub description: String,
    /// Quantity used, in `unit`; never negative.
    pub qty: f64,
    #[serde(default)]
    pub unit: Option<String>,
    /// Stock location the part came from (the technician's van by default).
    #[serde(default)]
    pub source: Option<String>,
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A part line as entered.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewPartLine {
    pub sku: String,
    #[serde(default)]
    pub description: String,
    pub qty: f64,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

/// Why a quantity is not acceptable, if it is not.
pub fn check_qty(qty: f64) -> Result<(), String> {
    if !qty.is_finite() {
        Err("quantity must be a finite number".into())
    } else if qty < 0.0 {
        Err(format!("quantity must not be negative (got {qty})"))
    } else {
        Ok(())
    }
}

pub fn create(actor: &automerge::ActorId, id: Uuid, job_id: Uuid) -> Result<AutoCommit, DocError> {
    let mut d = doc::new_doc(DocKind::Parts, id, actor)?;
    d.put(ROOT, "job_id", job_id.to_string())?;
    d.put_object(ROOT, "lines", ObjType::Map)?;
    Ok(d)
}

pub fn add_line(
    doc: &mut AutoCommit,
    line_id: &str,
    line: &NewPartLine,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), DocError> {
    let lines = get_obj(doc, &ROOT, "lines", "lines")?;
    let obj = doc.put_object(&lines, line_id, ObjType::Map)?;
    doc.put(&obj, "id", line_id)?;
    doc.put(&obj, "sku", line.sku.as_str())?;
    doc.put(&obj, "description", line.description.as_str())?;
    doc.put(&obj, "qty", line.qty)?;
    doc.put(
        &obj,
        "unit",
        line.unit
            .clone()
            .map_or(automerge::ScalarValue::Null, Into::into),
    )?;
    doc.put(
        &obj,
        "source",
        line.source
            .clone()
            .map_or(automerge::ScalarValue::Null, Into::into),
    )?;
    doc.put(&obj, "by", by)?;
    doc.put(&obj, "at", ts(at))?;
    Ok(())
}

/// Change a line's quantity (the common correction on site).
pub fn set_qty(
    doc: &mut AutoCommit,
    line_id: &str,
    qty: f64,
    by: &str,
    at: DateTime<Utc>,
) -> Result<(), DocError> {
    let lines = get_obj(doc, &ROOT, "lines", "lines")?;
    let line = match doc.get(&lines, line_id)? {
        Some((automerge::Value::Object(ObjType::Map), id)) => id,
        _ => return Err(DocError::UnknownPartLine(line_id.into())),
    };
    doc.put(&line, "qty", qty)?;
    doc.put(&line, "by", by)?;
    doc.put(&line, "at", ts(at))?;
    Ok(())
}

pub fn remove_line(doc: &mut AutoCommit, line_id: &str) -> Result<(), DocError> {
    let lines = get_obj(doc, &ROOT, "lines", "lines")?;
    if doc.get(&lines, line_id)?.is_none() {
        return Err(DocError::UnknownPartLine(line_id.into()));
    }
    doc.delete(&lines, line_id)?;
    Ok(())
}

pub fn read(doc: &AutoCommit) -> Result<Parts, DocError> {
    doc::read_state(doc, DocKind::Parts)
}
