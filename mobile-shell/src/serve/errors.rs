//! The local API's errors: an HTTP status, a stable code and a sentence the page shows as is
//! (`{"error": {"code", "message", "missing"?}}`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use client_core::Error;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For `checklist-incomplete`: the labels of the required items not done.
    pub missing: Option<Vec<String>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            missing: None,
        }
    }

    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid-value", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        use StatusCode as S;
        let (status, code) = match &e {
            Error::JobNotFound(_) | Error::DocNotFound(_) => (S::NOT_FOUND, "not-found"),
            Error::UnknownItem { .. }
            | Error::UnknownPartLine { .. }
            | Error::UnknownTemplate(_)
            | Error::UnknownStatus(_)
            | Error::InvalidValue(_) => (S::BAD_REQUEST, "invalid-value"),
            Error::NotAnImage { .. } => (S::BAD_REQUEST, "not-an-image"),
            Error::InvalidTransition { .. } => (S::CONFLICT, "invalid-transition"),
            Error::ChecklistIncomplete(_) => (S::CONFLICT, "checklist-incomplete"),
            Error::SignedOff(_) => (S::CONFLICT, "signed-off"),
            Error::JobClosed { .. } => (S::CONFLICT, "job-closed"),
            Error::TimeEntryRunning(_) | Error::NoRunningTimeEntry(_) => (S::CONFLICT, "timer"),
            Error::Broken { .. } => (S::CONFLICT, "broken"),
            Error::Busy { .. } => (S::SERVICE_UNAVAILABLE, "busy"),
            Error::Offline { .. } | Error::ServerUnavailable { .. } => {
                (S::SERVICE_UNAVAILABLE, "offline")
            }
            Error::Unauthorized(_) => (S::UNAUTHORIZED, "sign-in-refused"),
            Error::Refused { .. } => (S::BAD_GATEWAY, "server-refused"),
            _ => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        let missing = match &e {
            Error::ChecklistIncomplete(items) => Some(items.clone()),
            _ => None,
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
            missing,
        }
    }
}

/// A body that is not the JSON an endpoint takes is said in the same shape as every other error.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad-request", e.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(missing) = self.missing {
            error["missing"] = serde_json::json!(missing);
        }
        (self.status, Json(serde_json::json!({ "error": error }))).into_response()
    }
}
