//! Users: create, find by name, list, change password, enable/disable. Passwords arrive already hashed
//! (cityops-auth does the hashing); this module only stores.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use cityops_auth::{Role, User};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError};

/// An account to insert: fields already validated, password already hashed.
#[derive(Debug, Clone)]
pub struct UserInsert<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub department: Option<&'a str>,
    pub password_hash: &'a str,
}

impl Store {
    /// Inserts a user; a taken username is `StoreError::UsernameTaken` and changes nothing.
    pub async fn create_user(
        &self,
        user: &UserInsert<'_>,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let now_ms = now.timestamp_millis();
        let result = sqlx::query_scalar::<_, i64>(
            "INSERT INTO users (username, display_name, role, department, disabled, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6, $7) RETURNING id",
        )
        .bind(user.username)
        .bind(user.display_name)
        .bind(user.role.as_str())
        .bind(user.department)
        .bind(user.password_hash)
        .bind(now_ms)
        .bind(now_ms)
        .fetch_one(self.pool())
        .await;
        match result {
            Ok(id) => Ok(self
                .user_by_id(id)
                .await?
                .context("the user just inserted is missing")?),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::UsernameTaken(user.username.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user_by_name(&self, username: &str) -> anyhow::Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_by_id(&self, id: i64) -> anyhow::Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn users(&self) -> anyhow::Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY username")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Replaces a user's password hash; false when there is no such user.
    pub async fn set_password_hash(
        &self,
        username: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let done =
            sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE username = $3")
                .bind(password_hash)
                .bind(now.timestamp_millis())
                .bind(username)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Enables or disables a user; false when there is no such user.
    pub async fn set_user_disabled(
        &self,
        username: &str,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let done =
            sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE username = $3")
                .bind(i64::from(disabled))
                .bind(now.timestamp_millis())
                .bind(username)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

fn user_from_row(row: &AnyRow) -> anyhow::Result<User> {
    let role: String = row.get("role");
    let created_at: i64 = row.get("created_at");
    Ok(User {
        id: row.get("id"),
        username: row.get("username"),
        display_name: row.get("display_name"),
        role: Role::parse(&role).with_context(|| format!("stored role {role:?}"))?,
        department: row.get("department"),
        disabled: row.get::<i64, _>("disabled") != 0,
        password_hash: row.get("password_hash"),
        created_at: DateTime::from_timestamp_millis(created_at).unwrap_or_default(),
    })
}
