//! How much heap a job's documents take in a server's memory, by how they got there: received
//! over the sync protocol (as a device creates and edits them), or loaded from their saved form
//! (as the server loads a document it had unloaded). Counted exactly by a counting allocator,
//! not estimated. `SQLX_OFFLINE=true cargo bench -p schemas --bench doc_memory`
//! (`BENCH_MEM_JOBS`, 300 jobs; `BENCH_MEM_EDITS`, 3 edits per document).
//!
//! What it is for: the server's document cache weighs each loaded document to keep within its
//! memory budget; this is the measurement its estimate rests on.

use std::alloc::System;

use automerge::sync::{State, SyncDoc};
use automerge::{ActorId, AutoCommit};
use cap::Cap;
use chrono::Utc;
use schemas::job::{self, NewJob};
use schemas::parts::{self, NewPartLine};
use schemas::{checklist, template};

/// The system allocator with a count of the bytes allocated and not yet freed (the `cap` crate:
/// the counting wrapper, so this bench needs no allocator code of its own).
#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

fn live() -> isize {
    ALLOCATOR.allocated() as isize
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sync `device` into `server` until neither has anything to send, as both sides do
/// ([`schemas::sync_message`]).
fn sync(server: &mut AutoCommit, device: &mut AutoCommit, s: &mut State, d: &mut State) {
    loop {
        let mut moved = false;
        if let Some(m) = schemas::sync_message::generate(device, d) {
            schemas::sync_message::receive(server, s, m).expect("receive");
            moved = true;
        }
        if let Some(m) = schemas::sync_message::generate(server, s) {
            device.sync().receive_sync_message(d, m).expect("receive");
            moved = true;
        }
        if !moved {
            break;
        }
    }
}

/// One edit of the kind the sync_load bench makes: notes, a checklist answer, a parts line.
fn edit(kind: usize, doc: &mut AutoCommit, n: usize) {
    let now = Utc::now();
    match kind {
        0 => job::set_notes(
            doc,
            &format!("Visit note {n}: checked pressures, replaced the filter."),
        )
        .expect("notes"),
        1 => {
            let items = checklist::read(doc).expect("checklist").items;
            let item = &items[n % items.len()];
            let value = checklist::ItemValue::Text(format!("ok {n}"));
            checklist::set_value(doc, &item.id, Some(&value), "ana", now).expect("answer");
        }
        _ => {
            let line = NewPartLine {
                sku: format!("SKU-{n:05}"),
                description: "Air filter 16x25x1".into(),
                qty: (n % 4 + 1) as f64,
                unit: Some("ea".into()),
                source: Some("van".into()),
            };
            parts::add_line(doc, &format!("line-{}", n % 6), &line, "ana", now).expect("part");
        }
    }
    doc.commit();
}

fn main() {
    let jobs = env_usize("BENCH_MEM_JOBS", 300);
    let edits = env_usize("BENCH_MEM_EDITS", 3);
    let tpl = template::find("hvac_maintenance").expect("built-in template");
    let base = live();

    // Made on devices and synced to the server, then edited `edits` times each.
    let mut server_docs: Vec<AutoCommit> = Vec::new();
    let mut saved_bytes = 0usize;
    {
        let actor = ActorId::random();
        for i in 0..jobs {
            let new = NewJob {
                title: format!("Rooftop unit #{i}"),
                description: "Found on site; logged by the technician.".into(),
                ..Default::default()
            };
            let b = job::new_bundle(&actor, &new, &tpl, "ana", Utc::now()).expect("bundle");
            for (kind, mut device) in [b.job, b.checklist, b.parts].into_iter().enumerate() {
                device.commit();
                let mut server = AutoCommit::new();
                let (mut s, mut d) = (State::new(), State::new());
                sync(&mut server, &mut device, &mut s, &mut d);
                for e in 0..edits {
                    edit(kind, &mut device, i * 10 + e);
                    sync(&mut server, &mut device, &mut s, &mut d);
                }
                saved_bytes += server.save().len();
                server_docs.push(server);
            }
        }
    }
    let synced = live() - base;
    let docs = server_docs.len();

    // The same documents loaded from their saved form.
    let saved: Vec<Vec<u8>> = server_docs.iter_mut().map(|d| d.save()).collect();
    drop(server_docs);
    let before_load = live();
    let loaded: Vec<AutoCommit> = saved
        .iter()
        .map(|s| AutoCommit::load(s).expect("load"))
        .collect();
    let from_save = live() - before_load;
    let (ops, changes) = loaded.iter().fold((0u64, 0u64), |(o, c), d| {
        let st = automerge::ReadDoc::stats(d);
        (o + st.num_ops, c + st.num_changes)
    });
    let started = std::time::Instant::now();
    let resaved: usize = loaded.iter().map(|d| d.clone().save().len()).sum();
    let save_us = started.elapsed().as_secs_f64() * 1e6 / docs as f64;
    let started = std::time::Instant::now();
    for s in &saved {
        std::hint::black_box(AutoCommit::load(s).expect("load"));
    }
    let load_us = started.elapsed().as_secs_f64() * 1e6 / docs as f64;
    drop(loaded);

    // An empty document, for the fixed part.
    let before_empty = live();
    let empty: Vec<AutoCommit> = (0..docs).map(|_| AutoCommit::new()).collect();
    let empty_bytes = live() - before_empty;
    drop(empty);

    let per = |b: isize| b as f64 / docs as f64 / 1024.0;
    println!(
        "doc_memory: {docs} documents ({jobs} jobs × job, checklist, parts; {edits} edits each), saved {:.1} KiB each on average",
        saved_bytes as f64 / docs as f64 / 1024.0
    );
    println!(
        "doc_memory: received over sync {:.1} KiB per document ({:.1}× saved); loaded from saved {:.1} KiB ({:.1}× saved)",
        per(synced),
        synced as f64 / saved_bytes as f64,
        per(from_save),
        from_save as f64 / saved_bytes as f64,
    );
    println!(
        "doc_memory: an empty document {:.1} KiB; per document {:.0} ops, {:.1} changes; save {save_us:.0} µs, load {load_us:.0} µs ({} bytes saved)",
        per(empty_bytes),
        ops as f64 / docs as f64,
        changes as f64 / docs as f64,
        resaved / docs,
    );
}
