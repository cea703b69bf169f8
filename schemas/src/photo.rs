//! The **photo** document: one per photo. The image itself is a blob addressed by its sha256;
//! the document holds what is known about it and its way through upload and review.

use automerge::AutoCommit;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DocError;
use crate::doc::{self, DocKind, put_json};
use crate::job::ts;

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Photo {
    pub kind: DocKind,
    pub schema_version: u64,
    pub id: Uuid,
    pub job_id: Uuid,
    /// The checklist item this photo documents, if any.
    #[serde(default)]
    pub checklist_item: Option<String>,
    /// Hex sha256 of the image bytes; the blob's name on the device and in the blob store.
    pub sha256: String,
    pub size: u64,
    /// MIME type, e.g. `image/jpeg`.
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub taken_at: DateTime<Utc>,
    #[serde(default)]
    pub location: Option<GeoPoint>,
    #[serde(default)]
    pub caption: String,
    pub upload: UploadState,
    #[serde(default)]
    pub review: Option<Review>,
    pub created_by: String,
}

#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

#[derive(
    utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum UploadState {
    /// Only on the device so far.
    Pending,
    /// The blob store holds the bytes and their hash was verified.
    Uploaded,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Review {
    pub state: ReviewState,
    pub by: String,
    pub at: DateTime<Utc>,
    #[serde(default)]
    pub note: String,
}

#[derive(
    utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Approved,
    Rejected,
}

/// What the device knows about a photo when it is attached.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPhoto {
    pub job_id: Uuid,
    pub checklist_item: Option<String>,
    pub sha256: String,
    pub size: u64,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub taken_at: DateTime<Utc>,
    pub location: Option<GeoPoint>,
    pub caption: String,
}

pub fn create(
    actor: &automerge::ActorId,
    id: Uuid,
    new: &NewPhoto,
    by: &str,
) -> Result<AutoCommit, DocError> {
    let mut d = doc::new_doc(DocKind::Photo, id, actor)?;
    let fields = serde_json::json!({
        "job_id": new.job_id,
        "checklist_item": new.checklist_item,
        "sha256": new.sha256,
        "size": new.size,
        "mime": new.mime,
        "width": new.width,
        "height": new.height,
        "taken_at": ts(new.taken_at),
        "location": new.location,
        "caption": new.caption,
        "upload": UploadState::Pending,
        "review": null,
        "created_by": by,
    });
    for (k, v) in fields.as_object().expect("object literal") {
        put_json(&mut d, &automerge::ROOT, k, v)?;
    }
    Ok(d)
}

/// Record a review (approve or reject, with its note), replacing any earlier one.
pub fn set_review(doc: &mut AutoCommit, review: &Review) -> Result<(), DocError> {
    let value = serde_json::json!({
        "state": review.state,
        "by": review.by,
        "at": ts(review.at),
        "note": review.note,
    });
    put_json(doc, &automerge::ROOT, "review", &value)
}

pub fn read(doc: &AutoCommit) -> Result<Photo, DocError> {
    doc::read_state(doc, DocKind::Photo)
}
