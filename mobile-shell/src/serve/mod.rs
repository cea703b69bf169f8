//! `mobile-shell serve`: the technician's app. client-core with sync in the background
//! ([`background`]), and a mobile-first web UI served from files embedded in this binary
//! ([`assets`]) that reads and writes only through the local HTTP and event API ([`api`]), the
//! same API a native Kotlin or Swift shell around client-core would call. The contract is
//! `mobile-shell/ui/README.md`.
//!
//! One `serve` per data dir: a second one is refused with a clear error (an OS file lock that
//! goes away with the process, however it ends). The CLI may still run beside it; every write
//! takes the replica's write lock.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use client_core::{Options, Replica};

mod api;
mod assets;
mod background;
mod errors;

pub use background::Link;

/// Settings of one `serve`.
pub struct Serve {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub options: Options,
}

/// Take the data dir for this process: a lock on `serve.lock` that the OS drops when the
/// process ends, so a crashed shell never blocks the next one.
fn claim(dir: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data folder {}", dir.display()))?;
    let path = dir.join("serve.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "another `mobile-shell serve` is already running on {} ({}); stop it first or use another --data-dir",
                dir.display(),
                if holder.trim().is_empty() {
                    "process unknown".to_string()
                } else {
                    format!("process {}", holder.trim())
                }
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

pub fn run(settings: Serve) -> anyhow::Result<()> {
    let _lock = claim(&settings.data_dir)?;
    // Opened here first, so a broken or newer replica is said before anything is served.
    let replica = Replica::open_with(&settings.data_dir, settings.options.clone())?;
    let link = Arc::new(Link::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        background::start(&settings.data_dir, settings.options.clone(), link.clone());
        let app = api::router(api::App::new(
            replica,
            settings.data_dir.clone(),
            settings.options.clone(),
            link,
        )?);
        // The one line a launcher (or a test) waits for.
        println!("serving the app at http://{addr}/");
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}
