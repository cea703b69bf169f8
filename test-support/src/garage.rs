//! [`Garage`]: a single-node Garage (S3-compatible object store, run as a separate program) on
//! loopback for the blob store tests. The first test that asks starts it with a config in a
//! fixed folder under the temp dir (`replication_factor = 1`, SQLite metadata, two free loopback
//! ports picked then), assigns and applies the layout, creates a bucket and a key and allows the
//! key on the bucket; later tests, in this process or another (nextest runs each test in its
//! own), reuse the running instance. A file lock keeps two processes from bootstrapping at once.
//! Garage is installed by `scripts/test.sh` (`cargo install garage --locked`); the instance is
//! left running.
//!
//! The folder outlives the instance (a machine restart, a CI run after the session that started
//! it): then the instance is started again from its config, and when it does not come back in a
//! few seconds (a port taken meanwhile, metadata it refuses) the folder is wiped and a new
//! instance bootstrapped, so a stale folder never fails a test run. Every panic carries the end
//! of Garage's own log.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BUCKET: &str = "fieldsync-test";
const REGION: &str = "garage";
/// How long a restarted instance gets before the folder is given up and bootstrapped afresh.
const RESTART_GRACE: Duration = Duration::from_secs(15);

/// A running Garage and a key allowed on its bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Garage {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

/// What the folder records of its instance, beside the config.
struct Instance {
    garage: Garage,
    s3_port: u16,
}

impl Garage {
    /// The server's S3 settings for this instance.
    pub fn s3_config(&self) -> sync_server::config::S3Config {
        sync_server::config::S3Config {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            access_key_id: self.key_id.clone(),
            secret_access_key: self.secret.clone(),
        }
    }

    /// The running test instance, started (and bootstrapped) when there is none. Panics with
    /// what to do when the `garage` program is not installed.
    pub fn shared() -> Garage {
        let dir = std::env::temp_dir().join("fieldsync-garage");
        std::fs::create_dir_all(&dir).expect("create the Garage folder");
        let lock = std::fs::File::create(dir.join("lock")).expect("Garage lock file");
        lock.lock().expect("lock the Garage folder");
        let conf = dir.join("garage.toml");
        if let Some(known) = read_instance(&dir.join("instance")) {
            if is_ours(&conf, known.s3_port) {
                return known.garage;
            }
            start(&conf, &dir);
            let deadline = Instant::now() + RESTART_GRACE;
            while Instant::now() < deadline {
                if is_ours(&conf, known.s3_port) {
                    return known.garage;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            eprintln!(
                "the Garage test instance in {} did not come back; starting a new one. Its log:\n{}",
                dir.display(),
                log_tail(&dir)
            );
            stop(&dir);
            wipe(&dir);
        }
        bootstrap(&dir, &conf)
    }
}

/// A new instance in `dir`: config with free ports, server, layout, bucket, key.
fn bootstrap(dir: &Path, conf: &Path) -> Garage {
    let (s3_port, rpc_port) = (free_port(), free_port());
    write_config(conf, dir, s3_port, rpc_port);
    start(conf, dir);
    let node = retry(
        dir,
        || garage(conf, &["node", "id", "-q"]),
        "garage node id",
    );
    let node = node.trim().split('@').next().unwrap_or("").to_string();
    retry(
        dir,
        || garage(conf, &["layout", "assign", "-z", "dc1", "-c", "1G", &node]),
        "garage layout assign",
    );
    retry(
        dir,
        || garage(conf, &["layout", "apply", "--version", "1"]),
        "garage layout apply",
    );
    retry(
        dir,
        || garage(conf, &["bucket", "create", BUCKET]),
        "garage bucket create",
    );
    let key = retry(
        dir,
        || garage(conf, &["key", "create", BUCKET]),
        "garage key create",
    );
    let field = |name: &str| {
        key.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no `{name}` in `garage key create`'s output:\n{key}"))
    };
    let g = Garage {
        endpoint: format!("http://127.0.0.1:{s3_port}"),
        region: REGION.into(),
        bucket: BUCKET.into(),
        key_id: field("Key ID"),
        secret: field("Secret key"),
    };
    retry(
        dir,
        || {
            garage(
                conf,
                &[
                    "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", BUCKET,
                ],
            )
        },
        "garage bucket allow",
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers(s3_port) {
        if Instant::now() > deadline {
            panic!(
                "Garage's S3 port {s3_port} did not answer in 30 s. Garage's log:\n{}",
                log_tail(dir)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(
        dir.join("instance"),
        format!("{s3_port}\n{}\n{}\n", g.key_id, g.secret),
    )
    .expect("write the Garage instance file");
    g
}

/// The `garage` program: on the PATH or in cargo's bin folder.
pub fn garage_bin() -> Option<PathBuf> {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|c| c.join("bin").join("garage"));
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("garage"))
        .chain(cargo_bin)
        .find(|p| p.is_file())
}

fn bin() -> PathBuf {
    garage_bin().expect(
        "the blob store tests need Garage: run scripts/test.sh, or `cargo install garage --locked`",
    )
}

fn read_instance(path: &Path) -> Option<Instance> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let s3_port: u16 = lines.next()?.parse().ok()?;
    Some(Instance {
        garage: Garage {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            region: REGION.into(),
            bucket: BUCKET.into(),
            key_id: lines.next()?.to_string(),
            secret: lines.next()?.to_string(),
        },
        s3_port,
    })
}

/// Our instance is up: its S3 port answers and its RPC (authenticated by the config's secret)
/// does too, so a stranger that took the port is not mistaken for it.
fn is_ours(conf: &Path, s3_port: u16) -> bool {
    answers(s3_port) && garage(conf, &["status"]).is_ok()
}

/// A loopback port free right now (the OS picks it; it is released for Garage to bind).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn write_config(conf: &Path, dir: &Path, s3_port: u16, rpc_port: u16) {
    let secret: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let text = format!(
        r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"
"#,
        meta = dir.join("meta").display(),
        data = dir.join("data").display(),
    );
    std::fs::write(conf, text).expect("write the Garage config");
}

/// Start `garage server` in the background, its output in `server.log` and its pid in
/// `server.pid`; it outlives the test process on purpose (later tests reuse it), so it is never
/// waited for.
#[allow(clippy::zombie_processes)]
fn start(conf: &Path, dir: &Path) {
    let log = std::fs::File::create(dir.join("server.log")).expect("Garage log");
    let child = Command::new(bin())
        .arg("-c")
        .arg(conf)
        .arg("server")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start garage server");
    std::fs::write(dir.join("server.pid"), child.id().to_string()).expect("Garage pid file");
}

/// Stop the instance this folder last started, if it still runs (it may hold the folder's
/// metadata or a port).
fn stop(dir: &Path) {
    let Some(pid) = std::fs::read_to_string(dir.join("server.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        return;
    };
    // Only a process that is Garage: the pid may have been reused since.
    let is_garage =
        std::fs::read_to_string(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.contains("garage"));
    if is_garage {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Everything in the folder but the lock (held by the caller).
fn wipe(dir: &Path) {
    for entry in std::fs::read_dir(dir)
        .expect("read the Garage folder")
        .flatten()
    {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == "lock") {
            continue;
        }
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// The last lines of Garage's log, for panics.
fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn garage(conf: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(bin())
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Run `f` until it succeeds (Garage answers its RPC a moment after it starts), for 30 s.
fn retry(dir: &Path, mut f: impl FnMut() -> Result<String, String>, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(out) => return out,
            Err(e) if Instant::now() > deadline => {
                panic!("{what} failed: {e}\nGarage's log:\n{}", log_tail(dir))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn answers(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}
