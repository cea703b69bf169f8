//! [`Caller`]: who is calling, from `Authorization: Bearer <access token>`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::Utc;

use crate::auth::{self, Principal};
use crate::error::ApiError;
use crate::jobs::Actor;
use crate::state::AppState;
use crate::store::{Role, TokenKind, User};

/// The caller, from `Authorization: Bearer <access token>`.
pub struct Caller(pub Principal);

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let principal = auth::authenticate(
            app.store.as_ref(),
            auth::bearer(header),
            TokenKind::Access,
            Utc::now(),
        )
        .await?;
        Ok(Caller(principal))
    }
}

impl Caller {
    /// The caller's user when they have one of `roles`; `name` says which in the refusal.
    pub fn require(&self, roles: &[Role], name: &'static str) -> Result<&User, ApiError> {
        if roles.contains(&self.0.user.role) {
            Ok(&self.0.user)
        } else {
            Err(ApiError::Forbidden(name))
        }
    }

    /// The caller as the job service sees them.
    pub fn actor(&self) -> Actor {
        Actor::from(&self.0.user)
    }
}
