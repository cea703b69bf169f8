//! Device benchmarks (issue: device core). Prints the figures recorded in BENCHMARKS.md.
//!
//!     cargo bench -p client-core --bench device
//!
//! - a checklist toggle, committed to the replica: p50 / p99;
//! - opening a replica holding 500 jobs (2,000 documents) to the first job list;
//! - bytes stored per job after 200 edits, against the size of `save()` of its documents.

use std::time::{Duration, Instant};

use client_core::{JobFilter, Replica};
use schemas::JobStatus;
use schemas::job::NewJob;
use schemas::parts::NewPartLine;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn toggle() {
    let dir = tempfile::tempdir().unwrap();
    // The bench, like mobile-shell, maps FIELDSYNC_SYNCHRONOUS into the open options.
    let sync = std::env::var("FIELDSYNC_SYNCHRONOUS").unwrap_or_else(|_| "FULL".into());
    let options = client_core::Options {
        synchronous: client_core::Synchronous::parse(&sync).unwrap_or_default(),
        ..Default::default()
    };
    let mut r = Replica::open_with(dir.path(), options).unwrap();
    let job = r
        .create_job(
            NewJob {
                title: "bench".into(),
                ..Default::default()
            },
            Some("hvac_maintenance"),
        )
        .unwrap()
        .id;
    let n = 5_000;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let value = if i % 2 == 0 { "pass" } else { "fail" };
        let t = Instant::now();
        r.set_check_str(job, "filter_replaced", value).unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "checklist toggle, committed (synchronous={sync}, {n} toggles): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}   goal p99 < 2 ms",
        us(percentile(&times, 0.5)),
        us(percentile(&times, 0.9)),
        us(percentile(&times, 0.99)),
        us(percentile(&times, 0.999)),
        us(*times.last().unwrap())
    );
}

fn png(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("p.png");
    image::RgbImage::from_pixel(16, 12, image::Rgb([1, 2, 3]))
        .save(&path)
        .unwrap();
    path
}

fn open_large() {
    let dir = tempfile::tempdir().unwrap();
    let photo = png(dir.path());
    let data = dir.path().join("replica");
    {
        let mut r = Replica::open(&data).unwrap();
        for i in 0..500 {
            let new = NewJob {
                title: format!("job {i}"),
                ..Default::default()
            };
            let job = r.create_job(new, Some("hvac_maintenance")).unwrap().id;
            r.attach_photo(job, &photo, Some("nameplate_photo"), "")
                .unwrap();
        }
        assert_eq!(r.documents().unwrap().len(), 2_000);
    }
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let r = Replica::open(&data).unwrap();
        let jobs = r.list_jobs(JobFilter::Today).unwrap();
        times.push(t.elapsed());
        assert_eq!(jobs.len(), 500);
    }
    times.sort();
    println!(
        "open a replica with 500 jobs / 2,000 documents to the first job list (20 opens): p50 {:.2} ms  max {:.2} ms   goal < 200 ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3
    );
}

fn storage() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::open(dir.path()).unwrap();
    let view = r
        .create_job(
            NewJob {
                title: "storage".into(),
                ..Default::default()
            },
            Some("hvac_maintenance"),
        )
        .unwrap();
    let job = view.id;
    r.set_status(job, JobStatus::EnRoute).unwrap();
    r.set_status(job, JobStatus::InProgress).unwrap();
    let mut edits = 2;
    let mut line = None;
    while edits < 200 {
        match edits % 5 {
            0 => r
                .set_check_str(
                    job,
                    "filter_replaced",
                    if edits % 2 == 0 { "pass" } else { "fail" },
                )
                .unwrap(),
            1 => r
                .set_check_str(
                    job,
                    "refrigerant_pressure",
                    &format!("{}", 100 + edits % 50),
                )
                .unwrap(),
            2 => r
                .set_notes(job, &format!("visit notes, revision {edits}"))
                .unwrap(),
            3 => {
                line = Some(
                    r.add_part(
                        job,
                        NewPartLine {
                            sku: format!("SKU-{edits}"),
                            qty: 1.0,
                            ..Default::default()
                        },
                    )
                    .unwrap(),
                )
            }
            _ => r
                .set_part_qty(job, line.as_ref().unwrap(), (edits % 7) as f64)
                .unwrap(),
        }
        edits += 1;
    }
    let ids = [job, view.checklist.id, r_parts_id(&mut r, job)];
    let stored: u64 = ids.iter().map(|id| r.stored_bytes(*id).unwrap()).sum();
    let saved: u64 = ids
        .iter()
        .map(|id| r.save_document(*id).unwrap().len() as u64)
        .sum();
    println!(
        "bytes stored per job after {edits} edits: {stored} B on disk vs {saved} B of save()  (ratio {:.2})",
        stored as f64 / saved as f64,
    );
}

fn r_parts_id(r: &mut Replica, job: uuid::Uuid) -> uuid::Uuid {
    let docs = r.documents().unwrap();
    docs.into_iter()
        .find(|d| d.job_id == job && d.kind == schemas::DocKind::Parts)
        .unwrap()
        .id
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks one benchmark.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if run("toggle") {
        toggle();
    }
    if run("open") {
        open_large();
    }
    if run("storage") {
        storage();
    }
}
