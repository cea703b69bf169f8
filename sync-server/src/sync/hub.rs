//! Live fan-out inside one node: which connection holds which document, and telling them when a
//! document changed or a user's document set changed. Across nodes, the same notices arrive
//! through the store's change feed (Postgres LISTEN/NOTIFY) and are fed in here.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

pub type ConnId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The document has changes the connection may not have seen.
    DocChanged(Uuid),
    /// The connection's document set may have changed (an assignment moved).
    SetChanged,
    /// The connection's device was revoked: close it.
    Revoked,
}

#[derive(Default)]
pub struct Hub {
    next: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    conns: HashMap<ConnId, Conn>,
    by_doc: HashMap<Uuid, HashSet<ConnId>>,
    by_user: HashMap<Uuid, HashSet<ConnId>>,
    /// Connections that see a whole org (dispatchers, back office).
    by_org: HashMap<Uuid, HashSet<ConnId>>,
}

struct Conn {
    tx: UnboundedSender<Notice>,
    user: Uuid,
    device: Option<Uuid>,
    org: Option<Uuid>,
    docs: HashSet<Uuid>,
}

impl Hub {
    /// Register a connection of `user` (on `device`); `org` is set for connections that see the
    /// whole org.
    pub fn register(
        &self,
        user: Uuid,
        device: Option<Uuid>,
        org: Option<Uuid>,
        tx: UnboundedSender<Notice>,
    ) -> ConnId {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut inner = self.inner.lock().expect("hub lock");
        inner.by_user.entry(user).or_default().insert(id);
        if let Some(org) = org {
            inner.by_org.entry(org).or_default().insert(id);
        }
        inner.conns.insert(
            id,
            Conn {
                tx,
                user,
                device,
                org,
                docs: HashSet::new(),
            },
        );
        id
    }

    pub fn unregister(&self, conn: ConnId) {
        let mut inner = self.inner.lock().expect("hub lock");
        let Some(c) = inner.conns.remove(&conn) else {
            return;
        };
        for doc in &c.docs {
            if let Some(set) = inner.by_doc.get_mut(doc) {
                set.remove(&conn);
                if set.is_empty() {
                    inner.by_doc.remove(doc);
                }
            }
        }
        if let Some(set) = inner.by_user.get_mut(&c.user) {
            set.remove(&conn);
        }
        if let Some(org) = c.org
            && let Some(set) = inner.by_org.get_mut(&org)
        {
            set.remove(&conn);
        }
    }

    pub fn subscribe(&self, conn: ConnId, doc: Uuid) {
        let mut inner = self.inner.lock().expect("hub lock");
        if let Some(c) = inner.conns.get_mut(&conn) {
            c.docs.insert(doc);
            inner.by_doc.entry(doc).or_default().insert(conn);
        }
    }

    pub fn unsubscribe(&self, conn: ConnId, doc: Uuid) {
        let mut inner = self.inner.lock().expect("hub lock");
        if let Some(c) = inner.conns.get_mut(&conn) {
            c.docs.remove(&doc);
        }
        if let Some(set) = inner.by_doc.get_mut(&doc) {
            set.remove(&conn);
        }
    }

    /// Tell every connection holding `doc`, except `except` (the one the change came from).
    pub fn doc_changed(&self, doc: Uuid, except: Option<ConnId>) {
        let inner = self.inner.lock().expect("hub lock");
        if let Some(conns) = inner.by_doc.get(&doc) {
            for id in conns.iter().filter(|id| Some(**id) != except) {
                if let Some(c) = inner.conns.get(id) {
                    let _ = c.tx.send(Notice::DocChanged(doc));
                }
            }
        }
    }

    /// The document sets of `users` and of the org-wide connections of `org` may have changed.
    pub fn sets_changed(&self, users: &[Uuid], org: Uuid) {
        let inner = self.inner.lock().expect("hub lock");
        let mut told = HashSet::new();
        let org_conns = inner.by_org.get(&org).into_iter().flatten();
        for id in users
            .iter()
            .filter_map(|u| inner.by_user.get(u))
            .flatten()
            .chain(org_conns)
        {
            if told.insert(*id)
                && let Some(c) = inner.conns.get(id)
            {
                let _ = c.tx.send(Notice::SetChanged);
            }
        }
    }

    /// Every connection's document set may have changed (notices about them were lost).
    pub fn all_sets_changed(&self) {
        let inner = self.inner.lock().expect("hub lock");
        for c in inner.conns.values() {
            let _ = c.tx.send(Notice::SetChanged);
        }
    }

    /// Tell the connections of a revoked device to close.
    pub fn device_revoked(&self, device: Uuid) {
        let inner = self.inner.lock().expect("hub lock");
        for c in inner.conns.values().filter(|c| c.device == Some(device)) {
            let _ = c.tx.send(Notice::Revoked);
        }
    }

    pub fn connection_count(&self) -> usize {
        self.inner.lock().expect("hub lock").conns.len()
    }
}
