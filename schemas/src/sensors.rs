//! The HTTP bodies of IoT sensors (`/api/v1/sensors`, issue 11 section 2): a sensor registered
//! to an asset with its thresholds and trigger rule, and batches of readings. Readings also
//! arrive over MQTT on `fieldsync/{org_id}/sensors/{sensor_id}` as [`MqttReading`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Priority;
use crate::api::{InvalidText, Validate, limits, required, single_line};

/// The trigger rule's fields as written: each may be given at the top level of
/// [`NewSensor`] or inside its `rule` object.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorRuleInput {
    /// Readings in a row beyond a threshold before the rule fires (1 to 10,000; 1 by default).
    #[serde(default)]
    pub consecutive: Option<u32>,
    /// Seconds the readings must stay beyond a threshold before the rule fires (0 to 86,400; 0
    /// by default). With `consecutive`, both must hold.
    #[serde(default)]
    pub duration_s: Option<u32>,
    /// After firing, the rule re-arms only once a reading is back inside the thresholds by this
    /// margin (in the sensor's unit; 0 by default).
    #[serde(default)]
    pub hysteresis: Option<f64>,
    /// Seconds after a firing during which the rule does not fire again (0 to 31 days; an hour
    /// by default).
    #[serde(default)]
    pub cooldown_s: Option<u32>,
    /// The checklist template the job is made from (`general` by default).
    #[serde(default)]
    pub template: Option<String>,
    /// The job's priority (`high` by default).
    #[serde(default)]
    pub priority: Option<Priority>,
    /// A technician's user name the job is assigned to; otherwise the asset's last technician.
    #[serde(default)]
    pub assignee: Option<String>,
}

/// `POST /api/v1/sensors`: a sensor on one of the org's assets. At least one of `min` and `max`.
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSensor {
    pub asset_id: Uuid,
    /// What it measures: `temperature`, `pressure`, `vibration`...
    pub kind: String,
    /// The unit of its values: `°C`, `bar`, `mm/s`...
    pub unit: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// The trigger rule as an object; its fields may also be given at the top level.
    #[serde(default)]
    pub rule: Option<SensorRuleInput>,
    #[serde(default)]
    pub consecutive: Option<u32>,
    #[serde(default)]
    pub duration_s: Option<u32>,
    #[serde(default)]
    pub hysteresis: Option<f64>,
    #[serde(default)]
    pub cooldown_s: Option<u32>,
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub priority: Option<Priority>,
    #[serde(default)]
    pub assignee: Option<String>,
}

/// A sensor's trigger rule with its defaults applied.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorRule {
    pub consecutive: u32,
    pub duration_s: u32,
    pub hysteresis: f64,
    pub cooldown_s: u32,
    pub template: String,
    pub priority: Priority,
    pub assignee: Option<String>,
}

impl SensorRule {
    pub const DEFAULT_COOLDOWN_S: u32 = 3600;
}

impl NewSensor {
    /// The rule: each field from the top level, else from `rule`, else its default. `Err`
    /// names a field given in both places with different values.
    pub fn resolved_rule(&self) -> Result<SensorRule, InvalidText> {
        let r = self.rule.clone().unwrap_or_default();
        fn pick<T: PartialEq + Clone>(
            field: &str,
            top: &Option<T>,
            nested: &Option<T>,
        ) -> Result<Option<T>, InvalidText> {
            match (top, nested) {
                (Some(a), Some(b)) if a != b => Err(InvalidText {
                    field: field.into(),
                    problem: "is given at the top level and in `rule` with different values".into(),
                }),
                (Some(a), _) => Ok(Some(a.clone())),
                (None, b) => Ok(b.clone()),
            }
        }
        Ok(SensorRule {
            consecutive: pick("consecutive", &self.consecutive, &r.consecutive)?.unwrap_or(1),
            duration_s: pick("duration_s", &self.duration_s, &r.duration_s)?.unwrap_or(0),
            hysteresis: pick("hysteresis", &self.hysteresis, &r.hysteresis)?.unwrap_or(0.0),
            cooldown_s: pick("cooldown_s", &self.cooldown_s, &r.cooldown_s)?
                .unwrap_or(SensorRule::DEFAULT_COOLDOWN_S),
            template: pick("template", &self.template, &r.template)?
                .map(|t| t.trim().to_string())
                .unwrap_or_else(|| crate::template::DEFAULT_TEMPLATE.to_string()),
            priority: pick("priority", &self.priority, &r.priority)?.unwrap_or(Priority::High),
            assignee: pick("assignee", &self.assignee, &r.assignee)?.map(|a| a.trim().to_string()),
        })
    }
}

