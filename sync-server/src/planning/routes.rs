//! Route plans (issue 11, section 5): for one day, the order in which each technician visits
//! their jobs, with the jobs' time windows, visit lengths and the technician's start and end
//! places, solved by `vrp-pragmatic` over a matrix of great-circle distances at an average speed.
//!
//! Pure: [`plan`] takes the day's technicians and jobs and returns the plan (no store, no
//! clock but the solver's time budget). A job stays with the technician it is assigned to (the
//! solver sees it as a skill only that technician has), so a plan reorders each technician's
//! day; it never moves work between people.

use std::collections::HashMap;
use std::io::BufWriter;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use schemas::planning::{Point, RoutePlan, RouteStop, TechnicianRoute, UnassignedVisit};
use serde_json::json;
use uuid::Uuid;
use vrp_pragmatic::core::prelude::{DefaultRandom, Environment, Solver, VrpConfigBuilder};
use vrp_pragmatic::core::rosomaxa::utils::{Parallelism, TimeQuota};
use vrp_pragmatic::format::problem::{Matrix, PragmaticProblem, Problem};
use vrp_pragmatic::format::solution::{PragmaticOutputType, Solution, Stop, write_pragmatic};

use super::geo;

/// One technician's day.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteTechnician {
    pub name: String,
    /// Where the day starts (home); the first job of the naive order when unknown.
    pub start: Option<Point>,
    /// Where it ends; the start when unknown.
    pub end: Option<Point>,
    pub shift_start: DateTime<Utc>,
    pub shift_end: DateTime<Utc>,
}

/// One job to visit.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteJob {
    pub id: Uuid,
    pub title: String,
    /// The technician it is assigned to (its first assignee).
    pub technician: String,
    pub at: Option<Point>,
    /// The window the customer was promised; the visit must start and end inside it.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub duration_s: i64,
    /// Its current scheduled start: the naive order.
    pub scheduled_start: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct RouteProblem {
    pub date: String,
    pub speed_kmh: f64,
    pub technicians: Vec<RouteTechnician>,
    pub jobs: Vec<RouteJob>,
    /// The solver's time budget.
    pub max_seconds: u32,
    /// Generations of the solver's search at most (it also stops on the time budget).
    pub max_generations: usize,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("the solver wrote a time {s:?} that does not parse: {e}"))
}

/// The naive order of a technician's jobs: by scheduled start, then id (stable).
fn naive_order<'a>(jobs: impl Iterator<Item = &'a RouteJob>) -> Vec<&'a RouteJob> {
    let mut v: Vec<&RouteJob> = jobs.collect();
    v.sort_by_key(|j| (j.scheduled_start, j.window.map(|w| w.0), j.id));
    v
}

/// The time window a visit of `duration_s` may *start* in, for the promised window `(a, b)`:
/// `[a, b - duration]`, or `[a, a]` when the window is shorter than the visit.
fn start_window(
    w: (DateTime<Utc>, DateTime<Utc>),
    duration_s: i64,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let latest = w.1 - chrono::Duration::seconds(duration_s);
    (w.0, latest.max(w.0))
}

