//! Assignment suggestions (issue 11, section 4): the org's technicians ranked for one job by
//! the skills its type of work needs, their free time in their time blocks over the job's
//! window, their load that day, and the distance from their previous job's site (or home).
//!
//! Pure: [`rank`] takes the job, the technicians and the day's jobs and returns the ranking with
//! each factor in words. The store loads the inputs (`store::planning`); the HTTP handler and
//! auto-assignment call this.

use chrono::{DateTime, Utc};
use schemas::planning::{Point, Suggestion};
use uuid::Uuid;

use super::geo;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    Available,
    Break,
    TimeOff,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub kind: BlockKind,
}

/// A technician as the ranking sees them.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub display_name: String,
    pub home: Option<Point>,
    pub skills: Vec<String>,
    /// Their time blocks around the window (any order).
    pub blocks: Vec<Block>,
}

/// A job on the window's day, as far as the ranking cares.
#[derive(Clone, Debug, PartialEq)]
pub struct DayJob {
    pub id: Uuid,
    pub assignees: Vec<String>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub at: Option<Point>,
    /// Not completed or cancelled.
    pub open: bool,
}

/// The job to rank technicians for.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub id: Uuid,
    pub window: (DateTime<Utc>, DateTime<Utc>),
    pub duration_min: i64,
    pub at: Option<Point>,
    pub required_skills: Vec<String>,
}

type Span = (i64, i64); // seconds since the epoch, half open

/// `spans` merged into disjoint, sorted spans.
fn union(mut spans: Vec<Span>) -> Vec<Span> {
    spans.retain(|s| s.1 > s.0);
    spans.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.0 <= last.1 => last.1 = last.1.max(s.1),
            _ => out.push(s),
        }
    }
    out
}

/// `a` minus `b`, both disjoint and sorted.
fn subtract(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for &(mut s, e) in a {
        for &(bs, be) in b {
            if be <= s || bs >= e {
                continue;
            }
            if bs > s {
                out.push((s, bs));
            }
            s = s.max(be);
            if s >= e {
                break;
            }
        }
        if s < e {
            out.push((s, e));
        }
    }
    out
}

fn clip(span: Span, window: Span) -> Span {
    (span.0.max(window.0), span.1.min(window.1))
}

