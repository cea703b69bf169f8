//! Sign-in, tokens and who is calling.
//!
//! Passwords are hashed with argon2 (the `argon2` crate's defaults, the current OWASP
//! recommendation) and checked within a memory budget ([`crate::passwords`]). Tokens are 32 random bytes, shown to the client once; the store keeps only
//! their sha256, so a leaked database holds no usable token. An access token lives minutes and
//! goes with every request and sync connection; a refresh token lives weeks and only buys new
//! access tokens. A device's tokens stop working when an admin revokes the device.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, SaltString};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::{Store, StoreError, TokenKind, TokenRecord, User};

pub fn hash_password(password: &str) -> String {
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing cannot fail with defaults")
        .to_string()
}

/// A fresh token and the hash the store keeps.
pub fn new_token(kind: TokenKind) -> (String, String) {
    let prefix = match kind {
        TokenKind::Access => "fsa_",
        TokenKind::Refresh => "fsr_",
    };
    let token = format!("{prefix}{}", hex::encode(rand::random::<[u8; 32]>()));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Tokens handed to a client after sign-in or refresh.
pub type Issued = schemas::api::Tokens;

pub async fn issue(
    store: &dyn Store,
    user: &User,
    device: Option<Uuid>,
    now: DateTime<Utc>,
    access_ttl: chrono::Duration,
    refresh_ttl: chrono::Duration,
) -> Result<Issued, StoreError> {
    let (access_token, access_hash) = new_token(TokenKind::Access);
    let (refresh_token, refresh_hash) = new_token(TokenKind::Refresh);
    let access_expires_at = now + access_ttl;
    let refresh_expires_at = now + refresh_ttl;
    for (hash, kind, expires_at) in [
        (access_hash, TokenKind::Access, access_expires_at),
        (refresh_hash, TokenKind::Refresh, refresh_expires_at),
    ] {
        store
            .insert_token(&TokenRecord {
                hash,
                kind,
                user_id: user.id,
                device_id: device,
                expires_at,
            })
            .await?;
    }
    Ok(Issued {
        access_token,
        access_expires_at,
        refresh_token,
        refresh_expires_at,
    })
}

/// Who is calling, once their token checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user: User,
    pub device: Option<Uuid>,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a token was not accepted, or that the store could not tell.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no token: send `Authorization: Bearer <access token>`")]
    Missing,
    #[error("token not recognised")]
    Invalid,
    #[error("token expired: refresh it and retry")]
    Expired,
    #[error("this device was revoked by an administrator")]
    Revoked,
    #[error("a refresh token cannot be used here")]
    WrongKind,
    #[error("this refresh token was used already: sign in again")]
    Reused,
    /// The store failed while checking: not the caller's fault.
    #[error("could not check the token: {0}")]
    Store(#[from] StoreError),
}

impl AuthError {
    /// True when the token itself was refused (401), false when the store failed.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, AuthError::Store(_))
    }
}

/// Check a token of `kind` at `now`. A store failure is [`AuthError::Store`].
pub async fn authenticate(
    store: &dyn Store,
    token: Option<&str>,
    kind: TokenKind,
    now: DateTime<Utc>,
) -> Result<Principal, AuthError> {
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(AuthError::Missing);
    };
    let hash = token_hash(token);
    let Some(info) = store.token(&hash).await? else {
        return Err(AuthError::Invalid);
    };
    if info.token.kind != kind {
        Err(AuthError::WrongKind)
    } else if info.device_revoked {
        Err(AuthError::Revoked)
    } else if info.token.expires_at <= now {
        Err(AuthError::Expired)
    } else {
        Ok(Principal {
            user: info.user,
            device: info.token.device_id,
            token_hash: hash,
            expires_at: info.token.expires_at,
        })
    }
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    header.and_then(|h| {
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse");
        assert!(crate::passwords::verify_now(&h, "correct horse"));
        assert!(!crate::passwords::verify_now(&h, "correct horse "));
        assert!(!crate::passwords::verify_now("not a hash", "x"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token(TokenKind::Access);
        let (b, _) = new_token(TokenKind::Access);
        assert_ne!(a, b);
        assert!(a.starts_with("fsa_"));
        assert_eq!(token_hash(&a), ha);
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
    }
}
