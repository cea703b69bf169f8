//! Killing the device process (SIGKILL) at random moments loses no edit that had returned and
//! never corrupts the replica.
//!
//! The parent test re-runs this test binary as a child that edits in a loop and prints `ok N`
//! after each call returns; the parent kills it at a random instant, reopens the replica and
//! checks that every printed edit is there.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use client_core::{JobFilter, Replica};
use rand::{Rng, SeedableRng};
use schemas::job::NewJob;
use schemas::parts::NewPartLine;

const WORKER_ENV: &str = "FIELDSYNC_CRASH_WORKER_DIR";

/// Not a test on its own: the child process's entry point, active only when the parent sets
/// the environment variable.
#[test]
fn crash_worker_entry_point() {
    let Some(dir) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let mut r = Replica::open(&dir).unwrap();
    let job = match r.list_jobs(JobFilter::All).unwrap().first() {
        Some(j) => j.id,
        None => {
            r.create_job(
                NewJob {
                    title: "crash".into(),
                    ..Default::default()
                },
                None,
            )
            .unwrap()
            .id
        }
    };
    let start = r.job(job).unwrap().parts.len();
    for n in start.. {
        let sku = format!("P{n}");
        r.add_part(
            job,
            NewPartLine {
                sku,
                qty: n as f64,
                ..Default::default()
            },
        )
        .unwrap();
        r.set_notes(job, &format!("after part {n}")).unwrap();
        println!("ok {n}");
    }
}

#[test]
fn sigkill_at_random_moments_loses_no_returned_edit() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acknowledged: Option<usize> = None;
    let rounds = 25;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_worker_entry_point",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line
                    .strip_prefix("ok ")
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    if last.is_none() {
                        let _ = started_tx.send(());
                    }
                    last = Some(n);
                }
            }
            last
        });
        // Kill at a random moment once the worker is editing (however slow the machine is).
        started_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the worker never started editing");
        std::thread::sleep(Duration::from_millis(rng.random_range(0..60)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        if let Some(n) = reader.join().unwrap() {
            acknowledged = Some(acknowledged.map_or(n, |a: usize| a.max(n)));
        }

        let mut r = Replica::open(dir.path()).unwrap();
        assert_eq!(
            r.integrity_check().unwrap(),
            "ok",
            "seed {seed}, round {round}"
        );
        let Some(job) = r.list_jobs(JobFilter::All).unwrap().first().map(|j| j.id) else {
            continue;
        };
        let view = r.job(job).unwrap();
        let skus: std::collections::HashSet<String> =
            view.parts.iter().map(|l| l.sku.clone()).collect();
        if let Some(n) = acknowledged {
            for i in 0..=n {
                assert!(
                    skus.contains(&format!("P{i}")),
                    "seed {seed}: part P{i} was acknowledged but is missing"
                );
            }
            let noted: usize = view
                .notes
                .trim_start_matches("after part ")
                .parse()
                .unwrap();
            assert!(
                noted >= n,
                "seed {seed}: notes went back from {n} to {noted}"
            );
        }
        let tables = r.query_tables_dump().unwrap();
        r.rebuild_queries().unwrap();
        assert_eq!(
            r.query_tables_dump().unwrap(),
            tables,
            "seed {seed}: query tables drifted from the documents"
        );
    }
    assert!(
        acknowledged.is_some_and(|n| n > rounds),
        "the worker barely ran: {acknowledged:?}"
    );
}
