//! The technician's actions against a real replica on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use client_core::{Error, JobFilter, Options, Origin, Replica};
use schemas::JobStatus;
use schemas::checklist::ItemValue;
use schemas::job::{NewJob, Schedule};
use schemas::parts::NewPartLine;

fn fixed_clock() -> Options {
    let t: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    Options {
        clock: Some(Arc::new(move || t)),
        ..Options::default()
    }
}

fn open(dir: &Path) -> Replica {
    Replica::open_with(dir, fixed_clock()).unwrap()
}

fn png(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    image::RgbImage::from_pixel(4, 3, image::Rgb([200, 10, 10]))
        .save(&path)
        .unwrap();
    path
}

fn new_job(r: &mut Replica, template: &str) -> uuid::Uuid {
    r.create_job(
        NewJob {
            title: "Service RTU-2".into(),
            ..Default::default()
        },
        Some(template),
    )
    .unwrap()
    .id
}

/// Everything a bad call must leave untouched.
fn fingerprint(
    r: &mut Replica,
) -> (
    Vec<String>,
    Vec<(uuid::Uuid, String)>,
    Vec<serde_json::Value>,
) {
    let docs: Vec<_> = r.documents().unwrap();
    let states = docs
        .iter()
        .map(|d| r.document_json(d.id).unwrap())
        .collect();
    (r.query_tables_dump().unwrap(), r.unacked().unwrap(), states)
}

