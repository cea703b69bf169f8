//! The org's parts catalog on the device, with what the technician's van holds: what the server
//! last sent ([`crate::sync::catalog`]), searched offline when a technician adds a part.

use rusqlite::params;
use serde::Serialize;

use crate::{Replica, Result};

/// A catalog entry as the parts search shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CatalogEntry {
    pub sku: String,
    pub name: String,
    pub unit: Option<String>,
    pub unit_price_cents: i64,
    /// What the technician's van holds, when the device knows.
    pub on_hand: Option<f64>,
}

impl Replica {
    /// Entries whose SKU or name contains `query` (any case), those in the van first, at most
    /// `limit`. An empty query lists the van's parts, then the rest.
    pub fn search_catalog(&self, query: &str, limit: usize) -> Result<Vec<CatalogEntry>> {
        let pattern = format!(
            "%{}%",
            query
                .trim()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let mut stmt = self.conn.prepare_cached(
            "SELECT sku, name, unit, unit_price_cents, on_hand FROM catalog
             WHERE sku LIKE ?1 ESCAPE '\\' OR name LIKE ?1 ESCAPE '\\'
             ORDER BY coalesce(on_hand, 0) <= 0, name, sku LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![pattern, limit as i64], |r| {
            Ok(CatalogEntry {
                sku: r.get(0)?,
                name: r.get(1)?,
                unit: r.get(2)?,
                unit_price_cents: r.get(3)?,
                on_hand: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The entry for `sku`, if the device holds one.
    pub fn catalog_entry(&self, sku: &str) -> Result<Option<CatalogEntry>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .prepare_cached(
                "SELECT sku, name, unit, unit_price_cents, on_hand FROM catalog WHERE sku = ?1",
            )?
            .query_row([sku], |r| {
                Ok(CatalogEntry {
                    sku: r.get(0)?,
                    name: r.get(1)?,
                    unit: r.get(2)?,
                    unit_price_cents: r.get(3)?,
                    on_hand: r.get(4)?,
                })
            })
            .optional()?)
    }

    /// Replace the held catalog with `entries`, in one transaction (a crash keeps the old one or
    /// the new one).
    pub(crate) fn replace_catalog(&self, entries: &[CatalogEntry]) -> Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute("DELETE FROM catalog", [])?;
        for e in entries {
            tx.execute(
                "INSERT INTO catalog (sku, name, unit, unit_price_cents, on_hand)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.sku, e.name, e.unit, e.unit_price_cents, e.on_hand],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sku: &str, name: &str, on_hand: Option<f64>) -> CatalogEntry {
        CatalogEntry {
            sku: sku.into(),
            name: name.into(),
            unit: None,
            unit_price_cents: 1250,
            on_hand,
        }
    }

    #[test]
    fn search_matches_sku_or_name_and_puts_the_van_first() {
        let dir = tempfile::tempdir().unwrap();
        let r = Replica::open(dir.path()).unwrap();
        r.replace_catalog(&[
            entry("IGN-100", "Hot surface igniter", None),
            entry("FLT-16", "Furnace filter 16x25", Some(4.0)),
            entry("CAP-45", "Run capacitor 45/5", Some(0.0)),
            entry("100%_X", "Odd sku", None),
        ])
        .unwrap();
        let skus = |q: &str| -> Vec<String> {
            r.search_catalog(q, 10)
                .unwrap()
                .into_iter()
                .map(|e| e.sku)
                .collect()
        };
        assert_eq!(skus("ign"), ["IGN-100"]);
        assert_eq!(skus("FILTER"), ["FLT-16"]);
        // The van's stock first, then by name.
        assert_eq!(skus("")[0], "FLT-16");
        assert_eq!(skus("").len(), 4);
        // LIKE's wildcards in a query are taken literally.
        assert_eq!(skus("%"), ["100%_X"]);
        assert_eq!(skus("_"), ["100%_X"]);
        assert_eq!(
            r.catalog_entry("CAP-45").unwrap().unwrap().on_hand,
            Some(0.0)
        );
        // Replacing drops what the server no longer sends.
        r.replace_catalog(&[entry("IGN-100", "Hot surface igniter", Some(2.0))])
            .unwrap();
        assert_eq!(skus(""), ["IGN-100"]);
    }
}