/// Solves the day. Errors only when the solver itself fails (a bug or an input it rejects); jobs
/// it cannot place come back in `unassigned` with the solver's reasons.
pub fn plan(p: &RouteProblem) -> Result<RoutePlan, String> {
    let began = Instant::now();
    let mut unassigned = Vec::new();
    let techs: HashMap<&str, (usize, &RouteTechnician)> = p
        .technicians
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), (i, t)))
        .collect();

    // The jobs the solver sees: a technician in the plan, a place on the map.
    let mut by_tech: Vec<Vec<&RouteJob>> = vec![Vec::new(); p.technicians.len()];
    for job in &p.jobs {
        let Some((i, _)) = techs.get(job.technician.as_str()) else {
            unassigned.push(UnassignedVisit {
                job_id: job.id,
                technician: Some(job.technician.clone()),
                reasons: vec![format!(
                    "its technician `{}` is not part of this plan",
                    job.technician
                )],
            });
            continue;
        };
        match job.at {
            Some(at) if geo::valid(at) => by_tech[*i].push(job),
            _ => unassigned.push(UnassignedVisit {
                job_id: job.id,
                technician: Some(job.technician.clone()),
                reasons: vec!["its site has no location (latitude and longitude)".into()],
            }),
        }
    }

    // Locations: each technician's start and end, then each job's site.
    let mut points: Vec<Point> = Vec::new();
    let mut ends: Vec<(usize, usize, Point, Point)> = Vec::new();
    for (i, t) in p.technicians.iter().enumerate() {
        let naive = naive_order(by_tech[i].iter().copied());
        let first = naive.first().and_then(|j| j.at);
        let start = t.start.filter(|s| geo::valid(*s)).or(first);
        let end = t.end.filter(|e| geo::valid(*e)).or(start);
        let (start, end) = match (start, end) {
            (Some(s), Some(e)) => (s, e),
            // No jobs and no home: nothing to route.
            _ => (Point { lat: 0.0, lon: 0.0 }, Point { lat: 0.0, lon: 0.0 }),
        };
        points.push(start);
        points.push(end);
        ends.push((points.len() - 2, points.len() - 1, start, end));
    }
    let mut job_index: HashMap<Uuid, usize> = HashMap::new();
    for jobs in &by_tech {
        for j in jobs {
            points.push(j.at.expect("located above"));
            job_index.insert(j.id, points.len() - 1);
        }
    }

    let located: usize = by_tech.iter().map(Vec::len).sum();
    let mut routes: Vec<TechnicianRoute> = Vec::new();
    let mut placed: HashMap<Uuid, RouteStop> = HashMap::new();
    let mut reasons: HashMap<Uuid, Vec<String>> = HashMap::new();
    if located > 0 {
        let n = points.len();
        let mut distances = Vec::with_capacity(n * n);
        let mut times = Vec::with_capacity(n * n);
        for a in &points {
            for b in &points {
                let d = geo::distance_m(*a, *b);
                distances.push(d.round() as i64);
                times.push(geo::travel_s(d, p.speed_kmh).round() as i64);
            }
        }
        let vehicles: Vec<_> = p
            .technicians
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({
                    "typeId": format!("t{i}"),
                    "vehicleIds": [format!("v{i}")],
                    "profile": {"matrix": "car"},
                    "costs": {"fixed": 0.0, "distance": 1.0, "time": 0.001},
                    "shifts": [{
                        "start": {"earliest": rfc3339(t.shift_start), "location": {"index": ends[i].0}},
                        "end": {"latest": rfc3339(t.shift_end), "location": {"index": ends[i].1}},
                    }],
                    "capacity": [1_000_000],
                    "skills": [format!("tech-{i}")],
                })
            })
            .collect();
        let mut jobs = Vec::new();
        for (i, tjobs) in by_tech.iter().enumerate() {
            for j in tjobs {
                let mut place = json!({
                    "location": {"index": job_index[&j.id]},
                    "duration": j.duration_s.max(0) as f64,
                });
                if let Some(w) = j.window {
                    let (a, b) = start_window(w, j.duration_s);
                    place["times"] = json!([[rfc3339(a), rfc3339(b)]]);
                }
                jobs.push(json!({
                    "id": j.id.to_string(),
                    "services": [{"places": [place]}],
                    "skills": {"allOf": [format!("tech-{i}")]},
                }));
            }
        }
        let problem: Problem = serde_json::from_value(json!({
            "plan": {"jobs": jobs},
            "fleet": {"vehicles": vehicles, "profiles": [{"name": "car"}]},
        }))
        .map_err(|e| format!("building the routing problem: {e}"))?;
        let matrix: Matrix = serde_json::from_value(json!({
            "profile": "car",
            "travelTimes": times,
            "distances": distances,
        }))
        .map_err(|e| format!("building the routing matrix: {e}"))?;
        let core = Arc::new(
            (problem, vec![matrix])
                .read_pragmatic()
                .map_err(|e| format!("the routing problem was refused: {e}"))?,
        );
        // Repeatable randomness: the same day gives the same plan. The solver's own thread
        // pool size is the machine's (`Parallelism::default`); its log goes to tracing.
        let environment = Arc::new(Environment::new(
            Arc::new(DefaultRandom::new_repeatable()),
            Some(Arc::new(TimeQuota::new(p.max_seconds as f64))),
            Parallelism::default(),
            Arc::new(|msg: &str| tracing::debug!(target: "fieldsync::routes", "{msg}")),
            false,
        ));
        let config = VrpConfigBuilder::new(core.clone())
            .set_environment(environment)
            .prebuild()
            .map_err(|e| format!("configuring the solver: {e}"))?
            .with_max_generations(Some(p.max_generations))
            .with_max_time(Some(p.max_seconds as usize))
            .build()
            .map_err(|e| format!("configuring the solver: {e}"))?;
        let solved = Solver::new(core.clone(), config)
            .solve()
            .map_err(|e| format!("the solver failed: {e}"))?;
        let mut out = BufWriter::new(Vec::new());
        write_pragmatic(&core, &solved, PragmaticOutputType::OnlyPragmatic, &mut out)
            .map_err(|e| format!("reading the solution: {e}"))?;
        let bytes = out.into_inner().map_err(|e| e.to_string())?;
        let solution: Solution =
            serde_json::from_slice(&bytes).map_err(|e| format!("reading the solution: {e}"))?;

        let jobs_by_id: HashMap<Uuid, &RouteJob> =
            by_tech.iter().flatten().map(|j| (j.id, *j)).collect();
        let mut sequences: HashMap<usize, Vec<RouteStop>> = HashMap::new();
        for tour in &solution.tours {
            let Some(i) = tour
                .vehicle_id
                .strip_prefix('v')
                .and_then(|v| v.parse::<usize>().ok())
            else {
                return Err(format!(
                    "the solver named an unknown vehicle {:?}",
                    tour.vehicle_id
                ));
            };
            let mut prev = ends[i].2;
            let mut seq = Vec::new();
            for stop in &tour.stops {
                let (arrival, activities) = match stop {
                    Stop::Point(s) => (&s.time.arrival, &s.activities),
                    Stop::Transit(s) => (&s.time.arrival, &s.activities),
                };
                for act in activities {
                    let Ok(id) = Uuid::parse_str(&act.job_id) else {
                        continue; // departure, arrival
                    };
                    let job = jobs_by_id
                        .get(&id)
                        .ok_or_else(|| format!("the solver placed an unknown job {id}"))?;
                    let start = match &act.time {
                        Some(t) => parse_time(&t.start)?,
                        None => parse_time(arrival)?,
                    };
                    let at = job.at.expect("located");
                    let stop = RouteStop {
                        job_id: id,
                        title: job.title.clone(),
                        arrive: parse_time(arrival)?,
                        start,
                        end: start + chrono::Duration::seconds(job.duration_s),
                        leg_m: geo::distance_m(prev, at).round(),
                    };
                    prev = at;
                    placed.insert(id, stop.clone());
                    seq.push(stop);
                }
            }
            sequences.insert(i, seq);
        }
        for u in solution.unassigned.iter().flatten() {
            if let Ok(id) = Uuid::parse_str(&u.job_id) {
                reasons.insert(
                    id,
                    u.reasons.iter().map(|r| r.description.clone()).collect(),
                );
            }
        }
        for (i, t) in p.technicians.iter().enumerate() {
            let stops = sequences.remove(&i).unwrap_or_default();
            let (_, _, start, end) = ends[i];
            let mut path = vec![start];
            path.extend(
                stops
                    .iter()
                    .map(|s| jobs_by_id[&s.job_id].at.expect("located")),
            );
            path.push(end);
            // The naive order of the same jobs this plan placed, so the two compare.
            let mut naive = vec![start];
            naive.extend(
                naive_order(
                    by_tech[i]
                        .iter()
                        .copied()
                        .filter(|j| placed.contains_key(&j.id)),
                )
                .iter()
                .map(|j| j.at.expect("located")),
            );
            naive.push(end);
            if stops.is_empty() && by_tech[i].is_empty() && t.start.is_none() {
                continue;
            }
            routes.push(TechnicianRoute {
                technician: t.name.clone(),
                start,
                end,
                shift_start: t.shift_start,
                shift_end: t.shift_end,
                distance_m: if stops.is_empty() {
                    0.0
                } else {
                    geo::path_m(&path).round()
                },
                naive_distance_m: if stops.is_empty() {
                    0.0
                } else {
                    geo::path_m(&naive).round()
                },
                stops,
            });
        }
    }
    for jobs in &by_tech {
        for j in jobs {
            if !placed.contains_key(&j.id) {
                unassigned.push(UnassignedVisit {
                    job_id: j.id,
                    technician: Some(j.technician.clone()),
                    reasons: reasons
                        .remove(&j.id)
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| vec!["the solver could not place it".into()]),
                });
            }
        }
    }
    unassigned.sort_by_key(|u| u.job_id);
    Ok(RoutePlan {
        date: p.date.clone(),
        speed_kmh: p.speed_kmh,
        distance_m: routes.iter().map(|r| r.distance_m).sum(),
        naive_distance_m: routes.iter().map(|r| r.naive_distance_m).sum(),
        routes,
        unassigned,
        solve_ms: began.elapsed().as_millis() as u64,
    })
}

