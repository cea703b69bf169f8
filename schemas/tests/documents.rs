//! Creating, editing and reading each document kind, and validating their states.

use automerge::{ActorId, AutoCommit};
use chrono::{TimeZone, Utc};
use schemas::checklist::{self, ItemValue};
use schemas::doc::read_json;
use schemas::job::{self, NewJob};
use schemas::parts::{self, NewPartLine};
use schemas::photo::{self, NewPhoto};
use schemas::validate::validate;
use schemas::{DocKind, JobStatus, template};
use uuid::Uuid;

fn at(min: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, min, 0).unwrap()
}

fn actor() -> ActorId {
    ActorId::random()
}

fn new_job() -> (AutoCommit, Uuid, Uuid) {
    let (cid, pid) = (schemas::new_id(), schemas::new_id());
    let new = NewJob {
        title: "Replace filter".into(),
        assignees: vec!["ana".into()],
        ..Default::default()
    };
    let doc = job::create(
        &actor(),
        schemas::new_id(),
        cid,
        pid,
        &new,
        "dispatch",
        at(0),
    )
    .unwrap();
    (doc, cid, pid)
}

#[test]
fn a_new_job_reads_back_and_validates() {
    let (mut doc, cid, _) = new_job();
    job::set_status(
        &mut doc,
        JobStatus::Assigned,
        JobStatus::EnRoute,
        "ana",
        at(5),
    )
    .unwrap();
    job::set_notes(&mut doc, "gate code 1234").unwrap();
    job::start_time_entry(&mut doc, "t1", "ana", at(6)).unwrap();
    job::stop_time_entry(&mut doc, "t1", at(30)).unwrap();
    let j = job::read(&doc).unwrap();
    assert_eq!(j.status, JobStatus::EnRoute);
    assert_eq!(j.checklist_id, cid);
    assert_eq!(j.notes, "gate code 1234");
    assert_eq!(j.status_history.len(), 2);
    assert_eq!(j.status_history[1].from, Some(JobStatus::Assigned));
    assert_eq!(j.time_entries[0].stopped_at, Some(at(30)));
    assert_eq!(validate(DocKind::Job, &read_json(&doc)), vec![]);
}

#[test]
fn reading_a_document_as_the_wrong_kind_is_refused() {
    let (doc, _, _) = new_job();
    let err = checklist::read(&doc).unwrap_err();
    assert!(
        matches!(
            err,
            schemas::DocError::WrongKind {
                expected: "checklist",
                ..
            }
        ),
        "{err}"
    );
    let v = validate(DocKind::Parts, &read_json(&doc));
    assert!(v.iter().any(|v| v.path == "kind"), "{v:?}");
}

#[test]
fn job_validation_reports_every_violation_with_its_path() {
    let (doc, _, _) = new_job();
    let mut json = read_json(&doc);
    json["title"] = "".into();
    json["status"] = "teleported".into();
    json["priority"] = "whenever".into();
    json["status_history"][0]["at"] = "yesterday".into();
    let paths: Vec<String> = validate(DocKind::Job, &json)
        .into_iter()
        .map(|v| v.path)
        .collect();
    assert_eq!(
        paths,
        ["title", "status", "priority", "status_history[0].at"]
    );
}

#[test]
fn checklist_values_are_checked_against_their_item() {
    let tpl = template::find("hvac_maintenance").unwrap();
    let mut doc = checklist::create(&actor(), schemas::new_id(), schemas::new_id(), &tpl).unwrap();
    let c = checklist::read(&doc).unwrap();
    let pressure = c.item("refrigerant_pressure").unwrap();
    assert!(pressure.check_value(&ItemValue::Number(120.0)).is_ok());
    assert!(pressure.check_value(&ItemValue::Number(-1.0)).is_err());
    assert!(
        pressure
            .check_value(&ItemValue::Text("high".into()))
            .is_err()
    );
    let coil = c.item("coil_condition").unwrap();
    assert!(coil.check_value(&ItemValue::Text("clean".into())).is_ok());
    assert!(coil.check_value(&ItemValue::Text("shiny".into())).is_err());
    let filter = c.item("filter_replaced").unwrap();
    assert!(filter.check_value(&ItemValue::Text("pass".into())).is_ok());
    assert!(filter.check_value(&ItemValue::Text("yes".into())).is_err());

    checklist::set_value(
        &mut doc,
        "refrigerant_pressure",
        Some(&ItemValue::Number(118.5)),
        "ana",
        at(1),
    )
    .unwrap();
    checklist::set_value(
        &mut doc,
        "filter_replaced",
        Some(&ItemValue::Text("pass".into())),
        "ana",
        at(2),
    )
    .unwrap();
    let c = checklist::read(&doc).unwrap();
    assert_eq!(
        c.item("refrigerant_pressure").unwrap().value,
        Some(ItemValue::Number(118.5))
    );
    let p = c.progress();
    assert_eq!(
        (p.done, p.required_done, p.total),
        (2, 2, tpl.items.len() as u32)
    );
    assert_eq!(validate(DocKind::Checklist, &read_json(&doc)), vec![]);

    // A value written by a buggy peer is reported with its path.
    let mut json = read_json(&doc);
    json["items"][3]["value"] = serde_json::json!(900.0);
    json["items"][1]["kind"] = "vibes".into();
    let v = validate(DocKind::Checklist, &json);
    let paths: Vec<&str> = v.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, ["items[1].kind", "items[3].value"], "{v:?}");
    assert!(checklist::set_value(&mut doc, "nope", None, "ana", at(3)).is_err());
}