impl Validate for NewSensor {
    fn validate(&self) -> Result<(), InvalidText> {
        let bad = |field: &str, problem: &str| {
            Err(InvalidText {
                field: field.into(),
                problem: problem.into(),
            })
        };
        required("kind", &self.kind)?;
        single_line("kind", &self.kind, limits::NAME)?;
        required("unit", &self.unit)?;
        single_line("unit", &self.unit, limits::NAME)?;
        for (field, v) in [("min", self.min), ("max", self.max)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return bad(field, "must be a finite number");
            }
        }
        match (self.min, self.max) {
            (None, None) => return bad("max", "is needed, or `min`: a sensor needs a threshold"),
            (Some(lo), Some(hi)) if lo >= hi => return bad("min", "must be below `max`"),
            _ => {}
        }
        let rule = self.resolved_rule()?;
        if !(1..=10_000).contains(&rule.consecutive) {
            return bad("consecutive", "must be from 1 to 10000");
        }
        if rule.duration_s > 86_400 {
            return bad("duration_s", "must be from 0 to 86400 (a day)");
        }
        if rule.cooldown_s > 31 * 86_400 {
            return bad("cooldown_s", "must be from 0 to 2678400 (31 days)");
        }
        if !rule.hysteresis.is_finite() || rule.hysteresis < 0.0 {
            return bad("hysteresis", "must be a finite number, 0 or more");
        }
        if let (Some(lo), Some(hi)) = (self.min, self.max)
            && 2.0 * rule.hysteresis >= hi - lo
        {
            return bad("hysteresis", "must be less than half of `max` - `min`");
        }
        required("template", &rule.template)?;
        single_line("template", &rule.template, limits::NAME)?;
        if let Some(a) = &rule.assignee {
            required("assignee", a)?;
            single_line("assignee", a, limits::NAME)?;
        }
        Ok(())
    }
}

/// A sensor of the org.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorRecord {
    pub id: Uuid,
    pub asset_id: Uuid,
    pub kind: String,
    pub unit: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub rule: SensorRule,
    /// The MQTT topic its readings are published on.
    pub topic: String,
    pub created_at: DateTime<Utc>,
}

/// The payload of a reading on MQTT topic `fieldsync/{org_id}/sensors/{sensor_id}`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MqttReading {
    pub value: f64,
    /// When it was measured (RFC 3339); when it arrived if absent.
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// One reading of an HTTP batch.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadingInput {
    pub sensor_id: Uuid,
    /// A finite number; anything else is refused (`malformed` or `non-finite`).
    pub value: serde_json::Value,
    /// When it was measured (RFC 3339); when it arrived if absent.
    #[serde(default)]
    pub at: Option<String>,
}

/// `POST /api/v1/sensors/readings`: readings of the org's sensors (at most 10,000).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadingsBatch {
    pub readings: Vec<ReadingInput>,
}

impl Validate for ReadingsBatch {
    fn validate(&self) -> Result<(), InvalidText> {
        if self.readings.len() > 10_000 {
            return Err(InvalidText {
                field: "readings".into(),
                problem: "holds at most 10000 readings".into(),
            });
        }
        Ok(())
    }
}

/// A reading of the batch that was refused, and why: `malformed`, `non-finite`,
/// `unknown-sensor`, `other-org`, `future`.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RefusedReading {
    pub index: usize,
    pub reason: String,
}

/// What became of a batch: the readings stored (durably, before the answer) and those refused.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadingsResult {
    pub accepted: usize,
    pub refused: Vec<RefusedReading>,
}

/// A stored reading.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadingRecord {
    pub at: DateTime<Utc>,
    pub value: f64,
}

/// A job a sensor's rule opened.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorJobRecord {
    pub job_id: Uuid,
    /// The time of the reading that fired the rule.
    pub fired_at: DateTime<Utc>,
    pub value: f64,
    /// False for the moment between claiming the firing and its job existing.
    pub job_created: bool,
}

/// `GET /api/v1/sensors/{id}`: the sensor and the jobs it opened, latest first.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorDetail {
    #[serde(flatten)]
    pub sensor: SensorRecord,
    pub jobs: Vec<SensorJobRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_fields_at_the_top_or_nested() {
        let flat: NewSensor = serde_json::from_value(serde_json::json!({
            "asset_id": Uuid::nil(), "kind": "temperature", "unit": "°C", "min": 2.0, "max": 8.0,
            "consecutive": 3, "cooldown_s": 600, "template": "general", "priority": "urgent"
        }))
        .unwrap();
        let nested: NewSensor = serde_json::from_value(serde_json::json!({
            "asset_id": Uuid::nil(), "kind": "temperature", "unit": "°C", "min": 2.0, "max": 8.0,
            "rule": {"consecutive": 3, "cooldown_s": 600, "template": "general",
                     "priority": "urgent"}
        }))
        .unwrap();
        flat.validate().unwrap();
        nested.validate().unwrap();
        assert_eq!(flat.resolved_rule(), nested.resolved_rule());
        let r = flat.resolved_rule().unwrap();
        assert_eq!((r.consecutive, r.cooldown_s), (3, 600));
        assert_eq!(r.priority, Priority::Urgent);
        let mut both = flat.clone();
        both.rule = Some(SensorRuleInput {
            consecutive: Some(4),
            ..Default::default()
        });
        assert_eq!(both.validate().unwrap_err().field, "consecutive");
    }

    #[test]
    fn refusals_name_the_field() {
        let ok = NewSensor {
            kind: "t".into(),
            unit: "u".into(),
            max: Some(1.0),
            ..Default::default()
        };
        ok.validate().unwrap();
        let field = |s: NewSensor| s.validate().unwrap_err().field;
        assert_eq!(
            field(NewSensor {
                max: None,
                ..ok.clone()
            }),
            "max"
        );
        assert_eq!(
            field(NewSensor {
                min: Some(2.0),
                ..ok.clone()
            }),
            "min"
        );
        assert_eq!(
            field(NewSensor {
                consecutive: Some(0),
                ..ok.clone()
            }),
            "consecutive"
        );
        assert_eq!(
            field(NewSensor {
                hysteresis: Some(-1.0),
                ..ok.clone()
            }),
            "hysteresis"
        );
        assert_eq!(
            field(NewSensor {
                kind: " ".into(),
                ..ok
            }),
            "kind"
        );
    }
}
