//! Route plans (issue 11, section 5): a generated day of 10 technicians and 80 jobs (8 each, in
//! morning, afternoon or all-day windows, scheduled at random inside them), solved by
//! `planning::routes::plan`; prints each seed's planned distance against the naive order (each
//! technician's jobs by scheduled start) and the solve time, then the medians.
//!
//!   cargo bench -p sync-server --bench routes [-- TECHS JOBS_PER_TECH SEEDS MAX_SECONDS]

use sync_server::planning::routes;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .filter_map(|a| a.parse().ok())
        .collect();
    let techs = args.first().copied().unwrap_or(10);
    let per_tech = args.get(1).copied().unwrap_or(8);
    let seeds = args.get(2).copied().unwrap_or(5);
    let max_seconds = args.get(3).copied().unwrap_or(10) as u32;
    println!(
        "route plans: {techs} technicians x {per_tech} jobs, {seeds} seeds, budget {max_seconds} s, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let (mut ratios, mut times) = (Vec::new(), Vec::new());
    for seed in 1..=seeds as u64 {
        let mut p = routes::generated_day(techs, per_tech, seed);
        p.max_seconds = max_seconds;
        let plan = routes::plan(&p).expect("solved");
        let placed: usize = plan.routes.iter().map(|r| r.stops.len()).sum();
        let ratio = plan.distance_m / plan.naive_distance_m;
        println!(
            "seed {seed}: placed {placed}/{} | planned {:.1} km vs naive {:.1} km = {:.1} % | solve {} ms",
            p.jobs.len(),
            plan.distance_m / 1000.0,
            plan.naive_distance_m / 1000.0,
            100.0 * ratio,
            plan.solve_ms
        );
        ratios.push(ratio);
        times.push(plan.solve_ms as f64);
    }
    println!(
        "median: planned distance {:.1} % of the naive order's, solve time {:.0} ms",
        100.0 * median(ratios),
        median(times)
    );
}
