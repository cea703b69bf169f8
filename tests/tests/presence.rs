//! Who is online, across nodes: a technician connected to one node shows online with a last
//! sync time on another node's `GET /api/v1/technicians`, goes offline there when the device
//! disconnects (keeping the last sync), and when the node holding the connection dies (its rows
//! age out). And the board's event streams are capped per user.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use fieldsync_e2e::{Backend, Device, ServerHome, Team, TestServer, access_token, api};
use serde_json::Value;

/// Ana's row in `GET /api/v1/technicians` of the node at `url`.
async fn ana_on(url: &str, token: &str, ana: &str) -> Value {
    let (s, list) = api(
        "GET",
        format!("{url}/api/v1/technicians"),
        Some(token.to_string()),
        None,
    )
    .await;
    assert_eq!(s, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == ana)
        .cloned()
        .unwrap()
}

/// Wait (up to 10 s) until Ana's `online` on the node at `url` is `want`.
async fn wait_online(url: &str, token: &str, ana: &str, want: bool) -> Value {
    let start = Instant::now();
    loop {
        let row = ana_on(url, token, ana).await;
        if row["online"] == want {
            return row;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "online never became {want}: {row}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Keep a live sync connection from `device` to `url` until `stop` is set.
fn connect(
    mut device: Device,
    url: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Device> {
    tokio::spawn(async move {
        let _ = client_core::sync::sync_until(
            &mut device.replica,
            &url,
            &device.token.clone(),
            Duration::from_secs(60),
            move |_| stop.load(Ordering::SeqCst),
        )
        .await;
        device
    })
}

async fn presence_across_nodes(backend: Backend) {
    let mut home = ServerHome::new(backend).await;
    home.config.presence_interval = Duration::from_millis(200);
    let one = TestServer::start(&home).await;
    // SQLite is one node: the second "node" is the same one.
    let two = match backend {
        Backend::Postgres => Some(TestServer::start(&home).await),
        Backend::Sqlite => None,
    };
    let other_url = two.as_ref().map_or(one.url.clone(), |t| t.url.clone());
    let team = Team::create(one.store(), &["ana"]).await;
    let ana = team.techs[0].name.clone();
    let token = access_token(one.store(), &team.dispatcher, None).await;

    let before = ana_on(&other_url, &token, &ana).await;
    assert_eq!(before["online"], false);
    assert_eq!(before["last_sync_at"], Value::Null, "never synced");

    // A one-shot sync, shorter than a presence write: still the last sync, everywhere.
    let mut device = Device::new(one.store(), &team.techs[0]).await;
    device.sync_to(&one.url).await.unwrap();
    let start = Instant::now();
    while ana_on(&other_url, &token, &ana).await["last_sync_at"].is_null() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a short sync never became the last sync"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Connected to node one: online on the other node too, with a last sync time.
    let stop = Arc::new(AtomicBool::new(false));
    let live = connect(device, one.url.clone(), stop.clone());
    let row = wait_online(&other_url, &token, &ana, true).await;
    assert!(row["last_sync_at"].is_string(), "{row}");

    // Disconnected: offline everywhere, the last sync kept.
    stop.store(true, Ordering::SeqCst);
    let device = live.await.unwrap();
    let row = wait_online(&other_url, &token, &ana, false).await;
    let last: chrono::DateTime<chrono::Utc> =
        row["last_sync_at"].as_str().unwrap().parse().unwrap();
    assert!(
        chrono::Utc::now() - last < chrono::Duration::seconds(10),
        "{row}"
    );

    // The node holding the connection dies: its word ages out on the surviving node.
    if let Some(two) = two {
        let stop = Arc::new(AtomicBool::new(false));
        let live = connect(device, one.url.clone(), stop.clone());
        wait_online(&two.url, &token, &ana, true).await;
        one.crash();
        wait_online(&two.url, &token, &ana, false).await;
        stop.store(true, Ordering::SeqCst);
        live.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_across_nodes_sqlite() {
    presence_across_nodes(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_across_nodes_postgres() {
    presence_across_nodes(Backend::Postgres).await;
}

/// Opens `GET /api/v1/board/events` and keeps it open; `(status, the open response)`.
fn open_stream(url: &str, token: &str) -> (u16, ureq::http::Response<ureq::Body>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let res = agent
        .get(format!("{url}/api/v1/board/events"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    (res.status().as_u16(), res)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_streams_are_capped_per_user() {
    let mut home = ServerHome::new(Backend::Sqlite).await;
    home.config.max_board_streams = 2;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana"]).await;
    let other = Team::create(server.store(), &["zed"]).await;
    let token = access_token(server.store(), &team.dispatcher, None).await;
    let other_token = access_token(server.store(), &other.dispatcher, None).await;
    let url = server.url.clone();
    tokio::task::spawn_blocking(move || {
        let (s1, first) = open_stream(&url, &token);
        let (s2, _second) = open_stream(&url, &token);
        assert_eq!((s1, s2), (200, 200));
        let (s3, mut third) = open_stream(&url, &token);
        assert_eq!(s3, 429);
        let body: Value = third.body_mut().read_json().unwrap();
        assert_eq!(body["error"], "too-many-streams", "{body}");
        // Another user is not held back by this one.
        let (s, _theirs) = open_stream(&url, &other_token);
        assert_eq!(s, 200);
        // Closing a stream gives its slot back.
        drop(first);
        let start = Instant::now();
        loop {
            let (s, _again) = open_stream(&url, &token);
            if s == 200 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "a closed stream's slot never came back"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
}

/// Rows of nodes that stopped are pruned once a newer row supersedes them; each user keeps
/// their newest, so their last sync is never lost.
async fn pruning_keeps_each_users_last_sync(backend: Backend) {
    let home = ServerHome::new(backend).await;
    let server = TestServer::start(&home).await;
    let team = Team::create(server.store(), &["ana", "ben"]).await;
    let (ana, ben, org) = (team.techs[0].id, team.techs[1].id, team.org.id);
    let records = server.store().records();
    let now = chrono::Utc::now();
    let (old, newer) = (
        now - chrono::Duration::hours(3),
        now - chrono::Duration::hours(2),
    );
    let (dead, alive) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    // A node that died served both; another served only ana since.
    records
        .put_presence(dead, old, &[(ana, org, 1), (ben, org, 1)])
        .await
        .unwrap();
    records.put_presence(dead, old, &[]).await.unwrap();
    records
        .put_presence(alive, newer, &[(ana, org, 1)])
        .await
        .unwrap();
    records.put_presence(alive, newer, &[]).await.unwrap();
    let pruned = records.prune_presence(now).await.unwrap();
    assert_eq!(pruned, 1, "only ana's row of the dead node is superseded");
    let seen = records.presence(org, now).await.unwrap();
    let last = |u| {
        seen.iter()
            .find(|p| p.user_id == u)
            .unwrap()
            .last_seen
            .unwrap()
    };
    assert_eq!(last(ana).timestamp_micros(), newer.timestamp_micros());
    assert_eq!(last(ben).timestamp_micros(), old.timestamp_micros());
    assert!(seen.iter().all(|p| !p.online));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_each_users_last_sync_sqlite() {
    pruning_keeps_each_users_last_sync(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_each_users_last_sync_postgres() {
    pruning_keeps_each_users_last_sync(Backend::Postgres).await;
}
