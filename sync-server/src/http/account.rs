//! Sign-in, token refresh and device revocation.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use schemas::api::{
    LoginReply, LoginRequest, LoginUser, RefreshReply, RefreshRequest, RevokeReply,
};

use super::ApiResult;
use super::auth::Caller;
use super::extract::{Body, ClientAddr, PathParam};
use crate::auth::{self, AuthError};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Role, Rotation, TokenKind};
use uuid::Uuid;

/// The name a login without `device_name` registers its session under.
pub const SESSION_DEVICE_NAME: &str = "session";

/// Sign in. Every sign-in registers a device (named `device_name`, or a session), so that every
/// token issued can be revoked. Repeated failures for one name or from one address are refused
/// for growing intervals (see [`crate::throttle`]); unknown names get the same answers, at the
/// same cost, as known ones.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = schemas::api::LoginRequest, responses((status = 200, body = schemas::api::LoginReply), (status = 401, description = "wrong user name or password", body = schemas::api::ErrorBody), (status = 429, description = "too many failed sign-ins", body = schemas::api::ErrorBody)))]
pub async fn login(
    State(app): State<Arc<AppState>>,
    ClientAddr(addr): ClientAddr,
    Body(body): Body<LoginRequest>,
) -> ApiResult<LoginReply> {
    let attempt = app
        .throttle
        .begin(&body.name, addr, std::time::Instant::now())
        .map_err(ApiError::Throttled)?;
    let user = app.store.user_by_name(&body.name).await?;
    // Verify against a dummy hash for unknown users too, so timing does not reveal names.
    let hash = user
        .as_ref()
        .map_or(DUMMY_HASH, |u| u.password_hash.as_str())
        .to_string();
    let password = body.password.clone();
    let ok = app.passwords.verify(hash, password).await;
    let user = match (user, ok) {
        (Some(u), true) => u,
        _ => {
            attempt.failed(std::time::Instant::now());
            return Err(ApiError::BadCredentials);
        }
    };
    attempt.succeeded();
    let device_name = body
        .device_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(SESSION_DEVICE_NAME);
    let device = Some(app.store.register_device(user.id, device_name).await?.id);
    let issued = auth::issue(
        app.store.as_ref(),
        &user,
        device,
        Utc::now(),
        ttl(app.config.access_ttl),
        ttl(app.config.refresh_ttl),
    )
    .await?;
    Ok(Json(LoginReply {
        user: LoginUser {
            id: user.id,
            name: user.name,
            role: user.role,
            org_id: user.org_id,
        },
        device_id: device,
        tokens: issued,
    }))
}

/// An argon2 hash (the crate's default parameters, like every stored one) of a random password
/// nobody knows: checking against it costs what checking a real user's does. A constant, so no
/// sign-in computes it outside the password checks' memory budget.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$TjDmRePJXH4xmO3TFjaY/A$AJVRPzsYUGkzy+bQPVwSGi+klRM0IR3lmD9u9FSQ96Q";

fn ttl(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::minutes(15))
}

/// Trade a refresh token for new tokens; the old refresh token stops working (rotation).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = schemas::api::RefreshRequest, responses((status = 200, body = schemas::api::RefreshReply), (status = 401, description = "unknown, expired or reused refresh token", body = schemas::api::ErrorBody)))]
pub async fn refresh(
    State(app): State<Arc<AppState>>,
    Body(body): Body<RefreshRequest>,
) -> ApiResult<RefreshReply> {
    let principal = auth::authenticate(
        app.store.as_ref(),
        Some(&body.refresh_token),
        TokenKind::Refresh,
        Utc::now(),
    )
    .await?;
    // Single use: of concurrent refreshes with one token only the one that marks it used goes
    // on. A token used before is refused; used again after the grace period (so not a client's
    // own concurrent retry), it is taken as stolen and its device revoked, which ends the
    // thief's tokens and the owner's alike.
    let now = Utc::now();
    match app
        .store
        .use_refresh_token(&principal.token_hash, now)
        .await?
    {
        Rotation::Rotated => {}
        Rotation::Unknown => return Err(ApiError::Unauthorized(AuthError::Invalid)),
        Rotation::Reused { device_id, used_at } => {
            let grace = chrono::Duration::from_std(app.config.refresh_reuse_grace)
                .unwrap_or(chrono::Duration::zero());
            if let Some(device) = device_id.filter(|_| now - used_at > grace) {
                tracing::warn!(%device, user = %principal.user.id,
                    "a used refresh token was presented again: revoking the device");
                app.store.revoke_device(device).await?;
                app.hub.device_revoked(device);
            }
            return Err(ApiError::Unauthorized(AuthError::Reused));
        }
    }
    let issued = auth::issue(
        app.store.as_ref(),
        &principal.user,
        principal.device,
        Utc::now(),
        ttl(app.config.access_ttl),
        ttl(app.config.refresh_ttl),
    )
    .await?;
    Ok(Json(RefreshReply {
        device_id: principal.device,
        tokens: issued,
    }))
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", tag = "auth", params(("id" = Uuid, Path)), responses((status = 200, body = schemas::api::RevokeReply), (status = 401, description = "no or expired token", body = schemas::api::ErrorBody), (status = 403, description = "the caller's role may not", body = schemas::api::ErrorBody), (status = 404, body = schemas::api::ErrorBody)), security(("bearer" = [])))]
pub async fn revoke_device(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    PathParam(id): PathParam<Uuid>,
) -> ApiResult<RevokeReply> {
    let admin = caller.require(&[Role::Admin], "admin")?;
    let device = app
        .store
        .device(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("device {id}")))?;
    let owner = app
        .store
        .user(device.user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("device {id}")))?;
    if owner.org_id != admin.org_id {
        return Err(ApiError::NotFound(format!("device {id}")));
    }
    app.store.revoke_device(id).await?;
    // Connections on this node close now; other nodes notice within their token recheck.
    app.hub.device_revoked(id);
    Ok(Json(RevokeReply { revoked: id }))
}

#[cfg(test)]
mod tests {
    use argon2::Params;
    use argon2::password_hash::PasswordHash;

    /// Unknown names are checked against the dummy at the cost of a real user's hash.
    #[test]
    fn the_dummy_hash_has_the_parameters_of_real_ones() {
        let real = crate::auth::hash_password("a password");
        let params = |h: &str| Params::try_from(&PasswordHash::new(h).unwrap()).unwrap();
        let (dummy, real) = (params(super::DUMMY_HASH), params(&real));
        assert_eq!(
            (dummy.m_cost(), dummy.t_cost(), dummy.p_cost()),
            (real.m_cost(), real.t_cost(), real.p_cost())
        );
        assert!(!crate::passwords::verify_now(
            super::DUMMY_HASH,
            "not a password"
        ));
    }
}
