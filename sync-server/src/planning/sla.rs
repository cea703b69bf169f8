//! SLA clocks, without IO: given a policy (limits and a business-hours calendar), a job's status
//! history and `now`, where its acknowledge and resolve clocks stand, their deadlines, and which
//! breaches (or approaching ones) are due to be recorded. The watcher (`planning::sla_watch`)
//! loads the inputs and records the result; every rule of the clock lives here, tested with time
//! as an argument.
//!
//! **The statuses** (`schemas::status`, chosen after seed 004's `acknowledged_at -
//! requested_at`): a job's clocks start when it is created. It is *acknowledged* by its first
//! move to `en_route`, `in_progress` or `completed` (a technician on the way or at work; being
//! `assigned` is the dispatcher's act, not an acknowledgement), and *resolved* while it is
//! `completed` (a job a dispatcher reopens runs on from where it stopped). While it is `on_hold`
//! neither clock runs. `cancelled` stops both where they are: a clock already over its limit
//! stays breached, one within it is `met` (nothing more can be missed); a cancelled job a
//! dispatcher reopens runs on, the time it was cancelled not counted.
//!
//! **Business time** is the real time that passes inside the calendar's opening windows, which
//! are wall-clock times in the calendar's zone (`chrono-tz`): a window 08:00–18:00 is ten hours,
//! or nine or eleven on the night the clocks change inside it; a window's time that does not
//! exist (in the spring-forward gap) moves to the first local time after the gap, one that
//! happens twice is the first (as `planning::pm::local_instant`). Around the clock, business
//! time is wall time.
//!
//! History times are taken in position order and never go backwards (a device's clock that
//! wrote an earlier time than the entry before counts as that entry's time), nor past `now`.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use schemas::api::{BusinessHours, PmWeekday, SlaClock, SlaState, minutes_of_day};
use schemas::{JobStatus, Priority};
use uuid::Uuid;

use super::pm::local_instant;

/// When the clocks run.
#[derive(Clone, Debug, PartialEq)]
pub enum Hours {
    AroundTheClock,
    Business(Calendar),
}

/// Weekly opening windows in a time zone, per weekday (Monday first), as minutes from local
/// midnight (`close` up to 1440), sorted and merged so no two overlap.
#[derive(Clone, Debug, PartialEq)]
pub struct Calendar {
    pub tz: Tz,
    pub windows: [Vec<(u16, u16)>; 7],
}

/// Which clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Acknowledge,
    Resolve,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Acknowledge => "acknowledge",
            Kind::Resolve => "resolve",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        [Kind::Acknowledge, Kind::Resolve]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// What an event says about a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Approaching,
    Breached,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Approaching => "approaching",
            Level::Breached => "breached",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        [Level::Approaching, Level::Breached]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A policy as the clock needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub id: Uuid,
    /// A checklist template's name, or `*`.
    pub job_type: String,
    /// A priority's name, or `*`.
    pub priority: String,
    pub acknowledge_within: Duration,
    pub resolve_within: Duration,
    pub hours: Hours,
}

/// A job as the clock needs it: when it was made and its status history.
#[derive(Clone, Debug, PartialEq)]
pub struct Timeline {
    pub created_at: DateTime<Utc>,
    /// `(to_status, at)` in history order.
    pub history: Vec<(JobStatus, DateTime<Utc>)>,
}

/// A breach or approaching one to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub kind: Kind,
    pub level: Level,
    pub deadline: DateTime<Utc>,
}

