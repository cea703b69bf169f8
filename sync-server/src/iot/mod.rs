//! IoT sensors → jobs (issue 11, section 2). Sensors are registered to assets with thresholds and
//! a trigger rule (`http/sensors.rs`, `store/sensors.rs`); their readings arrive over MQTT
//! ([`mqtt`]: topic `fieldsync/{org_id}/sensors/{sensor_id}`, payload
//! `{"value": 71.5, "at": "…"}`) or in HTTP batches, and go through one pipeline:
//!
//! 1. **Checked** against the sensors held in memory ([`Sensors`], loaded at start, updated on
//!    create and reloaded every sweep): a payload that is not JSON with a number, a value that is
//!    not finite, a sensor no org has, a sensor of another org than the topic's or the caller's,
//!    or a time more than [`MAX_FUTURE`] ahead is refused and counted in `/metrics`
//!    (`fieldsync_sensor_readings_refused_total{reason}`).
//! 2. **Stored** in batches ([`ingest`]): one task per node takes whatever readings queued while
//!    it wrote the previous batch (no timer, like the change log's group commit) and writes them
//!    in one transaction (one `INSERT … UNNEST` on Postgres). Readings are kept by
//!    (sensor, time), so a time range reads in order whatever order they arrived in.
//! 3. **Evaluated** in memory, in time order, by each sensor's rule ([`trigger`], a pure state
//!    machine: K consecutive readings or a duration beyond a threshold, hysteresis, cool-down).
//! 4. A firing is **claimed** in the store and its job made ([`fire`]): one claim per firing
//!    whatever the number of nodes and readings, the job made from the rule's template with its
//!    priority, `source: {"sensor": id}`, and assigned ([`fire::assignee_for`]), so the
//!    technician's device gets it live by sync like any assignment.
//!
//! A periodic sweep reloads sensors created on other nodes, finishes firings whose node died
//! between the claim and the job, and deletes readings past the retention.

pub mod fire;
pub mod ingest;
pub mod mqtt;
pub mod trigger;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::state::AppState;
use crate::store::StoreResult;
use crate::store::sensors::{Reading, Sensor};

/// A reading may be this far ahead of the server's clock (devices' clocks drift); further, it is
/// refused (`future`), since it would hold the rule's cool-down and time order hostage.
pub const MAX_FUTURE: chrono::Duration = chrono::Duration::minutes(5);

/// How long a sensor id found nowhere is remembered as unknown before the store is asked again.
const UNKNOWN_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Readings queued for the ingest task, at most; the MQTT loop waits beyond it.
const QUEUE: usize = 100_000;

/// A sensor as the pipeline holds it.
#[derive(Debug)]
pub struct Def {
    pub sensor: Sensor,
    pub rule: trigger::Rule,
}

impl Def {
    pub fn new(sensor: Sensor) -> Def {
        let rule = trigger::Rule {
            min: sensor.min,
            max: sensor.max,
            consecutive: sensor.rule.consecutive,
            duration: chrono::Duration::seconds(i64::from(sensor.rule.duration_s)),
            hysteresis: sensor.rule.hysteresis,
            cooldown: chrono::Duration::seconds(i64::from(sensor.rule.cooldown_s)),
        };
        Def { sensor, rule }
    }
}

/// Why a reading was refused (the `reason` label and the HTTP batch's `refused[].reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    NonFinite,
    UnknownSensor,
    OtherOrg,
    Future,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::NonFinite => "non-finite",
            Refusal::UnknownSensor => "unknown-sensor",
            Refusal::OtherOrg => "other-org",
            Refusal::Future => "future",
        }
    }
}

/// What the ingest task is given.
pub enum Item {
    /// One reading (MQTT): stored and evaluated, nobody waits.
    One(Reading),
    /// A batch (HTTP): answered once stored.
    Batch(Vec<Reading>, oneshot::Sender<StoreResult<()>>),
}

/// The node's sensors in memory and the queue into the ingest task.
pub struct Sensors {
    defs: RwLock<HashMap<Uuid, Arc<Def>>>,
    unknown: Mutex<HashMap<Uuid, Instant>>,
    tx: mpsc::Sender<Item>,
    rx: Mutex<Option<mpsc::Receiver<Item>>>,
    /// Whether the MQTT connection is up and subscribed.
    pub mqtt_connected: AtomicBool,
}

impl Default for Sensors {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Sensors {
            defs: RwLock::default(),
            unknown: Mutex::default(),
            tx,
            rx: Mutex::new(Some(rx)),
            mqtt_connected: AtomicBool::new(false),
        }
    }
}

impl Sensors {
    /// The sensor if this node holds it.
    pub fn get(&self, id: Uuid) -> Option<Arc<Def>> {
        self.defs.read().expect("sensor cache").get(&id).cloned()
    }

    /// Hold a sensor (just created here, or read from the store).
    pub fn put(&self, sensor: Sensor) -> Arc<Def> {
        let id = sensor.id;
        let def = Arc::new(Def::new(sensor));
        self.defs
            .write()
            .expect("sensor cache")
            .insert(id, def.clone());
        self.unknown.lock().expect("unknown sensors").remove(&id);
        def
    }

    /// Replace what this node holds by every sensor of the store.
    pub fn replace_all(&self, sensors: Vec<Sensor>) {
        let mut defs = self.defs.write().expect("sensor cache");
        let keep: HashMap<Uuid, Arc<Def>> = sensors
            .into_iter()
            .map(|s| match defs.get(&s.id) {
                Some(d) if d.sensor == s => (s.id, d.clone()),
                _ => (s.id, Arc::new(Def::new(s))),
            })
            .collect();
        *defs = keep;
    }