#[test]
fn parts_lines_add_change_remove_and_negative_quantities_are_invalid() {
    let mut doc = parts::create(&actor(), schemas::new_id(), schemas::new_id()).unwrap();
    let line = NewPartLine {
        sku: "FLT-16x25".into(),
        qty: 2.0,
        source: Some("van-7".into()),
        ..Default::default()
    };
    parts::add_line(&mut doc, "l1", &line, "ana", at(1)).unwrap();
    parts::add_line(
        &mut doc,
        "l2",
        &NewPartLine {
            sku: "CAP-45".into(),
            qty: 1.0,
            ..Default::default()
        },
        "ana",
        at(2),
    )
    .unwrap();
    parts::set_qty(&mut doc, "l1", 3.0, "ana", at(3)).unwrap();
    parts::remove_line(&mut doc, "l2").unwrap();
    assert!(parts::remove_line(&mut doc, "l2").is_err());
    let p = parts::read(&doc).unwrap();
    assert_eq!(p.lines.len(), 1);
    assert_eq!(p.lines["l1"].qty, 3.0);
    assert_eq!(validate(DocKind::Parts, &read_json(&doc)), vec![]);

    let mut json = read_json(&doc);
    json["lines"]["l1"]["qty"] = serde_json::json!(-2.0);
    json["lines"]["l1"]["sku"] = "".into();
    let paths: Vec<String> = validate(DocKind::Parts, &json)
        .into_iter()
        .map(|v| v.path)
        .collect();
    assert_eq!(paths, ["lines.l1.sku", "lines.l1.qty"]);
}

#[test]
fn photo_documents_validate() {
    let new = NewPhoto {
        job_id: schemas::new_id(),
        checklist_item: Some("nameplate_photo".into()),
        sha256: "ab".repeat(32),
        size: 1234,
        mime: "image/jpeg".into(),
        width: 640,
        height: 480,
        taken_at: at(4),
        location: None,
        caption: "nameplate".into(),
    };
    let doc = photo::create(&actor(), schemas::new_id(), &new, "ana").unwrap();
    let p = photo::read(&doc).unwrap();
    assert_eq!((p.width, p.upload), (640, photo::UploadState::Pending));
    assert_eq!(validate(DocKind::Photo, &read_json(&doc)), vec![]);
    let mut json = read_json(&doc);
    json["sha256"] = "xyz".into();
    json["mime"] = "text/plain".into();
    json["width"] = serde_json::json!(0);
    let paths: Vec<String> = validate(DocKind::Photo, &json)
        .into_iter()
        .map(|v| v.path)
        .collect();
    assert_eq!(paths, ["sha256", "mime", "width"]);
}

#[test]
fn concurrent_edits_on_two_replicas_merge() {
    let (mut a, _, _) = new_job();
    let mut b = a.fork().with_actor(actor());
    job::set_notes(&mut a, "left side").unwrap();
    job::set_priority(&mut b, schemas::Priority::Urgent).unwrap();
    a.merge(&mut b).unwrap();
    b.merge(&mut a).unwrap();
    assert_eq!(read_json(&a), read_json(&b));
    let j = job::read(&a).unwrap();
    assert_eq!(
        (j.notes.as_str(), j.priority),
        ("left side", schemas::Priority::Urgent)
    );
}

