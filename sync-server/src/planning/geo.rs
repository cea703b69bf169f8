//! Distances without map data: great-circle (haversine) meters between two points, and the
//! travel time at an average speed. Assignment suggestions and route plans both use these, so
//! a plan's distances and the naive order's are measured alike.

use schemas::planning::Point;

/// The earth's mean radius (IUGG), in meters.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in meters.
pub fn distance_m(a: Point, b: Point) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// Seconds to drive `meters` at `speed_kmh`.
pub fn travel_s(meters: f64, speed_kmh: f64) -> f64 {
    meters / (speed_kmh * 1000.0 / 3600.0)
}

/// Whether a point is a place on the earth (finite, latitude within ±90, longitude ±180).
pub fn valid(p: Point) -> bool {
    p.lat.is_finite()
        && p.lon.is_finite()
        && (-90.0..=90.0).contains(&p.lat)
        && (-180.0..=180.0).contains(&p.lon)
}

/// Meters along `points` in order.
pub fn path_m(points: &[Point]) -> f64 {
    points.windows(2).map(|w| distance_m(w[0], w[1])).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lat: f64, lon: f64) -> Point {
        Point { lat, lon }
    }

    #[test]
    fn known_distances() {
        // London to Paris is about 343.5 km great-circle.
        let d = distance_m(p(51.5074, -0.1278), p(48.8566, 2.3522));
        assert!((d - 343_500.0).abs() < 1_500.0, "{d}");
        assert_eq!(distance_m(p(10.0, 10.0), p(10.0, 10.0)), 0.0);
        // A quarter of the equator.
        let q = distance_m(p(0.0, 0.0), p(0.0, 90.0));
        assert!((q - std::f64::consts::FRAC_PI_2 * EARTH_RADIUS_M).abs() < 1.0);
        // Antipodes stay finite.
        assert!(distance_m(p(0.0, 0.0), p(0.0, 180.0)).is_finite());
    }

    #[test]
    fn travel_and_validity() {
        assert!((travel_s(40_000.0, 40.0) - 3600.0).abs() < 1e-9);
        assert!(valid(p(51.0, -0.1)));
        assert!(!valid(p(91.0, 0.0)));
        assert!(!valid(p(f64::NAN, 0.0)));
        assert_eq!(path_m(&[p(0.0, 0.0)]), 0.0);
    }
}