impl Hours {
    /// The calendar of a policy's `business_hours` (`None`: around the clock). An error names
    /// the time zone it does not know.
    pub fn from_api(b: Option<&BusinessHours>) -> Result<Hours, String> {
        let Some(b) = b else {
            return Ok(Hours::AroundTheClock);
        };
        let tz: Tz = b
            .time_zone
            .parse()
            .map_err(|_| format!("unknown time zone `{}`", b.time_zone))?;
        let mut windows: [Vec<(u16, u16)>; 7] = Default::default();
        for w in &b.hours {
            let (Some(open), Some(close)) = (minutes_of_day(&w.open), minutes_of_day(&w.close))
            else {
                return Err(format!("bad window {}–{}", w.open, w.close));
            };
            if open < close {
                windows[weekday_index(w.day)].push((open, close));
            }
        }
        for day in &mut windows {
            day.sort_unstable();
            let mut merged: Vec<(u16, u16)> = Vec::with_capacity(day.len());
            for &(o, c) in day.iter() {
                match merged.last_mut() {
                    Some(last) if o <= last.1 => last.1 = last.1.max(c),
                    _ => merged.push((o, c)),
                }
            }
            *day = merged;
        }
        if windows.iter().all(Vec::is_empty) {
            return Err("no opening window".into());
        }
        Ok(Hours::Business(Calendar { tz, windows }))
    }

    /// Business time in `[a, b)` (zero when `b` is not after `a`).
    pub fn between(&self, a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
        if b <= a {
            return Duration::zero();
        }
        match self {
            Hours::AroundTheClock => b - a,
            Hours::Business(cal) => {
                let mut total = Duration::zero();
                for (start, end) in cal.windows_from(a) {
                    if start >= b {
                        break;
                    }
                    let (s, e) = (start.max(a), end.min(b));
                    if e > s {
                        total += e - s;
                    }
                }
                total
            }
        }
    }

    /// The instant at which `amount` of business time has passed since `from` (`from` itself for
    /// nothing). `None` past the calendar's end (years of windows), never for valid input.
    pub fn advance(&self, from: DateTime<Utc>, amount: Duration) -> Option<DateTime<Utc>> {
        if amount <= Duration::zero() {
            return Some(from);
        }
        match self {
            Hours::AroundTheClock => from.checked_add_signed(amount),
            Hours::Business(cal) => {
                let mut left = amount;
                for (start, end) in cal.windows_from(from) {
                    let s = start.max(from);
                    if end <= s {
                        continue;
                    }
                    if end - s >= left {
                        return Some(s + left);
                    }
                    left -= end - s;
                }
                None
            }
        }
    }
}

/// How many days of windows [`Calendar::windows_from`] walks at most (a year of limit at one
/// hour a week is seven years of days).
const MAX_DAYS: u64 = 20 * 366;

fn weekday_index(d: PmWeekday) -> usize {
    match d {
        PmWeekday::Monday => 0,
        PmWeekday::Tuesday => 1,
        PmWeekday::Wednesday => 2,
        PmWeekday::Thursday => 3,
        PmWeekday::Friday => 4,
        PmWeekday::Saturday => 5,
        PmWeekday::Sunday => 6,
    }
}

impl Calendar {
    /// The opening windows as UTC instants `[start, end)`, in order, from the local day before
    /// `from`'s (a window of the day before may still be open) on.
    fn windows_from(
        &self,
        from: DateTime<Utc>,
    ) -> impl Iterator<Item = (DateTime<Utc>, DateTime<Utc>)> {
        let first = from
            .with_timezone(&self.tz)
            .date_naive()
            .pred_opt()
            .unwrap_or(NaiveDate::MIN);
        (0..MAX_DAYS)
            .map_while(move |i| first.checked_add_days(Days::new(i)))
            .flat_map(move |date| {
                let day = date.weekday().num_days_from_monday() as usize;
                self.windows[day]
                    .iter()
                    .filter_map(move |&(open, close)| self.window(date, open, close))
            })
    }

    fn window(
        &self,
        date: NaiveDate,
        open: u16,
        close: u16,
    ) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let at = |date: NaiveDate, minutes: u16| {
            let time =
                NaiveTime::from_hms_opt(u32::from(minutes / 60), u32::from(minutes % 60), 0)?;
            Some(local_instant(self.tz, date, time))
        };
        let start = at(date, open)?;
        let end = if close >= 24 * 60 {
            at(date.succ_opt()?, 0)?
        } else {
            at(date, close)?
        };
        (end > start).then_some((start, end))
    }
}

