//! A sensor's trigger rule as a pure state machine: a reading (its time and value) goes in, and
//! out comes whether the rule fires, re-arms, or nothing. No IO and no clock: time is the
//! reading's own, so the tests feed it sequences.
//!
//! - A reading is *beyond* the thresholds when `value > max` or `value < min`.
//! - The rule fires once `consecutive` readings in a row were beyond, spanning at least
//!   `duration` (from the first of them to this one), and the last firing is `cooldown` ago.
//!   A reading back within the thresholds before that starts the count again. A firing blocked
//!   by the cool-down waits: the rule fires when the cool-down ends if the readings are still
//!   beyond.
//! - After firing, the rule is *latched*: nothing fires until a reading is back within the
//!   thresholds by the `hysteresis` margin (`min + h <= value <= max - h`), which re-arms it. A
//!   noisy sensor hovering around a threshold therefore opens one job, not one per crossing.
//! - A reading older than the latest one seen (out of order) is stored but does not move the
//!   state: the rule follows the sensor's timeline, not the network's.
//! - A new state (a node just started) does not know whether the rule fired before; the store
//!   does (`sensors.armed`). A clear reading then re-arms (harmless if armed), and a firing is
//!   only a request: the store's claim decides (see `store/sensors.rs`).

use chrono::{DateTime, Duration, Utc};

/// The rule, as the machine needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub consecutive: u32,
    pub duration: Duration,
    pub hysteresis: f64,
    pub cooldown: Duration,
}

impl Rule {
    pub fn beyond(&self, v: f64) -> bool {
        self.max.is_some_and(|m| v > m) || self.min.is_some_and(|m| v < m)
    }

