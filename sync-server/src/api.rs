//! Moved: the HTTP API lives in [`crate::http`], the job service in [`crate::jobs`]. These
//! re-exports keep older paths (`crate::api::ApiError`, used by `ws.rs`) compiling; new code
//! should use the new paths.

pub use crate::http::ApiError;
pub use crate::jobs::{create_job_documents, edit_doc, job_view};
