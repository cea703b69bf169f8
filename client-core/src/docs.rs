//! Documents on the device: loading, the in-memory cache, and persisting changes.
//!
//! A document is stored as a snapshot (`save()`, compacted) plus the incremental change bytes
//! written after it. Every mutation — a local action or changes from the server — goes through
//! [`Replica::persist`], which in one SQLite transaction appends the new change bytes, records
//! local changes as not yet acknowledged, and updates the query tables. If that transaction
//! fails the documents are dropped from the cache, so memory never runs ahead of disk.

use std::collections::{HashMap, HashSet};

use automerge::{AutoCommit, ChangeHash, ReadDoc};
use rusqlite::{OptionalExtension, params};
use schemas::DocKind;
use uuid::Uuid;

use crate::events::{ChangeEvent, Origin};
use crate::{Error, Replica, Result, queries};

/// When a document is compacted into a fresh snapshot: once its change rows weigh more than
/// its snapshot (and at least `COMPACT_MIN_BYTES`), or number `COMPACT_MAX_ROWS`. Tying it to
/// the snapshot's size keeps the bytes on disk under about twice the saved size, while a big
/// document — whose `save()` costs more — is compacted proportionally less often, so the cost
/// per edit stays flat and off the p99 of a checklist toggle.
pub const COMPACT_MIN_BYTES: usize = 2048;
pub const COMPACT_MAX_ROWS: usize = 256;

/// What a document has on disk after its snapshot.
#[derive(Clone, Copy, Default)]
struct Backlog {
    rows: usize,
    bytes: usize,
    snapshot_bytes: usize,
}

impl Backlog {
    fn wants_compaction(&self) -> bool {
        self.rows >= COMPACT_MAX_ROWS || self.bytes > self.snapshot_bytes.max(COMPACT_MIN_BYTES)
    }
}

pub(crate) struct Loaded {
    pub doc: AutoCommit,
    pub kind: DocKind,
    pub job_id: Uuid,
    /// Heads of what is on disk; `save_after(saved_heads)` is what still has to be written.
    saved_heads: Vec<ChangeHash>,
    /// Change rows on disk after the snapshot.
    backlog: Backlog,
    /// Not yet in the `documents` table.
    is_new: bool,
}

#[derive(Default)]
pub(crate) struct DocCache {
    pub(crate) loaded: HashMap<Uuid, Loaded>,
    /// SQLite's `data_version` when the cache was last known to match the disk.
    data_version: i64,
}

/// A document's identity as the replica records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DocInfo {
    pub id: Uuid,
    pub kind: DocKind,
    pub job_id: Uuid,
}

impl Replica {
    /// The loaded document `id`, loading it from disk if needed.
    pub(crate) fn loaded(&mut self, id: Uuid) -> Result<&mut Loaded> {
        self.forget_if_written_elsewhere()?;
        if !self.docs.loaded.contains_key(&id) {
            let l = self.load_from_disk(id)?;
            self.docs.loaded.insert(id, l);
        }
        Ok(self.docs.loaded.get_mut(&id).expect("just inserted"))
    }

    /// Another process (a second app instance, the CLI beside a running sync) may have written
    /// the replica: SQLite's `data_version` tells. Then every cached document that is not in the
    /// middle of an edit is dropped and reloads from disk when next used, so no stale copy is
    /// written back or shown.
    pub(crate) fn forget_if_written_elsewhere(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if version != self.docs.data_version {
            self.docs.data_version = version;
            self.docs.loaded.retain(|_, l| {
                use automerge::transaction::Transactable;
                l.is_new || l.doc.pending_ops() > 0 || l.doc.get_heads() != l.saved_heads
            });
        }
        Ok(())
    }

