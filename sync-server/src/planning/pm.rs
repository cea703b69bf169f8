//! The preventive-maintenance scheduler's decisions, without IO: given the schedules, the
//! occurrences already made and `now`, which occurrences to create, with their jobs' scheduled
//! start. The task around it (`planning::scheduler`) loads the inputs and applies the result;
//! every rule of the calendar lives here, tested with time as an argument.
//!
//! - Due dates are days in the site's time zone; a job starts on its due date at a configured
//!   local time (08:00), which stays that local time across DST changes. A local time that does
//!   not exist that day (inside a spring-forward gap) moves to the first local time after the gap.
//! - The next due date counts from the last due date or, for schedules anchored on completion,
//!   from the local day the last occurrence's job was completed (such a schedule has at most one
//!   open occurrence: it waits for the completion). Month steps keep to the month's end
//!   (Jan 31 + 1 month = Feb 28 or 29).
//! - An occurrence is created once its due date is at most `horizon_days` ahead of today (the
//!   site's today). Occurrences missed while nothing ran (a schedule started in the past, a server
//!   down for days) are not all made: of those already past due, only the latest is.
//! - Applying a decision and deciding again at the same `now` creates nothing: every date
//!   decided is after the schedule's latest occurrence, and a decision covers the whole horizon.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Days, Duration, LocalResult, Months, NaiveDate, NaiveTime, Utc};
use chrono::{TimeZone, Weekday};
use chrono_tz::Tz;
use schemas::api::{PmAnchor, PmRule, PmUnit, PmWeekday};
use uuid::Uuid;

/// A schedule as the decision needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub id: Uuid,
    pub rule: PmRule,
    pub anchor: PmAnchor,
    pub horizon_days: u32,
    /// The first due date, or the first the rule allows on or after it.
    pub start_date: NaiveDate,
    /// The site's time zone.
    pub time_zone: Tz,
    /// The latest due date recorded on the schedule (the occurrences may say later).
    pub last_due: Option<NaiveDate>,
    /// The latest completion recorded on the schedule.
    pub last_completed_at: Option<DateTime<Utc>>,
}

/// An occurrence already made (claimed), whether or not its job is completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    pub schedule_id: Uuid,
    pub due_date: NaiveDate,
    pub completed_at: Option<DateTime<Utc>>,
}

/// An occurrence to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Create {
    pub schedule_id: Uuid,
    pub due_date: NaiveDate,
    /// The due date at the configured local time in the site's zone, in UTC.
    pub scheduled_start: DateTime<Utc>,
}

/// Guards the walk over past due dates (a daily schedule started 270 years ago).
const MAX_STEPS: usize = 100_000;

/// The occurrences to create at `now`, in schedule order then date order. `occurrences` may hold
/// any schedule's; `local_start` is the local time of day the jobs start.
pub fn decide(
    schedules: &[Schedule],
    occurrences: &[Occurrence],
    now: DateTime<Utc>,
    local_start: NaiveTime,
) -> Vec<Create> {
    let mut by_schedule: HashMap<Uuid, Vec<&Occurrence>> = HashMap::new();
    for o in occurrences {
        by_schedule.entry(o.schedule_id).or_default().push(o);
    }
    let mut out = Vec::new();
    for s in schedules {
        let occ = by_schedule.get(&s.id).map(Vec::as_slice).unwrap_or(&[]);
        let today = now.with_timezone(&s.time_zone).date_naive();
        let last_day = today
            .checked_add_days(Days::new(u64::from(s.horizon_days)))
            .unwrap_or(NaiveDate::MAX);
        let mut latest = latest(s, occ);
        // The latest due date already past that is still to be made, and those from today on.
        let mut overdue = None;
        let mut ahead = Vec::new();
        for _ in 0..MAX_STEPS {
            let Some(due) = next_after(s, latest) else {
                break;
            };
            if due > last_day {
                break;
            }
            if due < today {
                overdue = Some(due);
            } else {
                ahead.push(due);
            }
            // A new occurrence is open: a schedule anchored on completion waits for it.
            latest = Some((due, None));
        }
        for due in overdue.into_iter().chain(ahead) {
            out.push(Create {
                schedule_id: s.id,
                due_date: due,
                scheduled_start: local_instant(s.time_zone, due, local_start),
            });
        }
    }
    out
}

