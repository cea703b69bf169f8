//! [`Garage`]: a single-node Garage (S3-compatible object store, run as a separate program) on
//! loopback for the blob store tests. The first test that asks starts it with a config in a
//! fixed folder under the temp dir (`replication_factor = 1`, SQLite metadata), assigns and
//! applies the layout, creates a bucket and a key and allows the key on the bucket; later tests,
//! in this process or another (nextest runs each test in its own), reuse the running instance.
//! A file lock keeps two processes from bootstrapping at once. Garage is installed by
//! `scripts/test.sh` (`cargo install garage --locked`); the instance is left running.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Loopback ports of the test instance (not Garage's defaults, so a developer's own Garage on
/// 3900 is left alone).
const S3_PORT: u16 = 39_100;
const RPC_PORT: u16 = 39_101;
const BUCKET: &str = "fieldsync-test";
const REGION: &str = "garage";

/// A running Garage and a key allowed on its bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Garage {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
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
        let creds = dir.join("credentials");
        let conf = dir.join("garage.toml");
        if let Some(g) = read_credentials(&creds) {
            if !answers(S3_PORT) {
                start(&conf, &dir);
                wait_for(|| answers(S3_PORT), "Garage's S3 port");
            }
            return g;
        }
        write_config(&conf, &dir);
        start(&conf, &dir);
        let node = retry(|| garage(&conf, &["node", "id", "-q"]), "garage node id");
        let node = node.trim().split('@').next().unwrap_or("").to_string();
        retry(
            || garage(&conf, &["layout", "assign", "-z", "dc1", "-c", "1G", &node]),
            "garage layout assign",
        );
        retry(
            || garage(&conf, &["layout", "apply", "--version", "1"]),
            "garage layout apply",
        );
        retry(
            || garage(&conf, &["bucket", "create", BUCKET]),
            "garage bucket create",
        );
        let key = retry(
            || garage(&conf, &["key", "create", BUCKET]),
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
            endpoint: format!("http://127.0.0.1:{S3_PORT}"),
            region: REGION.into(),
            bucket: BUCKET.into(),
            key_id: field("Key ID"),
            secret: field("Secret key"),
        };
        retry(
            || {
                garage(
                    &conf,
                    &[
                        "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", BUCKET,
                    ],
                )
            },
            "garage bucket allow",
        );
        wait_for(|| answers(S3_PORT), "Garage's S3 port");
        std::fs::write(
            &creds,
            format!("{}\n{}\n{}\n", g.endpoint, g.key_id, g.secret),
        )
        .expect("write the Garage credentials");
        g
    }
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

fn read_credentials(path: &Path) -> Option<Garage> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    Some(Garage {
        endpoint: lines.next()?.to_string(),
        region: REGION.into(),
        bucket: BUCKET.into(),
        key_id: lines.next()?.to_string(),
        secret: lines.next()?.to_string(),
    })
}

fn write_config(conf: &Path, dir: &Path) {
    let secret: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let text = format!(
        r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{RPC_PORT}"
rpc_public_addr = "127.0.0.1:{RPC_PORT}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{S3_PORT}"
root_domain = ".s3.garage.localhost"
"#,
        meta = dir.join("meta").display(),
        data = dir.join("data").display(),
    );
    std::fs::write(conf, text).expect("write the Garage config");
}

/// Start `garage server` in the background, its output in `server.log`; it outlives the test
/// process on purpose (later tests reuse it), so it is never waited for.
#[allow(clippy::zombie_processes)]
fn start(conf: &Path, dir: &Path) {
    let log = std::fs::File::create(dir.join("server.log")).expect("Garage log");
    Command::new(bin())
        .arg("-c")
        .arg(conf)
        .arg("server")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start garage server");
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
fn retry(mut f: impl FnMut() -> Result<String, String>, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(out) => return out,
            Err(e) if Instant::now() > deadline => panic!("{what} failed: {e}"),
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

fn wait_for(mut ready: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} did not answer in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}
