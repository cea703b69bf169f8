//! SLA timers (issue 11, section 3): the bodies of `/api/v1/sla/...`.
//!
//! A policy says, for an org, a job type (the job's checklist template name, or `*`) and a
//! priority (or `*`), how long a job may take to be *acknowledged* (a technician on the way or
//! at work: its first move to `en_route`, `in_progress`, `on_hold` or `completed`) and to be
//! *resolved* (`completed`), counted in the policy's business hours or around the clock, with
//! the time the job spends `on_hold` not counted. Cancelling a job stops its clocks where they
//! are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{InvalidText, PmWeekday, Validate, limits, required, single_line};

/// The longest time a policy may allow: a year, in seconds.
pub const MAX_WITHIN_SECONDS: u32 = 366 * 24 * 3600;

/// `POST /api/v1/sla/policies`: the policy for (`job_type`, `priority`); one already set for that
/// pair is replaced. Each limit is given in minutes or in seconds (exactly one of the two).
#[derive(utoipa::ToSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSlaPolicy {
    /// A checklist template's name (built-in or the org's own), or `*` for any.
    pub job_type: String,
    /// `low`, `medium`, `high`, `urgent`, or `*` for any.
    pub priority: String,
    #[serde(default)]
    pub acknowledge_within_minutes: Option<u32>,
    #[serde(default)]
    pub acknowledge_within_seconds: Option<u32>,
    #[serde(default)]
    pub resolve_within_minutes: Option<u32>,
    #[serde(default)]
    pub resolve_within_seconds: Option<u32>,
    /// The hours the clocks run; absent or `null`: around the clock.
    #[serde(default)]
    pub business_hours: Option<BusinessHours>,
}

/// Weekly opening hours in a time zone. Only the time inside them counts; a day with no entry is
/// closed. Local times are wall-clock times in `time_zone`, so a window stays 08:00–18:00 local
/// across DST changes (and a day whose clocks change has an hour more or less in it).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessHours {
    /// An IANA time zone name, e.g. `Europe/London`.
    pub time_zone: String,
    pub hours: Vec<OpeningHours>,
}

/// One opening window on a weekday: `open` before `close`, both `HH:MM`; `close` may be `24:00`
/// (the end of the day). A night shift is two windows (22:00–24:00 and 00:00–06:00 the next day).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeningHours {
    pub day: PmWeekday,
    pub open: String,
    pub close: String,
}

/// `HH:MM` (00:00 to 24:00) as minutes from midnight.
pub fn minutes_of_day(s: &str) -> Option<u16> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// A policy of the org.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaPolicyRecord {
    pub id: Uuid,
    pub job_type: String,
    pub priority: String,
    pub acknowledge_within_seconds: u32,
    pub resolve_within_seconds: u32,
    /// `null`: around the clock.
    pub business_hours: Option<BusinessHours>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Where one SLA clock stands.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaState {
    /// Running, below the approaching threshold.
    Ok,
    /// Running, past the approaching threshold (`FIELDSYNC_SLA_APPROACHING`, 80 % of the limit).
    Approaching,
    /// Over the limit (running, or stopped late).
    Breached,
    /// Stopped (acknowledged, resolved, or the job cancelled) within the limit.
    Met,
}

impl SlaState {
    pub fn as_str(self) -> &'static str {
        match self {
            SlaState::Ok => "ok",
            SlaState::Approaching => "approaching",
            SlaState::Breached => "breached",
            SlaState::Met => "met",
        }
    }
}

/// One clock of a job (acknowledge or resolve).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaClock {
    pub state: SlaState,
    /// When the limit is (was) reached if the clock keeps running from now; `null` while it is
    /// paused (the job is on hold). Of a stopped clock: when the limit was (would have been).
    pub deadline: Option<DateTime<Utc>>,
    /// SLA time counted so far (business time, holds left out), in seconds.
    pub elapsed_seconds: i64,
    pub limit_seconds: i64,
    /// The job is on hold: the clock does not run.
    pub paused: bool,
    /// When the clock stopped: acknowledged, or resolved.
    pub stopped_at: Option<DateTime<Utc>>,
}

/// A breach, or an approaching one, as recorded (once) and sent to the webhook.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaEventRecord {
    /// `acknowledge` or `resolve`.
    pub kind: String,
    /// `approaching` or `breached`.
    pub level: String,
    pub deadline: DateTime<Utc>,
    pub at: DateTime<Utc>,
    /// When the webhook took it; `null` while not (yet) delivered, or with no webhook.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A job's SLA: the policy that applies and its two clocks, with the events recorded.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSla {
    pub job_id: Uuid,
    /// `WO-000123`.
    pub number: String,
    pub title: String,
    pub status: String,
    pub priority: String,
    /// The job's checklist template.
    pub job_type: Option<String>,
    pub policy_id: Uuid,
    pub acknowledge: SlaClock,
    pub resolve: SlaClock,
    /// Some clock is breached (the board's badge).
    pub breached: bool,
    pub events: Vec<SlaEventRecord>,
}

/// What the webhook receives (`POST`, JSON), once per (job, kind, level).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaWebhook {
    /// `sla.approaching` or `sla.breached`.
    pub event: String,
    /// Stable per (job, kind, level): a receiver that may see a retry twice dedupes on it.
    pub id: String,
    pub org_id: Uuid,
    pub job_id: Uuid,
    /// `WO-000123`.
    pub number: String,
    pub title: String,
    pub kind: String,
    pub level: String,
    pub deadline: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

