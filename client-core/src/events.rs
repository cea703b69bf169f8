//! A stream of change events for user interfaces: every committed change to a document, local
//! or from the server, is announced after its transaction commits.

use std::sync::mpsc::{Receiver, Sender, channel};

use schemas::DocKind;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An action on this device.
    Local,
    /// Changes received from the server.
    Remote,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeEvent {
    pub doc_id: Uuid,
    pub kind: DocKind,
    pub job_id: Uuid,
    pub origin: Origin,
}

/// Subscribers are plain channels; one that hung up is dropped on the next send.
#[derive(Default)]
pub(crate) struct Events {
    subscribers: Vec<Sender<ChangeEvent>>,
}

impl Events {
    pub fn subscribe(&mut self) -> Receiver<ChangeEvent> {
        let (tx, rx) = channel();
        self.subscribers.push(tx);
        rx
    }

    pub fn emit(&mut self, event: ChangeEvent) {
        self.subscribers.retain(|s| s.send(event.clone()).is_ok());
    }
}