    fn load_from_disk(&self, id: Uuid) -> Result<Loaded> {
        let row: Option<(String, String, Option<Vec<u8>>)> = self
            .conn
            .query_row(
                "SELECT kind, job_id, snapshot FROM documents WHERE id = ?1",
                [id.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (kind, job_id, snapshot) = row.ok_or(Error::DocNotFound(id))?;
        let corrupt = |reason: String| Error::Corrupt { doc: id, reason };
        let kind = DocKind::parse(&kind).ok_or_else(|| corrupt(format!("unknown kind {kind}")))?;
        let job_id = Uuid::parse_str(&job_id).map_err(|e| corrupt(e.to_string()))?;
        let snapshot_len = snapshot.as_ref().map_or(0, Vec::len);
        let mut doc = match snapshot {
            Some(bytes) => AutoCommit::load(&bytes).map_err(|e| corrupt(e.to_string()))?,
            None => AutoCommit::new(),
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT bytes FROM doc_changes WHERE doc_id = ?1 ORDER BY seq")?;
        let mut rows = stmt.query([id.to_string()])?;
        let mut backlog = Backlog {
            snapshot_bytes: snapshot_len,
            ..Backlog::default()
        };
        while let Some(row) = rows.next()? {
            let bytes: Vec<u8> = row.get(0)?;
            doc.load_incremental(&bytes)
                .map_err(|e| corrupt(e.to_string()))?;
            backlog.rows += 1;
            backlog.bytes += bytes.len();
        }
        schemas::sync_message::forget_patches(&mut doc);
        doc.set_actor(self.actor.clone());
        let saved_heads = doc.get_heads();
        Ok(Loaded {
            doc,
            kind,
            job_id,
            saved_heads,
            backlog,
            is_new: false,
        })
    }

    /// Put a newly created document in the cache; the next `persist` writes it.
    pub(crate) fn insert_new(&mut self, id: Uuid, kind: DocKind, job_id: Uuid, doc: AutoCommit) {
        self.docs.loaded.insert(
            id,
            Loaded {
                doc,
                kind,
                job_id,
                saved_heads: Vec::new(),
                backlog: Backlog::default(),
                is_new: true,
            },
        );
    }

    /// Write whatever changed in documents `ids` since they were last written, in one
    /// transaction, with their query rows. `Origin::Local` records the new changes as not yet
    /// acknowledged by the server.
    /// Runs inside the caller's write (see [`Replica::write`]) or takes one of its own.
    pub(crate) fn persist(&mut self, ids: &[Uuid], origin: Origin) -> Result<()> {
        self.write(|r| match r.persist_inner(ids, origin) {
            Ok(events) => {
                r.deferred_events.extend(events);
                Ok(())
            }
            Err(e) => {
                // Memory may now hold changes the disk does not: forget them.
                for id in ids {
                    r.docs.loaded.remove(id);
                }
                Err(e)
            }
        })
    }

    fn persist_inner(&mut self, ids: &[Uuid], origin: Origin) -> Result<Vec<ChangeEvent>> {
        let now = schemas::job::ts(self.now());
        // A savepoint inside the enclosing write: this persist is all or nothing on its own.
        let tx = self.conn.savepoint()?;
        let mut updates = Vec::with_capacity(ids.len());
        let mut events = Vec::new();
        for id in ids {
            let l = self
                .docs
                .loaded
                .get_mut(id)
                .ok_or(Error::DocNotFound(*id))?;
            if l.is_new {
                tx.execute(
                    "INSERT INTO documents (id, kind, job_id) VALUES (?1, ?2, ?3)",
                    params![id.to_string(), l.kind.as_str(), l.job_id.to_string()],
                )?;
            }
            let bytes = l.doc.save_after(&l.saved_heads);
            let heads = l.doc.get_heads();
            if bytes.is_empty() && !l.is_new {
                continue;
            }
            let mut backlog = l.backlog;
            if !bytes.is_empty() {
                tx.prepare_cached("INSERT INTO doc_changes (doc_id, bytes) VALUES (?1, ?2)")?
                    .execute(params![id.to_string(), bytes])?;
                backlog.rows += 1;
                backlog.bytes += bytes.len();
            }
            if origin == Origin::Local {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO unacked (doc_id, hash, created_at) VALUES (?1, ?2, ?3)",
                )?;
                for change in l.doc.get_changes(&l.saved_heads) {
                    stmt.execute(params![id.to_string(), change.hash().to_string(), now])?;
                }
            }
            queries::update_for(&tx, *id, l.kind, &l.doc)?;
            if origin == Origin::Local {
                // A blob this device made joins the upload queue with the change naming it.
                crate::uploads::queue_for(&tx, &self.dir, *id, l.kind, l.job_id, &l.doc, &now)?;
            }
            if backlog.wants_compaction() {
                let snapshot = l.doc.save();
                backlog = Backlog {
                    snapshot_bytes: snapshot.len(),
                    ..Backlog::default()
                };
                tx.prepare_cached("UPDATE documents SET snapshot = ?2 WHERE id = ?1")?
                    .execute(params![id.to_string(), snapshot])?;
                tx.prepare_cached("DELETE FROM doc_changes WHERE doc_id = ?1")?
                    .execute([id.to_string()])?;
            }
            updates.push((*id, heads, backlog));
            events.push(ChangeEvent {
                doc_id: *id,
                kind: l.kind,
                job_id: l.job_id,
                origin,
            });
        }
        tx.commit()?;
        for (id, heads, backlog) in updates {
            if let Some(l) = self.docs.loaded.get_mut(&id) {
                l.saved_heads = heads;
                l.backlog = backlog;
                l.is_new = false;
            }
        }
        Ok(events)
    }

    /// Every document on the device.
    pub fn documents(&self) -> Result<Vec<DocInfo>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, kind, job_id FROM documents ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, job) = row?;
            out.push(DocInfo {
                id: Uuid::parse_str(&id).map_err(|e| Error::InvalidValue(e.to_string()))?,
                kind: DocKind::parse(&kind).ok_or_else(|| Error::InvalidValue(kind.clone()))?,
                job_id: Uuid::parse_str(&job).map_err(|e| Error::InvalidValue(e.to_string()))?,
            });
        }
        Ok(out)
    }

    /// The full saved form of a document (for sync, export and tests).
    pub fn save_document(&mut self, id: Uuid) -> Result<Vec<u8>> {
        Ok(self.loaded(id)?.doc.save())
    }

    /// The document's state as JSON.
    pub fn document_json(&mut self, id: Uuid) -> Result<serde_json::Value> {
        Ok(schemas::read_json(&self.loaded(id)?.doc))
    }

    pub fn heads(&mut self, id: Uuid) -> Result<Vec<ChangeHash>> {
        Ok(self.loaded(id)?.doc.get_heads())
    }

    /// Merge changes from elsewhere (the server, another replica) into document `id`, creating it
    /// if this device does not hold it yet. `bytes` is any mix of `save()` and change bytes.
    /// Returns false when the bytes brought nothing new.
    pub fn apply_remote(&mut self, info: DocInfo, bytes: &[u8]) -> Result<bool> {
        // Merge into the latest state on disk, under the write lock.
        self.write(|r| r.apply_remote_locked(info, bytes))
    }

    fn apply_remote_locked(&mut self, info: DocInfo, bytes: &[u8]) -> Result<bool> {
        let exists = self.docs.loaded.contains_key(&info.id) || self.has_document(info.id)?;
        if !exists {
            let mut doc = AutoCommit::new().with_actor(self.actor.clone());
            doc.load_incremental(bytes)
                .map_err(|e| Error::InvalidValue(format!("bad document bytes: {e}")))?;
            schemas::sync_message::forget_patches(&mut doc);
            let found = schemas::doc::doc_kind(&doc);
            if found != Some(info.kind) {
                return Err(Error::InvalidValue(format!(
                    "document {} is not a {}",
                    info.id, info.kind
                )));
            }
            self.insert_new(info.id, info.kind, info.job_id, doc);
        } else {
            let l = self.loaded(info.id)?;
            let before = l.doc.get_heads();
            if let Err(e) = l.doc.load_incremental(bytes) {
                self.docs.loaded.remove(&info.id);
                return Err(Error::InvalidValue(format!("bad document bytes: {e}")));
            }
            schemas::sync_message::forget_patches(&mut l.doc);
            if l.doc.get_heads() == before {
                return Ok(false);
            }
        }
        self.persist(&[info.id], Origin::Remote)?;
        Ok(true)
    }

    /// The next Automerge sync message for document `id` towards the peer whose state is `state`.
    pub fn generate_sync_message(
        &mut self,
        id: Uuid,
        state: &mut automerge::sync::State,
    ) -> Result<Option<automerge::sync::Message>> {
        Ok(schemas::sync_message::generate(
            &mut self.loaded(id)?.doc,
            state,
        ))
    }

    /// Apply a sync message for document `info` (creating the document if this device did not
    /// hold it) and persist what it brought. Content of another kind than `info` says is refused
    /// and nothing of it is kept.
    pub fn receive_sync_message(
        &mut self,
        info: DocInfo,
        state: &mut automerge::sync::State,
        msg: automerge::sync::Message,
    ) -> Result<bool> {
        let changed = self.apply_sync_message(info, state, msg)?;
        if changed {
            self.persist_remote(&[info.id])?;
        }
        Ok(changed)
    }

    /// Write documents changed by [`Self::apply_sync_message`], all in one transaction (one
    /// fsync for a whole frame of documents instead of one each).
    pub fn persist_remote(&mut self, ids: &[Uuid]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.persist(ids, Origin::Remote)
    }

    /// Apply a sync message in memory only; returns whether the document changed. Call
    /// [`Self::persist_remote`] for the changed documents before acknowledging or reporting them.
    pub fn apply_sync_message(
        &mut self,
        info: DocInfo,
        state: &mut automerge::sync::State,
        msg: automerge::sync::Message,
    ) -> Result<bool> {
        let exists = self.docs.loaded.contains_key(&info.id) || self.has_document(info.id)?;
        if !exists {
            self.insert_new(
                info.id,
                info.kind,
                info.job_id,
                AutoCommit::new().with_actor(self.actor.clone()),
            );
        }
        let l = self.loaded(info.id)?;
        let before = l.doc.get_heads();
        let result = schemas::sync_message::receive(&mut l.doc, state, msg);
        let kind_ok = schemas::doc::is_of_kind(&l.doc, info.kind);
        let changed = l.doc.get_heads() != before;
        if let Err(e) = result {
            self.docs.loaded.remove(&info.id);
            return Err(Error::InvalidValue(format!(
                "sync message for {} does not apply: {e}",
                info.id
            )));
        }
        if !kind_ok {
            self.docs.loaded.remove(&info.id);
            return Err(Error::InvalidValue(format!(
                "document {} is not a {}",
                info.id, info.kind
            )));
        }
        if !changed {
            // A document new to this device stays in memory only (it may need to ask the server
            // for its changes) and gets a row when its first changes arrive.
            return Ok(false);
        }
        Ok(true)
    }

    /// Remove a document from the device (its job was unassigned and its changes are safe).
    pub fn remove_document(&mut self, id: Uuid) -> Result<()> {
        self.write(|r| {
            let sid = id.to_string();
            r.conn
                .execute("DELETE FROM documents WHERE id = ?1", [&sid])?;
            for sql in [
                "DELETE FROM q_jobs WHERE id = ?1",
                "DELETE FROM q_checklists WHERE checklist_id = ?1",
                "DELETE FROM q_parts WHERE parts_id = ?1",
                "DELETE FROM q_photos WHERE id = ?1",
            ] {
                r.conn.execute(sql, [&sid])?;
            }
            r.docs.loaded.remove(&id);
            Ok(())
        })
    }

    /// The persisted sync state of document `id` with `peer`.
    pub fn sync_state(&self, id: Uuid, peer: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row(
                "SELECT state FROM sync_states WHERE doc_id = ?1 AND peer = ?2",
                params![id.to_string(), peer],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Save sync states in one transaction (documents no longer on the device are skipped).
    pub fn put_sync_states(&mut self, peer: &str, states: &[(Uuid, Vec<u8>)]) -> Result<()> {
        if states.is_empty() {
            return Ok(());
        }
        self.write(|r| {
            for (doc, state) in states {
                r.conn.execute(
                "INSERT INTO sync_states (doc_id, peer, state) SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM documents WHERE id = ?1)
                 ON CONFLICT (doc_id, peer) DO UPDATE SET state = excluded.state",
                params![doc.to_string(), peer, state],
            )?;
            }
            Ok(())
        })
    }

    /// Local changes of document `id` not yet acknowledged.
    pub fn unacked_count(&self, id: Uuid) -> Result<usize> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM unacked WHERE doc_id = ?1",
            [id.to_string()],
            |r| r.get::<_, i64>(0),
        )? as usize)
    }

    /// Bytes the replica stores for document `id`: its snapshot plus its change rows.
    pub fn stored_bytes(&self, id: Uuid) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT coalesce(length(d.snapshot), 0)
                    + coalesce((SELECT sum(length(c.bytes)) FROM doc_changes c WHERE c.doc_id = d.id), 0)
             FROM documents d WHERE d.id = ?1",
            [id.to_string()],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    /// Whether the device holds document `id`, on disk or (new, not yet written) in memory.
    pub fn knows_document(&self, id: Uuid) -> Result<bool> {
        Ok(self.docs.loaded.contains_key(&id) || self.has_document(id)?)
    }

    pub fn has_document(&self, id: Uuid) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM documents WHERE id = ?1",
                [id.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// Local changes the server has not acknowledged yet, as `(document, change hash)`.
    pub fn unacked(&self) -> Result<Vec<(Uuid, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT doc_id, hash FROM unacked ORDER BY created_at, doc_id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (doc, hash) = row?;
            out.push((
                Uuid::parse_str(&doc).map_err(|e| Error::InvalidValue(e.to_string()))?,
                hash,
            ));
        }
        Ok(out)
    }

    /// The server has durably stored document `id` up to `heads`: every local change those heads
    /// include is now safe. Heads this device does not know yet are ignored.
    pub fn ack(&mut self, id: Uuid, heads: &[ChangeHash]) -> Result<usize> {
        self.write(|r| r.ack_locked(id, heads))
    }

    fn ack_locked(&mut self, id: Uuid, heads: &[ChangeHash]) -> Result<usize> {
        let l = self.loaded(id)?;
        let known: Vec<ChangeHash> = heads
            .iter()
            .copied()
            .filter(|h| l.doc.get_change_by_hash(h).is_some())
            .collect();
        if known.is_empty() {
            return Ok(0);
        }
        let not_covered: HashSet<String> = l
            .doc
            .get_changes(&known)
            .iter()
            .map(|c| c.hash().to_string())
            .collect();
        let pending: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT hash FROM unacked WHERE doc_id = ?1")?;
            let rows = stmt.query_map([id.to_string()], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut acked = 0;
        for hash in pending.iter().filter(|h| !not_covered.contains(*h)) {
            acked += self.conn.execute(
                "DELETE FROM unacked WHERE doc_id = ?1 AND hash = ?2",
                params![id.to_string(), hash],
            )?;
        }
        Ok(acked)
    }
}
