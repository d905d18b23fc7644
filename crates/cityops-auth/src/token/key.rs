//! The server's secret for signing tokens, and the ring of keys a token may be verified with.

use hmac::{Hmac, Mac};
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::Sha256;

/// Bytes of a generated key: the output size of SHA-256, the strength HMAC-SHA256 can give.
pub const KEY_BYTES: usize = 32;
/// Most bytes a key may have. HMAC hashes longer keys down to 32 bytes first, so they add nothing.
pub const MAX_KEY_BYTES: usize = 64;

/// An HMAC-SHA256 key. The server generates it once, keeps [`SigningKey::to_bytes`] in its data
/// directory and loads it with [`SigningKey::from_bytes`], so tokens survive a restart. `Debug` hides it,
/// and it has no equality, so no code compares it in variable time.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

type HmacSha256 = Hmac<Sha256>;

impl SigningKey {
    /// A new random key of [`KEY_BYTES`] bytes from the operating system's generator.
    pub fn generate() -> Self {
        let mut bytes = vec![0; KEY_BYTES];
        OsRng.fill_bytes(&mut bytes);
        SigningKey(bytes)
    }

    /// A key read back from storage: 32 to 64 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if !(KEY_BYTES..=MAX_KEY_BYTES).contains(&bytes.len()) {
            return Err(KeyError::Length { got: bytes.len() });
        }
        Ok(SigningKey(bytes.to_vec()))
    }

    /// The key's bytes, to store (with permissions that only the server's user can read).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.clone()
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.mac(message).finalize().into_bytes().to_vec()
    }

    /// Whether `signature` is this key's signature of `message`, compared in constant time.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.mac(message).verify_slice(signature).is_ok()
    }

    fn mac(&self, message: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(message);
        mac
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

/// A stored key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a signing key must have {KEY_BYTES} to {MAX_KEY_BYTES} bytes, this one has {got}")]
    Length { got: usize },
}

/// The keys tokens are checked with: the current one, which also signs, and the previous ones, kept after
/// a rotation until the tokens they signed have expired (one token lifetime), then dropped.
#[derive(Debug, Clone)]
pub struct KeyRing {
    current: SigningKey,
    previous: Vec<SigningKey>,
}

impl KeyRing {
    pub fn new(current: SigningKey) -> Self {
        KeyRing {
            current,
            previous: Vec::new(),
        }
    }

    /// The same ring, also accepting tokens signed by `previous`.
    pub fn with_previous(mut self, previous: SigningKey) -> Self {
        self.previous.push(previous);
        self
    }

    /// The key new tokens are signed with.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// Every key a token may be signed with, the current one first.
    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }
}

impl From<SigningKey> for KeyRing {
    fn from(current: SigningKey) -> Self {
        KeyRing::new(current)
    }
}