/// The schedule's next due date after the occurrences made so far; `None` while a schedule
/// anchored on completion waits for its open job.
pub fn next_due(s: &Schedule, occurrences: &[Occurrence]) -> Option<NaiveDate> {
    let mine: Vec<&Occurrence> = occurrences
        .iter()
        .filter(|o| o.schedule_id == s.id)
        .collect();
    next_after(s, latest(s, &mine))
}

/// The latest due date (from the occurrences or the schedule's record) and when its job was
/// completed.
fn latest(s: &Schedule, occ: &[&Occurrence]) -> Option<(NaiveDate, Option<DateTime<Utc>>)> {
    let from_rows = occ
        .iter()
        .max_by_key(|o| o.due_date)
        .map(|o| (o.due_date, o.completed_at));
    match (from_rows, s.last_due) {
        (Some(row), Some(recorded)) if recorded > row.0 => Some((recorded, s.last_completed_at)),
        (Some(row), _) => Some(row),
        (None, Some(recorded)) => Some((recorded, s.last_completed_at)),
        (None, None) => None,
    }
}

fn next_after(
    s: &Schedule,
    latest: Option<(NaiveDate, Option<DateTime<Utc>>)>,
) -> Option<NaiveDate> {
    let Some((last_due, completed)) = latest else {
        return Some(first_on_or_after(&s.rule, s.start_date));
    };
    let after_due = step(&s.rule, last_due);
    match s.anchor {
        PmAnchor::Due => after_due,
        PmAnchor::Completion => {
            let done = completed?.with_timezone(&s.time_zone).date_naive();
            // Done early (before its due date): the rhythm still moves past the due date.
            let from_done = step(&s.rule, done)?;
            match after_due {
                Some(a) if from_done <= last_due => Some(a),
                _ => Some(from_done),
            }
        }
    }
}

/// The first date the rule allows on or after `date` (an interval rule allows every date).
pub fn first_on_or_after(rule: &PmRule, date: NaiveDate) -> NaiveDate {
    match rule {
        PmRule::Every { .. } => date,
        _ => date.pred_opt().and_then(|d| step(rule, d)).unwrap_or(date),
    }
}

/// The rule's next date strictly after `date`; `None` past the calendar's end.
pub fn step(rule: &PmRule, date: NaiveDate) -> Option<NaiveDate> {
    match *rule {
        PmRule::Every { n, unit } => match unit {
            PmUnit::Days => date.checked_add_days(Days::new(u64::from(n))),
            PmUnit::Weeks => date.checked_add_days(Days::new(7 * u64::from(n))),
            // chrono keeps to the month's end: Jan 31 + 1 month = Feb 28 (29).
            PmUnit::Months => date.checked_add_months(Months::new(n)),
        },
        PmRule::DayOfMonth { day } => {
            let this = clamped_day(date.year(), date.month(), day)?;
            if this > date {
                return Some(this);
            }
            let next = first_of_month(date)?.checked_add_months(Months::new(1))?;
            clamped_day(next.year(), next.month(), day)
        }
        PmRule::NthWeekday { nth, weekday } => {
            let this = nth_weekday(date.year(), date.month(), nth, weekday)?;
            if this > date {
                return Some(this);
            }
            let next = first_of_month(date)?.checked_add_months(Months::new(1))?;
            nth_weekday(next.year(), next.month(), nth, weekday)
        }
    }
}

fn first_of_month(date: NaiveDate) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(date.year(), date.month(), 1)
}