    /// Back inside the thresholds by the hysteresis margin.
    pub fn clear(&self, v: f64) -> bool {
        self.max.is_none_or(|m| v <= m - self.hysteresis)
            && self.min.is_none_or(|m| v >= m + self.hysteresis)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Phase {
    /// Not known whether the rule is latched (a fresh state).
    #[default]
    Unknown,
    /// Armed; no reading beyond.
    Normal,
    /// Armed; `count` readings in a row beyond, the first at `since`.
    Beyond { since: DateTime<Utc>, count: u32 },
    /// Fired; waiting for a clear reading.
    Latched,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct State {
    pub phase: Phase,
    /// The latest reading's time.
    pub last_at: Option<DateTime<Utc>>,
    /// When the rule last fired (by this state's knowledge).
    pub last_fired: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// Open a job (the store's claim decides whether this node does).
    Fire,
    /// Back within the thresholds after a firing: the rule may fire again.
    Rearm,
}

/// One reading at `at` with `value` (finite).
pub fn step(rule: &Rule, s: &mut State, at: DateTime<Utc>, value: f64) -> Decision {
    if s.last_at.is_some_and(|last| at < last) {
        return Decision::Nothing;
    }
    s.last_at = Some(at);
    if rule.beyond(value) {
        let (since, count) = match s.phase {
            Phase::Latched => return Decision::Nothing,
            Phase::Beyond { since, count } => (since, count.saturating_add(1)),
            Phase::Normal | Phase::Unknown => (at, 1),
        };
        let cooled = s.last_fired.is_none_or(|f| at - f >= rule.cooldown);
        if count >= rule.consecutive && at - since >= rule.duration && cooled {
            s.phase = Phase::Latched;
            s.last_fired = Some(at);
            return Decision::Fire;
        }
        s.phase = Phase::Beyond { since, count };
        return Decision::Nothing;
    }
    let clear = rule.clear(value);
    match s.phase {
        Phase::Latched | Phase::Unknown if clear => {
            s.phase = Phase::Normal;
            Decision::Rearm
        }
        // Within the thresholds but not by the margin: still latched, or still not known.
        Phase::Latched | Phase::Unknown => Decision::Nothing,
        Phase::Beyond { .. } | Phase::Normal => {
            s.phase = Phase::Normal;
            Decision::Nothing
        }
    }
}

/// The store refused this node's firing (another node's claim, or the sensor was not re-armed):
/// stay latched, as the rule is in the store.
pub fn claim_lost(s: &mut State) {
    s.phase = Phase::Latched;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        "2026-03-29T00:30:00Z".parse().unwrap()
    }

    fn rule(consecutive: u32, duration_s: i64, hysteresis: f64, cooldown_s: i64) -> Rule {
        Rule {
            min: Some(0.0),
            max: Some(100.0),
            consecutive,
            duration: Duration::seconds(duration_s),
            hysteresis,
            cooldown: Duration::seconds(cooldown_s),
        }
    }

    /// Feed `(seconds after t0, value)`; the seconds at which the rule fired.
    fn fires(rule: &Rule, readings: &[(i64, f64)]) -> Vec<i64> {
        let mut s = State::default();
        readings
            .iter()
            .filter(|(t, v)| step(rule, &mut s, t0() + Duration::seconds(*t), *v) == Decision::Fire)
            .map(|(t, _)| *t)
            .collect()
    }

    #[test]
    fn fires_on_the_kth_consecutive_reading() {
        let r = rule(3, 0, 0.0, 3600);
        assert_eq!(fires(&r, &[(0, 101.0), (1, 102.0), (2, 103.0)]), vec![2]);
        // Broken by a reading within: the count starts again.
        assert_eq!(
            fires(
                &r,
                &[(0, 101.0), (1, 102.0), (2, 50.0), (3, 101.0), (4, 101.0)]
            ),
            Vec::<i64>::new()
        );
        // Below the minimum counts too.
        assert_eq!(fires(&r, &[(0, -1.0), (1, -2.0), (2, -3.0)]), vec![2]);
    }

    #[test]
    fn fires_after_a_duration() {
        let r = rule(1, 60, 0.0, 3600);
        assert_eq!(
            fires(
                &r,
                &[
                    (0, 101.0),
                    (30, 101.0),
                    (59, 101.0),
                    (60, 101.0),
                    (61, 101.0)
                ]
            ),
            vec![60]
        );
        // The span starts again after a reading within.
        assert_eq!(
            fires(
                &r,
                &[
                    (0, 101.0),
                    (50, 99.0),
                    (60, 101.0),
                    (100, 101.0),
                    (120, 101.0)
                ]
            ),
            vec![120]
        );
    }

    #[test]
    fn a_storm_fires_once() {
        let r = rule(1, 0, 0.0, 0);
        let storm: Vec<(i64, f64)> = (0..10_000).map(|i| (i / 100, 150.0)).collect();
        assert_eq!(fires(&r, &storm), vec![0]);
    }

    #[test]
    fn hysteresis_keeps_a_noisy_sensor_latched() {
        let r = rule(1, 0, 5.0, 0);
        // Hovering around 100: only a reading at or below 95 re-arms.
        let noisy: Vec<(i64, f64)> = (0..100)
            .map(|i| (i, if i % 2 == 0 { 101.0 } else { 97.0 }))
            .collect();
        assert_eq!(fires(&r, &noisy), vec![0]);
        assert_eq!(
            fires(&r, &[(0, 101.0), (1, 95.0), (2, 101.0)]),
            vec![0, 2],
            "cleared by the margin, it fires again"
        );
    }

    #[test]
    fn cooldown_delays_the_next_firing() {
        let r = rule(1, 0, 0.0, 600);
        assert_eq!(
            fires(
                &r,
                &[
                    (0, 101.0),
                    (10, 50.0),
                    (20, 101.0),
                    (300, 101.0),
                    (620, 101.0),
                    (700, 101.0)
                ]
            ),
            vec![0, 620]
        );
    }

    #[test]
    fn out_of_order_readings_do_not_move_the_state() {
        let r = rule(2, 0, 0.0, 0);
        // The late reading at t=1 (within) arrives after t=5 and is ignored.
        assert_eq!(fires(&r, &[(4, 101.0), (5, 101.0), (1, 50.0)]), vec![5]);
        assert_eq!(fires(&r, &[(4, 101.0), (1, 50.0), (5, 101.0)]), vec![5]);
    }

    #[test]
    fn a_fresh_state_rearms_on_a_clear_reading() {
        let r = rule(1, 0, 2.0, 0);
        let mut s = State::default();
        assert_eq!(step(&r, &mut s, t0(), 99.0), Decision::Nothing);
        assert_eq!(step(&r, &mut s, t0(), 90.0), Decision::Rearm);
        assert_eq!(step(&r, &mut s, t0(), 90.0), Decision::Nothing);
        claim_lost(&mut s);
        assert_eq!(step(&r, &mut s, t0(), 101.0), Decision::Nothing);
    }

    fn readings() -> impl Strategy<Value = Vec<(i64, f64)>> {
        prop::collection::vec((0i64..5, -20.0f64..120.0), 1..300).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(dt, v)| {
                    t += dt;
                    (t, v)
                })
                .collect()
        })
    }

    proptest! {
        /// Between two firings there is always a reading back within by the margin, and the
        /// cool-down has passed.
        #[test]
        fn firings_are_separated_by_a_clear_reading_and_the_cooldown(
            rs in readings(), k in 1u32..5, h in 0.0f64..20.0, cool in 0i64..100,
        ) {
            let r = rule(k, 0, h, cool);
            let f = fires(&r, &rs);
            for w in f.windows(2) {
                prop_assert!(w[1] - w[0] >= cool);
                let cleared = rs.iter().any(|(t, v)| *t >= w[0] && *t <= w[1] && r.clear(*v));
                prop_assert!(cleared, "{:?} fired twice without a clear reading", w);
            }
        }

        /// A noisy sensor that never comes back within the margin fires at most once.
        #[test]
        fn noise_around_the_threshold_fires_at_most_once(
            noise in prop::collection::vec(-4.9f64..4.9, 1..500), k in 1u32..4,
        ) {
            let r = rule(k, 0, 5.0, 0);
            let rs: Vec<(i64, f64)> =
                noise.iter().enumerate().map(|(i, n)| (i as i64, 100.0 + n)).collect();
            prop_assert!(fires(&r, &rs).len() <= 1);
        }

        /// Readings older than the latest, inserted anywhere, change nothing.
        #[test]
        fn late_readings_change_nothing(
            rs in readings(), late in prop::collection::vec((0usize..300, -20.0f64..120.0), 0..50),
        ) {
            let r = rule(2, 3, 1.0, 10);
            let mut mixed = rs.clone();
            for (i, v) in late {
                let at = i.min(mixed.len() - 1);
                let t = mixed[at].0 - 1;
                mixed.insert(at + 1, (t, v));
            }
            prop_assert_eq!(fires(&r, &rs), fires(&r, &mixed));
        }
    }
}
