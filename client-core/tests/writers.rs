//! One writer at a time per replica: several handles (as several processes would) writing one
//! data dir never corrupt it, and a writer kept waiting too long gets a clear error.

use std::sync::{Arc, Barrier};

use client_core::{Error, Replica};
use schemas::job::NewJob;
use schemas::parts::NewPartLine;

fn line(sku: String) -> NewPartLine {
    NewPartLine {
        sku,
        qty: 1.0,
        ..Default::default()
    }
}

#[test]
fn concurrent_writers_on_one_data_dir_are_serialized() {
    let dir = tempfile::tempdir().unwrap();
    let job = Replica::open(dir.path())
        .unwrap()
        .create_job(
            NewJob {
                title: "Shared".into(),
                ..Default::default()
            },
            None,
        )
        .unwrap()
        .id;
    let writers = 3;
    let per_writer = 40;
    let start = Arc::new(Barrier::new(writers));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (path, start) = (dir.path().to_path_buf(), start.clone());
            std::thread::spawn(move || {
                // Each thread has its own handle, loaded before the others write: exactly the
                // stale-cache situation of two processes.
                let mut r = Replica::open(&path).unwrap();
                r.job(job).unwrap();
                start.wait();
                let mut ok = 0;
                for i in 0..per_writer {
                    match r.add_part(job, line(format!("W{w}-{i}"))) {
                        Ok(_) => ok += 1,
                        Err(e @ Error::Busy { .. }) => eprintln!("{e}"),
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(ok > 0);
    let mut r = Replica::open(dir.path()).unwrap();
    let view = r
        .job(job)
        .expect("the replica loads after concurrent writers");
    assert_eq!(view.parts.len(), ok, "every successful add is a line");
    let tables = r.query_tables_dump().unwrap();
    r.rebuild_queries().unwrap();
    assert_eq!(r.query_tables_dump().unwrap(), tables, "query rows drifted");
}

#[test]
fn a_writer_kept_waiting_too_long_is_told_so_and_readers_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::open(dir.path()).unwrap();
    let job = r
        .create_job(
            NewJob {
                title: "Locked".into(),
                ..Default::default()
            },
            None,
        )
        .unwrap()
        .id;
    // Another process holds the write lock and does not let go.
    let other = rusqlite::Connection::open(dir.path().join("replica.sqlite")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let mut second = Replica::open(dir.path()).expect("opening needs no write lock");
    assert_eq!(second.job(job).unwrap().title, "Locked", "reads go on");
    let err = second.add_part(job, line("X".into())).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert!(err.is_retryable() && !err.is_bad_input());
    let text = err.to_string();
    assert!(
        text.contains("another Fieldsync process is using")
            && text.contains(&dir.path().display().to_string()),
        "{text}"
    );

    other.execute_batch("ROLLBACK").unwrap();
    second.add_part(job, line("Y".into())).unwrap();
    assert_eq!(r.job(job).unwrap().parts.len(), 1);
}

#[test]
fn a_writer_waiting_for_the_data_dirs_lock_too_long_is_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = Replica::open(dir.path()).unwrap();
    let job = r
        .create_job(
            NewJob {
                title: "Held".into(),
                ..Default::default()
            },
            None,
        )
        .unwrap()
        .id;
    // Another process is in the middle of a write: it holds the data dir's lock.
    let held = std::fs::File::open(dir.path().join("replica.lock")).unwrap();
    held.lock().unwrap();
    let err = r.add_part(job, line("X".into())).unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert_eq!(r.job(job).unwrap().parts.len(), 0, "reads go on");
    held.unlock().unwrap();
    r.add_part(job, line("Y".into())).unwrap();
    assert_eq!(r.job(job).unwrap().parts.len(), 1);
}
