//! What the technician must be told that no screen shows by itself, kept until dismissed: a job
//! the dispatcher unassigned left the device (after its changes were uploaded).

use rusqlite::params;
use serde::Serialize;
use uuid::Uuid;

use crate::{Replica, Result};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    pub id: i64,
    pub at: String,
    pub job_id: Option<Uuid>,
    pub text: String,
}

impl Replica {
    /// Notices not dismissed, oldest first.
    pub fn notices(&self) -> Result<Vec<Notice>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, at, job_id, text FROM notices WHERE dismissed = 0 ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Notice {
                id: r.get(0)?,
                at: r.get(1)?,
                job_id: r
                    .get::<_, Option<String>>(2)?
                    .and_then(|s| Uuid::parse_str(&s).ok()),
                text: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Hide notice `id`; false when there is no such notice.
    pub fn dismiss_notice(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn
            .execute("UPDATE notices SET dismissed = 1 WHERE id = ?1", [id])?
            > 0)
    }

    pub(crate) fn add_notice(&self, job_id: Option<Uuid>, text: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO notices (at, job_id, text) VALUES (?1, ?2, ?3)",
            params![
                schemas::job::ts(chrono::Utc::now()),
                job_id.map(|j| j.to_string()),
                text
            ],
        )?;
        Ok(())
    }
}
