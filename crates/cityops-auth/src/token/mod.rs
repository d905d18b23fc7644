//! Stateless bearer tokens: `cot1.<base64url claims>.<base64url HMAC-SHA256>`, checked against a key ring.
//!
//! Stateless because any process holding the key can check a token without asking the store, on every
//! request and every websocket. The price is that a token cannot be revoked: a disabled user's token
//! keeps working until it expires. Hence the lifetime of one shift ([`DEFAULT_TTL`]), and the API should
//! re-read the user from the store where it matters (changing a password, managing users).
//!
//! The signature covers the text `cot1.<claims>`: the version prefix is signed too, so a later format
//! cannot be passed off as this one. The claims are compact JSON:
//! `{"sub":7,"username":"zhang.san","role":"inspector","iat":1712822400,"exp":1712865600,"jti":"…"}`
//! (`department` only for department handlers; times in Unix seconds).
//!
//! Checks run from cheapest and least trusting to most: shape and base64 ([`TokenError::Malformed`]),
//! then the signature ([`TokenError::BadSignature`]), and only then is the JSON parsed, so unsigned
//! bytes never reach the JSON parser; last the times.

mod key;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use cityops_core::case::Role;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::user::User;

pub use key::{KEY_BYTES, KeyError, KeyRing, MAX_KEY_BYTES, SigningKey};

/// The first part of every token: the format's name and version.
pub const PREFIX: &str = "cot1";

/// How long a token is valid by default: one 12-hour shift, so nobody logs in again mid-shift.
pub const DEFAULT_TTL: TimeDelta = TimeDelta::hours(12);

/// How far in the future a token's issue time may lie, for servers whose clocks differ a little. Expiry
/// gets no such grace: a token ending a minute late would be the worse mistake.
pub const CLOCK_SKEW: TimeDelta = TimeDelta::seconds(60);

/// Longest token accepted; a real one is about 300 bytes. Checked first, so a huge header costs nothing.
pub const MAX_TOKEN_BYTES: usize = 2048;

/// Bytes of an HMAC-SHA256 signature.
const SIGNATURE_BYTES: usize = 32;

/// Who a token was issued to and when. What the API knows about the caller without asking the store.
/// The permission checks ([`Claims::require_role`], [`Claims::require`]) are in [`crate::permission`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "sub")]
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(rename = "iat", with = "chrono::serde::ts_seconds")]
    pub issued_at: DateTime<Utc>,
    #[serde(rename = "exp", with = "chrono::serde::ts_seconds")]
    pub expires_at: DateTime<Utc>,
    /// A random id per token (128 bits, base64url), for logs and for a deny list should one be needed.
    pub jti: String,
}

/// Why a token was refused. Every variant means 401; the code tells the client whether logging in again
/// can help (expired) and the log what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {reason}")]
    Malformed { reason: &'static str },
    #[error("the token's signature matches no key")]
    BadSignature,
    #[error("the token expired at {expired_at}")]
    Expired { expired_at: DateTime<Utc> },
    #[error("the token is valid only from {valid_from}")]
    NotYetValid { valid_from: DateTime<Utc> },
}

impl TokenError {
    /// A stable code for the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed { .. } => "token_malformed",
            TokenError::BadSignature => "token_bad_signature",
            TokenError::Expired { .. } => "token_expired",
            TokenError::NotYetValid { .. } => "token_not_yet_valid",
        }
    }
}

/// A token for `user`, valid from `now` (to the second) for `ttl`, signed with `key` (the ring's current
/// key). Whether the user may log in at all (disabled, wrong password) is the caller's check.
pub fn issue(key: &SigningKey, user: &User, now: DateTime<Utc>, ttl: TimeDelta) -> String {
    let issued_at = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    let claims = Claims {
        user_id: user.id,
        username: user.username.clone(),
        role: user.role,
        department: user.department.clone(),
        issued_at,
        expires_at: issued_at
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC),
        jti: random_token_id(),
    };
    let payload = serde_json::to_vec(&claims).expect("claims are plain data");
    let signed = format!("{PREFIX}.{}", URL_SAFE_NO_PAD.encode(payload));
    let signature = URL_SAFE_NO_PAD.encode(key.sign(signed.as_bytes()));
    format!("{signed}.{signature}")
}

/// The claims of `token` if one of `keys` signed it and it is valid at `now`.
pub fn verify(keys: &KeyRing, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
    let malformed = |reason| TokenError::Malformed { reason };
    if token.len() > MAX_TOKEN_BYTES {
        return Err(malformed("longer than any token this server issues"));
    }
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return Err(malformed("no signature part"));
    };
    let Some((prefix, payload)) = signed.split_once('.') else {
        return Err(malformed("no claims part"));
    };
    if payload.contains('.') {
        return Err(malformed("more than three parts"));
    }
    if prefix != PREFIX {
        return Err(malformed("not a cot1 token"));
    }
    // The base64 engine refuses padding and non-zero trailing bits, so every token has one spelling.
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| malformed("claims are not base64url"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| malformed("signature is not base64url"))?;
    if signature.len() != SIGNATURE_BYTES {
        return Err(malformed("signature is not 32 bytes"));
    }
    if !keys
        .keys()
        .any(|key| key.verifies(signed.as_bytes(), &signature))
    {
        return Err(TokenError::BadSignature);
    }
    // Signed by us yet unreadable: a format from another version of the server.
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|_| malformed("claims are not readable"))?;
    let latest_issue = now
        .checked_add_signed(CLOCK_SKEW)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if latest_issue < claims.issued_at {
        return Err(TokenError::NotYetValid {
            valid_from: claims.issued_at,
        });
    }
    if now >= claims.expires_at {
        return Err(TokenError::Expired {
            expired_at: claims.expires_at,
        });
    }
    Ok(claims)
}

fn random_token_id() -> String {
    let mut bytes = [0; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}