#[test]
fn a_job_is_worked_from_assignment_to_sign_off_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = open(dir.path());
    let events = r.subscribe();
    let id = new_job(&mut r, "general");
    r.set_status(id, JobStatus::EnRoute).unwrap();
    r.set_status(id, JobStatus::InProgress).unwrap();
    r.set_notes(id, "customer asked to keep the gate shut")
        .unwrap();
    r.start_time(id).unwrap();
    r.set_check_str(id, "arrived_on_site", "pass").unwrap();
    r.set_check_str(id, "work_performed", "replaced contactor")
        .unwrap();
    let line = r
        .add_part(
            id,
            NewPartLine {
                sku: "CONT-40A".into(),
                qty: 1.0,
                source: Some("van-3".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let gone = r
        .add_part(
            id,
            NewPartLine {
                sku: "WIRE-12".into(),
                qty: 3.0,
                ..Default::default()
            },
        )
        .unwrap();
    r.set_part_qty(id, &line, 2.0).unwrap();
    r.remove_part(id, &gone).unwrap();
    let photo = r
        .attach_photo(
            id,
            &png(dir.path(), "after.png"),
            Some("after_photo"),
            "done",
        )
        .unwrap();
    r.stop_time(id).unwrap();
    let signoff = r
        .sign_off(id, "Dana Customer", &png(dir.path(), "sig.png"))
        .unwrap();
    r.set_status(id, JobStatus::Completed).unwrap();

    let view = r.job(id).unwrap();
    assert_eq!(view.status, JobStatus::Completed);
    assert_eq!(view.notes, "customer asked to keep the gate shut");
    assert_eq!(view.parts.len(), 1);
    assert_eq!(
        (view.parts[0].sku.as_str(), view.parts[0].qty),
        ("CONT-40A", 2.0)
    );
    assert_eq!(view.photos.len(), 1);
    assert_eq!(
        view.checklist
            .items
            .iter()
            .find(|i| i.id == "after_photo")
            .unwrap()
            .value,
        Some(ItemValue::Text(photo.id.to_string()))
    );
    assert_eq!(
        view.signoff.as_ref().unwrap().summary_sha256,
        signoff.summary_sha256
    );
    assert_eq!(view.time_entries.len(), 1);
    assert!(view.time_entries[0].stopped_at.is_some());
    let history: Vec<_> = view.status_history.iter().map(|h| h.to).collect();
    assert_eq!(
        history,
        [
            JobStatus::Assigned,
            JobStatus::EnRoute,
            JobStatus::InProgress,
            JobStatus::Completed
        ]
    );
    assert!(view.status_history.iter().all(|h| h.by == "technician"));
    // The photo's bytes live in the data dir under their hash.
    assert!(client_core::blobs::blob_path(dir.path(), &photo.sha256).exists());
    // Every edit was announced, locally.
    let seen: Vec<_> = events.try_iter().collect();
    assert!(seen.len() >= 14, "{}", seen.len());
    assert!(seen.iter().all(|e| e.origin == Origin::Local));

    let before = fingerprint(&mut r);
    drop(r);
    let mut r = open(dir.path());
    assert_eq!(r.job(id).unwrap(), view);
    assert_eq!(fingerprint(&mut r), before);
    // The query tables equal a rebuild from the documents.
    let tables = r.query_tables_dump().unwrap();
    r.rebuild_queries().unwrap();
    assert_eq!(r.query_tables_dump().unwrap(), tables);
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = open(dir.path());
    let id = new_job(&mut r, "hvac_maintenance");
    let not_image = dir.path().join("notes.txt");
    std::fs::write(&not_image, "not a photo").unwrap();
    let truncated = dir.path().join("cut.png");
    let full = std::fs::read(png(dir.path(), "full.png")).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let before = fingerprint(&mut r);

    let unknown = uuid::Uuid::now_v7();
    assert!(matches!(
        r.set_status(unknown, JobStatus::EnRoute),
        Err(Error::JobNotFound(_))
    ));
    assert!(matches!(
        r.set_status(id, JobStatus::Completed),
        Err(Error::InvalidTransition { .. })
    ));
    assert!(matches!(
        r.set_check_str(id, "nope", "pass"),
        Err(Error::UnknownItem { .. })
    ));
    assert!(matches!(
        r.set_check_str(id, "filter_replaced", "yes"),
        Err(Error::InvalidValue(_))
    ));
    assert!(matches!(
        r.set_check_str(id, "refrigerant_pressure", "high"),
        Err(Error::InvalidValue(_))
    ));
    assert!(matches!(
        r.set_check_str(id, "refrigerant_pressure", "9000"),
        Err(Error::InvalidValue(_))
    ));
    assert!(matches!(
        r.set_check_str(id, "coil_condition", "shiny"),
        Err(Error::InvalidValue(_))
    ));
    assert!(matches!(
        r.set_check(id, "nameplate_photo", Some(ItemValue::Text("x".into()))),
        Err(Error::InvalidValue(_))
    ));
    let neg = NewPartLine {
        sku: "X".into(),
        qty: -1.0,
        ..Default::default()
    };
    assert!(matches!(r.add_part(id, neg), Err(Error::InvalidValue(_))));
    let nan = NewPartLine {
        sku: "X".into(),
        qty: f64::NAN,
        ..Default::default()
    };
    assert!(matches!(r.add_part(id, nan), Err(Error::InvalidValue(_))));
    assert!(matches!(
        r.remove_part(id, "no-such-line"),
        Err(Error::UnknownPartLine { .. })
    ));
    assert!(matches!(
        r.attach_photo(id, &not_image, None, ""),
        Err(Error::NotAnImage { .. })
    ));
    assert!(matches!(
        r.attach_photo(id, &truncated, None, ""),
        Err(Error::NotAnImage { .. })
    ));
    assert!(matches!(
        r.attach_photo(id, &dir.path().join("missing.jpg"), None, ""),
        Err(Error::NotAnImage { .. })
    ));
    assert!(matches!(
        r.attach_photo(id, &png(dir.path(), "p.png"), Some("nope"), ""),
        Err(Error::UnknownItem { .. })
    ));
    assert!(matches!(r.stop_time(id), Err(Error::NoRunningTimeEntry(_))));
    assert!(matches!(
        r.sign_off(id, "Dana", &png(dir.path(), "s.png")),
        Err(Error::InvalidValue(_))
    ));
    assert!(matches!(
        r.create_job(NewJob::default(), None),
        Err(Error::InvalidValue(_))
    ));
    assert!(matches!(
        r.create_job(
            NewJob {
                title: "t".into(),
                ..Default::default()
            },
            Some("nope")
        ),
        Err(Error::UnknownTemplate(_))
    ));
    assert!(matches!(r.resolve_job("zz"), Err(Error::JobNotFound(_))));

    assert_eq!(fingerprint(&mut r), before);
    // Nothing half-written either: no blob for the refused files.
    let blobs = std::fs::read_dir(dir.path().join("blobs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0);
}

#[test]
fn completion_needs_the_required_items_and_sign_off_locks_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = open(dir.path());
    let id = new_job(&mut r, "general");
    r.set_status(id, JobStatus::InProgress).unwrap();
    match r.set_status(id, JobStatus::Completed) {
        Err(Error::ChecklistIncomplete(missing)) => {
            assert_eq!(missing, ["arrived_on_site", "work_performed"])
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.sign_off(id, "Dana", &png(dir.path(), "s.png")),
        Err(Error::ChecklistIncomplete(_))
    ));
    r.set_check_str(id, "arrived_on_site", "pass").unwrap();
    r.set_check_str(id, "work_performed", "reset breaker")
        .unwrap();
    let not_png = dir.path().join("sig.jpg");
    image::RgbImage::from_pixel(4, 3, image::Rgb([0, 0, 0]))
        .save(&not_png)
        .unwrap();
    assert!(matches!(
        r.sign_off(id, "Dana", &not_png),
        Err(Error::NotAnImage { .. })
    ));
    r.sign_off(id, "Dana", &png(dir.path(), "s.png")).unwrap();
    assert!(matches!(
        r.set_check_str(id, "site_left_clean", "pass"),
        Err(Error::SignedOff(_))
    ));
    assert!(matches!(
        r.add_part(
            id,
            NewPartLine {
                sku: "X".into(),
                qty: 1.0,
                ..Default::default()
            }
        ),
        Err(Error::SignedOff(_))
    ));
    assert!(matches!(
        r.sign_off(id, "Dana", &png(dir.path(), "s.png")),
        Err(Error::SignedOff(_))
    ));
    r.set_status(id, JobStatus::Completed).unwrap();
    assert!(matches!(
        r.set_status(id, JobStatus::InProgress),
        Err(Error::InvalidTransition { .. })
    ));
}

#[test]
fn jobs_are_listed_by_day_and_status_and_follow_ups_are_made_on_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = open(dir.path());
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    let mk = |r: &mut Replica, title: &str, start: Option<DateTime<Utc>>| {
        let new = NewJob {
            title: title.into(),
            schedule: start.map(|start| Schedule { start, end: None }),
            ..Default::default()
        };
        r.create_job(new, None).unwrap().id
    };
    let today = mk(&mut r, "today", Some(now + chrono::Duration::minutes(30)));
    let tomorrow = mk(&mut r, "tomorrow", Some(now + chrono::Duration::days(1)));
    let unscheduled = mk(&mut r, "whenever", None);
    let titles = |f| {
        r.list_jobs(f)
            .unwrap()
            .into_iter()
            .map(|j| j.title)
            .collect::<Vec<_>>()
    };
    assert_eq!(titles(JobFilter::All), ["today", "tomorrow", "whenever"]);
    assert_eq!(titles(JobFilter::Today), ["today", "whenever"]);
    assert_eq!(titles(JobFilter::Upcoming), ["tomorrow"]);
    r.set_status(tomorrow, JobStatus::EnRoute).unwrap();
    let en_route = r.list_jobs(JobFilter::Status(JobStatus::EnRoute)).unwrap();
    assert_eq!(
        en_route.iter().map(|j| j.id).collect::<Vec<_>>(),
        [tomorrow]
    );

    let follow = r
        .create_follow_up(today, "Return with the part", Some("hvac_maintenance"))
        .unwrap();
    assert_eq!(follow.follow_up_of, Some(today));
    assert_eq!(follow.checklist.template, "hvac_maintenance");
    assert_eq!(follow.assignees, ["technician"]);
    assert_eq!(
        r.resolve_job(&follow.id.to_string()[28..]).unwrap(),
        follow.id
    );
    let _ = unscheduled;
}

#[test]
fn acks_clear_exactly_the_changes_they_cover() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = open(dir.path());
    let id = new_job(&mut r, "general");
    let view = r.job(id).unwrap();
    let acked_heads = r.heads(view.checklist.id).unwrap();
    r.set_check_str(id, "arrived_on_site", "pass").unwrap();
    let pending_before = r.unacked().unwrap();
    assert_eq!(pending_before.len(), 4, "create job (3 docs) + one check");
    // The server acknowledges the checklist as it was before the check: only its creation is safe.
    assert_eq!(r.ack(view.checklist.id, &acked_heads).unwrap(), 1);
    let left = r.unacked().unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().filter(|(d, _)| *d == view.checklist.id).count() == 1);
    // Heads the device does not know are ignored.
    let stranger = automerge::ChangeHash([7; 32]);
    assert_eq!(r.ack(view.checklist.id, &[stranger]).unwrap(), 0);
    for d in r.documents().unwrap() {
        let heads = r.heads(d.id).unwrap();
        r.ack(d.id, &heads).unwrap();
    }
    assert!(r.unacked().unwrap().is_empty());
}