fn last_day_of_month(year: i32, month: u32) -> Option<u32> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next = first.checked_add_months(Months::new(1))?;
    Some(next.pred_opt()?.day())
}

/// The `day`th of the month, or its last day when the month is shorter.
fn clamped_day(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day.min(last_day_of_month(year, month)?))
}

/// The `nth` (1 to 4, or -1: the last) `weekday` of the month.
fn nth_weekday(year: i32, month: u32, nth: i32, weekday: PmWeekday) -> Option<NaiveDate> {
    let wd = chrono_weekday(weekday);
    if nth < 0 {
        let last = NaiveDate::from_ymd_opt(year, month, last_day_of_month(year, month)?)?;
        let back = (7 + last.weekday().num_days_from_monday() - wd.num_days_from_monday()) % 7;
        return last.checked_sub_days(Days::new(u64::from(back)));
    }
    let nth = u8::try_from(nth.clamp(1, 5)).ok()?;
    NaiveDate::from_weekday_of_month_opt(year, month, wd, nth)
}

fn chrono_weekday(w: PmWeekday) -> Weekday {
    match w {
        PmWeekday::Monday => Weekday::Mon,
        PmWeekday::Tuesday => Weekday::Tue,
        PmWeekday::Wednesday => Weekday::Wed,
        PmWeekday::Thursday => Weekday::Thu,
        PmWeekday::Friday => Weekday::Fri,
        PmWeekday::Saturday => Weekday::Sat,
        PmWeekday::Sunday => Weekday::Sun,
    }
}

