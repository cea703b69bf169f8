//! The server as a library: shared state, the router, and `launch`.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::config::{Config, Database};
use crate::docs::DocCache;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::{ChangeNotice, Store, postgres::PgStore, sqlite::SqliteStore};
use crate::{http, ws};

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
}

/// Open the configured store and bring its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match &config.database {
        Database::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Arc::new(SqliteStore::open(path)?)
        }
        Database::Postgres(url) => Arc::new(PgStore::connect(url).await?),
    };
    store.migrate().await?;
    Ok(store)
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Arc<AppState> {
        let metrics = Arc::new(Metrics::default());
        let throttle = crate::throttle::Throttle::new(config.login_throttle);
        let docs = DocCache::new(
            store.clone(),
            config.doc_cache_bytes,
            config.compact_every,
            metrics.clone(),
        );
        Arc::new(AppState {
            config,
            store,
            docs,
            hub: Hub::default(),
            metrics,
            node: Uuid::now_v7(),
            throttle,
        })
    }

    /// Tell other nodes (through the store) that `doc` reached `seq`. Failing to tell them is
    /// logged, not fatal: the change is durable and other nodes catch up on their next load.
    pub async fn publish(&self, doc: Uuid, seq: i64) {
        if let Err(e) = self
            .store
            .publish_change(ChangeNotice {
                doc_id: doc,
                seq,
                node: self.node,
            })
            .await
        {
            tracing::warn!(%doc, error = %e, "could not publish a change notice");
        }
    }
}

/// `seq` of a change notice that says "the document sets of this user or org changed" rather
/// than "this document changed"; `doc_id` then holds the user's or the org's id.
pub const SET_CHANGED_SEQ: i64 = -1;

impl AppState {
    /// Tell other nodes that the document sets of `users` (and the org's dispatchers) changed.
    pub async fn publish_sets_changed(&self, users: &[Uuid], org: Uuid) {
        for id in users.iter().chain(std::iter::once(&org)) {
            let notice = ChangeNotice {
                doc_id: *id,
                seq: SET_CHANGED_SEQ,
                node: self.node,
            };
            if let Err(e) = self.store.publish_change(notice).await {
                tracing::warn!(error = %e, "could not publish a set change");
            }
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(http::readyz))
        .route("/metrics", get(http::metrics))
        .route("/sync", get(ws::handler))
        .route("/api/v1/auth/login", post(http::login))
        .route("/api/v1/auth/refresh", post(http::refresh))
        .route("/api/v1/devices/{id}/revoke", post(http::revoke_device))
        .route("/api/v1/jobs", post(http::create_job))
        .route(
            "/api/v1/jobs/{id}",
            get(http::get_job).patch(http::patch_job),
        )
        .route("/api/v1/jobs/{id}/assign", post(http::assign))
        .route("/api/v1/jobs/{id}/unassign", post(http::unassign))
        .fallback(http::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Run the server on `listener` until `shutdown` resolves.
pub async fn launch(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    serve(AppState::new(config, store), listener, shutdown).await
}

/// Run an already built state (tests use this to put a faulty store in).
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Some(mut feed) = state.store.subscribe_changes().await? {
        let state = state.clone();
        tokio::spawn(async move {
            while let Some(notice) = feed.recv().await {
                if notice.node == state.node {
                    continue;
                }
                if notice.seq == SET_CHANGED_SEQ {
                    // The id is a user's or an org's; the hub matches whichever it is.
                    state.hub.sets_changed(&[notice.doc_id], notice.doc_id);
                    continue;
                }
                match state.docs.refresh(notice.doc_id).await {
                    Ok(_) => state.hub.doc_changed(notice.doc_id, None),
                    Err(e) => {
                        tracing::warn!(doc = %notice.doc_id, error = %e, "could not catch up with another node's change")
                    }
                }
            }
        });
    }
    tracing::info!(addr = %listener.local_addr()?, database = ?state.config.database, "serving");
    let service = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
