//! Extractors that answer every rejection with the JSON error body: [`Body`] (a validated JSON
//! body), [`PathParam`], [`ClientAddr`]; and the router's fallbacks for unknown routes and
//! methods.

use axum::Json;
use axum::extract::{FromRequestParts, Path};
use axum::http::StatusCode;
use axum::http::request::Parts;
use schemas::api::Validate;

use crate::error::ApiError;

/// A JSON body of type `T`, checked by its [`Validate`] rules. Every way it can be wrong is
/// answered with the JSON error body: not JSON (400 `bad-json`), not declared as JSON (415
/// `unsupported-media-type`), the wrong shape, a missing or unknown field (422 `invalid-body`),
/// too large (413 `body-too-large`), text that breaks the rules (400 `bad-request`).
pub struct Body<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        use axum::extract::rejection::JsonRejection;
        match Json::<T>::from_request(req, state).await {
            Ok(Json(body)) => {
                body.validate()
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
                Ok(Body(body))
            }
            Err(rejection) => {
                let status = rejection.status();
                let code = match &rejection {
                    JsonRejection::JsonDataError(_) => "invalid-body",
                    JsonRejection::JsonSyntaxError(_) => "bad-json",
                    JsonRejection::MissingJsonContentType(_) => "unsupported-media-type",
                    _ if status == StatusCode::PAYLOAD_TOO_LARGE => "body-too-large",
                    _ => "bad-request",
                };
                Err(ApiError::Rejected(status, code, rejection.body_text()))
            }
        }
    }
}

/// Path parameters; a malformed one (a job id that is not a UUID) is a 400 with the JSON body.
pub struct PathParam<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParam<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathParam(v)),
            Err(rejection) => Err(ApiError::Rejected(
                StatusCode::BAD_REQUEST,
                "bad-request",
                rejection.body_text(),
            )),
        }
    }
}

/// Unknown routes.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::Rejected(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("no such endpoint: {}", uri.path()),
    )
}

/// Known routes called with a method they do not have.
pub async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::Rejected(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("this endpoint does not take {method}"),
    )
}

/// The client's address, when the server was started with connection info (`serve` does).
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
