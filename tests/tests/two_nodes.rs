//! Two server processes on one Postgres: a change received by node 1 reaches a device connected
//! to node 2 without polling (LISTEN/NOTIFY), and so does an assignment made through node 1.

use std::time::Duration;

use fieldsync_e2e::{add_user, http_login};
use fieldsync_test_support::{PgDb, ServerProcess};
use schemas::parts::NewPartLine;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Wait (bounded) until node's metrics report `n` open sync connections.
async fn wait_for_connections(url: &str, n: usize) {
    let metrics = format!("{url}/metrics");
    for _ in 0..100 {
        let m = metrics.clone();
        let body = blocking(move || {
            ureq::get(&m)
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap()
        })
        .await;
        if body
            .lines()
            .any(|l| l == format!("fieldsync_sync_connections {n}"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node never reported {n} connection(s)");
}

/// A job for ana and ben, made by the dispatcher through the node at `url`.
async fn job_for_both(url: &str, title: &str) -> uuid::Uuid {
    let (url, title) = (url.to_string(), title.to_string());
    blocking(move || {
        let bearer = format!("Bearer {}", http_login(&url, "dana"));
        let job: serde_json::Value = ureq::post(format!("{url}/api/v1/jobs"))
            .header("authorization", &bearer)
            .send_json(serde_json::json!({"title": title, "assignees": ["ana", "ben"]}))
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        job["id"].as_str().unwrap().parse().unwrap()
    })
    .await
}

/// A device of `name` signed in at `url` and synced once: its replica, folder and token.
async fn synced_device(
    name: &'static str,
    url: &str,
) -> (client_core::Replica, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut r = client_core::Replica::open(dir.path()).unwrap();
    let at = url.to_string();
    r = blocking(move || {
        client_core::sync::account::login(&mut r, &at, name, fieldsync_e2e::PASSWORD, "phone")
            .unwrap();
        r
    })
    .await;
    let token = r.meta("access_token").unwrap().unwrap();
    client_core::sync::sync_once(&mut r, url, &token, Duration::from_secs(10))
        .await
        .unwrap();
    (r, dir, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_node_one_reaches_a_device_on_node_two() {
    let db = PgDb::create().await;
    let env = [("DATABASE_URL", db.url.as_str())];
    add_user(&env, "acme", "ana", "technician");
    add_user(&env, "acme", "ben", "technician");
    add_user(&env, "acme", "dana", "dispatcher");
    let node1 = ServerProcess::spawn(&env);
    let node2 = ServerProcess::spawn(&env);

    // The dispatcher creates a job for both technicians through node 1.
    let job = job_for_both(&node1.url, "Two-node job").await;
    let (mut ana, _ana_dir, ana_token) = synced_device("ana", &node1.url).await;
    let (mut ben, _ben_dir, ben_token) = synced_device("ben", &node2.url).await;
    assert!(ben.job(job).is_ok());

    // Ben stays connected to node 2 and waits for ana's part.
    let url2 = node2.url.clone();
    let token = ben_token.clone();
    let waiting = tokio::spawn(async move {
        let r =
            client_core::sync::sync_until(&mut ben, &url2, &token, Duration::from_secs(20), |r| {
                r.job(job)
                    .is_ok_and(|v| v.parts.iter().any(|l| l.sku == "FROM-NODE-1"))
            })
            .await;
        (ben, r)
    });
    wait_for_connections(&node2.url, 1).await;
    ana.add_part(
        job,
        NewPartLine {
            sku: "FROM-NODE-1".into(),
            qty: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    client_core::sync::sync_once(&mut ana, &node1.url, &ana_token, Duration::from_secs(10))
        .await
        .unwrap();
    let (mut ben, result) = waiting.await.unwrap();
    result.expect("ben, on node 2, received the change made through node 1");

    // An assignment made through node 1 reaches ben's live connection on node 2.
    let url2 = node2.url.clone();
    let token = ben_token.clone();
    let waiting = tokio::spawn(async move {
        let r =
            client_core::sync::sync_until(&mut ben, &url2, &token, Duration::from_secs(20), |r| {
                r.list_jobs(client_core::JobFilter::All)
                    .is_ok_and(|jobs| jobs.iter().any(|j| j.title == "Second job"))
            })
            .await;
        (ben, r)
    });
    wait_for_connections(&node2.url, 1).await;
    let url1 = node1.url.clone();
    blocking(move || {
        let bearer = format!("Bearer {}", http_login(&url1, "dana"));
        ureq::post(format!("{url1}/api/v1/jobs"))
            .header("authorization", &bearer)
            .send_json(serde_json::json!({"title": "Second job", "assignees": ["ben"]}))
            .unwrap();
    })
    .await;
    let (_ben, result) = waiting.await.unwrap();
    result.expect("the new assignment reached node 2's device live");
}

/// A TCP proxy to Postgres for one node: `cut` drops every connection it carries, and while
/// `hold` is on, new connections wait before they reach the database.
struct PgProxy {
    addr: String,
    open: tokio::sync::watch::Sender<bool>,
    cuts: tokio::sync::watch::Sender<u64>,
}

impl PgProxy {
    async fn start(target: String) -> PgProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (open, _) = tokio::sync::watch::channel(true);
        let (cuts, _) = tokio::sync::watch::channel(0u64);
        let (o, c) = (open.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (mut open, mut cut) = (o.subscribe(), c.subscribe());
                let target = target.clone();
                tokio::spawn(async move {
                    if open.wait_for(|o| *o).await.is_err() {
                        return;
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    cut.mark_unchanged();
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        PgProxy { addr, open, cuts }
    }

    fn hold(&self, on: bool) {
        self.open.send_replace(!on);
    }

    fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// Node 2 loses its database connections, its change feed included, and cannot reconnect while
/// node 1 commits a change and notifies: that notice is lost to node 2. Once node 2 listens
/// again it catches up with the store (every document it holds, every connection's set), so the
/// device on node 2 still gets the change, without any change of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_node_two_cannot_listen_still_reaches_its_device() {
    let db = PgDb::create().await;
    let env1 = [("DATABASE_URL", db.url.as_str())];
    add_user(&env1, "acme", "ana", "technician");
    add_user(&env1, "acme", "ben", "technician");
    add_user(&env1, "acme", "dana", "dispatcher");
    let host = db
        .url
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();
    let proxy = PgProxy::start(host.clone()).await;
    let proxied = db.url.replacen(&host, &proxy.addr, 1);
    let env2 = [("DATABASE_URL", proxied.as_str())];
    let node1 = ServerProcess::spawn(&env1);
    let node2 = ServerProcess::spawn(&env2);

    let job = job_for_both(&node1.url, "Feed gap").await;
    let (mut ana, _ana_dir, ana_token) = synced_device("ana", &node1.url).await;
    let (mut ben, _ben_dir, ben_token) = synced_device("ben", &node2.url).await;

    // Ben stays connected to node 2 (which holds the job's documents) and waits.
    let url2 = node2.url.clone();
    let waiting = tokio::spawn(async move {
        client_core::sync::sync_until(&mut ben, &url2, &ben_token, Duration::from_secs(30), |r| {
            r.job(job)
                .is_ok_and(|v| v.parts.iter().any(|l| l.sku == "WHILE-DOWN"))
        })
        .await
    });
    wait_for_connections(&node2.url, 1).await;
    // Its first exchange done, the idle connection asks nothing of the store.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Node 2 loses the database; node 1 commits and notifies meanwhile.
    proxy.hold(true);
    proxy.cut();
    ana.add_part(
        job,
        NewPartLine {
            sku: "WHILE-DOWN".into(),
            qty: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    client_core::sync::sync_once(&mut ana, &node1.url, &ana_token, Duration::from_secs(10))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.hold(false);

    waiting
        .await
        .unwrap()
        .expect("ben, on node 2, got the change whose notice node 2 missed");
}
