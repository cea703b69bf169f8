use thiserror::Error;

/// Errors from reading or editing a document through the contract.
#[derive(Debug, Error)]
pub enum DocError {
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    #[error("document is a {found}, expected a {expected}")]
    WrongKind {
        expected: &'static str,
        found: String,
    },
    #[error("document field `{0}` is missing or has the wrong type")]
    Malformed(String),
    #[error("document does not match its schema: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("checklist item `{0}` not found")]
    UnknownItem(String),
    #[error("part line `{0}` not found")]
    UnknownPartLine(String),
}
