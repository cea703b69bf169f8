//! The ingest task (one per node): readings queued by MQTT and HTTP are written in batches, then
//! run through their sensors' rules in time order; and the sweep, which keeps the node's sensors
//! current, finishes firings whose node died, and prunes old readings.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::trigger::{self, Decision};
use super::{Item, fire};
use crate::state::AppState;
use crate::store::StoreResult;
use crate::store::sensors::Reading;

/// Run until the task is dropped (with the server).
pub async fn run(app: Arc<AppState>) {
    let Some(mut rx) = app.sensors.take_receiver() else {
        tracing::warn!("the sensor ingest task runs once per server state; not started again");
        return;
    };
    let max = app.config.readings_batch;
    let mut states: HashMap<Uuid, trigger::State> = HashMap::new();
    let mut batch: Vec<Reading> = Vec::with_capacity(max);
    let mut waiting: Vec<oneshot::Sender<StoreResult<()>>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut item = Some(first);
        // Whatever queued meanwhile joins the batch (no timer: a lone reading is written at once).
        loop {
            match item.take() {
                Some(Item::One(r)) => batch.push(r),
                Some(Item::Batch(rs, done)) => {
                    batch.extend(rs);
                    waiting.push(done);
                }
                None => {}
            }
            if batch.len() >= max {
                break;
            }
            match rx.try_recv() {
                Ok(next) => item = Some(next),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        app.metrics.sensors.batch_size.observe(n as f64);
        let stored = app.store.sensor_store().insert_readings(&batch).await;
        match &stored {
            Ok(()) => {
                app.metrics.sensors.stored.inc_by(n);
            }
            Err(e) => {
                app.metrics.sensors.store_failures.inc_by(n);
                tracing::warn!(error = %e, readings = n, "could not store a batch of readings");
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(match &stored {
                Ok(()) => Ok(()),
                Err(e) => Err(crate::store::StoreError::Database(e.to_string())),
            });
        }
        if stored.is_ok() {
            evaluate(&app, &mut states, &mut batch);
        }
        batch.clear();
    }
}

/// Run a stored batch through the rules, in time order (a reading that arrived late within the
/// batch still counts in its place).
fn evaluate(
    app: &Arc<AppState>,
    states: &mut HashMap<Uuid, trigger::State>,
    batch: &mut [Reading],
) {
    batch.sort_by_key(|r| r.at);
    for r in batch.iter() {
        let Some(def) = app.sensors.get(r.sensor_id) else {
            continue;
        };
        let state = states.entry(r.sensor_id).or_default();
        match trigger::step(&def.rule, state, r.at, r.value) {
            Decision::Nothing => {}
            Decision::Fire => {
                app.metrics.sensors.fired.inc();
                tokio::spawn(fire::fire(app.clone(), def, *r));
            }
            Decision::Rearm => {
                let app = app.clone();
                let id = r.sensor_id;
                tokio::spawn(async move {
                    if let Err(e) = app.store.sensor_store().rearm_sensor(id).await {
                        tracing::warn!(error = %e, sensor = %id, "could not re-arm a sensor");
                    }
                });
            }
        }
    }
}

/// Every `FIELDSYNC_SENSOR_SWEEP_MS`: reload the sensors, finish stale firings, and (at most
/// hourly) delete readings past `FIELDSYNC_READINGS_RETENTION_DAYS`.
pub async fn sweep(app: Arc<AppState>) {
    let mut ticker = tokio::time::interval(app.config.sensor_sweep_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<chrono::DateTime<Utc>> = None;
    loop {
        ticker.tick().await;
        let store = app.store.sensor_store();
        match store.sensors(None, None).await {
            Ok(all) => app.sensors.replace_all(all),
            Err(e) => tracing::warn!(error = %e, "could not reload the sensors"),
        }
        let now = Utc::now();
        let lease = chrono::Duration::from_std(app.config.sensor_claim_lease)
            .unwrap_or(chrono::Duration::MAX);
        let stale_before = now.checked_sub_signed(lease).unwrap_or(now);
        match store.take_over_sensor_jobs(stale_before, now).await {
            Ok(stale) => {
                for j in stale {
                    match app.sensors.lookup(&app, j.sensor_id).await {
                        Ok(Some(def)) => {
                            tracing::info!(sensor = %j.sensor_id, job = %j.job_id,
                                           "finishing a firing whose node stopped");
                            if let Err(e) = fire::make_job(&app, &def.sensor, &j).await {
                                tracing::warn!(error = %e, sensor = %j.sensor_id,
                                               "could not make a sensor's job; retried later");
                            }
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, "could not read a sensor"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not take over stale sensor firings"),
        }
        if last_prune.is_none_or(|t| now - t >= chrono::Duration::hours(1)) {
            last_prune = Some(now);
            let before =
                now - chrono::Duration::days(i64::from(app.config.readings_retention_days));
            match store.prune_readings(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, %before, "pruned old sensor readings"),
                Err(e) => tracing::warn!(error = %e, "could not prune old sensor readings"),
            }
        }
    }
}
