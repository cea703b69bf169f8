//! After the customer's sign-off the checklist and parts are frozen: they are what the customer
//! signed (the sign-off's summary hash covers both). A device that was offline when the
//! customer signed may still merge edits to them later; those are kept in the history, put back
//! by a server change ([`super::guard::freeze`]) and recorded as a flagged
//! `changed_after_signoff` audit row, so nothing a technician did disappears silently.
//!
//! Only a change that moves the state *away from* the signed one is put back: when the state
//! before it did not match the summary either (the signing device's own changes still
//! arriving, one document after another), there is no signed state to go back to, and the
//! job's view shows the mismatch instead (`signoff_matches`). Pure logic: no IO.

use automerge::{AutoCommit, ChangeHash};
use schemas::DocKind;
use schemas::checklist::{Checklist, summary_hash};
use schemas::parts::Parts;

use super::guard::{self, Repair};

/// What the customer signed, as needed to judge a change to one of the two documents: the
/// summary hash, and the current state of the other document.
pub struct Signed {
    pub summary: String,
    pub sibling: Sibling,
}

pub enum Sibling {
    Checklist(Checklist),
    Parts(Parts),
}

/// Whether `doc` (a checklist or parts document), read at `heads` (its current state when
/// `None`), together with the sibling hashes to the signed summary.
fn matches(kind: DocKind, doc: &AutoCommit, heads: Option<&[ChangeHash]>, signed: &Signed) -> bool {
    let state = match heads {
        Some(h) => schemas::doc::read_json_at(doc, h),
        None => schemas::read_json(doc),
    };
    let hash = match (kind, &signed.sibling) {
        (DocKind::Checklist, Sibling::Parts(parts)) => serde_json::from_value::<Checklist>(state)
            .ok()
            .map(|c| summary_hash(&c.items, parts.lines.values())),
        (DocKind::Parts, Sibling::Checklist(checklist)) => serde_json::from_value::<Parts>(state)
            .ok()
            .map(|p| summary_hash(&checklist.items, p.lines.values())),
        _ => None,
    };
    hash.as_deref() == Some(signed.summary.as_str())
}

/// Put back what the changes since `before` altered of a signed checklist or parts list. `None`
/// when the document still matches what was signed, or did not match it before either.
pub fn enforce(
    kind: DocKind,
    doc: &mut AutoCommit,
    before: &[ChangeHash],
    signed: &Signed,
) -> Option<Repair> {
    if matches(kind, doc, None, signed) || !matches(kind, doc, Some(before), signed) {
        return None;
    }
    guard::freeze(
        kind,
        doc,
        before,
        "changed after the customer signed off; put back as signed",
    )
}
