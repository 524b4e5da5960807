//! Random secrets we hand out (codes, single-use tokens, challenges) and the one-way form in
//! which we keep them.
//!
//! Everything handed to a caller is high-entropy, so a plain SHA-256 is a sufficient
//! at-rest form: knowing the hash does not help produce the secret, and lookups by hash stay
//! a single indexed query. Comparisons of secrets go through constant-time equality.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{Rng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Base64url of `n` random bytes.
pub fn random_b64(n: usize) -> String {
    let mut buf = Zeroizing::new(vec![0u8; n]);
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(&*buf)
}

/// Hex SHA-256 of a string: the at-rest form of tokens and codes, and the payload binding of
/// user actions.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Constant-time comparison of two strings (tokens, hashes).
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Symbols that survive being read aloud or retyped: no 0/O, 1/I/L.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// A human-typable one-time code, `XXXX-XXXX-XXXX` (~59 bits). Its hash is stored; a handful
/// of wrong attempts burns it, so guessing is hopeless.
pub fn new_code() -> Zeroizing<String> {
    let mut rng = rand::rngs::OsRng;
    let mut s = Zeroizing::new(String::with_capacity(14));
    for i in 0..12 {
        if i > 0 && i % 4 == 0 {
            s.push('-');
        }
        let idx = rng.gen_range(0..CODE_ALPHABET.len());
        s.push(char::from(CODE_ALPHABET[idx]));
    }
    s
}

/// Canonical form of a typed code: case and separators do not matter to humans.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The stored form of a code.
pub fn code_hash(code: &str) -> String {
    sha256_hex(normalize_code(code).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_normalize_and_hash() {
        let c = new_code();
        assert_eq!(c.len(), 14);
        assert_eq!(
            code_hash(&c),
            code_hash(&c.to_lowercase().replace('-', " "))
        );
        assert_ne!(code_hash(&c), code_hash(&new_code()));
        assert!(ct_eq("abc", "abc"));
        assert!(!ct_eq("abc", "abd"));
        assert!(!ct_eq("abc", "abcd"));
    }
}