    /// The sensor, from memory or else the store (a sensor another node created since the last
    /// sweep); `None` when no org has it. Ids found nowhere are remembered for a moment, so a
    /// flood of readings for unknown sensors costs no query each.
    pub async fn lookup(&self, app: &AppState, id: Uuid) -> StoreResult<Option<Arc<Def>>> {
        if let Some(d) = self.get(id) {
            return Ok(Some(d));
        }
        {
            let mut unknown = self.unknown.lock().expect("unknown sensors");
            if unknown.get(&id).is_some_and(|t| t.elapsed() < UNKNOWN_TTL) {
                return Ok(None);
            }
            if unknown.len() > 10_000 {
                unknown.retain(|_, t| t.elapsed() < UNKNOWN_TTL);
            }
        }
        match app
            .store
            .sensor_store()
            .sensors(None, Some(id))
            .await?
            .pop()
        {
            Some(s) => Ok(Some(self.put(s))),
            None => {
                self.unknown
                    .lock()
                    .expect("unknown sensors")
                    .insert(id, Instant::now());
                Ok(None)
            }
        }
    }

    /// Check a reading for `org` (the topic's or the caller's) against the sensor.
    pub async fn check(
        &self,
        app: &AppState,
        org: Uuid,
        sensor_id: Uuid,
        value: f64,
        at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Result<Reading, Refusal>> {
        if !value.is_finite() {
            return Ok(Err(Refusal::NonFinite));
        }
        let Some(def) = self.lookup(app, sensor_id).await? else {
            return Ok(Err(Refusal::UnknownSensor));
        };
        if def.sensor.org_id != org {
            return Ok(Err(Refusal::OtherOrg));
        }
        let at = at.unwrap_or(now);
        if at > now + MAX_FUTURE {
            return Ok(Err(Refusal::Future));
        }
        Ok(Ok(Reading {
            sensor_id,
            org_id: org,
            at,
            value,
        }))
    }

    /// Queue one checked reading (waits while the queue is full).
    pub async fn submit(&self, r: Reading) {
        // The receiver lives as long as the server's ingest task; after it, nothing to do.
        let _ = self.tx.send(Item::One(r)).await;
    }

    /// Queue checked readings and wait until they are stored.
    pub async fn submit_batch(&self, rs: Vec<Reading>) -> StoreResult<()> {
        let (done, stored) = oneshot::channel();
        let stopped = || {
            crate::store::StoreError::Unavailable("the ingestion of readings has stopped".into())
        };
        if self.tx.send(Item::Batch(rs, done)).await.is_err() {
            return Err(stopped());
        }
        stored.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// The queue's receiving end, once (the ingest task takes it).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<Item>> {
        self.rx.lock().expect("ingest receiver").take()
    }

    pub fn set_mqtt_connected(&self, up: bool) {
        self.mqtt_connected.store(up, Ordering::Relaxed);
    }
}

/// The sensors' figures in `/metrics`.
pub struct SensorMetrics {
    /// Readings accepted, by `via` (`mqtt`, `http`).
    pub accepted: Family<Vec<(String, String)>, Counter>,
    /// Readings refused, by `reason` ([`Refusal`]).
    pub refused: Family<Vec<(String, String)>, Counter>,
    /// Readings written to the store.
    pub stored: Counter,
    /// Readings whose batch the store failed to write (dropped; MQTT has no one to answer).
    pub store_failures: Counter,
    /// Readings per store transaction.
    pub batch_size: Histogram,
    /// Rules that fired on this node, and those whose claim this node won (a job).
    pub fired: Counter,
    pub jobs: Counter,
    /// 1 while this node's MQTT connection is up.
    pub mqtt_connected: Gauge,
}

impl Default for SensorMetrics {
    fn default() -> Self {
        SensorMetrics {
            accepted: Family::default(),
            refused: Family::default(),
            stored: Counter::default(),
            store_failures: Counter::default(),
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            fired: Counter::default(),
            jobs: Counter::default(),
            mqtt_connected: Gauge::default(),
        }
    }
}

impl SensorMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sensor_readings_accepted",
            "Sensor readings accepted, by transport",
            self.accepted.clone(),
        );
        registry.register(
            "sensor_readings_refused",
            "Sensor readings refused (malformed, non-finite, unknown sensor, other org, future)",
            self.refused.clone(),
        );
        registry.register(
            "sensor_readings_stored",
            "Sensor readings written to the store",
            self.stored.clone(),
        );
        registry.register(
            "sensor_readings_store_failures",
            "Sensor readings lost to a failed store write",
            self.store_failures.clone(),
        );
        registry.register(
            "sensor_readings_batch_size",
            "Sensor readings per store transaction",
            self.batch_size.clone(),
        );
        registry.register(
            "sensor_rules_fired",
            "Sensor trigger rules that fired on this node",
            self.fired.clone(),
        );
        registry.register(
            "sensor_jobs_opened",
            "Jobs opened by sensor rules on this node",
            self.jobs.clone(),
        );
        registry.register(
            "mqtt_connected",
            "1 while the node's MQTT connection is up",
            self.mqtt_connected.clone(),
        );
    }

    pub fn accept(&self, via: &str, n: u64) {
        self.accepted
            .get_or_create(&vec![("via".to_string(), via.to_string())])
            .inc_by(n);
    }

    pub fn refuse(&self, reason: Refusal) {
        self.refused
            .get_or_create(&vec![("reason".to_string(), reason.as_str().to_string())])
            .inc();
    }
}