#[test]
fn many_edits_compact_and_reload_identically() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = open(dir.path());
    let id = new_job(&mut r, "general");
    for i in 0..(client_core::docs::COMPACT_MAX_ROWS * 2 + 5) {
        r.set_notes(id, &format!("edit {i}")).unwrap();
    }
    let view = r.job(id).unwrap();
    drop(r);
    let mut r = open(dir.path());
    assert_eq!(r.job(id).unwrap(), view);
    assert_eq!(r.integrity_check().unwrap(), "ok");
}

/// A job document a peer made unreadable (written before the server repaired such changes) stays
/// in the job list marked broken, and `job` names why instead of a bare decode error.
#[test]
fn a_job_a_peer_broke_is_listed_as_broken_with_the_reason() {
    use automerge::transaction::Transactable;
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = open(a_dir.path());
    let mut b = open(b_dir.path());
    let id = new_job(&mut a, "general");
    for d in a.documents().unwrap() {
        let bytes = a.save_document(d.id).unwrap();
        b.apply_remote(d, &bytes).unwrap();
    }
    // A peer with its own copy writes a status that is not one.
    let mut peer = automerge::AutoCommit::load(&a.save_document(id).unwrap()).unwrap();
    peer.put(automerge::ROOT, "status", 42).unwrap();
    peer.commit();
    let info = a
        .documents()
        .unwrap()
        .into_iter()
        .find(|d| d.id == id)
        .unwrap();
    b.apply_remote(info, &peer.save()).unwrap();

    let listed = b.list_jobs(JobFilter::All).unwrap();
    let row = listed.iter().find(|j| j.id == id).expect("still listed");
    assert_eq!(row.title, "Service RTU-2");
    assert!(row.broken.as_deref().unwrap().contains("status"), "{row:?}");
    match b.job(id) {
        Err(Error::Broken { job, kind, reasons }) => {
            assert_eq!((job, kind), (id, schemas::DocKind::Job));
            assert!(
                reasons.iter().any(|r| r.starts_with("status")),
                "{reasons:?}"
            );
        }
        other => panic!("expected a broken job, got {other:?}"),
    }
}