fn same_skill(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn hours(minutes: i64) -> String {
    format!("{}h{:02}", minutes / 60, minutes % 60)
}

/// Free minutes of `c` inside `window` (available blocks minus breaks, time off and their other
/// jobs), and the longest free stretch; `None` when they have no block touching the window.
fn free_time(c: &Candidate, window: Span, jobs: &[&DayJob], target: Uuid) -> Option<(i64, i64)> {
    let touching: Vec<&Block> = c
        .blocks
        .iter()
        .filter(|b| b.end.timestamp() > window.0 && b.start.timestamp() < window.1)
        .collect();
    if touching.is_empty() {
        return None;
    }
    let span = |b: &Block| clip((b.start.timestamp(), b.end.timestamp()), window);
    let available = union(
        touching
            .iter()
            .filter(|b| b.kind == BlockKind::Available)
            .map(|b| span(b))
            .collect(),
    );
    let mut busy: Vec<Span> = touching
        .iter()
        .filter(|b| b.kind != BlockKind::Available)
        .map(|b| span(b))
        .collect();
    for j in jobs {
        if j.id == target || !j.open {
            continue;
        }
        if let (Some(s), Some(e)) = (j.start, j.end) {
            busy.push(clip((s.timestamp(), e.timestamp()), window));
        }
    }
    let free = subtract(&available, &union(busy));
    let total = free.iter().map(|s| s.1 - s.0).sum::<i64>() / 60;
    let longest = free.iter().map(|s| s.1 - s.0).max().unwrap_or(0) / 60;
    Some((total, longest))
}

/// The ranking, best first: technicians with every required skill before those without, then
/// by score (skills, fit in free time, load, distance), then by name so ties are stable.
pub fn rank(target: &Target, candidates: &[Candidate], day_jobs: &[DayJob]) -> Vec<Suggestion> {
    let window = (target.window.0.timestamp(), target.window.1.timestamp());
    let window_min = ((window.1 - window.0) / 60).max(0);
    let mut out: Vec<Suggestion> = candidates
        .iter()
        .map(|c| {
            let mut reasons = Vec::new();
            let missing: Vec<String> = target
                .required_skills
                .iter()
                .filter(|s| !c.skills.iter().any(|h| same_skill(h, s)))
                .cloned()
                .collect();
            let required = target.required_skills.len();
            let skill_fraction = if required == 0 {
                1.0
            } else {
                (required - missing.len()) as f64 / required as f64
            };
            if required == 0 {
                reasons.push("the job needs no particular skill".to_string());
            } else if missing.is_empty() {
                reasons.push(format!(
                    "has every required skill ({})",
                    target.required_skills.join(", ")
                ));
            } else {
                reasons.push(format!("lacks {}", missing.join(", ")));
            }

            let theirs: Vec<&DayJob> = day_jobs
                .iter()
                .filter(|j| j.id != target.id && j.assignees.iter().any(|a| a == &c.name))
                .collect();
            let free = free_time(c, window, &theirs, target.id);
            let fits = free.map(|(_, longest)| longest >= target.duration_min);
            let time_score = match (free, fits) {
                (Some((total, longest)), Some(true)) => {
                    reasons.push(format!(
                        "free {} of the {} window; the {} visit fits",
                        hours(total),
                        hours(window_min),
                        hours(target.duration_min)
                    ));
                    let _ = longest;
                    60.0 + 20.0 * (total as f64 / window_min.max(1) as f64).min(1.0)
                }
                (Some((total, longest)), _) => {
                    reasons.push(format!(
                        "free {} of the {} window, at most {} in one stretch: the {} visit does not fit",
                        hours(total),
                        hours(window_min),
                        hours(longest),
                        hours(target.duration_min)
                    ));
                    10.0 * (total as f64 / window_min.max(1) as f64).min(1.0)
                }
                (None, _) => {
                    reasons.push("no time blocks recorded around the window".to_string());
                    20.0
                }
            };

            let load = theirs.iter().filter(|j| j.open).count() as u32;
            reasons.push(match load {
                0 => "no other open job that day".to_string(),
                1 => "1 other open job that day".to_string(),
                n => format!("{n} other open jobs that day"),
            });

            // From where they will be: the site of their last job starting before the window,
            // else home.
            let previous = theirs
                .iter()
                .filter(|j| j.at.is_some() && j.start.is_some_and(|s| s <= target.window.0))
                .max_by_key(|j| j.start)
                .and_then(|j| j.at);
            let from = previous.or(c.home);
            let distance_km = match (from, target.at) {
                (Some(a), Some(b)) if geo::valid(a) && geo::valid(b) => {
                    Some((geo::distance_m(a, b) / 1000.0 * 10.0).round() / 10.0)
                }
                _ => None,
            };
            reasons.push(match (distance_km, previous.is_some()) {
                (Some(d), true) => format!("{d} km from their previous job's site"),
                (Some(d), false) => format!("{d} km from home"),
                (None, _) if target.at.is_none() => "the job's site has no location".to_string(),
                (None, _) => "no previous site or home location to measure from".to_string(),
            });

            let score = 100.0 * skill_fraction + time_score
                - 8.0 * load as f64
                - distance_km.map_or(10.0, |d| d.min(100.0));
            Suggestion {
                technician: c.name.clone(),
                display_name: c.display_name.clone(),
                score: (score * 10.0).round() / 10.0,
                eligible: missing.is_empty(),
                missing_skills: missing,
                free_minutes: free.map(|f| f.0),
                fits,
                load,
                distance_km,
                reasons,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then(b.score.total_cmp(&a.score))
            .then_with(|| a.technician.cmp(&b.technician))
    });
    out
}

/// The technician auto-assignment picks: the first suggestion, when it has every skill and the
/// visit does not clash with what is known of their time.
pub fn auto_pick(ranked: &[Suggestion]) -> Option<&Suggestion> {
    ranked
        .first()
        .filter(|s| s.eligible && s.fits != Some(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
    }

    fn p(lat: f64, lon: f64) -> Point {
        Point { lat, lon }
    }

    fn cand(name: &str, skills: &[&str], home: Point, blocks: Vec<Block>) -> Candidate {
        Candidate {
            name: name.into(),
            display_name: name.to_uppercase(),
            home: Some(home),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            blocks,
        }
    }

    fn avail(a: DateTime<Utc>, b: DateTime<Utc>) -> Block {
        Block {
            start: a,
            end: b,
            kind: BlockKind::Available,
        }
    }

    fn target() -> Target {
        Target {
            id: Uuid::from_u128(1),
            window: (t(9, 0), t(12, 0)),
            duration_min: 90,
            at: Some(p(51.50, -0.12)),
            required_skills: vec!["HVAC".into(), "refrigerant".into()],
        }
    }

    #[test]
    fn skills_come_first_then_time_load_and_distance() {
        let day = vec![avail(t(8, 0), t(17, 0))];
        let cands = vec![
            // Closest, but lacks a skill.
            cand("ann", &["hvac"], p(51.50, -0.12), day.clone()),
            // Skilled, near, free.
            cand(
                "bob",
                &["HVAC", "Refrigerant"],
                p(51.52, -0.12),
                day.clone(),
            ),
            // Skilled, far.
            cand(
                "cat",
                &["hvac", "refrigerant"],
                p(51.90, -0.12),
                day.clone(),
            ),
        ];
        let r = rank(&target(), &cands, &[]);
        let names: Vec<&str> = r.iter().map(|s| s.technician.as_str()).collect();
        assert_eq!(names, ["bob", "cat", "ann"]);
        assert!(r[0].eligible && r[1].eligible && !r[2].eligible);
        assert_eq!(r[2].missing_skills, ["refrigerant"]);
        assert!(r[2].reasons[0].contains("lacks refrigerant"));
        assert_eq!(r[0].free_minutes, Some(180));
        assert_eq!(r[0].fits, Some(true));
        assert!(r[0].distance_km.unwrap() < r[1].distance_km.unwrap());
        assert_eq!(auto_pick(&r).unwrap().technician, "bob");
    }

    #[test]
    fn breaks_time_off_and_other_jobs_take_free_time_away() {
        let blocks = vec![
            avail(t(8, 0), t(17, 0)),
            Block {
                start: t(9, 30),
                end: t(10, 0),
                kind: BlockKind::Break,
            },
        ];
        let c = cand("bob", &["hvac", "refrigerant"], p(51.5, -0.1), blocks);
        let other = DayJob {
            id: Uuid::from_u128(2),
            assignees: vec!["bob".into()],
            start: Some(t(10, 30)),
            end: Some(t(11, 30)),
            at: Some(p(51.6, -0.1)),
            open: true,
        };
        let r = rank(
            &target(),
            std::slice::from_ref(&c),
            std::slice::from_ref(&other),
        );
        // 9:00-9:30, 10:00-10:30, 11:30-12:00: 90 minutes free, 30 at most in one stretch.
        assert_eq!(r[0].free_minutes, Some(90));
        assert_eq!(r[0].fits, Some(false));
        assert_eq!(r[0].load, 1);
        assert!(
            auto_pick(&r).is_none(),
            "a visit that does not fit is not auto-assigned"
        );
        // The previous job starts after the window opens: distance is from home.
        assert!(r[0].reasons.iter().any(|s| s.contains("from home")));

        // A finished job frees its time and is not load; one before the window is where they
        // come from.
        let done = DayJob {
            open: false,
            ..other.clone()
        };
        let before = DayJob {
            id: Uuid::from_u128(3),
            start: Some(t(7, 0)),
            end: Some(t(8, 0)),
            at: Some(p(51.5, -0.12)),
            ..other
        };
        let r = rank(&target(), &[c], &[done, before]);
        assert_eq!(r[0].load, 1);
        assert_eq!(r[0].free_minutes, Some(150));
        assert_eq!(r[0].fits, Some(true));
        assert_eq!(r[0].distance_km, Some(0.0));
        assert!(
            r[0].reasons
                .iter()
                .any(|s| s.contains("previous job's site"))
        );
    }

    #[test]
    fn unknown_time_is_neither_a_fit_nor_a_clash() {
        let c = cand("dan", &[], p(51.5, -0.1), vec![]);
        let mut tgt = target();
        tgt.required_skills.clear();
        tgt.at = None;
        let r = rank(&tgt, &[c], &[]);
        assert_eq!(r[0].free_minutes, None);
        assert_eq!(r[0].fits, None);
        assert!(r[0].eligible);
        assert!(auto_pick(&r).is_some());
        assert!(r[0].reasons.iter().any(|s| s.contains("no time blocks")));
        assert!(
            r[0].reasons
                .iter()
                .any(|s| s.contains("site has no location"))
        );
    }

    #[test]
    fn interval_arithmetic() {
        assert_eq!(
            union(vec![(5, 7), (1, 3), (2, 4), (7, 8), (9, 9)]),
            vec![(1, 4), (5, 8)]
        );
        assert_eq!(
            subtract(&[(0, 10)], &[(2, 3), (5, 6)]),
            vec![(0, 2), (3, 5), (6, 10)]
        );
        assert_eq!(subtract(&[(0, 10)], &[(-5, 20)]), vec![]);
        assert_eq!(subtract(&[(0, 2), (4, 6)], &[(1, 5)]), vec![(0, 1), (5, 6)]);
    }

    proptest::proptest! {
        #[test]
        fn free_time_never_exceeds_the_window_or_the_available_time(
            blocks in proptest::collection::vec((0i64..600, 1i64..300, 0u8..3), 0..8),
            jobs in proptest::collection::vec((0i64..600, 1i64..200), 0..5),
        ) {
            let base = t(8, 0);
            let at = |m: i64| base + chrono::Duration::minutes(m);
            let blocks: Vec<Block> = blocks.iter().map(|&(s, l, k)| Block {
                start: at(s), end: at(s + l),
                kind: [BlockKind::Available, BlockKind::Break, BlockKind::TimeOff][k as usize],
            }).collect();
            let c = cand("x", &[], p(0.0, 0.0), blocks.clone());
            let day: Vec<DayJob> = jobs.iter().enumerate().map(|(i, &(s, l))| DayJob {
                id: Uuid::from_u128(10 + i as u128), assignees: vec!["x".into()],
                start: Some(at(s)), end: Some(at(s + l)), at: None, open: true,
            }).collect();
            let mut tgt = target();
            tgt.window = (at(60), at(360));
            let r = rank(&tgt, &[c], &day);
            if let Some(free) = r[0].free_minutes {
                proptest::prop_assert!((0..=300).contains(&free));
                let avail: i64 = union(blocks.iter().filter(|b| b.kind == BlockKind::Available)
                    .map(|b| clip((b.start.timestamp(), b.end.timestamp()),
                                  (at(60).timestamp(), at(360).timestamp()))).collect())
                    .iter().map(|s| s.1 - s.0).sum::<i64>() / 60;
                proptest::prop_assert!(free <= avail);
            }
        }
    }
}
