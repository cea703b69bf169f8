//! The planning API's bodies (issue 11, sections 4 and 5): assignment suggestions for a job, the
//! org's planning settings and job-type requirements, and route plans for a day.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A point on the earth, in degrees.
#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

/// `GET/PUT /api/v1/planning/settings`: how the org plans.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanningSettings {
    /// A job made without assignees (by a dispatcher, the PM scheduler or a sensor rule) is
    /// assigned to its first suggestion, when that one is eligible.
    #[serde(default)]
    pub auto_assign: bool,
    /// A visit's length when neither its job type nor its PM template says, in minutes.
    #[serde(default = "default_duration_min")]
    pub default_duration_min: u32,
    /// The average driving speed used for travel times, in km/h.
    #[serde(default = "default_speed_kmh")]
    pub speed_kmh: f64,
}

fn default_duration_min() -> u32 {
    60
}

fn default_speed_kmh() -> f64 {
    40.0
}

impl Default for PlanningSettings {
    fn default() -> Self {
        PlanningSettings {
            auto_assign: false,
            default_duration_min: default_duration_min(),
            speed_kmh: default_speed_kmh(),
        }
    }
}

/// `PUT /api/v1/planning/job-types/{template}`: what a type of work (a checklist template's
/// name) needs: the skills a technician must have, and how long a visit takes.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTypeRequirements {
    /// The checklist template's name (set from the path when written).
    #[serde(default)]
    pub template: String,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub estimated_minutes: Option<u32>,
}

/// `GET /api/v1/jobs/{id}/suggestions`: the org's technicians ranked for one job.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Suggestions {
    pub job_id: Uuid,
    /// The time the ranking looked at: the job's scheduled window, or its estimated length
    /// from now when it has none.
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub required_skills: Vec<String>,
    /// Best first. Technicians lacking a required skill come last, marked not eligible.
    pub suggestions: Vec<Suggestion>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The technician's user name (what `assignees` holds).
    pub technician: String,
    pub display_name: String,
    /// Higher is better; comparable within one answer only.
    pub score: f64,
    /// Has every required skill.
    pub eligible: bool,
    pub missing_skills: Vec<String>,
    /// Available minutes in the window, after breaks, time off and other jobs; `None` when the
    /// technician has no time blocks recorded around it.
    pub free_minutes: Option<i64>,
    /// Whether the visit fits in that free time.
    pub fits: Option<bool>,
    /// Open jobs the technician has on the window's day.
    pub load: u32,
    /// From the previous job's site that day (or home) to this job's site, great-circle.
    pub distance_km: Option<f64>,
    /// Each factor in words, in the order they weigh.
    pub reasons: Vec<String>,
}

/// `POST /api/v1/routes/plan`: order each technician's jobs of one day.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutePlanRequest {
    /// The day, `YYYY-MM-DD` (UTC): the jobs scheduled to start on it.
    pub date: String,
    /// User names; all the org's technicians with jobs that day when absent.
    #[serde(default)]
    pub technicians: Option<Vec<String>>,
    /// km/h; the org's setting when absent.
    #[serde(default)]
    pub speed_kmh: Option<f64>,
    /// The solver's time budget in seconds (1 to 60, default 10); it usually stops earlier.
    #[serde(default)]
    pub max_seconds: Option<u32>,
}

