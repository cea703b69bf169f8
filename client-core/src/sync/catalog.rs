//! Fetching the org's parts catalog and what the technician's van holds when the device syncs
//! (`GET /api/v1/catalog`, `GET /api/v1/stock/mine`), so parts are searched offline.

use std::collections::HashMap;
use std::time::Duration;

use schemas::api::{CatalogItem, StockLevel};

use crate::catalog::CatalogEntry;
use crate::{Error, Replica, Result};

/// Ask the server for the catalog and the van's stock, and keep them; returns how many entries
/// the device now holds.
pub fn refresh(r: &Replica, server: &str, token: &str) -> Result<usize> {
    let items: Vec<CatalogItem> = get_json(server, token, "/api/v1/catalog")?;
    let stock: Vec<StockLevel> = get_json(server, token, "/api/v1/stock/mine")?;
    let mut on_hand: HashMap<String, f64> = HashMap::new();
    for s in stock {
        *on_hand.entry(s.sku).or_default() += s.on_hand;
    }
    let entries: Vec<CatalogEntry> = items
        .into_iter()
        .map(|i| CatalogEntry {
            on_hand: on_hand.get(&i.sku).copied(),
            sku: i.sku,
            name: i.name,
            unit: i.unit,
            unit_price_cents: i.unit_price_cents,
        })
        .collect();
    r.replace_catalog(&entries)?;
    Ok(entries.len())
}

fn get_json<T: serde::de::DeserializeOwned>(server: &str, token: &str, path: &str) -> Result<T> {
    let agent = crate::tls::agent(Duration::from_secs(10), Duration::from_secs(60), false)?;
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut resp = agent
        .get(&url)
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .map_err(|e| match e {
            ureq::Error::Io(e) => crate::tls::io_failure(server, &e),
            e => Error::Offline {
                server: server.to_string(),
                reason: e.to_string(),
            },
        })?;
    match resp.status().as_u16() {
        200 => {
            let body = resp
                .body_mut()
                .with_config()
                .limit(32 * 1024 * 1024)
                .read_to_string()
                .map_err(|e| Error::Io(std::io::Error::other(e.to_string())))?;
            serde_json::from_str(&body).map_err(|e| {
                Error::Io(std::io::Error::other(format!(
                    "the server's answer to {path} does not parse: {e}"
                )))
            })
        }
        401 => Err(Error::Unauthorized(format!(
            "the server refused the sign-in token for {path}; sign in again"
        ))),
        s if s >= 500 => Err(Error::ServerUnavailable { status: s }),
        s => Err(Error::Refused { status: s }),
    }
}
