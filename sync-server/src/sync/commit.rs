//! Group commit: the change-log appends of every connection that arrive while one commit runs go
//! to the store together in the next, so under load one fsync (SQLite) or one Postgres commit
//! carries many devices' edits instead of one.
//!
//! One task per node owns the store's write side. A caller hands it an [`Append`] and waits for
//! the result, so an ack still goes out only after the commit that holds its changes. There is no
//! timer: a lone edit is committed at once, and a batch is simply whatever queued up during the
//! previous commit (bounded by [`MAX_BATCH`] appends and [`MAX_BATCH_BYTES`]).
//!
//! A batch is all or nothing in the store. When it fails, each append in it is tried again on
//! its own, so one caller's fault (a document that is not registered) fails only that caller.
//!
//! Each commit also announces its documents to the other nodes, in the same transaction (see
//! [`Store::append_batch`]): by the time a caller acknowledges a change, the other nodes have
//! been told, whatever happens to this node next, and no round trip after the commit delays it.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::store::{Append, Store, StoreError, StoreResult};

/// At most this many appends share a commit.
pub const MAX_BATCH: usize = 256;
/// A batch stops growing once it holds this many change bytes (a few large uploads should not
/// make one transaction hold everyone else's acks for long).
pub const MAX_BATCH_BYTES: usize = 4 << 20;

struct Pending {
    append: Append,
    reply: oneshot::Sender<StoreResult<i64>>,
}

pub struct GroupCommit {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    /// This node's id, in the notices of its commits.
    node: Uuid,
    /// Started on first use, on the runtime that first appends (the state may be built outside
    /// one).
    queue: OnceLock<mpsc::UnboundedSender<Pending>>,
}

impl GroupCommit {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>, node: Uuid) -> GroupCommit {
        GroupCommit {
            store,
            metrics,
            node,
            queue: OnceLock::new(),
        }
    }

    /// Append to the log, committed together with whatever else is waiting. Returns the sequence
    /// number the document reached once the commit holding it is durable.
    pub async fn append(&self, append: Append) -> StoreResult<i64> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(self.store.clone(), self.metrics.clone(), self.node, rx));
            tx
        });
        let (reply, result) = oneshot::channel();
        match queue.send(Pending { append, reply }) {
            Ok(()) => result.await.unwrap_or_else(|_| {
                // The committer went away mid-commit (its runtime shut down): whether the
                // changes are in is unknown, and the caller treats that as a failed append.
                Err(StoreError::Database("the commit task stopped".into()))
            }),
            // The committer's runtime is gone (a test or tool that built the state on another
            // runtime): commit directly.
            Err(mpsc::error::SendError(p)) => self
                .store
                .append_batch(&[p.append], Some(self.node))
                .await
                .map(first),
        }
    }
}

fn first(seqs: Vec<i64>) -> i64 {
    seqs.first().copied().unwrap_or(0)
}

async fn run(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    node: Uuid,
    mut queue: mpsc::UnboundedReceiver<Pending>,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while let Some(p) = queue.recv().await {
        let mut bytes = size(&p.append);
        batch.push(p);
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(p) => {
                    bytes += size(&p.append);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        metrics.commit_batch_size.observe(batch.len() as f64);
        commit(store.as_ref(), node, std::mem::take(&mut batch)).await;
    }
}

fn size(a: &Append) -> usize {
    a.changes.iter().map(|c| c.bytes.len()).sum()
}

async fn commit(store: &dyn Store, node: Uuid, batch: Vec<Pending>) {
    let (appends, replies): (Vec<Append>, Vec<_>) =
        batch.into_iter().map(|p| (p.append, p.reply)).unzip();
    match store.append_batch(&appends, Some(node)).await {
        Ok(seqs) => {
            for (reply, seq) in replies.into_iter().zip(seqs) {
                // A caller that stopped waiting (its connection closed) simply misses its ack.
                let _ = reply.send(Ok(seq));
            }
        }
        Err(e) if appends.len() == 1 => {
            let _ = replies.into_iter().next().map(|reply| reply.send(Err(e)));
        }
        Err(e) => {
            tracing::debug!(error = %e, appends = appends.len(), "group commit failed; committing one by one");
            for (append, reply) in appends.into_iter().zip(replies) {
                let result = store
                    .append_batch(std::slice::from_ref(&append), Some(node))
                    .await;
                let _ = reply.send(result.map(first));
            }
        }
    }
}
