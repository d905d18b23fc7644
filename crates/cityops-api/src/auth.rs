//! Authentication at the edge: `POST /api/v1/auth/login` issues a signed bearer token (also set as an
//! HttpOnly cookie for the pages), and the [`Authenticated`] extractor checks it on every `/api/v1`
//! request: from `Authorization: Bearer …`, or the `cityops_token` cookie, or (for `/ws` only, where
//! browsers cannot set headers) a `token` query parameter.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use cityops_auth::{Claims, KeyRing, Permission, User};
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::{ApiError, AppState};

/// Name of the cookie that carries the token for the pages.
pub const COOKIE: &str = "cityops_token";

/// What authentication needs at run time.
pub struct AuthConfig {
    pub keys: KeyRing,
    pub ttl: TimeDelta,
    /// Password checks cost ~25 ms of CPU and 19 MiB each: at most this many at once.
    pub login_slots: Semaphore,
}

impl AuthConfig {
    pub fn new(keys: KeyRing, ttl: TimeDelta) -> Arc<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Self {
            keys,
            ttl,
            login_slots: Semaphore::new(cores),
        })
    }
}

/// The caller, authenticated.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl Authenticated {
    /// 403 unless the caller's role has `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        self.0
            .require(permission)
            .map_err(|e| ApiError::Forbidden(e.to_string()))
    }
}

#[axum::async_trait]
impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)
            .or_else(|| cookie(parts))
            .or_else(|| {
                if parts.uri.path() == "/ws" {
                    query_token(parts)
                } else {
                    None
                }
            })
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "missing_token",
                    "log in: POST /api/v1/auth/login, then send Authorization: Bearer <token>"
                        .into(),
                )
            })?;
        cityops_auth::verify(&state.auth.keys, &token, Utc::now())
            .map(Authenticated)
            .map_err(|e| ApiError::Unauthorized(e.code(), e.to_string()))
    }
}

fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim().to_string())
}

fn cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            pair.trim()
                .strip_prefix(COOKIE)?
                .strip_prefix('=')
                .map(str::to_string)
        })
}

fn query_token(parts: &Parts) -> Option<String> {
    parts
        .uri
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token=").map(str::to_string))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    username: String,
    password: cityops_auth::Password,
}

/// `POST /api/v1/auth/login {"username","password"}` → `{"token","expires_at","user"}`.
pub(crate) async fn login(
    State(state): State<AppState>,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(login) = body.map_err(|e| ApiError::Invalid(format!("login: {}", e.body_text())))?;
    let username = login.username.trim().to_lowercase();
    let user = state.store.user_by_name(&username).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let _slot = state
        .auth
        .login_slots
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable("shutting down".into()))?;
    // Verify even for an unknown user, so the answer takes as long either way.
    let ok = tokio::task::spawn_blocking(move || {
        cityops_auth::verify_password_for_login(login.password.expose(), hash.as_deref())
    })
    .await
    .map_err(|e| ApiError::Unexpected(e.into()))?;
    let user = match user {
        Some(user) if ok && !user.disabled => user,
        _ => {
            tracing::info!(username, "login refused");
            return Err(ApiError::Unauthorized(
                "bad_credentials",
                "wrong username or password, or the account is disabled".into(),
            ));
        }
    };
    Ok(token_response(&state, &user))
}

fn token_response(state: &AppState, user: &User) -> Response {
    let now = Utc::now();
    let token = cityops_auth::issue(state.auth.keys.current(), user, now, state.auth.ttl);
    let expires_at = now + state.auth.ttl;
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        state.auth.ttl.num_seconds()
    );
    let mut response = Json(serde_json::json!({
        "token": token,
        "expires_at": expires_at.to_rfc3339(),
        "user": user,
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /api/v1/auth/logout`: clears the cookie. Tokens are stateless and stay valid until they expire.
pub(crate) async fn logout() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cityops_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// `GET /api/v1/auth/me`: who the token says the caller is.
pub(crate) async fn me(Authenticated(claims): Authenticated) -> Json<Claims> {
    Json(claims)
}

/// `GET /api/v1/users` (users.read).
pub(crate) async fn list_users(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    auth.require(Permission::UsersRead)?;
    Ok(Json(serde_json::json!({ "items": state.store.users().await? })).into_response())
}

/// `POST /api/v1/users` (users.manage) with a `NewUser`.
pub(crate) async fn create_user(
    State(state): State<AppState>,
    auth: Authenticated,
    body: Result<Json<cityops_auth::NewUser>, JsonRejection>,
) -> Result<Response, ApiError> {
    auth.require(Permission::UsersManage)?;
    let Json(new_user) = body.map_err(|e| ApiError::Invalid(format!("user: {}", e.body_text())))?;
    let policy = cityops_auth::PasswordPolicy::default();
    let hash =
        tokio::task::spawn_blocking(move || new_user.prepare(&policy).map(|hash| (new_user, hash)))
            .await
            .map_err(|e| ApiError::Unexpected(e.into()))?;
    let (new_user, hash) = hash.map_err(|e| match e {
        cityops_auth::UserError::Hash(e) => ApiError::Unexpected(anyhow::anyhow!(e.to_string())),
        other => ApiError::Invalid(format!("{}: {other}", other.field())),
    })?;
    let user = state
        .store
        .create_user(
            &cityops_store::users::UserInsert {
                username: &new_user.username,
                display_name: &new_user.display_name,
                role: new_user.role,
                department: new_user.department.as_deref(),
                password_hash: &hash,
            },
            Utc::now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}