/// A route plan: what the solver proposes, and the naive order it is compared with.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutePlan {
    pub date: String,
    pub speed_kmh: f64,
    pub routes: Vec<TechnicianRoute>,
    /// Jobs the plan could not place, each with why.
    pub unassigned: Vec<UnassignedVisit>,
    /// Meters driven along the planned routes (start, visits, end).
    pub distance_m: f64,
    /// Meters driven visiting the same jobs in order of their scheduled start.
    pub naive_distance_m: f64,
    pub solve_ms: u64,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TechnicianRoute {
    pub technician: String,
    pub start: Point,
    pub end: Point,
    pub shift_start: DateTime<Utc>,
    pub shift_end: DateTime<Utc>,
    pub stops: Vec<RouteStop>,
    pub distance_m: f64,
    pub naive_distance_m: f64,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteStop {
    pub job_id: Uuid,
    pub title: String,
    /// When the technician gets there.
    pub arrive: DateTime<Utc>,
    /// The visit: `start` is at or after `arrive` (waiting for the window) and `end` is
    /// `start` plus the visit's length. Applying the plan writes these as the job's schedule.
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Meters from the previous stop (or the start).
    pub leg_m: f64,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnassignedVisit {
    pub job_id: Uuid,
    pub technician: Option<String>,
    pub reasons: Vec<String>,
}

/// `POST /api/v1/routes/apply`: write planned visits as the jobs' schedules. A plan's `routes`
/// can be posted back as they are (extra fields are ignored).
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyRoutes {
    pub routes: Vec<ApplyRoute>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyRoute {
    pub technician: String,
    pub stops: Vec<ApplyStop>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyStop {
    pub job_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedRoutes {
    /// Jobs whose schedule changed.
    pub updated: u32,
    /// Jobs already at the planned times.
    pub unchanged: u32,
}

/// `POST /api/v1/technicians/{id}/time-blocks`: when a technician works, breaks or is off.
#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTimeBlock {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub kind: TimeBlockKind,
}

#[derive(utoipa::ToSchema, Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeBlockKind {
    Available,
    Break,
    Pto,
}

impl TimeBlockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeBlockKind::Available => "available",
            TimeBlockKind::Break => "break",
            TimeBlockKind::Pto => "pto",
        }
    }

    pub fn parse(s: &str) -> Option<TimeBlockKind> {
        [
            TimeBlockKind::Available,
            TimeBlockKind::Break,
            TimeBlockKind::Pto,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(utoipa::ToSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeBlockRecord {
    pub id: Uuid,
    pub technician_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub kind: TimeBlockKind,
}

/// The longest time block one request may make, in days.
pub const MAX_BLOCK_DAYS: i64 = 31;

// ---- checks (the HTTP layer runs them before anything reaches the store) ----------------------

use crate::api::{InvalidText, Validate, limits, single_line};

fn invalid(field: &str, problem: &str) -> InvalidText {
    InvalidText {
        field: field.to_string(),
        problem: problem.to_string(),
    }
}

fn check_point(field: &str, p: &Point) -> Result<(), InvalidText> {
    if !p.lat.is_finite() || !(-90.0..=90.0).contains(&p.lat) {
        return Err(invalid(
            &format!("{field}.lat"),
            "must be between -90 and 90",
        ));
    }
    if !p.lon.is_finite() || !(-180.0..=180.0).contains(&p.lon) {
        return Err(invalid(
            &format!("{field}.lon"),
            "must be between -180 and 180",
        ));
    }
    Ok(())
}

impl Validate for Point {
    fn validate(&self) -> Result<(), InvalidText> {
        check_point("location", self)
    }
}

impl Validate for Option<Point> {
    fn validate(&self) -> Result<(), InvalidText> {
        self.as_ref().map_or(Ok(()), Validate::validate)
    }
}

impl Validate for PlanningSettings {
    fn validate(&self) -> Result<(), InvalidText> {
        if !(1..=1440).contains(&self.default_duration_min) {
            return Err(invalid(
                "default_duration_min",
                "must be between 1 and 1440",
            ));
        }
        if !self.speed_kmh.is_finite() || !(1.0..=200.0).contains(&self.speed_kmh) {
            return Err(invalid("speed_kmh", "must be between 1 and 200"));
        }
        Ok(())
    }
}

impl Validate for JobTypeRequirements {
    fn validate(&self) -> Result<(), InvalidText> {
        if self.skills.len() > 50 {
            return Err(invalid("skills", "has more than 50 entries"));
        }
        for s in &self.skills {
            single_line("skills", s, limits::NAME)?;
            if s.trim().is_empty() {
                return Err(invalid("skills", "contains an empty name"));
            }
        }
        if let Some(m) = self.estimated_minutes
            && !(1..=1440).contains(&m)
        {
            return Err(invalid("estimated_minutes", "must be between 1 and 1440"));
        }
        Ok(())
    }
}

impl Validate for NewTimeBlock {
    fn validate(&self) -> Result<(), InvalidText> {
        if self.ends_at <= self.starts_at {
            return Err(invalid("ends_at", "must be after starts_at"));
        }
        if (self.ends_at - self.starts_at).num_days() >= MAX_BLOCK_DAYS {
            return Err(invalid(
                "ends_at",
                &format!("a block may last at most {MAX_BLOCK_DAYS} days"),
            ));
        }
        Ok(())
    }
}

impl Validate for RoutePlanRequest {
    fn validate(&self) -> Result<(), InvalidText> {
        single_line("date", &self.date, 10)?;
        if let Some(names) = &self.technicians {
            if names.is_empty() {
                return Err(invalid(
                    "technicians",
                    "is empty; leave it out for everyone",
                ));
            }
            if names.len() > 500 {
                return Err(invalid("technicians", "has more than 500 names"));
            }
            for n in names {
                single_line("technicians", n, limits::NAME)?;
            }
        }
        Ok(())
    }
}

impl Validate for ApplyRoutes {
    fn validate(&self) -> Result<(), InvalidText> {
        let stops: usize = self.routes.iter().map(|r| r.stops.len()).sum();
        if stops > 5000 {
            return Err(invalid("routes", "has more than 5000 stops"));
        }
        for r in &self.routes {
            single_line("routes.technician", &r.technician, limits::NAME)?;
        }
        Ok(())
    }
}
