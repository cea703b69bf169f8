//! What a document's relational rows are: a pure function of the document's state, so projecting
//! it twice, or rebuilding from the log, gives the same rows. No IO here.

use automerge::AutoCommit;
use chrono::{DateTime, Utc};
use schemas::checklist::Checklist;
use schemas::job::Job;
use schemas::parts::Parts;
use schemas::photo::Photo;
use schemas::{DocKind, read_state};
use uuid::Uuid;

/// The rows one document projects to. Writing them replaces what the same document projected
/// before (see the stores' `project`).
#[derive(Clone, Debug, PartialEq)]
pub enum DocRows {
    Job {
        job: JobRow,
        history: Vec<StatusRow>,
        signature: Option<SignatureRow>,
    },
    Checklist(ChecklistRows),
    Parts(PartsRows),
    Photo(PhotoRow),
}

#[derive(Clone, Debug, PartialEq)]
pub struct JobRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub title: String,
    pub priority: String,
    pub status: String,
    pub scheduled_start: Option<DateTime<Utc>>,
    pub scheduled_end: Option<DateTime<Utc>>,
    pub sort_at: DateTime<Utc>,
    /// Ids as the document names them; the store keeps only those that exist in the org.
    pub customer_id: Option<Uuid>,
    pub customer_name: String,
    pub site_id: Option<Uuid>,
    pub site_name: String,
    pub asset_id: Option<Uuid>,
    pub asset_name: Option<String>,
    /// User names in the document's order, as a JSON array.
    pub assignees: String,
    pub signed_off: bool,
    pub follow_up_of: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StatusRow {
    pub position: i32,
    pub from: Option<String>,
    pub to: String,
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SignatureRow {
    pub signer_name: String,
    pub signed_at: DateTime<Utc>,
    pub summary_sha256: String,
    pub blob_sha256: String,
    pub by: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChecklistRows {
    pub id: Uuid,
    pub org_id: Uuid,
    pub job_id: Uuid,
    pub template: String,
    pub title: String,
    pub items: Vec<ResponseRow>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResponseRow {
    pub position: i32,
    pub item_id: String,
    pub label: String,
    pub kind: String,
    pub required: bool,
    pub value: Option<serde_json::Value>,
    pub by: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PartsRows {
    pub id: Uuid,
    pub org_id: Uuid,
    pub job_id: Uuid,
    pub lines: Vec<PartRow>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PartRow {
    pub line_id: String,
    pub sku: String,
    pub description: String,
    pub qty: f64,
    pub unit: Option<String>,
    /// The stock location's code the line names; `None`: the van of the technician `by`.
    pub source: Option<String>,
    pub by: String,
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PhotoRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub job_id: Uuid,
    pub sha256: String,
    pub size: i64,
    pub mime: String,
    pub width: i32,
    pub height: i32,
    pub taken_at: DateTime<Utc>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub checklist_item: Option<String>,
    pub caption: String,
    pub upload: String,
    pub review_state: Option<String>,
    pub review_by: Option<String>,
    pub review_at: Option<DateTime<Utc>>,
    pub review_note: Option<String>,
}

/// The rows of `doc`, a document of `kind` in `org_id`. Fails only for a document whose state
/// does not decode, which the sync's guard never lets into the log.
pub fn rows_of(
    kind: DocKind,
    org_id: Uuid,
    doc: &AutoCommit,
) -> Result<DocRows, schemas::DocError> {
    Ok(match kind {
        DocKind::Job => job_rows(org_id, read_state::<Job>(doc, kind)?),
        DocKind::Checklist => {
            let c: Checklist = read_state(doc, kind)?;
            DocRows::Checklist(ChecklistRows {
                id: c.id,
                org_id,
                job_id: c.job_id,
                template: c.template,
                title: c.title,
                items: c
                    .items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| ResponseRow {
                        position: i as i32,
                        kind: serde_name(&item.template.kind),
                        item_id: item.template.id,
                        label: item.template.label,
                        required: item.template.required,
                        value: item
                            .value
                            .map(|v| serde_json::to_value(v).unwrap_or_default()),
                        by: item.by,
                        at: item.at,
                    })
                    .collect(),
            })
        }
        DocKind::Parts => {
            let p: Parts = read_state(doc, kind)?;
            DocRows::Parts(PartsRows {
                id: p.id,
                org_id,
                job_id: p.job_id,
                // BTreeMap order: by line id, so the rows come out the same every time.
                lines: p
                    .lines
                    .into_values()
                    .map(|l| PartRow {
                        line_id: l.id,
                        sku: l.sku,
                        description: l.description,
                        qty: l.qty,
                        unit: l.unit,
                        source: l.source,
                        by: l.by,
                        at: l.at,
                    })
                    .collect(),
            })
        }
        DocKind::Photo => {
            let p: Photo = read_state(doc, kind)?;
            DocRows::Photo(PhotoRow {
                id: p.id,
                org_id,
                job_id: p.job_id,
                sha256: p.sha256,
                size: p.size as i64,
                mime: p.mime,
                width: p.width as i32,
                height: p.height as i32,
                taken_at: p.taken_at,
                lat: p.location.as_ref().map(|l| l.lat),
                lon: p.location.as_ref().map(|l| l.lon),
                checklist_item: p.checklist_item,
                caption: p.caption,
                upload: serde_name(&p.upload),
                review_state: p.review.as_ref().map(|r| serde_name(&r.state)),
                review_by: p.review.as_ref().map(|r| r.by.clone()),
                review_at: p.review.as_ref().map(|r| r.at),
                review_note: p.review.map(|r| r.note),
            })
        }
    })
}

fn job_rows(org_id: Uuid, job: Job) -> DocRows {
    let history = job
        .status_history
        .iter()
        .enumerate()
        .map(|(i, h)| StatusRow {
            position: i as i32,
            from: h.from.map(|s| s.as_str().to_string()),
            to: h.to.as_str().to_string(),
            by: h.by.clone(),
            at: h.at,
        })
        .collect();
    let signature = job.signoff.as_ref().map(|s| SignatureRow {
        signer_name: s.signer_name.clone(),
        signed_at: s.signed_at,
        summary_sha256: s.summary_sha256.clone(),
        blob_sha256: s.signature_sha256.clone(),
        by: s.by.clone(),
    });
    let start = job.schedule.as_ref().map(|s| s.start);
    DocRows::Job {
        job: JobRow {
            id: job.id,
            org_id,
            title: job.title,
            priority: job.priority.as_str().to_string(),
            status: job.status.as_str().to_string(),
            scheduled_start: start,
            scheduled_end: job.schedule.as_ref().and_then(|s| s.end),
            sort_at: start.unwrap_or(job.created_at),
            customer_id: job.customer.id,
            customer_name: job.customer.name,
            site_id: job.site.id,
            site_name: job.site.name,
            asset_id: job.asset.as_ref().and_then(|a| a.id),
            asset_name: job.asset.map(|a| a.name),
            assignees: serde_json::to_string(&job.assignees).unwrap_or_else(|_| "[]".into()),
            signed_off: job.signoff.is_some(),
            follow_up_of: job.follow_up_of,
            created_at: job.created_at,
            created_by: job.created_by,
        },
        history,
        signature,
    }
}

/// A value's serde name (`"in_progress"`, `"photo"`), as the documents spell it.
fn serde_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// Stock a parts line takes or took from one location: `qty` is the signed change of the
/// location's stock (negative: taken out).
#[derive(Clone, Debug, PartialEq)]
pub struct Take {
    pub line_id: String,
    pub location_id: Uuid,
    pub sku: String,
    pub qty: f64,
}

/// The movements that bring what a job's lines took so far (`taken`: the sums of its earlier
/// movements per line, location and SKU) to what they take now (`wanted`). A line whose
/// quantity changed moves the difference; one whose SKU or location changed puts the old back
/// and takes the new; a removed line puts everything back. Applied to `taken`, the result
/// always sums to `wanted`, which is what makes a line move stock exactly once however often
/// (and from however many devices' merged edits) it is projected.
pub fn stock_deltas(wanted: &[Take], taken: &[Take]) -> Vec<Take> {
    let key = |t: &Take| (t.line_id.clone(), t.location_id, t.sku.clone());
    let mut sums: std::collections::BTreeMap<(String, Uuid, String), f64> = Default::default();
    for t in taken {
        *sums.entry(key(t)).or_default() -= t.qty;
    }
    for t in wanted {
        *sums.entry(key(t)).or_default() += t.qty;
    }
    sums.into_iter()
        // Quantities are decimal numbers a person typed; a difference below this is float noise.
        .filter(|(_, qty)| qty.abs() > 1e-9)
        .map(|((line_id, location_id, sku), qty)| Take {
            line_id,
            location_id,
            sku,
            qty,
        })
        .collect()
}

/// A projected part line with its prices, and its total (`qty × unit price`, to the cent).
#[allow(clippy::too_many_arguments)]
pub fn priced(
    line_id: String,
    sku: String,
    description: String,
    qty: f64,
    unit: Option<String>,
    location: Option<String>,
    unit_price_cents: Option<i64>,
    unit_cost_cents: Option<i64>,
) -> schemas::api::PricedLine {
    schemas::api::PricedLine {
        total_cents: unit_price_cents.map(|p| (qty * p as f64).round() as i64),
        line_id,
        sku,
        description,
        qty,
        unit,
        location,
        unit_price_cents,
        unit_cost_cents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(line: &str, loc: u128, sku: &str, qty: f64) -> Take {
        Take {
            line_id: line.into(),
            location_id: Uuid::from_u128(loc),
            sku: sku.into(),
            qty,
        }
    }

    fn apply(taken: &[Take], deltas: &[Take]) -> Vec<Take> {
        let mut all = taken.to_vec();
        all.extend_from_slice(deltas);
        // Summed per key, the same way the store reads them back.
        stock_deltas(&all, &[])
    }

    #[test]
    fn a_new_line_takes_its_quantity_once() {
        let wanted = [take("a", 1, "FILTER", -2.0)];
        let d = stock_deltas(&wanted, &[]);
        assert_eq!(d, wanted);
        assert!(
            stock_deltas(&wanted, &d).is_empty(),
            "projected twice: nothing more"
        );
    }

    #[test]
    fn a_changed_quantity_moves_the_difference() {
        let d = stock_deltas(&[take("a", 1, "F", -5.0)], &[take("a", 1, "F", -2.0)]);
        assert_eq!(d, vec![take("a", 1, "F", -3.0)]);
    }

    #[test]
    fn a_removed_line_puts_everything_back() {
        let taken = [take("a", 1, "F", -2.0), take("a", 1, "F", -1.5)];
        let d = stock_deltas(&[], &taken);
        assert_eq!(d, vec![take("a", 1, "F", 3.5)]);
    }

    #[test]
    fn a_moved_line_returns_to_the_old_location_and_takes_from_the_new() {
        let d = stock_deltas(&[take("a", 2, "G", -1.0)], &[take("a", 1, "F", -1.0)]);
        assert_eq!(d, vec![take("a", 1, "F", 1.0), take("a", 2, "G", -1.0)]);
    }

    #[test]
    fn any_sequence_of_states_ends_with_the_last_state_taken() {
        // Random successive states of a job's lines, each projected against what the earlier
        // projections moved: the movements always sum to the last state.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let mut taken: Vec<Take> = Vec::new();
            let mut state = Vec::new();
            for _ in 0..rng.random_range(1..8) {
                state = (0..rng.random_range(0..4))
                    .map(|i| {
                        take(
                            &format!("l{i}"),
                            rng.random_range(1..3),
                            ["F", "G"][rng.random_range(0..2)],
                            -(rng.random_range(1..20) as f64) / 4.0,
                        )
                    })
                    .collect();
                let d = stock_deltas(&state, &taken);
                taken = apply(&taken, &d);
            }
            assert_eq!(apply(&taken, &[]), apply(&state, &[]));
        }
    }
}
