//! [`ApiError`]: what the HTTP API (and the sync endpoint, before the upgrade) answers when it
//! refuses or fails. A status, a stable code and a short sentence, in the body
//! `{"error", "message"}` ([`schemas::api::ErrorBody`]); internal causes are logged with their
//! whole chain of sources and never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemas::api::ErrorBody;

use crate::auth::AuthError;
use crate::store::StoreError;

/// Errors of the HTTP API (and of the sync endpoint before the upgrade): a status, a stable
/// code and a short message in the body `{"error", "message"}`. Internal causes are logged with
/// their whole chain of sources, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("this needs the {0} role")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// A document the server could not repair into a readable state: which, and why.
    #[error("the job's {kind} cannot be read: {}", .reasons.join("; "))]
    Broken {
        kind: schemas::DocKind,
        reasons: Vec<String>,
    },
    /// A request axum could not take apart (body, path): its status, a stable code, the reason.
    #[error("{2}")]
    Rejected(StatusCode, &'static str, String),
    #[error(
        "too many sign-in attempts (failed ones, or too many at once from one place): try again in {} s",
        retry_after_secs(*.0)
    )]
    Throttled(std::time::Duration),
    /// The store failed in a way that may pass: 503 with `Retry-After`.
    #[error("the store is unavailable: try again shortly")]
    Unavailable(#[source] StoreError),
    /// Anything else that is not the caller's fault: 500.
    #[error("internal error")]
    Internal(#[source] crate::store::BoxError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            e if e.is_retryable() => ApiError::Unavailable(e),
            e => ApiError::Internal(Box::new(e)),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Store(e) => e.into(),
            e => ApiError::Unauthorized(e),
        }
    }
}

impl From<schemas::DocError> for ApiError {
    fn from(e: schemas::DocError) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

impl ApiError {
    /// Something failed that is nobody's input: 500, the cause logged.
    pub fn internal(cause: impl Into<crate::store::BoxError>) -> ApiError {
        ApiError::Internal(cause.into())
    }
}

/// `error: cause: cause's cause...`, for logs.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized(_) | ApiError::BadCredentials => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not-found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Broken { .. } => (StatusCode::CONFLICT, "broken-document"),
            ApiError::Rejected(status, code, _) => (*status, *code),
            ApiError::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "too-many-attempts"),
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %error_chain(e), "store unavailable");
                (StatusCode::SERVICE_UNAVAILABLE, "store-unavailable")
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %error_chain(e.as_ref()), "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let body = Json(ErrorBody {
            error: code.to_owned(),
            message: self.to_string(),
        });
        let retry_after = match &self {
            ApiError::Throttled(wait) => Some(retry_after_secs(*wait)),
            ApiError::Unavailable(_) => Some(1),
            _ => None,
        };
        match retry_after {
            Some(secs) => (
                status,
                [(axum::http::header::RETRY_AFTER, secs.to_string())],
                body,
            )
                .into_response(),
            None => (status, body).into_response(),
        }
    }
}

/// Whole seconds to wait, rounded up so that a client waiting that long is let in.
pub(crate) fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
