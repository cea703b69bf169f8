//! What the server repaired: when it keeps this device's changes but fixes the document (an
//! invalid value, a field a technician may not change, changes after the job was unassigned), it
//! says so with `repaired`; the device records each one so the technician can see it.

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;
use uuid::Uuid;

use crate::{Error, Replica, Result};

/// One repair the server made to a document this device changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Repair {
    pub doc_id: Uuid,
    pub job_id: Uuid,
    /// One sentence per repaired field.
    pub reasons: Vec<String>,
    /// When the device learned of it.
    pub at: DateTime<Utc>,
    /// The changes arrived after the job had been unassigned from this technician.
    pub after_unassign: bool,
}

impl Replica {
    /// Record a repair the server reported (at the replica's clock).
    pub fn record_repair(
        &mut self,
        doc_id: Uuid,
        job_id: Uuid,
        reasons: &[String],
        after_unassign: bool,
    ) -> Result<()> {
        let at = schemas::job::ts(self.now());
        let reasons = serde_json::to_string(reasons).expect("strings serialize");
        self.write(|r| {
            r.conn.execute(
                "INSERT INTO repairs (doc_id, job_id, reasons, at, after_unassign)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    doc_id.to_string(),
                    job_id.to_string(),
                    reasons,
                    at,
                    after_unassign
                ],
            )?;
            Ok(())
        })
    }

    /// Every recorded repair, oldest first.
    pub fn repairs(&self) -> Result<Vec<Repair>> {
        let mut stmt = self.conn.prepare(
            "SELECT doc_id, job_id, reasons, at, after_unassign FROM repairs ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
            ))
        })?;
        let bad = |e: String| Error::InvalidValue(format!("repairs table: {e}"));
        let mut out = Vec::new();
        for row in rows {
            let (doc, job, reasons, at, after_unassign) = row?;
            out.push(Repair {
                doc_id: Uuid::parse_str(&doc).map_err(|e| bad(e.to_string()))?,
                job_id: Uuid::parse_str(&job).map_err(|e| bad(e.to_string()))?,
                reasons: serde_json::from_str(&reasons).map_err(|e| bad(e.to_string()))?,
                at: DateTime::parse_from_rfc3339(&at)
                    .map_err(|e| bad(e.to_string()))?
                    .to_utc(),
                after_unassign,
            });
        }
        Ok(out)
    }
}
