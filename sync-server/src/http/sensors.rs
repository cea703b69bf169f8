//! `/api/v1/sensors`: IoT sensors registered to the org's assets, with thresholds and a trigger
//! rule (`iot/`), and readings in HTTP batches (the same checks and pipeline as MQTT's).
//! Dispatchers and admins write and post readings; the org's readers list.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use schemas::sensors::{
    NewSensor, ReadingRecord, ReadingsBatch, ReadingsResult, RefusedReading, SensorDetail,
    SensorJobRecord, SensorRecord,
};
use uuid::Uuid;

use super::auth::Caller;
use super::extract::{Body, PathParam};
use super::records::{Params, bad_param};
use crate::error::ApiError;
use crate::iot::{Refusal, mqtt};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::sensors::{Sensor, SensorJob};

/// `GET /api/v1/sensors`
#[utoipa::path(get, path = "/api/v1/sensors", tag = "sensors", responses((status = 200, body = Vec<SensorRecord>), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    params: Params,
) -> Result<Json<Vec<SensorRecord>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&[])?;
    let rows = app
        .store
        .sensor_store()
        .sensors(Some(me.org_id), None)
        .await?;
    Ok(Json(rows.into_iter().map(record).collect()))
}

/// `POST /api/v1/sensors`
#[utoipa::path(post, path = "/api/v1/sensors", tag = "sensors", request_body = NewSensor, responses((status = 201, body = SensorRecord), (status = 400, description = "names the bad field (an asset of another org, an unknown template or assignee too)", body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<NewSensor>,
) -> Result<(StatusCode, Json<SensorRecord>), ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let rule = body
        .resolved_rule()
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if let Err(e) = crate::templates::resolve(&app, me.org_id, &rule.template).await {
        return Err(match e {
            ApiError::NotFound(_) | ApiError::BadRequest(_) => ApiError::BadRequest(format!(
                "`template`: the org has no checklist template `{}`",
                rule.template
            )),
            other => other,
        });
    }
    if let Some(name) = &rule.assignee {
        match app.store.user_by_name(name).await? {
            Some(u) if u.org_id == me.org_id && u.role == crate::store::Role::Technician => {}
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "`assignee`: `{name}` is not a technician of this organisation"
                )));
            }
        }
    }
    let sensor = Sensor {
        id: Uuid::now_v7(),
        org_id: me.org_id,
        asset_id: body.asset_id,
        kind: body.kind.trim().to_string(),
        unit: body.unit.trim().to_string(),
        min: body.min,
        max: body.max,
        rule,
        created_at: Utc::now(),
    };
    app.store
        .sensor_store()
        .create_sensor(&sensor)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => ApiError::BadRequest(format!(
                "`asset_id`: {} is not an asset of this organisation",
                sensor.asset_id
            )),
            e => e.into(),
        })?;
    app.sensors.put(sensor.clone());
    Ok((StatusCode::CREATED, Json(record(sensor))))
}

/// `GET /api/v1/sensors/{id}`: the sensor and the jobs its rule opened.
#[utoipa::path(get, path = "/api/v1/sensors/{id}", tag = "sensors", params(("id" = Uuid, Path)), responses((status = 200, body = SensorDetail), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn get_one(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> Result<Json<SensorDetail>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    let sensor = own_sensor(&app, me.org_id, id).await?;
    let jobs = app
        .store
        .sensor_store()
        .sensor_jobs(me.org_id, Some(id))
        .await?;
    Ok(Json(SensorDetail {
        sensor: record(sensor),
        jobs: jobs.into_iter().map(job_record).collect(),
    }))
}

