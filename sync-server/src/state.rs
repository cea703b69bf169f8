//! The state every request and connection shares, and the calls that tell this node's
//! connections and the other nodes about a change.

use std::sync::Arc;

use uuid::Uuid;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{ChangeNotice, Notified, Store};
use crate::sync::docs::DocCache;
use crate::sync::hub::{ConnId, Hub};

/// What every request handler and connection shares.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub docs: DocCache,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    /// This process's id in change notices, so it can skip its own.
    pub node: Uuid,
    /// Failed sign-ins of this node, for backoff.
    pub throttle: crate::throttle::Throttle,
    /// Password checks, within their memory budget.
    pub passwords: crate::passwords::PasswordChecks,
    /// Where photo and signature bytes are kept (S3 or the data dir).
    pub blobs: Arc<dyn crate::blobs::BlobStore>,
    /// Uploads in progress on this node, and the thumbnail pool.
    pub uploads: crate::uploads::Uploads,
    /// Wakes the projection after a commit, and times its lag.
    pub projection: crate::projection::Trigger,
    /// The log position the relational rows cover, as this node last saw it: live boards wait
    /// on it (whichever node projected).
    pub rows_position: tokio::sync::watch::Sender<i64>,
    /// Who is connected to this node (written to the store for every node to read).
    pub presence: crate::presence::Presence,
    /// The board event streams open per user, against `config.max_board_streams`.
    pub board_streams: crate::http::board::Streams,
    /// The sensors this node holds and the queue of readings into the ingest task (`iot/`).
    pub sensors: crate::iot::Sensors,
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Arc<AppState> {
        let metrics = Arc::new(Metrics::default());
        let throttle = crate::throttle::Throttle::new(config.login_throttle);
        let node = Uuid::now_v7();
        let docs = DocCache::new(
            store.clone(),
            config.doc_cache_bytes,
            config.compact_every,
            metrics.clone(),
            node,
        );
        let passwords =
            crate::passwords::PasswordChecks::new(config.password_memory, metrics.clone());
        let blobs = crate::blobs::open(&config);
        let uploads = crate::uploads::Uploads::new(
            config.data_dir.join("uploads"),
            config.uploads.clone(),
            blobs.clone(),
        );
        Arc::new(AppState {
            blobs,
            uploads,
            passwords,
            config,
            store,
            docs,
            hub: Hub::default(),
            metrics,
            node,
            throttle,
            projection: Default::default(),
            rows_position: tokio::sync::watch::Sender::new(0),
            presence: Default::default(),
            board_streams: Default::default(),
            sensors: Default::default(),
        })
    }
}

impl AppState {
    /// `doc` reached `seq` in the log through this node's group commit: tell this node's
    /// connections holding it (but `except`, the one the change came from) and wake the
    /// projection. The other nodes were told by the commit itself ([`crate::sync::commit`]).
    pub fn doc_changed(&self, doc: Uuid, seq: i64, except: Option<ConnId>) {
        self.projection.committed(seq);
        self.hub.doc_changed(doc, except);
    }

    /// The document sets of `users` and of `org`'s org-wide connections changed: tell this node's
    /// connections and the other nodes.
    pub async fn sets_changed(&self, users: &[Uuid], org: Uuid) {
        self.hub.sets_changed(users, org);
        for of in users.iter().chain(std::iter::once(&org)) {
            self.notify(Notified::Sets { of: *of }).await;
        }
    }

    async fn notify(&self, what: Notified) {
        let notice = ChangeNotice {
            what,
            node: self.node,
        };
        if let Err(e) = self.store.publish_change(notice).await {
            tracing::warn!(error = %e, ?what, "could not tell other nodes about a change");
        }
    }

    /// A notice from another node: catch up and tell this node's connections (only these: the
    /// other nodes heard it too).
    pub(crate) async fn on_remote_notice(&self, notice: ChangeNotice) {
        match notice.what {
            // The id is a user's or an org's; the hub matches whichever it is.
            Notified::Sets { of } => self.hub.sets_changed(&[of], of),
            Notified::Doc { doc, seq } => {
                self.projection.committed(seq);
                match self.docs.refresh(doc).await {
                    Ok(_) => self.hub.doc_changed(doc, None),
                    Err(e) => {
                        tracing::warn!(%doc, error = %e, "could not catch up with another node's change")
                    }
                }
            }
            // Notices were lost while the feed was down: every document held is brought up to
            // the store, and every connection checks its document set again.
            Notified::Resync => {
                self.projection.wake();
                let mut caught_up = 0;
                for doc in self.docs.loaded_ids() {
                    match self.docs.refresh(doc).await {
                        Ok(true) => {
                            caught_up += 1;
                            self.hub.doc_changed(doc, None);
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(%doc, error = %e, "could not catch up after the change feed came back")
                        }
                    }
                }
                self.hub.all_sets_changed();
                tracing::info!(caught_up, "caught up after the change feed came back");
            }
        }
    }
}