/// The policy that applies to a job of `job_type` (its checklist template; `None` matches only
/// `*`) and `priority`: an exact job type before `*`, then an exact priority before `*`.
pub fn policy_for<'a>(
    policies: &'a [Policy],
    job_type: Option<&str>,
    priority: Priority,
) -> Option<&'a Policy> {
    policies
        .iter()
        .filter_map(|p| {
            let type_rank = if p.job_type == "*" {
                0
            } else if Some(p.job_type.as_str()) == job_type {
                2
            } else {
                return None;
            };
            let priority_rank = if p.priority == "*" {
                0
            } else if p.priority == priority.as_str() {
                1
            } else {
                return None;
            };
            Some((type_rank + priority_rank, p))
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, p)| p)
}

/// The job's statuses as consecutive spans `(status, from, to)` up to `now`; the last span's end
/// is `None` (it goes on).
fn spans(
    job: &Timeline,
    now: DateTime<Utc>,
) -> Vec<(JobStatus, DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut out: Vec<(JobStatus, DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    let start = job.created_at.min(now);
    let mut status = JobStatus::Pending;
    let mut since = start;
    for &(to, at) in &job.history {
        let at = at.clamp(since, now.max(since));
        if to == status {
            continue;
        }
        if at > since {
            out.push((status, since, Some(at)));
        }
        status = to;
        since = at;
    }
    out.push((status, since, None));
    out
}

/// The intervals a clock runs in, the last one open (`None`: running now), and when it stopped.
struct Run {
    intervals: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    stopped_at: Option<DateTime<Utc>>,
    paused: bool,
}

fn acknowledges(s: JobStatus) -> bool {
    matches!(
        s,
        JobStatus::EnRoute | JobStatus::InProgress | JobStatus::Completed
    )
}

fn run_of(kind: Kind, job: &Timeline, now: DateTime<Utc>) -> Run {
    let spans = spans(job, now);
    let mut run = Run {
        intervals: Vec::new(),
        stopped_at: None,
        paused: false,
    };
    match kind {
        Kind::Acknowledge => {
            for &(status, from, to) in &spans {
                if acknowledges(status) {
                    run.stopped_at = Some(from);
                    break;
                }
                match status {
                    // Cancelled for good (the job's status now) stops the clock; a job a
                    // dispatcher reopened runs on, the time it was cancelled not counted.
                    JobStatus::Cancelled if to.is_none() => {
                        run.stopped_at = Some(from);
                        break;
                    }
                    JobStatus::Cancelled => {}
                    JobStatus::OnHold => run.paused = to.is_none(),
                    _ => run.intervals.push((from, to)),
                }
            }
        }
        Kind::Resolve => {
            for &(status, from, to) in &spans {
                match status {
                    JobStatus::Completed | JobStatus::Cancelled => {
                        if to.is_none() {
                            run.stopped_at = Some(from);
                        }
                    }
                    JobStatus::OnHold => run.paused = to.is_none(),
                    _ => run.intervals.push((from, to)),
                }
            }
        }
    }
    run
}

/// Where one clock of the job stands at `now` under `limit` and `hours`; `approaching` is the
/// fraction of the limit from which a running clock is `approaching`.
pub fn clock(
    kind: Kind,
    limit: Duration,
    hours: &Hours,
    job: &Timeline,
    now: DateTime<Utc>,
    approaching: f64,
) -> SlaClock {
    let run = run_of(kind, job, now);
    let mut elapsed = Duration::zero();
    let mut deadline = None;
    for &(from, to) in &run.intervals {
        let end = to.unwrap_or(now).max(from);
        let here = hours.between(from, end);
        if deadline.is_none() && elapsed + here > limit {
            deadline = hours.advance(from, limit - elapsed);
        }
        elapsed += here;
    }
    let running = run.intervals.last().is_some_and(|(_, to)| to.is_none());
    if deadline.is_none() && running {
        // Not reached yet: it will be, counting on from now.
        deadline = hours.advance(now, limit - elapsed);
    }
    let state = if elapsed > limit {
        SlaState::Breached
    } else if run.stopped_at.is_some() {
        SlaState::Met
    } else if elapsed.num_milliseconds() as f64 >= approaching * limit.num_milliseconds() as f64 {
        SlaState::Approaching
    } else {
        SlaState::Ok
    };
    SlaClock {
        state,
        deadline,
        elapsed_seconds: elapsed.num_seconds(),
        limit_seconds: limit.num_seconds(),
        paused: run.paused,
        stopped_at: run.stopped_at,
    }
}

/// Both clocks of a job under `policy`.
pub fn clocks(
    policy: &Policy,
    job: &Timeline,
    now: DateTime<Utc>,
    approaching: f64,
) -> (SlaClock, SlaClock) {
    (
        clock(
            Kind::Acknowledge,
            policy.acknowledge_within,
            &policy.hours,
            job,
            now,
            approaching,
        ),
        clock(
            Kind::Resolve,
            policy.resolve_within,
            &policy.hours,
            job,
            now,
            approaching,
        ),
    )
}

/// The events a job's clocks call for at `now`: a breach of a clock over its limit (running, or
/// stopped late, also by a cancellation after the breach) and an approaching one of a running
/// clock past the threshold, except those in `recorded` (already claimed).
pub fn due(
    policy: &Policy,
    job: &Timeline,
    now: DateTime<Utc>,
    approaching: f64,
    recorded: &[(Kind, Level)],
) -> Vec<Due> {
    let (ack, resolve) = clocks(policy, job, now, approaching);
    let mut out = Vec::new();
    for (kind, c) in [(Kind::Acknowledge, ack), (Kind::Resolve, resolve)] {
        let level = match c.state {
            SlaState::Breached => Level::Breached,
            SlaState::Approaching => Level::Approaching,
            SlaState::Ok | SlaState::Met => continue,
        };
        if recorded.contains(&(kind, level)) {
            continue;
        }
        if let Some(deadline) = c.deadline {
            out.push(Due {
                kind,
                level,
                deadline,
            });
        }
    }
    out
}

/// Whether the resolve clock of a job completed under `policy` was met (the SLA compliance of
/// the KPIs): resolved within its limit. `None` for a job not completed at `now`.
pub fn resolved_in_time(policy: &Policy, job: &Timeline, now: DateTime<Utc>) -> Option<bool> {
    let c = clock(
        Kind::Resolve,
        policy.resolve_within,
        &policy.hours,
        job,
        now,
        1.0,
    );
    let completed = job
        .history
        .last()
        .is_some_and(|(s, _)| *s == JobStatus::Completed);
    (completed && c.stopped_at.is_some()).then_some(c.state == SlaState::Met)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use schemas::api::OpeningHours;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn mins(m: i64) -> Duration {
        Duration::minutes(m)
    }

    /// Monday to Friday, `open`–`close`, in `tz`.
    fn weekdays(tz: &str, open: &str, close: &str) -> Hours {
        let hours = [
            PmWeekday::Monday,
            PmWeekday::Tuesday,
            PmWeekday::Wednesday,
            PmWeekday::Thursday,
            PmWeekday::Friday,
        ]
        .into_iter()
        .map(|day| OpeningHours {
            day,
            open: open.into(),
            close: close.into(),
        })
        .collect();
        Hours::from_api(Some(&BusinessHours {
            time_zone: tz.into(),
            hours,
        }))
        .unwrap()
    }

    fn every_day(tz: &str, open: &str, close: &str) -> Hours {
        let hours = [
            PmWeekday::Monday,
            PmWeekday::Tuesday,
            PmWeekday::Wednesday,
            PmWeekday::Thursday,
            PmWeekday::Friday,
            PmWeekday::Saturday,
            PmWeekday::Sunday,
        ]
        .into_iter()
        .map(|day| OpeningHours {
            day,
            open: open.into(),
            close: close.into(),
        })
        .collect();
        Hours::from_api(Some(&BusinessHours {
            time_zone: tz.into(),
            hours,
        }))
        .unwrap()
    }

    fn policy(ack: i64, resolve: i64, hours: Hours) -> Policy {
        Policy {
            id: Uuid::from_u128(1),
            job_type: "*".into(),
            priority: "*".into(),
            acknowledge_within: mins(ack),
            resolve_within: mins(resolve),
            hours,
        }
    }

    fn job(created: &str, history: &[(JobStatus, &str)]) -> Timeline {
        Timeline {
            created_at: at(created),
            history: history.iter().map(|(s, t)| (*s, at(t))).collect(),
        }
    }

    #[test]
    fn nights_and_weekends_do_not_count() {
        let h = weekdays("Europe/London", "09:00", "17:00");
        // Friday 16:00 to Monday 10:00 (winter, GMT): an hour on Friday, an hour on Monday.
        assert_eq!(
            h.between(at("2025-01-10T16:00:00Z"), at("2025-01-13T10:00:00Z")),
            mins(120)
        );
        // Three hours from Friday 16:00 is Monday 11:00.
        assert_eq!(
            h.advance(at("2025-01-10T16:00:00Z"), mins(180)),
            Some(at("2025-01-13T11:00:00Z"))
        );
        // From Saturday, the clock waits for Monday's opening.
        assert_eq!(
            h.advance(at("2025-01-11T12:00:00Z"), mins(1)),
            Some(at("2025-01-13T09:01:00Z"))
        );
        // In summer 09:00 London is 08:00 UTC.
        assert_eq!(
            h.between(at("2025-07-07T00:00:00Z"), at("2025-07-08T00:00:00Z")),
            mins(8 * 60)
        );
        assert_eq!(
            h.advance(at("2025-07-07T00:00:00Z"), mins(1)),
            Some(at("2025-07-07T08:01:00Z"))
        );
    }

    #[test]
    fn a_dst_change_day_has_an_hour_more_or_less() {
        // Around the clock in London's local days: 30 March 2025 has 23 hours, 26 October 25.
        let h = every_day("Europe/London", "00:00", "24:00");
        assert_eq!(
            h.between(at("2025-03-30T00:00:00Z"), at("2025-03-31T00:00:00Z")),
            mins(24 * 60),
            "every instant is inside some local day"
        );
        let night = every_day("Europe/London", "00:00", "06:00");
        // 00:00–06:00 local on 30 March is 00:00–05:00 UTC: five hours.
        assert_eq!(
            night.between(at("2025-03-30T00:00:00Z"), at("2025-03-30T12:00:00Z")),
            mins(5 * 60)
        );
        // On 26 October, 00:00 BST (23:00 UTC the day before) to 06:00 GMT: seven hours.
        assert_eq!(
            night.between(at("2025-10-25T12:00:00Z"), at("2025-10-26T12:00:00Z")),
            mins(7 * 60)
        );
        // 08:00–18:00 New York stays 08:00 local: 13:00 UTC in winter, 12:00 UTC in summer.
        let ny = weekdays("America/New_York", "08:00", "18:00");
        assert_eq!(
            ny.advance(at("2025-03-07T23:00:00Z"), mins(1)),
            Some(at("2025-03-10T12:01:00Z"))
        );
        assert_eq!(
            ny.advance(at("2025-03-06T23:00:00Z"), mins(1)),
            Some(at("2025-03-07T13:01:00Z"))
        );
    }

    #[test]
    fn overlapping_windows_count_once() {
        let h = Hours::from_api(Some(&BusinessHours {
            time_zone: "UTC".into(),
            hours: vec![
                OpeningHours {
                    day: PmWeekday::Monday,
                    open: "08:00".into(),
                    close: "12:00".into(),
                },
                OpeningHours {
                    day: PmWeekday::Monday,
                    open: "10:00".into(),
                    close: "14:00".into(),
                },
            ],
        }))
        .unwrap();
        assert_eq!(
            h.between(at("2025-01-06T00:00:00Z"), at("2025-01-07T00:00:00Z")),
            mins(6 * 60)
        );
        assert!(
            Hours::from_api(Some(&BusinessHours {
                time_zone: "Mars/Olympus".into(),
                hours: vec![],
            }))
            .unwrap_err()
            .contains("Mars/Olympus")
        );
    }

    #[test]
    fn acknowledging_stops_the_ack_clock_and_holds_pause_the_resolve_clock() {
        let p = policy(30, 120, Hours::AroundTheClock);
        let j = job(
            "2025-01-06T10:00:00Z",
            &[
                (JobStatus::Assigned, "2025-01-06T10:05:00Z"),
                (JobStatus::EnRoute, "2025-01-06T10:20:00Z"),
                (JobStatus::InProgress, "2025-01-06T10:50:00Z"),
                (JobStatus::OnHold, "2025-01-06T11:00:00Z"),
            ],
        );
        let now = at("2025-01-06T15:00:00Z");
        let (ack, res) = clocks(&p, &j, now, 0.8);
        assert_eq!(ack.state, SlaState::Met);
        assert_eq!(ack.elapsed_seconds, 20 * 60);
        assert_eq!(ack.stopped_at, Some(at("2025-01-06T10:20:00Z")));
        // On hold since 11:00: an hour counted, paused, no deadline.
        assert_eq!(res.elapsed_seconds, 60 * 60);
        assert!(res.paused);
        assert_eq!(res.deadline, None);
        assert_eq!(res.state, SlaState::Ok);
        // Back to work at 15:00: the other hour runs out at 16:00.
        let mut back = j.clone();
        back.history
            .push((JobStatus::InProgress, at("2025-01-06T15:00:00Z")));
        let (_, res) = clocks(&p, &back, at("2025-01-06T15:30:00Z"), 0.8);
        assert_eq!(res.deadline, Some(at("2025-01-06T16:00:00Z")));
        assert_eq!(res.state, SlaState::Ok, "90 of 120 minutes");
        let (_, res) = clocks(&p, &back, at("2025-01-06T15:40:00Z"), 0.8);
        assert_eq!(res.state, SlaState::Approaching, "100 of 120 minutes");
        let (_, res) = clocks(&p, &back, at("2025-01-06T16:00:01Z"), 0.8);
        assert_eq!(res.state, SlaState::Breached);
        assert_eq!(res.deadline, Some(at("2025-01-06T16:00:00Z")));
        // Completed late: stopped, breached, the deadline when it was reached.
        back.history
            .push((JobStatus::Completed, at("2025-01-06T17:00:00Z")));
        let (_, res) = clocks(&p, &back, at("2025-01-07T00:00:00Z"), 0.8);
        assert_eq!(res.state, SlaState::Breached);
        assert_eq!(res.stopped_at, Some(at("2025-01-06T17:00:00Z")));
        assert_eq!(res.deadline, Some(at("2025-01-06T16:00:00Z")));
        assert_eq!(
            resolved_in_time(&p, &back, at("2025-01-07T00:00:00Z")),
            Some(false)
        );
    }

    #[test]
    fn a_late_ack_is_a_breach_and_events_are_due_once() {
        let p = policy(5, 60, Hours::AroundTheClock);
        let mut j = job(
            "2025-01-06T10:00:00Z",
            &[(JobStatus::Assigned, "2025-01-06T10:00:00Z")],
        );
        let d = due(&p, &j, at("2025-01-06T10:04:30Z"), 0.8, &[]);
        assert_eq!(
            d,
            vec![Due {
                kind: Kind::Acknowledge,
                level: Level::Approaching,
                deadline: at("2025-01-06T10:05:00Z")
            }]
        );
        let recorded = [(Kind::Acknowledge, Level::Approaching)];
        assert!(due(&p, &j, at("2025-01-06T10:04:40Z"), 0.8, &recorded).is_empty());
        j.history
            .push((JobStatus::EnRoute, at("2025-01-06T10:07:00Z")));
        // Acknowledged two minutes late, seen afterwards: still one breach to record.
        let d = due(&p, &j, at("2025-01-06T10:08:00Z"), 0.8, &recorded);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].kind, d[0].level),
            (Kind::Acknowledge, Level::Breached)
        );
        assert_eq!(d[0].deadline, at("2025-01-06T10:05:00Z"));
        // Cancelled: nothing more; the resolve clock stops within its limit.
        j.history
            .push((JobStatus::Cancelled, at("2025-01-06T10:09:00Z")));
        assert!(
            due(
                &p,
                &j,
                at("2025-01-06T23:00:00Z"),
                0.8,
                &[(Kind::Acknowledge, Level::Breached)]
            )
            .is_empty()
        );
        let (ack, res) = clocks(&p, &j, at("2025-01-06T23:00:00Z"), 0.8);
        assert_eq!((ack.state, res.state), (SlaState::Breached, SlaState::Met));
        assert_eq!(res.stopped_at, Some(at("2025-01-06T10:09:00Z")));
        // Reopened by a dispatcher at 12:00: the resolve clock runs on from 9 minutes, the
        // cancelled hours not counted.
        j.history
            .push((JobStatus::Assigned, at("2025-01-06T12:00:00Z")));
        let (_, res) = clocks(&p, &j, at("2025-01-06T12:30:00Z"), 0.8);
        assert_eq!(res.elapsed_seconds, 39 * 60);
        assert_eq!(res.stopped_at, None);
    }

    #[test]
    fn business_hours_clock_across_a_weekend() {
        // Made Friday 16:30 London (winter), 2 business hours to resolve: Monday 10:30.
        let p = policy(60, 120, weekdays("Europe/London", "09:00", "17:00"));
        let j = job("2025-01-10T16:30:00Z", &[]);
        let (ack, res) = clocks(&p, &j, at("2025-01-11T12:00:00Z"), 0.8);
        assert_eq!(ack.elapsed_seconds, 30 * 60);
        assert_eq!(ack.deadline, Some(at("2025-01-13T09:30:00Z")));
        assert_eq!(res.deadline, Some(at("2025-01-13T10:30:00Z")));
        assert_eq!(res.state, SlaState::Ok);
    }

    #[test]
    fn the_most_specific_policy_applies() {
        let mk = |t: &str, p: &str, n: u128| Policy {
            id: Uuid::from_u128(n),
            job_type: t.into(),
            priority: p.into(),
            ..policy(1, 1, Hours::AroundTheClock)
        };
        let all = [
            mk("*", "*", 1),
            mk("*", "urgent", 2),
            mk("hvac", "*", 3),
            mk("hvac", "urgent", 4),
        ];
        let id = |t, p| policy_for(&all, t, p).map(|p| p.id.as_u128());
        assert_eq!(id(Some("hvac"), Priority::Urgent), Some(4));
        assert_eq!(id(Some("hvac"), Priority::Low), Some(3));
        assert_eq!(id(Some("plumbing"), Priority::Urgent), Some(2));
        assert_eq!(id(None, Priority::Low), Some(1));
        assert_eq!(
            policy_for(&all[2..3], Some("plumbing"), Priority::Low),
            None
        );
    }

    #[test]
    fn history_times_never_go_backwards_or_past_now() {
        let p = policy(10, 60, Hours::AroundTheClock);
        // A device clock wrote the en_route before the creation: acknowledged at creation.
        let j = job(
            "2025-01-06T10:00:00Z",
            &[(JobStatus::EnRoute, "2025-01-06T09:00:00Z")],
        );
        let (ack, _) = clocks(&p, &j, at("2025-01-06T11:00:00Z"), 0.8);
        assert_eq!(ack.elapsed_seconds, 0);
        assert_eq!(ack.state, SlaState::Met);
    }

    fn arb_hours() -> impl Strategy<Value = Hours> {
        let zones = prop_oneof![
            Just("Europe/London"),
            Just("America/New_York"),
            Just("Pacific/Auckland"),
            Just("Asia/Kolkata"),
            Just("UTC")
        ];
        let window = (0u16..24, 1u16..10).prop_map(|(o, len)| {
            let close = (o + len).min(24);
            (format!("{o:02}:00"), format!("{close:02}:00"))
        });
        prop_oneof![
            Just(Hours::AroundTheClock),
            (zones, prop::collection::vec((0usize..7, window), 1..6)).prop_map(|(tz, ws)| {
                let days = [
                    PmWeekday::Monday,
                    PmWeekday::Tuesday,
                    PmWeekday::Wednesday,
                    PmWeekday::Thursday,
                    PmWeekday::Friday,
                    PmWeekday::Saturday,
                    PmWeekday::Sunday,
                ];
                Hours::from_api(Some(&BusinessHours {
                    time_zone: tz.into(),
                    hours: ws
                        .into_iter()
                        .map(|(d, (open, close))| OpeningHours {
                            day: days[d],
                            open,
                            close,
                        })
                        .collect(),
                }))
                .unwrap()
            }),
        ]
    }

    fn arb_status() -> impl Strategy<Value = JobStatus> {
        prop::sample::select(JobStatus::ALL.to_vec())
    }

    fn base() -> DateTime<Utc> {
        // Covers London's and New York's spring change and Auckland's autumn one.
        at("2025-03-01T00:00:00Z")
    }

    proptest! {
        /// Business time is additive over a split point and never more than wall time; advancing
        /// by an amount and measuring it back gives the amount.
        #[test]
        fn between_and_advance_agree(
            hours in arb_hours(),
            a in 0i64..(60 * 24 * 60),
            len in 0i64..(20 * 24 * 60),
            cut in 0i64..(20 * 24 * 60),
            amount in 1i64..(5 * 24 * 60),
        ) {
            let a = base() + mins(a);
            let b = a + mins(len);
            let m = a + mins(cut.min(len));
            prop_assert_eq!(hours.between(a, m) + hours.between(m, b), hours.between(a, b));
            prop_assert!(hours.between(a, b) <= b - a);
            let t = hours.advance(a, mins(amount)).unwrap();
            prop_assert_eq!(hours.between(a, t), mins(amount));
            // And it is the first such instant: a second earlier, not yet.
            prop_assert!(hours.between(a, t - Duration::seconds(1)) < mins(amount));
        }

        /// A clock's elapsed time never decreases as `now` moves on, and a breached running
        /// clock stays breached.
        #[test]
        fn elapsed_is_monotone_in_now(
            hours in arb_hours(),
            steps in prop::collection::vec((arb_status(), 0i64..(3 * 24 * 60)), 0..8),
            t1 in 0i64..(30 * 24 * 60),
            dt in 0i64..(10 * 24 * 60),
            limit in 1i64..(3 * 24 * 60),
        ) {
            let created = base();
            let mut at_ = created;
            let mut history = Vec::new();
            for (s, gap) in steps {
                at_ += mins(gap);
                history.push((s, at_));
            }
            let j = Timeline { created_at: created, history };
            let p = policy(limit, limit, hours);
            let now1 = created + mins(t1);
            let now2 = now1 + mins(dt);
            for kind in [Kind::Acknowledge, Kind::Resolve] {
                let c1 = clock(kind, mins(limit), &p.hours, &j, now1, 0.8);
                let c2 = clock(kind, mins(limit), &p.hours, &j, now2, 0.8);
                prop_assert!(c1.elapsed_seconds <= c2.elapsed_seconds, "{kind:?} {c1:?} {c2:?}");
                if c1.state == SlaState::Breached {
                    prop_assert_eq!(c2.state, SlaState::Breached);
                    prop_assert_eq!(c1.deadline, c2.deadline);
                }
            }
        }

        /// Around the clock, the resolve clock's elapsed time is the wall time since creation
        /// less the time on hold (for a job never completed or cancelled).
        #[test]
        fn around_the_clock_is_wall_time_less_holds(
            steps in prop::collection::vec((any::<bool>(), 0i64..(24 * 60)), 0..10),
            tail in 0i64..(24 * 60),
        ) {
            let created = base();
            let mut t = created;
            let mut history = Vec::new();
            let mut held = Duration::zero();
            let mut on_hold = false;
            for (hold, gap) in steps {
                if on_hold {
                    held += mins(gap);
                }
                t += mins(gap);
                let s = if hold { JobStatus::OnHold } else { JobStatus::InProgress };
                history.push((s, t));
                on_hold = hold;
            }
            let now = t + mins(tail);
            if on_hold {
                held += mins(tail);
            }
            let j = Timeline { created_at: created, history };
            let c = clock(Kind::Resolve, mins(100_000), &Hours::AroundTheClock, &j, now, 0.8);
            prop_assert_eq!(c.elapsed_seconds, ((now - created) - held).num_seconds());
            prop_assert_eq!(c.paused, on_hold);
        }
    }
}
