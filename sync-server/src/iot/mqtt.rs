//! Readings over MQTT: one rumqttc connection per node to `FIELDSYNC_MQTT_URL`, subscribed to
//! `$share/{group}/fieldsync/+/sensors/+` (a shared subscription: of the nodes in one group, each
//! reading reaches one, so it is stored once). The topic names the org and the sensor
//! (`fieldsync/{org_id}/sensors/{sensor_id}`); who may publish under an org's prefix is the
//! broker's to enforce (Mosquitto: a `pattern write fieldsync/%u/sensors/+` ACL with the org's
//! id as user name), and the server refuses a reading whose sensor is not the topic's org's.
//!
//! The subscription is QoS 0 unless `FIELDSYNC_MQTT_QOS=1` (see [`crate::config::MqttConfig`]):
//! with a broker's default in-flight window, QoS 1 cannot carry a storm.
//!
//! Without a broker the server runs on: this task says so once, then retries (1 s doubling to
//! 30 s) and says when it is subscribed; `fieldsync_mqtt_connected` shows the state (1 once
//! subscribed).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use uuid::Uuid;

use super::Refusal;
use crate::state::AppState;

/// The topic filter every node subscribes to (inside its shared-subscription group).
pub const TOPIC_FILTER: &str = "fieldsync/+/sensors/+";

/// Run until the task is dropped (with the server).
pub async fn run(app: Arc<AppState>) {
    let Some(cfg) = app.config.mqtt.clone() else {
        tracing::info!("MQTT is off (FIELDSYNC_MQTT_URL=off): sensor readings over HTTP only");
        return;
    };
    let (host, port) = match cfg.host_port() {
        Ok(hp) => hp,
        Err(e) => {
            tracing::error!(error = %e, "MQTT is off");
            return;
        }
    };
    let mut opts = MqttOptions::new(format!("fieldsync-{}", app.node.simple()), host, port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(64 * 1024, 64 * 1024)
        .set_inflight(1_000);
    let (client, mut events) = AsyncClient::new(opts, 64);
    let filter = format!("$share/{}/{TOPIC_FILTER}", cfg.group);
    let mut backoff = Duration::from_secs(1);
    let mut said_down = false;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_secs(1);
                said_down = false;
                // A clean session forgets subscriptions: subscribe on every connection.
                let qos = if cfg.qos == 0 {
                    QoS::AtMostOnce
                } else {
                    QoS::AtLeastOnce
                };
                if let Err(e) = client.try_subscribe(filter.clone(), qos) {
                    tracing::warn!(error = %e, "could not subscribe to sensor readings");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                app.sensors.set_mqtt_connected(true);
                app.metrics.sensors.mqtt_connected.set(1);
                tracing::info!(url = %cfg.url, %filter, "receiving sensor readings over MQTT");
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                handle(&app, &p.topic, &p.payload).await;
            }
            Ok(_) => {}
            Err(e) => {
                app.sensors.set_mqtt_connected(false);
                app.metrics.sensors.mqtt_connected.set(0);
                if !said_down {
                    tracing::warn!(url = %cfg.url, error = %e,
                        "no MQTT broker: sensor readings over HTTP only until it answers; retrying");
                    said_down = true;
                } else {
                    tracing::debug!(error = %e, "MQTT broker still unreachable");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// One published reading: checked, counted, and queued for the ingest task.
pub async fn handle(app: &AppState, topic: &str, payload: &[u8]) {
    let now = Utc::now();
    let refused = |r: Refusal| app.metrics.sensors.refuse(r);
    let (org, sensor) = match parse_topic(topic) {
        Ok(ids) => ids,
        Err(r) => return refused(r),
    };
    let (value, at) = match parse_payload(payload) {
        Ok(v) => v,
        Err(r) => return refused(r),
    };
    match app.sensors.check(app, org, sensor, value, at, now).await {
        Ok(Ok(reading)) => {
            app.metrics.sensors.accept("mqtt", 1);
            app.sensors.submit(reading).await;
        }
        Ok(Err(r)) => refused(r),
        Err(e) => tracing::warn!(error = %e, %sensor, "could not check a reading; dropped"),
    }
}

/// `fieldsync/{org_id}/sensors/{sensor_id}` → the two ids.
pub fn parse_topic(topic: &str) -> Result<(Uuid, Uuid), Refusal> {
    let parts: Vec<&str> = topic.split('/').collect();
    let [root, org, kind, sensor] = parts[..] else {
        return Err(Refusal::Malformed);
    };
    if root != "fieldsync" || kind != "sensors" {
        return Err(Refusal::Malformed);
    }
    let org = Uuid::parse_str(org).map_err(|_| Refusal::OtherOrg)?;
    let sensor = Uuid::parse_str(sensor).map_err(|_| Refusal::UnknownSensor)?;
    Ok((org, sensor))
}

/// `{"value": 71.5, "at": "RFC 3339, optional"}` → the value and time. A value that is not a
/// number is `malformed`, except the spellings of infinities and NaN (which JSON has no number
/// for), which are `non-finite`.
pub fn parse_payload(payload: &[u8]) -> Result<(f64, Option<DateTime<Utc>>), Refusal> {
    // An object only (serde would also take a struct from an array).
    let mut raw: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).map_err(|_| Refusal::Malformed)?;
    let value = number(&raw.remove("value").ok_or(Refusal::Malformed)?)?;
    let at = match raw.remove("at") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(t)) => Some(
            DateTime::parse_from_rfc3339(&t)
                .map_err(|_| Refusal::Malformed)?
                .with_timezone(&Utc),
        ),
        Some(_) => return Err(Refusal::Malformed),
    };
    Ok((value, at))
}

/// A JSON value as a finite reading: see [`parse_payload`].
pub fn number(v: &serde_json::Value) -> Result<f64, Refusal> {
    match v {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(f),
            _ => Err(Refusal::NonFinite),
        },
        serde_json::Value::String(s) => {
            let lower = s.trim().to_ascii_lowercase();
            let lower = lower.trim_start_matches(['+', '-']);
            if matches!(lower, "nan" | "inf" | "infinity") {
                Err(Refusal::NonFinite)
            } else {
                Err(Refusal::Malformed)
            }
        }
        _ => Err(Refusal::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_payloads() {
        let org = Uuid::now_v7();
        let s = Uuid::now_v7();
        assert_eq!(
            parse_topic(&format!("fieldsync/{org}/sensors/{s}")),
            Ok((org, s))
        );
        assert_eq!(
            parse_topic(&format!("fieldsync/{org}/sensors/x")),
            Err(Refusal::UnknownSensor)
        );
        assert_eq!(
            parse_topic(&format!("fieldsync/{org}/other/{s}")),
            Err(Refusal::Malformed)
        );
        assert_eq!(parse_payload(br#"{"value": 71.5}"#), Ok((71.5, None)));
        let (v, at) = parse_payload(br#"{"value": 3, "at": "2026-11-29T12:00:00+01:00"}"#).unwrap();
        assert_eq!(v, 3.0);
        assert_eq!(at.unwrap().to_rfc3339(), "2026-11-29T11:00:00+00:00");
        for bad in [
            &b"{"[..],
            br#"{"value": "x"}"#,
            br#"{"at": "2026-11-29T12:00:00Z"}"#,
            br#"{"value": 1, "at": "yesterday"}"#,
            br#"[1]"#,
        ] {
            assert_eq!(
                parse_payload(bad),
                Err(Refusal::Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for bad in [&br#"{"value": "NaN"}"#[..], br#"{"value": "-Infinity"}"#] {
            assert_eq!(parse_payload(bad), Err(Refusal::NonFinite));
        }
    }
}