#[test]
fn the_signoff_hash_changes_when_what_was_signed_changes() {
    let tpl = template::find("general").unwrap();
    let mut c = checklist::create(&actor(), schemas::new_id(), schemas::new_id(), &tpl).unwrap();
    let mut p = parts::create(&actor(), schemas::new_id(), schemas::new_id()).unwrap();
    let h0 =
        checklist::signoff_summary_hash(&checklist::read(&c).unwrap(), &parts::read(&p).unwrap());
    parts::add_line(
        &mut p,
        "l1",
        &NewPartLine {
            sku: "X".into(),
            qty: 1.0,
            ..Default::default()
        },
        "ana",
        at(1),
    )
    .unwrap();
    let h1 =
        checklist::signoff_summary_hash(&checklist::read(&c).unwrap(), &parts::read(&p).unwrap());
    checklist::set_value(
        &mut c,
        "arrived_on_site",
        Some(&ItemValue::Text("pass".into())),
        "ana",
        at(2),
    )
    .unwrap();
    let h2 =
        checklist::signoff_summary_hash(&checklist::read(&c).unwrap(), &parts::read(&p).unwrap());
    assert_ne!(h0, h1);
    assert_ne!(h1, h2);
    assert_eq!(
        h2,
        checklist::signoff_summary_hash(&checklist::read(&c).unwrap(), &parts::read(&p).unwrap())
    );
}

/// One helper makes a job's three documents for both sides, linked by their ids.
#[test]
fn a_job_bundle_is_three_linked_documents() {
    let tpl = template::find("hvac_maintenance").unwrap();
    let new = NewJob {
        title: "Rooftop unit".into(),
        ..Default::default()
    };
    let bundle = job::new_bundle(&actor(), &new, &tpl, "dispatch", at(0)).unwrap();
    let (job_id, checklist_id, parts_id) = (bundle.job_id, bundle.checklist_id, bundle.parts_id);
    let docs = bundle.into_docs();
    let kinds: Vec<DocKind> = docs.iter().map(|(_, k, _)| *k).collect();
    assert_eq!(kinds, [DocKind::Job, DocKind::Checklist, DocKind::Parts]);
    let [(_, _, mut j), (_, _, c), (_, _, p)] = docs;
    let read = job::read(&j).unwrap();
    assert_eq!(
        (read.id, read.checklist_id, read.parts_id),
        (job_id, checklist_id, parts_id)
    );
    let cl = checklist::read(&c).unwrap();
    assert_eq!((cl.id, cl.job_id), (checklist_id, job_id));
    assert_eq!(cl.items.len(), tpl.items.len());
    for (item, t) in cl.items.iter().zip(&tpl.items) {
        assert_eq!(
            &item.template, t,
            "every template field reaches the checklist"
        );
        assert_eq!(item.value, None);
    }
    assert_eq!(parts::read(&p).unwrap().job_id, job_id);
    for (kind, doc) in [
        (DocKind::Job, &j),
        (DocKind::Checklist, &c),
        (DocKind::Parts, &p),
    ] {
        assert_eq!(validate(kind, &read_json(doc)), vec![], "{kind}");
    }

    job::set_title(&mut j, "Rooftop unit, second visit").unwrap();
    assert_eq!(job::read(&j).unwrap().title, "Rooftop unit, second visit");
}

/// A checklist item is still one flat map in the document: the template's fields sit next to
/// the answer, as documents written before the item embedded its template item have them.
#[test]
fn checklist_items_stay_flat_maps() {
    let tpl = template::find("general").unwrap();
    let c = checklist::create(&actor(), schemas::new_id(), schemas::new_id(), &tpl).unwrap();
    let json = read_json(&c);
    let first = &json["items"][0];
    let keys: std::collections::BTreeSet<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let want: std::collections::BTreeSet<&str> = [
        "id", "label", "kind", "required", "unit", "min", "max", "choices", "value", "by", "at",
    ]
    .into();
    assert_eq!(keys, want);
    // An item as older code wrote it decodes.
    let old = serde_json::json!({
        "id": "temp", "label": "Temperature", "kind": "number", "required": true,
        "unit": "°C", "min": 0, "max": 100, "choices": [], "value": 21.5, "by": "ana",
        "at": "2026-11-22T09:00:00.000Z"
    });
    let item: checklist::ChecklistItem = serde_json::from_value(old).unwrap();
    assert_eq!(
        (item.id.as_str(), item.min, item.value.clone()),
        ("temp", Some(0.0), Some(ItemValue::Number(21.5)))
    );
}
