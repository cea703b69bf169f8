//! Who is connected, across every node. Each node counts its own sync connections per user and
//! writes them to the store's `presence` table whenever they change (at most once per
//! `presence_interval`, batched) and, as a heartbeat, every interval. A user is online while some
//! node saw them connected within [`Presence::ttl`]: a node that dies stops refreshing its rows,
//! and they age out. A user's last sync is the last time any node saw them connected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::state::AppState;

/// How often a node prunes superseded presence rows.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Presence {
    inner: Mutex<Here>,
    changed: Notify,
}

#[derive(Default)]
struct Here {
    /// user → (org, connections on this node).
    connected: HashMap<Uuid, (Uuid, u32)>,
    /// Users who left this node since the last write, and when: a sync shorter than one write
    /// interval (`sync --once`) still counts as their last sync.
    left: HashMap<Uuid, (Uuid, DateTime<Utc>)>,
}

impl Presence {
    pub fn connect(&self, user: Uuid, org: Uuid) {
        let mut here = self.inner.lock().expect("presence lock");
        here.connected.entry(user).or_insert((org, 0)).1 += 1;
        here.left.remove(&user);
        drop(here);
        self.changed.notify_one();
    }

    pub fn disconnect(&self, user: Uuid) {
        let mut here = self.inner.lock().expect("presence lock");
        if let Some(entry) = here.connected.get_mut(&user) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                let org = entry.0;
                here.connected.remove(&user);
                here.left.insert(user, (org, Utc::now()));
            }
        }
        drop(here);
        self.changed.notify_one();
    }

    /// What to write: everyone connected here, and everyone who left since the last write (with
    /// no connections, so their row records this as their last sync).
    fn snapshot(&self) -> Vec<(Uuid, Uuid, u32)> {
        let here = self.inner.lock().expect("presence lock");
        here.connected
            .iter()
            .map(|(u, (o, n))| (*u, *o, *n))
            .chain(here.left.iter().map(|(u, (o, _))| (*u, *o, 0)))
            .collect()
    }

    /// A write made at `at` succeeded: who left before then is in the store now (who left
    /// since stays for the next write).
    fn written(&self, at: DateTime<Utc>) {
        let mut here = self.inner.lock().expect("presence lock");
        here.left.retain(|_, (_, left)| *left > at);
    }

    /// How long a node's word that a user is connected holds without a refresh: three
    /// heartbeats, so one slow write does not flicker everyone offline.
    pub fn ttl(interval: Duration) -> chrono::Duration {
        chrono::Duration::from_std(interval * 3).unwrap_or(chrono::Duration::seconds(30))
    }
}

/// Write this node's connections until the server stops: after every change (batched by the
/// interval) and every interval as a heartbeat. A failed write is retried at the next turn.
pub async fn run(app: Arc<AppState>) {
    let every = app.config.presence_interval;
    let mut last_prune = std::time::Instant::now();
    loop {
        let now = Utc::now();
        let records = app.store.records();
        let snapshot = app.presence.snapshot();
        match records.put_presence(app.node, now, &snapshot).await {
            Ok(()) => app.presence.written(now),
            Err(e) => tracing::warn!(error = %e, "could not record who is connected"),
        }
        // Every node that ever ran leaves a row per user it served: now and then, drop those
        // a newer row supersedes (each user keeps their newest, so their last sync stays).
        if last_prune.elapsed() >= PRUNE_EVERY {
            last_prune = std::time::Instant::now();
            if let Err(e) = records.prune_presence(now - Presence::ttl(every)).await {
                tracing::warn!(error = %e, "could not prune old presence rows");
            }
        }
        // Changes inside one interval share a write.
        tokio::select! {
            _ = app.presence.changed.notified() => tokio::time::sleep(every.min(Duration::from_millis(250))).await,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Per user of `org`: online (here or on any node recently), and the last time seen connected.
pub async fn of_org(
    app: &AppState,
    org: Uuid,
) -> Result<HashMap<Uuid, (bool, Option<DateTime<Utc>>)>, crate::store::StoreError> {
    let now = Utc::now();
    let fresh_after = now - Presence::ttl(app.config.presence_interval);
    let mut out: HashMap<Uuid, (bool, Option<DateTime<Utc>>)> = app
        .store
        .records()
        .presence(org, fresh_after)
        .await?
        .into_iter()
        .map(|p| (p.user_id, (p.online, p.last_seen)))
        .collect();
    // This node knows its own connections, and who just left it, before it writes them.
    let here = app.presence.inner.lock().expect("presence lock");
    for (user, (o, _)) in &here.connected {
        if *o == org {
            out.insert(*user, (true, Some(now)));
        }
    }
    for (user, (o, at)) in &here.left {
        if *o == org {
            let entry = out.entry(*user).or_insert((false, None));
            if entry.1.is_none_or(|seen| seen < *at) {
                entry.1 = Some(*at);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_shorter_than_a_write_is_still_written() {
        let p = Presence::default();
        let (user, org) = (Uuid::now_v7(), Uuid::now_v7());
        p.connect(user, org);
        p.connect(user, org);
        assert_eq!(p.snapshot(), vec![(user, org, 2)]);
        p.disconnect(user);
        assert_eq!(p.snapshot(), vec![(user, org, 1)]);
        p.disconnect(user);
        // Gone, but the next write records when they were last here.
        assert_eq!(p.snapshot(), vec![(user, org, 0)]);
        let before = Utc::now() - chrono::Duration::seconds(1);
        p.written(before);
        assert_eq!(
            p.snapshot().len(),
            1,
            "left after that write: kept for the next"
        );
        p.written(Utc::now());
        assert!(p.snapshot().is_empty());
    }
}
