//! The back office's review: the jobs with evidence to look at (photos, a signature), and a
//! photo approved or rejected. A review is a server change on the photo document, written like a
//! dispatcher's edit ([`crate::jobs::edit_doc`]), so it reaches the devices holding the job by
//! sync and their `job show` lists it.

use chrono::Utc;
use schemas::DocKind;
use schemas::api::{ReviewJob, ReviewRequest};
use schemas::photo::{self, Review};
use uuid::Uuid;

use crate::error::ApiError;
use crate::jobs::{self, Actor, readable_doc};
use crate::state::AppState;
use crate::store::{Role, User};

/// Who reviews photos: the back office, and admins.
fn reviewer(me: &Actor) -> Result<(), ApiError> {
    me.require(&[Role::BackOffice, Role::Admin], "back office")
}

/// The org's jobs that have photos or a sign-off, those with photos waiting for a review first,
/// then the most recent evidence first. A job whose documents cannot be read is left out (and
/// logged) rather than failing the whole list.
pub async fn queue(app: &AppState, me: &Actor) -> Result<Vec<ReviewJob>, ApiError> {
    me.org_reader()?;
    let mut out = Vec::new();
    for id in app.store.org_jobs(me.org_id).await? {
        let view = match jobs::job_view(app, me.org_id, id).await {
            Ok(v) => v,
            Err(e @ ApiError::Unavailable(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "review list: job left out");
                continue;
            }
        };
        if view.photos.is_empty() && view.signoff.is_none() {
            continue;
        }
        let signoff_matches = view.signoff_matches();
        out.push(ReviewJob {
            job: view,
            signoff_matches,
        });
    }
    let waiting = |j: &ReviewJob| j.job.photos.iter().any(|p| p.review.is_none());
    let latest = |j: &ReviewJob| {
        let photo = j.job.photos.iter().map(|p| p.taken_at).max();
        let signed = j.job.signoff.as_ref().map(|s| s.signed_at);
        photo.max(signed)
    };
    out.sort_by(|a, b| {
        waiting(b)
            .cmp(&waiting(a))
            .then_with(|| latest(b).cmp(&latest(a)))
    });
    Ok(out)
}

/// Approve or reject photo `id` (the body is checked by [`schemas::api::Validate`] before).
/// A later review replaces an earlier one; the photo document keeps the history.
pub async fn review_photo(
    app: &AppState,
    user: &User,
    id: Uuid,
    body: ReviewRequest,
) -> Result<Review, ApiError> {
    let me = Actor::from(user);
    reviewer(&me)?;
    let meta = readable_doc(app, user, id).await?;
    if meta.kind != DocKind::Photo.as_str() {
        return Err(ApiError::NotFound(format!("photo {id}")));
    }
    let review = Review {
        state: body.state,
        by: me.name.clone(),
        at: Utc::now(),
        note: body.note.trim().to_string(),
    };
    jobs::edit_doc(app, &meta, "photo review", |d| {
        photo::set_review(d, &review).map_err(ApiError::internal)
    })
    .await?;
    Ok(review)
}