/// `GET /api/v1/sensors/{id}/readings?from=&to=&limit=`: readings in time order (`from`
/// inclusive, `to` exclusive, RFC 3339; the last 24 hours by default; at most 10,000, 1,000 by
/// default).
#[utoipa::path(get, path = "/api/v1/sensors/{id}/readings", tag = "sensors", params(("id" = Uuid, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("limit" = Option<i64>, Query)), responses((status = 200, body = Vec<ReadingRecord>), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn readings(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
    params: Params,
) -> Result<Json<Vec<ReadingRecord>>, ApiError> {
    let me = caller.actor();
    me.org_reader()?;
    params.only(&["from", "to", "limit"])?;
    let time = |v: &str| {
        DateTime::parse_from_rfc3339(v)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let now = Utc::now();
    let to = params
        .parse("to", "an RFC 3339 time", time)?
        .unwrap_or(now + crate::iot::MAX_FUTURE);
    let from = params
        .parse("from", "an RFC 3339 time", time)?
        .unwrap_or(now - chrono::Duration::days(1));
    let limit = params
        .parse("limit", "a number from 1 to 10000", |v| {
            v.parse::<i64>().ok().filter(|n| (1..=10_000).contains(n))
        })?
        .unwrap_or(1_000);
    if from > to {
        return Err(bad_param("from", "must not be after `to`"));
    }
    own_sensor(&app, me.org_id, id).await?;
    let rows = app
        .store
        .sensor_store()
        .readings(me.org_id, id, from, to, limit)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| ReadingRecord {
                at: r.at,
                value: r.value,
            })
            .collect(),
    ))
}

/// `POST /api/v1/sensors/readings`: a batch of readings of the org's sensors. Each is checked
/// like an MQTT reading; those accepted are stored before the answer, those refused are listed
/// with their reason (and counted in `/metrics`).
#[utoipa::path(post, path = "/api/v1/sensors/readings", tag = "sensors", request_body = ReadingsBatch, responses((status = 200, body = ReadingsResult), (status = 400, body = schemas::api::ErrorBody), (status = 401, body = schemas::api::ErrorBody), (status = 403, body = schemas::api::ErrorBody), (status = 503, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn post_readings(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(body): Body<ReadingsBatch>,
) -> Result<Json<ReadingsResult>, ApiError> {
    let me = caller.actor();
    me.dispatcher()?;
    let now = Utc::now();
    let mut accepted = Vec::with_capacity(body.readings.len());
    let mut refused = Vec::new();
    for (index, r) in body.readings.iter().enumerate() {
        let checked = match (mqtt::number(&r.value), r.at.as_deref().map(parse_at)) {
            (Err(e), _) | (_, Some(Err(e))) => Err(e),
            (Ok(v), at) => {
                let at = at.and_then(Result::ok);
                app.sensors
                    .check(&app, me.org_id, r.sensor_id, v, at, now)
                    .await?
            }
        };
        match checked {
            Ok(reading) => accepted.push(reading),
            Err(reason) => {
                app.metrics.sensors.refuse(reason);
                refused.push(RefusedReading {
                    index,
                    reason: reason.as_str().to_string(),
                });
            }
        }
    }
    let n = accepted.len();
    if n > 0 {
        app.sensors.submit_batch(accepted).await?;
        app.metrics.sensors.accept("http", n as u64);
    }
    Ok(Json(ReadingsResult {
        accepted: n,
        refused,
    }))
}

fn parse_at(t: &str) -> Result<DateTime<Utc>, Refusal> {
    DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Refusal::Malformed)
}

async fn own_sensor(app: &AppState, org: Uuid, id: Uuid) -> Result<Sensor, ApiError> {
    app.store
        .sensor_store()
        .sensors(Some(org), Some(id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::NotFound(format!("sensor {id}")))
}

fn record(s: Sensor) -> SensorRecord {
    SensorRecord {
        topic: format!("fieldsync/{}/sensors/{}", s.org_id, s.id),
        id: s.id,
        asset_id: s.asset_id,
        kind: s.kind,
        unit: s.unit,
        min: s.min,
        max: s.max,
        rule: s.rule,
        created_at: s.created_at,
    }
}

fn job_record(j: SensorJob) -> SensorJobRecord {
    SensorJobRecord {
        job_id: j.job_id,
        fired_at: j.fired_at,
        value: j.value,
        job_created: j.job_created_at.is_some(),
    }
}
