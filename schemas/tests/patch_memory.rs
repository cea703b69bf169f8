//! A document that takes changes in keeps no more memory than the same document loaded from its
//! save: Automerge records patches even into an inactive patch log, and `sync_message::receive`
//! and `forget_patches` must throw them away (`schemas/src/sync_message.rs`).
//!
//! Heap is counted exactly, by the `cap` crate's counting allocator. One test in this binary, so
//! nothing else allocates while it counts.

use std::alloc::System;

use automerge::sync::{State, SyncDoc};
use automerge::{ActorId, AutoCommit};
use cap::Cap;
use chrono::Utc;
use schemas::job::{self, NewJob};
use schemas::{sync_message, template};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// The heap `doc` holds: what is freed when it is dropped.
fn weight(doc: AutoCommit) -> usize {
    let before = ALLOCATOR.allocated();
    drop(doc);
    before - ALLOCATOR.allocated()
}

/// A job made on a device and edited `edits` times, each edit synced to the server on its own
/// (as a technician's edits arrive), received the way `receive` says.
fn server_copy(
    edits: usize,
    receive: fn(&mut AutoCommit, &mut State, automerge::sync::Message),
) -> AutoCommit {
    let tpl = template::find("hvac_maintenance").expect("built-in template");
    let new = NewJob {
        title: "Rooftop unit #4".into(),
        ..Default::default()
    };
    let mut device = job::new_bundle(&ActorId::random(), &new, &tpl, "ana", Utc::now())
        .expect("bundle")
        .job;
    device.commit();
    let mut server = AutoCommit::new();
    let (mut s, mut d) = (State::new(), State::new());
    for n in 0..=edits {
        if n > 0 {
            job::set_notes(
                &mut device,
                &format!("Visit note {n}: replaced the filter."),
            )
            .expect("notes");
            device.commit();
        }
        loop {
            let mut moved = false;
            if let Some(m) = sync_message::generate(&mut device, &mut d) {
                receive(&mut server, &mut s, m);
                moved = true;
            }
            if let Some(m) = sync_message::generate(&mut server, &mut s) {
                device
                    .sync()
                    .receive_sync_message(&mut d, m)
                    .expect("device receives");
                moved = true;
            }
            if !moved {
                break;
            }
        }
    }
    assert_eq!(server.get_heads(), device.get_heads(), "in sync");
    server
}

fn fresh(doc: &mut AutoCommit) -> AutoCommit {
    AutoCommit::load(&doc.save()).expect("load")
}

#[test]
fn changes_taken_in_leave_no_patches_behind() {
    const EDITS: usize = 100;
    let receive_plain = |doc: &mut AutoCommit, state: &mut State, m| {
        doc.sync().receive_sync_message(state, m).expect("receive")
    };
    let receive_ours = |doc: &mut AutoCommit, state: &mut State, m| {
        sync_message::receive(doc, state, m).expect("receive")
    };

    // What Automerge's own receive keeps, as a measure of what is at stake.
    let mut plain = server_copy(EDITS, receive_plain);
    let plain_fresh = weight(fresh(&mut plain));
    let plain = weight(plain);

    let mut ours = server_copy(EDITS, receive_ours);
    let ours_fresh = weight(fresh(&mut ours));
    let ours = weight(ours);
    println!(
        "after {EDITS} edits received: Automerge's receive {plain} B, sync_message::receive \
         {ours} B, loaded from the save {ours_fresh} B ({plain_fresh} B)"
    );
    assert!(
        plain > ours_fresh + EDITS * 256,
        "the patches Automerge keeps are measurable here ({plain} B against {ours_fresh} B fresh)"
    );
    assert!(
        ours <= ours_fresh + ours_fresh / 4,
        "received, the document weighs about what it weighs loaded: {ours} B against {ours_fresh} B"
    );

    // Changes loaded incrementally (as the server catches up from its log), then forgotten.
    let mut source = server_copy(EDITS, receive_ours);
    let changes: Vec<Vec<u8>> = source
        .get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let mut loaded = AutoCommit::new();
    for c in &changes {
        loaded.load_incremental(c).expect("load change");
    }
    sync_message::forget_patches(&mut loaded);
    assert_eq!(loaded.get_heads(), source.get_heads());
    let loaded_fresh = weight(fresh(&mut loaded));
    let loaded = weight(loaded);
    assert!(
        loaded <= loaded_fresh + loaded_fresh / 4,
        "loaded change by change, then forgotten: {loaded} B against {loaded_fresh} B"
    );
}
