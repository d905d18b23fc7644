//! Accounts: the stored [`User`], the checked [`NewUser`], and the rules for usernames and departments.
//!
//! Department rule: a department handler (处置部门人员) must belong to exactly one department, because the
//! case workflow lets them act only on cases dispatched to it; every other role must have none, because
//! no other role is scoped by department and a department on, say, a dispatcher would suggest a limit
//! that nothing enforces. Changing a user's role therefore changes the department too, and the update
//! path checks the pair with [`validate_department`].

use chrono::{DateTime, Utc};
use cityops_core::case::{MAX_ID_CHARS, Role};
use serde::{Deserialize, Serialize};

use crate::password::{HashError, Password, hash_password};
use crate::policy::{PasswordPolicy, PolicyViolation};

/// Fewest characters of a username.
pub const USERNAME_MIN_CHARS: usize = 3;
/// Most characters of a username.
pub const USERNAME_MAX_CHARS: usize = 32;
/// Most characters of a display name.
pub const DISPLAY_NAME_MAX_CHARS: usize = 64;

/// An account as the store keeps it. Serializes for the API without the password hash, with
/// `created_at` in Unix milliseconds like every other time on the wire.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    /// Login name: 3-32 characters of `a-z 0-9 _ . -`, unique, never changed.
    pub username: String,
    /// The name people see (张三), free text.
    pub display_name: String,
    pub role: Role,
    /// The handling department's code, for department handlers only.
    pub department: Option<String>,
    /// A disabled user cannot log in; tokens already issued run out within their lifetime.
    pub disabled: bool,
    /// The argon2id PHC string.
    #[serde(skip)]
    pub password_hash: String,
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is not the password, but an offline guess needs nothing more: keep it out of logs.
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("display_name", &self.display_name)
            .field("role", &self.role)
            .field("department", &self.department)
            .field("disabled", &self.disabled)
            .field("password_hash", &"***")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// An account to create, as the admin's request carries it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    #[serde(default)]
    pub department: Option<String>,
    pub password: Password,
}

impl NewUser {
    /// Checks every field (username, display name, department for the role, password policy) and
    /// returns the first problem.
    pub fn validate(&self, policy: &PasswordPolicy) -> Result<(), UserError> {
        validate_username(&self.username)?;
        validate_display_name(&self.display_name)?;
        validate_department(self.role, self.department.as_deref())?;
        policy.check(&self.username, self.password.expose())?;
        Ok(())
    }

    /// Validates, then hashes the password: the PHC string the store inserts with the other fields.
    pub fn prepare(&self, policy: &PasswordPolicy) -> Result<String, UserError> {
        self.validate(policy)?;
        Ok(hash_password(self.password.expose())?)
    }
}

/// Why an account's data was refused. Every variant but [`UserError::Hash`] is the client's mistake (422).
#[derive(Debug, Clone, thiserror::Error)]
pub enum UserError {
    #[error("the username must have {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} characters")]
    UsernameLength,
    #[error(
        "the username may contain only a-z, 0-9, '_', '.' and '-', and must start with a letter or digit"
    )]
    UsernameCharacters,
    #[error("the display name must not be empty")]
    DisplayNameEmpty,
    #[error("the display name must have at most {DISPLAY_NAME_MAX_CHARS} characters")]
    DisplayNameTooLong,
    #[error("the display name must not contain control characters or start or end with whitespace")]
    DisplayNameCharacters,
    #[error("a department handler must belong to a department")]
    DepartmentRequired,
    #[error("only department handlers belong to a department, not a {role}")]
    DepartmentNotAllowed { role: Role },
    #[error(
        "the department code must have 1 to {MAX_ID_CHARS} characters without whitespace or control characters"
    )]
    DepartmentInvalid,
    #[error(transparent)]
    Password(#[from] PolicyViolation),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl UserError {
    /// A stable code for the API and the UI's translations.
    pub fn code(&self) -> &'static str {
        match self {
            UserError::UsernameLength => "username_length",
            UserError::UsernameCharacters => "username_characters",
            UserError::DisplayNameEmpty => "display_name_empty",
            UserError::DisplayNameTooLong => "display_name_too_long",
            UserError::DisplayNameCharacters => "display_name_characters",
            UserError::DepartmentRequired => "department_required",
            UserError::DepartmentNotAllowed { .. } => "department_not_allowed",
            UserError::DepartmentInvalid => "department_invalid",
            UserError::Password(violation) => violation.code(),
            UserError::Hash(_) => "internal",
        }
    }

    /// The request field the problem is in, for a form to mark.
    pub fn field(&self) -> &'static str {
        match self {
            UserError::UsernameLength | UserError::UsernameCharacters => "username",
            UserError::DisplayNameEmpty
            | UserError::DisplayNameTooLong
            | UserError::DisplayNameCharacters => "display_name",
            UserError::DepartmentRequired
            | UserError::DepartmentNotAllowed { .. }
            | UserError::DepartmentInvalid => "department",
            UserError::Password(_) | UserError::Hash(_) => "password",
        }
    }
}

/// A username is 3-32 characters of `a-z 0-9 _ . -` starting with a letter or digit. Lower case only, so
/// `Zhang` and `zhang` cannot be two accounts (the login form lowercases what is typed); the first
/// character rule keeps names like `..` or `-x` out of URLs and command lines.
pub fn validate_username(username: &str) -> Result<(), UserError> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c);
    if !username.chars().all(allowed) {
        return Err(UserError::UsernameCharacters);
    }
    // Only ASCII is left, so bytes are characters.
    if !(USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&username.len()) {
        return Err(UserError::UsernameLength);
    }
    if !username.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(UserError::UsernameCharacters);
    }
    Ok(())
}

/// A display name is 1-64 characters of any script, without control characters or surrounding whitespace.
pub fn validate_display_name(display_name: &str) -> Result<(), UserError> {
    if display_name.trim().is_empty() {
        return Err(UserError::DisplayNameEmpty);
    }
    if display_name.chars().count() > DISPLAY_NAME_MAX_CHARS {
        return Err(UserError::DisplayNameTooLong);
    }
    if display_name.trim() != display_name || display_name.chars().any(char::is_control) {
        return Err(UserError::DisplayNameCharacters);
    }
    Ok(())
}

/// A department handler needs a department code; every other role has none (see the module comment).
/// Whether the code names a department in the catalogue is the store's check.
pub fn validate_department(role: Role, department: Option<&str>) -> Result<(), UserError> {
    match (role, department) {
        (Role::DepartmentHandler, None) => Err(UserError::DepartmentRequired),
        (Role::DepartmentHandler, Some(code)) => {
            let fits = !code.is_empty()
                && code.chars().count() <= MAX_ID_CHARS
                && !code.chars().any(|c| c.is_whitespace() || c.is_control());
            if fits {
                Ok(())
            } else {
                Err(UserError::DepartmentInvalid)
            }
        }
        (_, None) => Ok(()),
        (role, Some(_)) => Err(UserError::DepartmentNotAllowed { role }),
    }
}

#[cfg(test)]
mod tests;
