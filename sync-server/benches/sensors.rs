//! IoT sensor figures (BENCHMARKS.md, "IoT sensors"):
//!
//!     SQLX_OFFLINE=true cargo bench -p sync-server --bench sensors
//!
//! The server runs in this process on port 0 with Postgres (a scratch database on
//! `FIELDSYNC_TEST_POSTGRES`, default 127.0.0.1:5432) and the MQTT broker at
//! `BENCH_MQTT_URL` (default Mosquitto at 127.0.0.1:1883), everything on this machine:
//! - **ingestion**: `BENCH_READINGS` (200,000) readings of 100 sensors, within their thresholds,
//!   published over MQTT (QoS 1) by two clients as fast as they go; readings stored per second,
//!   from the first publish to the last reading stored;
//! - **reading → job on the device**: `BENCH_TRIALS` (100) times, one reading over a sensor's
//!   threshold (K = 1, no cool-down) is published while the assigned technician's device is
//!   connected (client-core's live sync); the time until the job's documents are in the
//!   device's replica; then a reading back within re-arms the rule. p50, p99, max.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use schemas::sensors::SensorRule;
use sync_server::config::{Database, MqttConfig};
use sync_server::store::Role;
use sync_server::store::records::{Asset, Customer, Site};
use sync_server::store::sensors::Sensor;
use sync_server::{AppState, Config};
use uuid::Uuid;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn publisher(host: &str, port: u16) -> AsyncClient {
    let mut o = MqttOptions::new(format!("bench-{}", Uuid::now_v7().simple()), host, port);
    o.set_inflight(1_000)
        .set_keep_alive(Duration::from_secs(60));
    let (client, mut events) = AsyncClient::new(o, 10_000);
    tokio::spawn(async move {
        loop {
            if events.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    client
}

async fn sensor(app: &AppState, org: Uuid, asset: Uuid, assignee: Option<String>) -> Sensor {
    let s = Sensor {
        id: Uuid::now_v7(),
        org_id: org,
        asset_id: asset,
        kind: "temperature".into(),
        unit: "°C".into(),
        min: Some(-1000.0),
        max: Some(1000.0),
        rule: SensorRule {
            consecutive: 1,
            duration_s: 0,
            hysteresis: 0.0,
            cooldown_s: 0,
            template: "general".into(),
            priority: schemas::Priority::High,
            assignee,
        },
        created_at: Utc::now(),
    };
    app.store.sensor_store().create_sensor(&s).await.unwrap();
    app.sensors.put(s.clone());
    s
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let readings: usize = env("BENCH_READINGS", 200_000);
    let trials: usize = env("BENCH_TRIALS", 100);
    let mqtt = MqttConfig {
        url: env("BENCH_MQTT_URL", "mqtt://127.0.0.1:1883".to_string()),
        group: format!("bench-{}", Uuid::now_v7().simple()),
        qos: env("BENCH_MQTT_QOS", 0),
    };
    let (host, port) = mqtt.host_port().unwrap();
    let pg = fieldsync_test_support::PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded(dir.path());
    config.database = Database::Postgres(pg.url.clone());
    config.mqtt = Some(mqtt);
    let store = sync_server::open_store(&config).await.unwrap();
    let app = AppState::new(config, store.clone());
    let (addr, _server) = fieldsync_test_support::serve_in_process(app.clone()).await;
    let url = format!("http://{addr}");

    let org = store.create_org("sensor-bench").await.unwrap();
    let hash = sync_server::auth::hash_password("bench password");
    let tech = store
        .create_user(org.id, "bench-tech", Role::Technician, &hash)
        .await
        .unwrap();
    let records = store.records();
    let customer = Customer {
        id: Uuid::now_v7(),
        org_id: org.id,
        name: "Northwind".into(),
        phone: None,
        email: None,
        created_at: Utc::now(),
    };
    records.create_customer(&customer).await.unwrap();
    let site = Site {
        id: Uuid::now_v7(),
        org_id: org.id,
        customer_id: customer.id,
        name: "Cold store".into(),
        address: None,
        time_zone: "UTC".into(),
    };
    records.create_site(&site).await.unwrap();
    let asset = Asset {
        id: Uuid::now_v7(),
        org_id: org.id,
        site_id: site.id,
        name: "Freezer".into(),
        make: None,
        model: None,
        serial: None,
        vin: None,
        install_date: None,
    };
    records.create_asset(&asset).await.unwrap();
    while !app
        .sensors
        .mqtt_connected
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Ingestion.
    let mut topics = Vec::new();
    for _ in 0..100 {
        let s = sensor(&app, org.id, asset.id, None).await;
        topics.push(format!("fieldsync/{}/sensors/{}", org.id, s.id));
    }
    let clients = [publisher(&host, port), publisher(&host, port)];
    let start = Instant::now();
    let mut sends = Vec::new();
    for (c, client) in clients.iter().enumerate() {
        let client = client.clone();
        let topics = topics.clone();
        sends.push(tokio::spawn(async move {
            for i in (c..readings).step_by(2) {
                let payload = format!(r#"{{"value": {}}}"#, (i % 50) as f64 + 0.5);
                client
                    .publish(&topics[i % topics.len()], QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
            }
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
    let published = start.elapsed();
    let stored = || app.metrics.sensors.stored.get() as usize;
    let mut last = (stored(), Instant::now());
    while stored() < readings {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = stored();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(5) {
            break; // nothing more is coming
        }
    }
    let took = if stored() >= readings {
        start.elapsed()
    } else {
        last.1 - start
    };
    let n = stored();
    println!(
        "ingestion: {n} of {readings} readings stored in {:.2} s (published in {:.2} s): {:.0} readings/s",
        took.as_secs_f64(),
        published.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    // Reading over the threshold → job on the assigned device.
    let s = sensor(&app, org.id, asset.id, Some(tech.name.clone())).await;
    let topic = format!("fieldsync/{}/sensors/{}", org.id, s.id);
    let device = store.register_device(tech.id, "bench").await.unwrap();
    let token = sync_server::auth::issue(
        store.as_ref(),
        &tech,
        Some(device.id),
        Utc::now(),
        chrono::Duration::hours(2),
        chrono::Duration::days(1),
    )
    .await
    .unwrap()
    .access_token;
    let replica_dir = tempfile::tempdir().unwrap();
    let mut replica = client_core::Replica::open(replica_dir.path()).unwrap();
    replica.set_user(&tech.name).unwrap();
    let sent: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let got: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let live = {
        let (sent, got) = (sent.clone(), got.clone());
        async move {
            client_core::sync::sync_until(
                &mut replica,
                &url,
                &token,
                Duration::from_secs(600),
                move |r| {
                    let jobs = r
                        .documents()
                        .unwrap()
                        .iter()
                        .filter(|d| d.kind == schemas::DocKind::Job)
                        .count();
                    let sent = sent.lock().unwrap();
                    let mut got = got.lock().unwrap();
                    while got.len() < jobs.min(sent.len()) {
                        let i = got.len();
                        got.push(sent[i].elapsed());
                    }
                    got.len() >= trials
                },
            )
            .await
            .unwrap();
        }
    };
    let drive = {
        let client = clients[0].clone();
        let (sent, got) = (sent.clone(), got.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await; // the device connects
            for i in 0..trials {
                sent.lock().unwrap().push(Instant::now());
                client
                    .publish(&topic, QoS::AtLeastOnce, false, r#"{"value": 5000}"#)
                    .await
                    .unwrap();
                let t = Instant::now();
                while got.lock().unwrap().len() <= i {
                    assert!(t.elapsed() < Duration::from_secs(30), "trial {i} timed out");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                client
                    .publish(&topic, QoS::AtLeastOnce, false, r#"{"value": 0}"#)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await; // re-armed in the store
            }
        }
    };
    tokio::join!(live, drive);
    let mut times = got.lock().unwrap().clone();
    times.sort();
    println!(
        "reading over threshold -> job on the assigned device ({} trials): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3
    );
}
