//! The real `sync-server` binary as a child process.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a starting server may take to listen before the test gives up (it normally takes
/// well under a second; a loaded CI machine running migrations may take much longer).
const START_LIMIT: Duration = Duration::from_secs(120);

/// The `sync-server` binary next to the running test or bench: `target/<profile>/deps/<test>`
/// → `target/<profile>/sync-server`. Panics with a hint when it is not built (the e2e tests
/// need `cargo build -p sync-server --bins` first; `scripts/test.sh` does it). A test of the
/// sync-server package itself may rather use `env!("CARGO_BIN_EXE_sync-server")`.
pub fn sync_server_bin() -> PathBuf {
    workspace_bin("sync-server")
}

/// A binary of this workspace (`sync-server`, `mobile-shell`) next to the running test, built by
/// `cargo build --workspace --bins` (scripts/test.sh does it first).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current executable");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A server running as its own process. Killed (SIGKILL) and reaped when dropped.
pub struct ServerProcess {
    pub child: Child,
    /// `http://127.0.0.1:<port>`, as the server printed it.
    pub url: String,
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// `sync-server serve --listen 127.0.0.1:0` from [`sync_server_bin`], configured by `env`
    /// (`FIELDSYNC_DATA_DIR`, `DATABASE_URL`, …; an inherited `DATABASE_URL` is removed first),
    /// logging at `warn`.
    pub fn spawn(env: &[(&str, &str)]) -> ServerProcess {
        let mut cmd = Command::new(sync_server_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        ServerProcess::start(cmd)
    }

    /// Start `cmd`, which must run the server (directly, or through a shell that `exec`s it)
    /// listening on port 0, and wait until it prints `listening on <url>`. Its standard output
    /// is read to the end by a thread of its own (so the server never blocks on a full pipe);
    /// the first few warning and error lines are copied to standard error.
    pub fn start(mut cmd: Command) -> ServerProcess {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (ready, listening) = std::sync::mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            let mut shown = 0;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.strip_prefix("listening on ") {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(url.trim().to_owned());
                    }
                } else if shown < 20 && (line.contains("WARN") || line.contains("ERROR")) {
                    shown += 1;
                    eprintln!("[sync-server {pid}] {line}");
                }
            }
            // Dropping `ready` unsent tells the waiting test the server exited before listening.
        });
        let url = match listening.recv_timeout(START_LIMIT) {
            Ok(url) => url,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("the server did not start listening ({e}); it exited with {status:?}");
            }
        };
        let addr = url
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|e| panic!("the server's address {url:?}: {e}"));
        ServerProcess { child, url, addr }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to flush or say goodbye. Waits until the process is gone.
    pub fn kill_dash_nine(&mut self) {
        // `Child::kill` sends SIGKILL on Unix.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_dash_nine();
    }
}
