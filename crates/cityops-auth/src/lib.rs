//! Users, roles and login of cityops, with no I/O: what the store and the HTTP API call to authenticate.
//!
//! - [`password`]: argon2id hashing in PHC strings, verification, and a [`Password`] that never prints.
//! - [`policy`]: the [`PasswordPolicy`] a new password must meet, with stable error codes.
//! - [`user`]: the [`User`] record and the checked [`NewUser`] (username and department rules).
//! - [`token`]: stateless bearer tokens `cot1.<payload>.<signature>`, HMAC-SHA256 over a server key, with
//!   key rotation through a [`KeyRing`].
//! - [`permission`]: which roles may use the endpoints outside the case workflow (the workflow's own
//!   role checks live in [`cityops_core::case`]).
//!
//! Nothing here reads the clock: every function that depends on time takes `now`, so expiry is tested with
//! fixed instants. Randomness (salts, keys, token ids) comes from the operating system's generator.

pub mod password;
pub mod permission;
pub mod policy;
pub mod token;
pub mod user;

pub use cityops_core::case::Role;
pub use password::{
    HashError, Password, hash_password, needs_rehash, verify_password, verify_password_for_login,
};
pub use permission::{Forbidden, Permission};
pub use policy::{PasswordPolicy, PolicyViolation};
pub use token::{
    CLOCK_SKEW, Claims, DEFAULT_TTL, KeyError, KeyRing, SigningKey, TokenError, issue, verify,
};
pub use user::{NewUser, User, UserError};
