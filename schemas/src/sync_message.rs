//! How both sides make an Automerge sync message: the one rule they share on top of Automerge's.
//!
//! Automerge sends a peer the whole document (a saved document chunk) instead of the changes it
//! lacks whenever those are more than a third of the document's changes. A job, its checklist
//! and its parts list each have a handful of changes, so for them that is nearly every edit: the
//! sender saves the whole document, and the receiver decodes it and rebuilds every change in it
//! to find the one that is new (in the server's profile at 100 edits/s, those two were a seventh
//! of its CPU). So a peer that already holds part of a small document is sent the changes it
//! lacks. A peer that holds nothing still gets the whole document in one chunk, the cheapest way
//! to start, and a large document still goes whole when the peer lacks most of it.
//!
//! And one rule for taking changes in ([`receive`], [`forget_patches`]): Automerge 0.12 records
//! a patch for every op of the changes it applies (received, loaded incrementally or merged)
//! even into a document's *inactive* patch log, and keeps them until that log is replaced. That
//! is about 1 KiB per change that nothing reads, held for as long as the document stays loaded.

use automerge::sync::{Capability, Message, State, SyncDoc};
use automerge::{AutoCommit, AutomergeError, PatchLog, ReadDoc};

/// A document with at most this many changes is sent as changes to a peer that holds part of it.
pub const CHANGES_NOT_WHOLE: u64 = 256;

/// The next sync message for `doc` towards the peer whose state is `state` (`None`: nothing to
/// say), as Automerge makes it but for the rule above.
pub fn generate(doc: &mut AutoCommit, state: &mut State) -> Option<Message> {
    let holds_part = state.their_heads.as_ref().is_some_and(|h| !h.is_empty());
    if !holds_part || doc.stats().num_changes > CHANGES_NOT_WHOLE {
        return doc.sync().generate_sync_message(state);
    }
    // Automerge only sends a whole document to a peer that reads version 2 messages: hide that
    // capability for this one message (the changes then go as a version 1 message, which every
    // peer reads), and put it back.
    let caps = state.their_capabilities.clone();
    if let Some(c) = state.their_capabilities.as_mut() {
        c.retain(|c| *c != Capability::MessageV2);
    }
    let msg = doc.sync().generate_sync_message(state);
    state.their_capabilities = caps;
    msg
}

/// Apply a sync message from the peer whose state is `state`, as
/// `doc.sync().receive_sync_message` does, but with the patches it records thrown away at once.
pub fn receive(
    doc: &mut AutoCommit,
    state: &mut State,
    msg: Message,
) -> Result<(), AutomergeError> {
    doc.sync()
        .receive_sync_message_log_patches(state, msg, &mut PatchLog::null())
}

/// Drop the patches `doc` recorded while taking changes in by another way than [`receive`]
/// (`load_incremental`, `merge`). Closes an open transaction first, as any read of heads would.
pub fn forget_patches(doc: &mut AutoCommit) {
    doc.reset_diff_cursor();
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::transaction::Transactable;

    fn reads_v2(s: &State) -> bool {
        s.their_capabilities
            .as_ref()
            .is_some_and(|c| c.contains(&Capability::MessageV2))
    }

    fn joined(m: &Message) -> Vec<u8> {
        m.changes.iter().flatten().copied().collect()
    }

    /// Sync `a` and `b` until neither has anything to say; returns the messages `a` sent.
    fn sync_all(
        a: &mut AutoCommit,
        sa: &mut State,
        b: &mut AutoCommit,
        sb: &mut State,
    ) -> Vec<Message> {
        let mut sent = Vec::new();
        for _ in 0..10 {
            let m1 = generate(a, sa);
            if let Some(m) = &m1 {
                sent.push(m.clone());
                b.sync().receive_sync_message(sb, m.clone()).expect("apply");
            }
            let m2 = generate(b, sb);
            if let Some(m) = &m2 {
                a.sync().receive_sync_message(sa, m.clone()).expect("apply");
            }
            if m1.is_none() && m2.is_none() {
                break;
            }
        }
        sent
    }

    /// A one-change document `a`, and a peer `b` that started with nothing and was synced with
    /// it (`first`: what `a` sent); then `a` retitled (a second change, whose hash is returned).
    struct Pair {
        a: AutoCommit,
        b: AutoCommit,
        sa: State,
        sb: State,
        first: Vec<Message>,
        edit: automerge::ChangeHash,
    }

    fn synced_then_edited() -> Pair {
        let mut a = AutoCommit::new();
        a.put(automerge::ROOT, "title", "Boiler service")
            .expect("put");
        a.commit();
        let (mut b, mut sa, mut sb) = (AutoCommit::new(), State::new(), State::new());
        let first = sync_all(&mut a, &mut sa, &mut b, &mut sb);
        a.put(automerge::ROOT, "title", "Boiler service, second visit")
            .expect("put");
        let edit = a.commit().expect("a change");
        Pair {
            a,
            b,
            sa,
            sb,
            first,
            edit,
        }
    }

    fn carrying(msgs: &[Message]) -> Vec<&Message> {
        msgs.iter().filter(|m| !m.changes.is_empty()).collect()
    }

    #[test]
    fn a_peer_holding_the_document_gets_changes_one_holding_nothing_the_document() {
        let Pair {
            mut a,
            mut b,
            mut sa,
            mut sb,
            first,
            edit,
        } = synced_then_edited();
        // b held nothing: one message carried the whole document.
        assert!(reads_v2(&sa), "b reads v2 messages");
        assert_eq!(carrying(&first).len(), 1);

        // One edit of a two-change document: Automerge alone would send the whole document
        // (one change is more than a third of two); the rule sends that change.
        let sent = sync_all(&mut a, &mut sa, &mut b, &mut sb);
        let sent = carrying(&sent);
        assert_eq!(sent.len(), 1);
        let change = a
            .get_change_by_hash(&edit)
            .expect("the edit")
            .raw_bytes()
            .to_vec();
        assert_eq!(joined(sent[0]), change, "the one change, not the document");
        assert_eq!(b.get_heads(), a.get_heads());
        // The peer's capability is as it was.
        assert!(reads_v2(&sa));
    }

    #[test]
    fn without_the_rule_automerge_sends_the_whole_document() {
        // What the rule is for: the same edit through Automerge alone is a document chunk.
        let Pair {
            mut a,
            mut sa,
            edit,
            ..
        } = synced_then_edited();
        let m = a.sync().generate_sync_message(&mut sa).expect("a message");
        let change = a
            .get_change_by_hash(&edit)
            .expect("the edit")
            .raw_bytes()
            .to_vec();
        assert_ne!(joined(&m), change);
        assert_eq!(joined(&m), a.save());
    }
}
