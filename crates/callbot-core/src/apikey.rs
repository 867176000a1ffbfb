//! API keys: generated once, shown once, stored only as SHA-256 hashes.

use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of an API key: the only form in which a key is stored or looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn of(raw_key: &str) -> Self {
        KeyHash(hex::encode(Sha256::digest(raw_key.as_bytes())))
    }

    /// Rebuilds a hash read back from storage. Returns `None` unless it is 64 lowercase hex digits.
    pub fn from_stored(hex_digest: &str) -> Option<Self> {
        let ok = hex_digest.len() == 64
            && hex_digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| KeyHash(hex_digest.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A fresh key: `cb_` and 40 random alphanumerics (~238 bits). The plaintext exists only in the
/// returned secret, to be printed once.
pub fn generate() -> (SecretString, KeyHash) {
    let key = random_token("cb_", 40);
    let hash = KeyHash::of(&key);
    (SecretString::from(key), hash)
}

/// `prefix` followed by `len` random alphanumerics from the thread-local CSPRNG (~5.95 bits each).
/// Used for API keys and webhook signing secrets.
pub fn random_token(prefix: &str, len: usize) -> String {
    let mut token = String::with_capacity(prefix.len() + len);
    token.push_str(prefix);
    token.extend(
        rand::rng()
            .sample_iter(Alphanumeric)
            .take(len)
            .map(char::from),
    );
    token
}

/// The shortest key accepted anywhere (`CALLBOT_API_KEY` included).
pub const MIN_KEY_LEN: usize = 12;
/// The longest.
pub const MAX_KEY_LEN: usize = 200;

/// Cheap shape check before touching the store, so junk headers cost nothing.
pub fn plausible(raw_key: &str) -> bool {
    (MIN_KEY_LEN..=MAX_KEY_LEN).contains(&raw_key.len())
        && raw_key.bytes().all(|b| b.is_ascii_graphic())
}

/// Exposes a key for printing to the terminal exactly once.
pub fn reveal(key: &SecretString) -> &str {
    key.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_and_keys_unique() {
        let (k1, h1) = generate();
        let (k2, h2) = generate();
        assert_ne!(reveal(&k1), reveal(&k2));
        assert_eq!(KeyHash::of(reveal(&k1)), h1);
        assert_ne!(h1, h2);
        assert_eq!(
            KeyHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(KeyHash::from_stored(h1.as_str()).is_some());
        assert!(KeyHash::from_stored("xyz").is_none());
    }
}