/// The installation pack (trades seed): completion waits for every required item, photos of the
/// area before and after included; the diagnostics pack records a data wipe with its method.
#[test]
fn an_installation_is_completed_only_with_its_required_items_and_a_wipe_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = open(dir.path());
    let id = new_job(&mut r, "trades_installation");
    r.set_status(id, JobStatus::EnRoute).unwrap();
    r.set_status(id, JobStatus::InProgress).unwrap();
    for (item, value) in [
        ("site_survey_ok", "pass"),
        ("equipment_serial", "HP-4410-0032871"),
        ("installed_to_spec", "pass"),
        ("electrical_tested", "pass"),
        ("commissioning_result", "passed with adjustments"),
        ("customer_walkthrough", "pass"),
    ] {
        r.set_check_str(id, item, value).unwrap();
    }
    r.attach_photo(id, &png(dir.path(), "before.png"), Some("before_photo"), "")
        .unwrap();
    let missing = r.set_status(id, JobStatus::Completed);
    assert!(
        matches!(&missing, Err(e) if e.to_string().contains("after_photo")),
        "{missing:?}"
    );
    r.attach_photo(id, &png(dir.path(), "after.png"), Some("after_photo"), "")
        .unwrap();
    r.set_status(id, JobStatus::Completed).unwrap();
    assert_eq!(r.job(id).unwrap().checklist.progress.required_done, 8);

    let bench = new_job(&mut r, "device_diagnostics");
    r.set_status(bench, JobStatus::EnRoute).unwrap();
    r.set_status(bench, JobStatus::InProgress).unwrap();
    r.set_check_str(bench, "wipe_method", "NIST 800-88 Purge")
        .unwrap();
    r.set_check_str(bench, "wipe_verified", "pass").unwrap();
    assert!(r.set_check_str(bench, "wipe_method", "rm -rf").is_err());
    let items = r.job(bench).unwrap().checklist.items;
    let value = |id: &str| items.iter().find(|i| i.id == id).unwrap().value.clone();
    assert_eq!(
        value("wipe_method"),
        Some(ItemValue::Text("NIST 800-88 Purge".into()))
    );
}