/// `date` at local time `time` in `tz`, in UTC. Of a time that happens twice (the hour repeated
/// when clocks go back) the first; a time that does not happen (the hour skipped when they go
/// forward) becomes the first local time after the gap.
pub fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = date.and_time(time);
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Gaps are at most a few hours; walk forward a minute at a time to the gap's end.
            let mut probe = local;
            for _ in 0..(24 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

/// A site's time zone by its IANA name; UTC for a name the database does not know.
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn eight() -> NaiveTime {
        NaiveTime::from_hms_opt(8, 0, 0).unwrap()
    }

    fn schedule(rule: PmRule, anchor: PmAnchor, horizon: u32, start: &str, tz: Tz) -> Schedule {
        Schedule {
            id: Uuid::from_u128(1),
            rule,
            anchor,
            horizon_days: horizon,
            start_date: d(start),
            time_zone: tz,
            last_due: None,
            last_completed_at: None,
        }
    }

    fn every(n: u32, unit: PmUnit) -> PmRule {
        PmRule::Every { n, unit }
    }

    fn apply(occ: &mut Vec<Occurrence>, made: &[Create]) {
        occ.extend(made.iter().map(|c| Occurrence {
            schedule_id: c.schedule_id,
            due_date: c.due_date,
            completed_at: None,
        }));
    }

    #[test]
    fn month_steps_keep_to_the_month_end() {
        let m = every(1, PmUnit::Months);
        assert_eq!(step(&m, d("2025-01-31")), Some(d("2025-02-28")));
        assert_eq!(step(&m, d("2024-01-31")), Some(d("2024-02-29")));
        assert_eq!(step(&m, d("2024-03-31")), Some(d("2024-04-30")));
        assert_eq!(
            step(&every(12, PmUnit::Months), d("2024-02-29")),
            Some(d("2025-02-28"))
        );
        assert_eq!(
            step(&every(2, PmUnit::Weeks), d("2025-12-25")),
            Some(d("2026-01-08"))
        );
        let day31 = PmRule::DayOfMonth { day: 31 };
        assert_eq!(step(&day31, d("2025-01-31")), Some(d("2025-02-28")));
        assert_eq!(step(&day31, d("2025-02-28")), Some(d("2025-03-31")));
        assert_eq!(step(&day31, d("2024-02-01")), Some(d("2024-02-29")));
        let fifteenth = PmRule::DayOfMonth { day: 15 };
        assert_eq!(step(&fifteenth, d("2025-03-14")), Some(d("2025-03-15")));
        assert_eq!(step(&fifteenth, d("2025-03-15")), Some(d("2025-04-15")));
        assert_eq!(
            first_on_or_after(&fifteenth, d("2025-03-15")),
            d("2025-03-15")
        );
    }

    #[test]
    fn nth_weekday_rules() {
        let first_monday = PmRule::NthWeekday {
            nth: 1,
            weekday: PmWeekday::Monday,
        };
        assert_eq!(step(&first_monday, d("2025-03-01")), Some(d("2025-03-03")));
        assert_eq!(step(&first_monday, d("2025-03-03")), Some(d("2025-04-07")));
        let last_friday = PmRule::NthWeekday {
            nth: -1,
            weekday: PmWeekday::Friday,
        };
        assert_eq!(step(&last_friday, d("2025-10-01")), Some(d("2025-10-31")));
        assert_eq!(step(&last_friday, d("2025-10-31")), Some(d("2025-11-28")));
        assert_eq!(
            first_on_or_after(&last_friday, d("2025-10-31")),
            d("2025-10-31")
        );
    }

    #[test]
    fn eight_local_stays_eight_local_across_london_dst() {
        let tz: Tz = "Europe/London".parse().unwrap();
        // Clocks go forward on Sun 30 March 2025 and back on Sun 26 October 2025.
        let s = schedule(every(1, PmUnit::Days), PmAnchor::Due, 3, "2025-03-29", tz);
        let made = decide(
            std::slice::from_ref(&s),
            &[],
            at("2025-03-29T00:30:00Z"),
            eight(),
        );
        let starts: Vec<_> = made.iter().map(|c| c.scheduled_start).collect();
        assert_eq!(
            starts,
            vec![
                at("2025-03-29T08:00:00Z"), // GMT
                at("2025-03-30T07:00:00Z"), // BST from 01:00 UTC that day
                at("2025-03-31T07:00:00Z"),
                at("2025-04-01T07:00:00Z"),
            ]
        );
        let autumn = Schedule {
            start_date: d("2025-10-25"),
            ..s
        };
        let made = decide(&[autumn], &[], at("2025-10-25T00:30:00Z"), eight());
        let starts: Vec<_> = made.iter().map(|c| c.scheduled_start).collect();
        assert_eq!(
            starts,
            vec![
                at("2025-10-25T07:00:00Z"),
                at("2025-10-26T08:00:00Z"),
                at("2025-10-27T08:00:00Z"),
                at("2025-10-28T08:00:00Z"),
            ]
        );
        for c in &made {
            let local = c.scheduled_start.with_timezone(&tz);
            assert_eq!((local.hour(), local.minute()), (8, 0));
            assert_eq!(local.date_naive(), c.due_date);
        }
    }

    #[test]
    fn a_local_time_in_the_gap_moves_past_it_and_a_repeated_one_takes_the_first() {
        let tz: Tz = "Europe/London".parse().unwrap();
        let half_one = NaiveTime::from_hms_opt(1, 30, 0).unwrap();
        // 01:30 does not exist on 30 March 2025 (01:00 → 02:00): 02:00 BST = 01:00 UTC.
        assert_eq!(
            local_instant(tz, d("2025-03-30"), half_one),
            at("2025-03-30T01:00:00Z")
        );
        // 01:30 happens twice on 26 October 2025: the first, BST (00:30 UTC).
        assert_eq!(
            local_instant(tz, d("2025-10-26"), half_one),
            at("2025-10-26T00:30:00Z")
        );
    }

    #[test]
    fn the_sites_today_decides_not_utcs() {
        // 23:30 UTC on 14 March is already 15 March in Auckland (UTC+13).
        let tz: Tz = "Pacific/Auckland".parse().unwrap();
        let s = schedule(
            PmRule::DayOfMonth { day: 15 },
            PmAnchor::Due,
            0,
            "2025-03-01",
            tz,
        );
        let made = decide(
            std::slice::from_ref(&s),
            &[],
            at("2025-03-14T10:59:00Z"),
            eight(),
        );
        assert!(made.is_empty(), "{made:?}");
        let made = decide(&[s], &[], at("2025-03-14T11:00:00Z"), eight());
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].due_date, d("2025-03-15"));
        // 08:00 NZDT is 19:00 UTC the day before.
        assert_eq!(made[0].scheduled_start, at("2025-03-14T19:00:00Z"));
    }

    #[test]
    fn horizon_and_catch_up() {
        let s = schedule(
            every(1, PmUnit::Weeks),
            PmAnchor::Due,
            10,
            "2025-01-01",
            Tz::UTC,
        );
        // Start in the past: of the weeks missed only the latest is made, then the horizon.
        let made = decide(
            std::slice::from_ref(&s),
            &[],
            at("2025-02-01T12:00:00Z"),
            eight(),
        );
        let dues: Vec<_> = made.iter().map(|c| c.due_date).collect();
        assert_eq!(dues, vec![d("2025-01-29"), d("2025-02-05")]);
        let mut occ = Vec::new();
        apply(&mut occ, &made);
        assert!(
            decide(
                std::slice::from_ref(&s),
                &occ,
                at("2025-02-01T12:00:00Z"),
                eight()
            )
            .is_empty()
        );
        assert_eq!(next_due(&s, &occ), Some(d("2025-02-12")));
        // The next day the next one comes into the horizon (10 days ahead).
        let made = decide(
            std::slice::from_ref(&s),
            &occ,
            at("2025-02-02T00:00:00Z"),
            eight(),
        );
        assert_eq!(made.len(), 1);
        assert_eq!(made[0].due_date, d("2025-02-12"));
    }

    #[test]
    fn completion_anchor_waits_for_the_completion_and_counts_from_it() {
        let tz: Tz = "Europe/London".parse().unwrap();
        let s = schedule(
            every(1, PmUnit::Months),
            PmAnchor::Completion,
            7,
            "2025-01-31",
            tz,
        );
        let made = decide(
            std::slice::from_ref(&s),
            &[],
            at("2025-01-30T09:00:00Z"),
            eight(),
        );
        assert_eq!(made.len(), 1);
        let mut occ = Vec::new();
        apply(&mut occ, &made);
        assert_eq!(next_due(&s, &occ), None, "waits for the open job");
        assert!(
            decide(
                std::slice::from_ref(&s),
                &occ,
                at("2025-03-30T09:00:00Z"),
                eight()
            )
            .is_empty()
        );
        // Completed late, on 5 February (local): the next is a month after that.
        occ[0].completed_at = Some(at("2025-02-05T15:00:00Z"));
        assert_eq!(next_due(&s, &occ), Some(d("2025-03-05")));
        // Completed early: the rhythm still moves past the due date.
        occ[0].completed_at = Some(at("2024-12-20T15:00:00Z"));
        assert_eq!(next_due(&s, &occ), Some(d("2025-02-28")));
        // The due-date anchor ignores completions: Jan 31 + 1 month.
        let due = Schedule {
            anchor: PmAnchor::Due,
            ..s
        };
        assert_eq!(next_due(&due, &occ), Some(d("2025-02-28")));
    }

    #[test]
    fn the_schedules_recorded_last_due_date_counts_too() {
        let mut s = schedule(
            every(3, PmUnit::Days),
            PmAnchor::Due,
            0,
            "2025-01-01",
            Tz::UTC,
        );
        s.last_due = Some(d("2025-06-01"));
        assert_eq!(next_due(&s, &[]), Some(d("2025-06-04")));
    }

    fn arb_rule() -> impl Strategy<Value = PmRule> {
        let unit = prop_oneof![
            Just(PmUnit::Days),
            Just(PmUnit::Weeks),
            Just(PmUnit::Months)
        ];
        let weekday = prop_oneof![
            Just(PmWeekday::Monday),
            Just(PmWeekday::Wednesday),
            Just(PmWeekday::Sunday)
        ];
        prop_oneof![
            (1u32..40, unit).prop_map(|(n, unit)| PmRule::Every { n, unit }),
            (1u32..=31).prop_map(|day| PmRule::DayOfMonth { day }),
            (prop_oneof![1i32..=4, Just(-1)], weekday)
                .prop_map(|(nth, weekday)| PmRule::NthWeekday { nth, weekday }),
        ]
    }

    fn arb_schedule(id: u128) -> impl Strategy<Value = Schedule> {
        let zones = prop_oneof![
            Just("Europe/London"),
            Just("America/New_York"),
            Just("Pacific/Auckland"),
            Just("Asia/Kolkata"),
            Just("UTC")
        ];
        (
            arb_rule(),
            prop_oneof![Just(PmAnchor::Due), Just(PmAnchor::Completion)],
            0u32..90,
            -400i64..400,
            zones,
        )
            .prop_map(move |(rule, anchor, horizon, start, tz)| Schedule {
                id: Uuid::from_u128(id),
                rule,
                anchor,
                horizon_days: horizon,
                start_date: d("2025-06-15") + Duration::days(start),
                time_zone: tz.parse().unwrap(),
                last_due: None,
                last_completed_at: None,
            })
    }

    proptest! {
        /// Deciding again after applying a decision creates nothing, whatever the rule, zone,
        /// horizon and time; and what is decided is new, in the horizon, at 08:00 local.
        #[test]
        fn deciding_is_idempotent(
            schedules in (1u128..4).prop_flat_map(|n| (1..=n).map(arb_schedule).collect::<Vec<_>>()),
            now_minutes in 0i64..(2 * 365 * 24 * 60),
        ) {
            let now = at("2025-01-01T00:00:00Z") + Duration::minutes(now_minutes);
            let mut occ = Vec::new();
            let made = decide(&schedules, &occ, now, eight());
            let mut seen = std::collections::HashSet::new();
            for c in &made {
                prop_assert!(seen.insert((c.schedule_id, c.due_date)), "twice: {c:?}");
                let s = schedules.iter().find(|s| s.id == c.schedule_id).unwrap();
                let today = now.with_timezone(&s.time_zone).date_naive();
                prop_assert!(c.due_date <= today + Duration::days(i64::from(s.horizon_days)));
                let local = c.scheduled_start.with_timezone(&s.time_zone);
                prop_assert_eq!(local.date_naive(), c.due_date);
            }
            apply(&mut occ, &made);
            let again = decide(&schedules, &occ, now, eight());
            prop_assert!(again.is_empty(), "made again: {again:?}");
        }

        /// Running the scheduler over time (applying each decision, completing jobs at random)
        /// never makes a due date twice, and each schedule's due dates only move forward.
        #[test]
        fn over_time_each_due_date_is_made_once(
            s in arb_schedule(7),
            steps in prop::collection::vec((1i64..(20 * 24 * 60), any::<bool>()), 1..40),
        ) {
            let mut now = at("2025-01-01T00:00:00Z");
            let mut occ: Vec<Occurrence> = Vec::new();
            for (minutes, complete) in steps {
                now += Duration::minutes(minutes);
                if complete {
                    for o in occ.iter_mut().filter(|o| o.completed_at.is_none()) {
                        o.completed_at = Some(now);
                    }
                }
                let made = decide(std::slice::from_ref(&s), &occ, now, eight());
                let last = occ.iter().map(|o| o.due_date).max();
                for c in &made {
                    prop_assert!(last.is_none_or(|l| c.due_date > l), "{c:?} after {last:?}");
                }
                apply(&mut occ, &made);
                prop_assert!(decide(std::slice::from_ref(&s), &occ, now, eight()).is_empty());
            }
        }
    }
}