/// A generated day for tests and the benchmark: `techs` technicians around a city, each with
/// `per_tech` jobs in morning, afternoon or all-day windows, scheduled at random times inside
/// them (so the naive order is the order a dispatcher typed them in).
pub fn generated_day(techs: usize, per_tech: usize, seed: u64) -> RouteProblem {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
    let at = |h: u32, m: u32| day.and_hms_opt(h, m, 0).expect("time").and_utc();
    let centre = Point {
        lat: 51.5,
        lon: -0.12,
    };
    let near = |rng: &mut rand::rngs::StdRng, km: f64| Point {
        lat: centre.lat + rng.random_range(-km..km) / 111.0,
        lon: centre.lon + rng.random_range(-km..km) / 69.0,
    };
    let mut technicians = Vec::new();
    let mut jobs = Vec::new();
    for t in 0..techs {
        let name = format!("tech{t:02}");
        let home = near(&mut rng, 15.0);
        technicians.push(RouteTechnician {
            name: name.clone(),
            start: Some(home),
            end: Some(home),
            shift_start: at(8, 0),
            shift_end: at(18, 0),
        });
        for k in 0..per_tech {
            let window = match rng.random_range(0..3) {
                0 => (at(8, 0), at(12, 0)),
                1 => (at(12, 0), at(17, 0)),
                _ => (at(8, 0), at(17, 0)),
            };
            let span = (window.1 - window.0).num_minutes() - 45;
            let scheduled = window.0 + chrono::Duration::minutes(rng.random_range(0..span.max(1)));
            jobs.push(RouteJob {
                id: Uuid::from_u128(((t as u128) << 64) | k as u128 | (seed as u128) << 96),
                title: format!("visit {k} of {name}"),
                technician: name.clone(),
                at: Some(near(&mut rng, 20.0)),
                window: Some(window),
                duration_s: 45 * 60,
                scheduled_start: Some(scheduled),
            });
        }
    }
    RouteProblem {
        date: day.to_string(),
        speed_kmh: 40.0,
        technicians,
        jobs,
        max_seconds: 10,
        max_generations: 3000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day() -> RouteProblem {
        let mut p = generated_day(2, 5, 7);
        p.max_seconds = 5;
        p.max_generations = 200;
        p
    }

    #[test]
    fn every_job_is_visited_once_by_its_own_technician_inside_its_window() {
        let p = day();
        let plan = plan(&p).expect("solved");
        assert!(plan.unassigned.is_empty(), "{:?}", plan.unassigned);
        let mut seen = std::collections::HashSet::new();
        for r in &plan.routes {
            let mut last_end = r.shift_start;
            for s in &r.stops {
                let job = p.jobs.iter().find(|j| j.id == s.job_id).expect("known job");
                assert_eq!(job.technician, r.technician);
                assert!(seen.insert(s.job_id), "visited twice");
                let (a, b) = job.window.expect("window");
                assert!(s.start >= a && s.end <= b, "{s:?} outside {a}..{b}");
                assert!(s.arrive >= last_end, "arrives before the last visit ended");
                assert!(s.start >= s.arrive);
                last_end = s.end;
            }
            assert!(last_end <= r.shift_end);
        }
        assert_eq!(seen.len(), p.jobs.len());
        assert!(plan.distance_m > 0.0);
        // The solver never does worse than the naive order when that order is feasible; here it
        // may not be, so only check the figures are both there and finite.
        assert!(plan.naive_distance_m.is_finite());
    }

    #[test]
    fn jobs_without_a_place_or_a_technician_in_the_plan_are_reported_not_dropped() {
        let mut p = day();
        p.jobs[0].at = None;
        p.jobs[1].technician = "nobody".into();
        // A window that ends before the shift starts cannot be met.
        let early = p.jobs[2].window.expect("window").0 - chrono::Duration::hours(6);
        p.jobs[2].window = Some((early, early + chrono::Duration::hours(1)));
        let plan = plan(&p).expect("solved");
        let ids: Vec<Uuid> = plan.unassigned.iter().map(|u| u.job_id).collect();
        for k in 0..3 {
            assert!(
                ids.contains(&p.jobs[k].id),
                "job {k} missing from {:?}",
                plan.unassigned
            );
        }
        let why = |k: usize| {
            plan.unassigned
                .iter()
                .find(|u| u.job_id == p.jobs[k].id)
                .expect("unassigned")
                .reasons
                .join("; ")
        };
        assert!(why(0).contains("no location"), "{}", why(0));
        assert!(why(1).contains("not part of this plan"), "{}", why(1));
        assert!(why(2).contains("time window"), "{}", why(2));
        let placed: usize = plan.routes.iter().map(|r| r.stops.len()).sum();
        assert_eq!(placed + plan.unassigned.len(), p.jobs.len());
    }

    #[test]
    fn a_plan_is_no_longer_than_the_naive_order_on_an_open_day() {
        // All-day windows: the naive order is feasible, so the plan must not be worse.
        let mut p = day();
        for j in &mut p.jobs {
            let (a, _) = j.window.expect("window");
            j.window = Some((
                a.date_naive().and_hms_opt(8, 0, 0).unwrap().and_utc(),
                a.date_naive().and_hms_opt(17, 0, 0).unwrap().and_utc(),
            ));
        }
        let plan = plan(&p).expect("solved");
        assert!(plan.unassigned.is_empty());
        assert!(
            plan.distance_m <= plan.naive_distance_m + 1.0,
            "{} > {}",
            plan.distance_m,
            plan.naive_distance_m
        );
    }

    #[test]
    fn start_windows_leave_room_for_the_visit() {
        let a = DateTime::parse_from_rfc3339("2026-12-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = a + chrono::Duration::hours(4);
        assert_eq!(
            start_window((a, b), 3600),
            (a, b - chrono::Duration::hours(1))
        );
        assert_eq!(
            start_window((a, a + chrono::Duration::minutes(30)), 3600),
            (a, a)
        );
    }
}