impl Validate for NewSlaPolicy {
    fn validate(&self) -> Result<(), InvalidText> {
        let bad = |field: &str, problem: &str| {
            Err(InvalidText {
                field: field.into(),
                problem: problem.into(),
            })
        };
        required("job_type", &self.job_type)?;
        single_line("job_type", &self.job_type, limits::NAME)?;
        if self.priority != "*" && crate::Priority::parse(&self.priority).is_none() {
            return bad(
                "priority",
                "must be one of low, medium, high, urgent, or * for any",
            );
        }
        for (kind, minutes, seconds) in [
            (
                "acknowledge",
                self.acknowledge_within_minutes,
                self.acknowledge_within_seconds,
            ),
            (
                "resolve",
                self.resolve_within_minutes,
                self.resolve_within_seconds,
            ),
        ] {
            let field = format!("{kind}_within_minutes");
            match (minutes, seconds) {
                (None, None) => {
                    return bad(&field, "is required (or `…_within_seconds`)");
                }
                (Some(_), Some(_)) => {
                    return bad(&field, "and `…_within_seconds` are both given: give one");
                }
                (Some(m), None) if m == 0 || m > MAX_WITHIN_SECONDS / 60 => {
                    return bad(&field, "must be from 1 to 527040 (366 days)");
                }
                (None, Some(s)) if s == 0 || s > MAX_WITHIN_SECONDS => {
                    return bad(
                        &format!("{kind}_within_seconds"),
                        "must be from 1 to 31622400 (366 days)",
                    );
                }
                _ => {}
            }
        }
        if let Some(b) = &self.business_hours {
            required("business_hours.time_zone", &b.time_zone)?;
            single_line("business_hours.time_zone", &b.time_zone, limits::NAME)?;
            if b.hours.is_empty() {
                return bad(
                    "business_hours.hours",
                    "is empty: give at least one window (or no business_hours: around the clock)",
                );
            }
            if b.hours.len() > 70 {
                return bad("business_hours.hours", "has more than 70 windows");
            }
            for (i, w) in b.hours.iter().enumerate() {
                let open = minutes_of_day(&w.open);
                let close = minutes_of_day(&w.close);
                match (open, close) {
                    (None, _) => {
                        return bad(&format!("business_hours.hours[{i}].open"), "is not HH:MM");
                    }
                    (_, None) => {
                        return bad(
                            &format!("business_hours.hours[{i}].close"),
                            "is not HH:MM (24:00 is the end of the day)",
                        );
                    }
                    (Some(o), Some(c)) if o >= c => {
                        return bad(
                            &format!("business_hours.hours[{i}].close"),
                            "is not after open (a night shift is two windows)",
                        );
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

impl NewSlaPolicy {
    /// The acknowledge limit in seconds (after [`Validate::validate`]).
    pub fn acknowledge_seconds(&self) -> u32 {
        seconds(
            self.acknowledge_within_minutes,
            self.acknowledge_within_seconds,
        )
    }

    /// The resolve limit in seconds (after [`Validate::validate`]).
    pub fn resolve_seconds(&self) -> u32 {
        seconds(self.resolve_within_minutes, self.resolve_within_seconds)
    }
}

fn seconds(minutes: Option<u32>, seconds: Option<u32>) -> u32 {
    match (minutes, seconds) {
        (Some(m), _) => m.saturating_mul(60),
        (None, Some(s)) => s,
        (None, None) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> NewSlaPolicy {
        NewSlaPolicy {
            job_type: "*".into(),
            priority: "high".into(),
            acknowledge_within_minutes: Some(5),
            resolve_within_minutes: Some(240),
            ..NewSlaPolicy::default()
        }
    }

    fn refused_field(p: NewSlaPolicy) -> String {
        p.validate().unwrap_err().field
    }

    #[test]
    fn times_of_day() {
        assert_eq!(minutes_of_day("00:00"), Some(0));
        assert_eq!(minutes_of_day("08:30"), Some(510));
        assert_eq!(minutes_of_day("24:00"), Some(1440));
        for bad in ["24:01", "8:30", "08:60", "25:00", "0830", "", "aa:bb"] {
            assert_eq!(minutes_of_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn refusals_name_the_field() {
        assert!(policy().validate().is_ok());
        assert_eq!(policy().acknowledge_seconds(), 300);
        let mut p = policy();
        p.priority = "asap".into();
        assert_eq!(refused_field(p), "priority");
        let mut p = policy();
        p.job_type = " ".into();
        assert_eq!(refused_field(p), "job_type");
        let mut p = policy();
        p.acknowledge_within_minutes = None;
        assert_eq!(refused_field(p), "acknowledge_within_minutes");
        let mut p = policy();
        p.resolve_within_seconds = Some(10);
        assert_eq!(refused_field(p), "resolve_within_minutes");
        let mut p = policy();
        p.resolve_within_minutes = None;
        p.resolve_within_seconds = Some(0);
        assert_eq!(refused_field(p), "resolve_within_seconds");
        let mut p = policy();
        p.business_hours = Some(BusinessHours {
            time_zone: "Europe/London".into(),
            hours: vec![OpeningHours {
                day: PmWeekday::Monday,
                open: "18:00".into(),
                close: "08:00".into(),
            }],
        });
        assert_eq!(refused_field(p), "business_hours.hours[0].close");
    }
}
