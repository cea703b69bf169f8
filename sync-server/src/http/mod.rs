//! The HTTP API (JSON): sign-in and tokens ([`account`]), enough of the dispatcher's API to
//! drive and observe sync ([`jobs`], over the job service in [`crate::jobs`]), health and
//! metrics. Every refusal is an [`ApiError`] with the body `{"error", "message"}`, including
//! those of axum's extractors ([`extract`]) and of unknown routes and methods.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemas::api::ErrorBody;
use serde_json::json;

use crate::state::AppState;

pub mod account;
pub mod assets;
pub mod auth;
pub mod board;

pub mod extract;
pub mod jobs;
pub mod kpis;
pub mod openapi;
pub mod photos;
pub mod planning;
pub mod pm;
pub mod records;
pub mod review;
pub mod sensors;
pub mod sla;
pub mod templates;
pub mod uploads;

pub use crate::error::{ApiError, error_chain};
pub use account::{SESSION_DEVICE_NAME, login, refresh, revoke_device};
pub use auth::Caller;
pub use extract::{Body, ClientAddr, PathParam, method_not_allowed, not_found};
pub use jobs::{assign, create_job, get_job, patch_job, unassign};

pub(crate) type ApiResult<T> = Result<Json<T>, ApiError>;

/// Readiness: 200 `{"status": "ready"}` when the store answers, else 503 with the error body.
/// The store's error goes to the log only: it may name hosts, users or databases.
pub async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    match app.store.ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "readiness check: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ErrorBody {
                    error: "store-unavailable".into(),
                    message: "the store does not answer".into(),
                }),
            )
                .into_response()
        }
    }
}

pub async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    let body = app.metrics.render();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
