//! Password hashing with argon2id: PHC strings that carry their own salt and parameters, checked in constant time.
//!
//! The parameters below are the stored cost of a login: 19 MiB (OWASP's argon2id memory figure) and 3
//! passes, one lane, measured at about 25 ms per hash in release on the project's 2-core machine
//! (`cargo run --release -p cityops-auth --example hash_timing`; OWASP's 2 passes gave about 16 ms).
//! Slow enough to make offline guessing expensive, fast enough that a burst of logins at shift change
//! does not queue for seconds, and small enough in memory to run one hash per core at once.
//! Parallelism stays at 1 because the argon2 crate computes lanes one after another; more lanes would
//! only add time. Each PHC string records its parameters, so raising them later still verifies old
//! hashes, and [`needs_rehash`] tells the login path when to store a fresh one.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use serde::Deserialize;

/// Memory cost in KiB (19 MiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Number of passes over the memory.
pub const ITERATIONS: u32 = 3;
/// Number of lanes.
pub const PARALLELISM: u32 = 1;

/// A password as a user typed it. It can be read only through [`Password::expose`], never printed:
/// `Debug` shows `***`, and there is no `Serialize`, so it cannot end up in a log line or a response.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for hashing or checking against the policy.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Hashing failed. With fixed valid parameters this means the machine could not give argon2 its
/// memory, so the API answers 500, not 422.
#[derive(Debug, Clone, thiserror::Error)]
#[error("hashing the password failed: {0}")]
pub struct HashError(argon2::password_hash::Error);

/// Hashes `password` with argon2id and a fresh random salt, as a PHC string
/// (`$argon2id$v=19$m=19456,t=3,p=1$<salt>$<hash>`) for the users table.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = hasher()
        .hash_password(password.as_bytes(), &salt)
        .map_err(HashError)?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string. The comparison of the hash outputs is constant-time
/// (argon2's `Output` equality). A string that is not an argon2id PHC string matches nothing: it can
/// only be a damaged row, and refusing is the safe answer.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return false;
    }
    // The hasher takes the cost parameters from the PHC string, not from the constants above.
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// The login check: like [`verify_password`], but for an unknown user (`None`) it still spends the time of
/// one verification before answering `false`, so response times do not tell which usernames exist.
pub fn verify_password_for_login(password: &str, stored_phc: Option<&str>) -> bool {
    match stored_phc {
        Some(phc) => verify_password(password, phc),
        None => {
            std::hint::black_box(verify_password(password, dummy_hash()));
            false
        }
    }
}

/// Whether a stored hash was made with other parameters than today's (or is not argon2id at all), so
/// the login path should store a new hash of the password it has just verified.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    let Ok(stored) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm != argon2::ARGON2ID_IDENT
        || parsed.version != Some(Version::V0x13.into())
        || stored.m_cost() != MEMORY_KIB
        || stored.t_cost() != ITERATIONS
        || stored.p_cost() != PARALLELISM
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the argon2 constants are within argon2's limits");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a random password, made once per process, for [`verify_password_for_login`].
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random = SaltString::generate(&mut OsRng);
        hash_password(random.as_str()).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests;
