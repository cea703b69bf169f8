//! The org's checklist templates on the device: what the server last sent
//! ([`crate::sync::templates`]), falling back to the built-in pack for any name it did not send
//! and for a device that has not fetched yet. Jobs made on the device offline use these.

use rusqlite::params;
use schemas::template::{self, Template};

use crate::{Replica, Result};

/// `meta` key of the `ETag` of the set the device holds.
pub(crate) const ETAG_KEY: &str = "templates_etag";

impl Replica {
    /// Every template a job can be made from here, by name.
    pub fn templates(&self) -> Result<Vec<Template>> {
        let mut own = self.org_templates()?;
        for b in template::builtin() {
            if !own.iter().any(|t| t.name == b.name) {
                own.push(b);
            }
        }
        own.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(own)
    }

    /// The template called `name`: the org's version the device holds, or the built-in one.
    pub fn template(&self, name: &str) -> Result<Option<Template>> {
        let own = self
            .conn
            .prepare_cached("SELECT body FROM org_templates WHERE name = ?1")?
            .query_row([name], |r| r.get::<_, String>(0))
            .ok();
        match own {
            Some(body) => Ok(serde_json::from_str(&body)
                .ok()
                .or_else(|| template::find(name))),
            None => Ok(template::find(name)),
        }
    }

    fn org_templates(&self) -> Result<Vec<Template>> {
        let bodies = self
            .conn
            .prepare_cached("SELECT body FROM org_templates ORDER BY name")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        // A body this build cannot read (a newer server's format) is skipped, not fatal: the
        // built-in template of that name stays usable.
        Ok(bodies
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect())
    }

    /// Replace the held set with the server's, and remember its `ETag`: in one transaction, so a
    /// crash keeps the old set or the new one, never half of each.
    pub(crate) fn replace_templates(&self, set: &[Template], etag: &str) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM org_templates", [])?;
        for t in set {
            let body = serde_json::to_string(t)
                .map_err(|e| crate::Error::InvalidValue(format!("template `{}`: {e}", t.name)))?;
            tx.execute(
                "INSERT INTO org_templates (name, version, body) VALUES (?1, ?2, ?3)",
                params![t.name, t.version, body],
            )?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [ETAG_KEY, etag],
        )?;
        tx.commit()?;
        Ok(())
    }
}
