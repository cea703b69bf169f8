//! The server as a library: the state every request and connection shares, the router, and
//! `launch`.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::config::{Config, Database};
use crate::metrics::Metrics;
use crate::store::{ChangeNotice, Notified, Store, postgres::PgStore, sqlite::SqliteStore};
use crate::sync::docs::DocCache;
use crate::sync::hub::{ConnId, Hub};
use crate::{api, sync};

/// What every request handler and connection shares.
pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub docs: DocCache,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    /// This process's id in change notices, so it can skip its own.
    pub node: Uuid,
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
        Database::Postgres(url) => Arc::new(PgStore::connect_with(url, config.pg_pool_size).await?),
    };
    store.migrate().await?;
    Ok(store)
}

impl AppState {
    pub fn new(config: Config, store: Arc<dyn Store>) -> Arc<AppState> {
        let metrics = Arc::new(Metrics::default());
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
        })
    }
}

impl AppState {
    /// `doc` reached `seq` in the log: tell this node's connections holding it (but `except`, the
    /// one the change came from) and the other nodes. Failing to tell other nodes is logged, not
    /// fatal: the change is durable and they catch up on their next load.
    pub async fn doc_changed(&self, doc: Uuid, seq: i64, except: Option<ConnId>) {
        self.hub.doc_changed(doc, except);
        self.notify(Notified::Doc { doc, seq }).await;
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
    async fn on_remote_notice(&self, notice: ChangeNotice) {
        match notice.what {
            // The id is a user's or an org's; the hub matches whichever it is.
            Notified::Sets { of } => self.hub.sets_changed(&[of], of),
            Notified::Doc { doc, .. } => match self.docs.refresh(doc).await {
                Ok(_) => self.hub.doc_changed(doc, None),
                Err(e) => {
                    tracing::warn!(%doc, error = %e, "could not catch up with another node's change")
                }
            },
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(api::readyz))
        .route("/metrics", get(api::metrics))
        .route("/sync", get(sync::socket::handler))
        .route("/api/v1/auth/login", post(api::login))
        .route("/api/v1/auth/refresh", post(api::refresh))
        .route("/api/v1/devices/{id}/revoke", post(api::revoke_device))
        .route("/api/v1/jobs", post(api::create_job))
        .route("/api/v1/jobs/{id}", get(api::get_job).patch(api::patch_job))
        .route("/api/v1/jobs/{id}/assign", post(api::assign))
        .route("/api/v1/jobs/{id}/unassign", post(api::unassign))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Run the server on `listener` until `shutdown` resolves: open (and migrate) the store, add the
/// demo data when `config.demo` says so, and serve.
pub async fn launch(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let demo = config.demo;
    let state = AppState::new(config, store);
    if demo {
        for line in crate::demo::ensure(&state).await? {
            println!("{line}");
        }
    }
    println!("listening on http://{}", listener.local_addr()?);
    serve(state, listener, shutdown).await
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
                if notice.node != state.node {
                    state.on_remote_notice(notice).await;
                }
            }
        });
    }
    tracing::info!(addr = %listener.local_addr()?, database = ?state.config.database, "serving");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
