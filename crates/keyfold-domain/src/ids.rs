//! Dfns-style identifiers: a kind prefix and 130 random bits, e.g. `us-3v1ag-v6b36-9s7ad56otmpfcsfn`.
//!
//! The prefix tells a human (and our parsers) what an id names; the randomness makes ids
//! unguessable, so an id in a URL never leaks how many objects exist or lets a caller probe
//! for another tenant's objects.

use rand::RngCore;

/// The kinds of object that carry an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Org,
    App,
    User,
    Credential,
    Token,
    Challenge,
    UserAction,
    Permission,
    Assignment,
    Code,
    Outbox,
    JwtKey,
    Key,
    Wallet,
    Signature,
    Presignature,
    Session,
    Transfer,
    Transaction,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Org => "or",
            Self::App => "ap",
            Self::User => "us",
            Self::Credential => "cr",
            Self::Token => "to",
            Self::Challenge => "ch",
            Self::UserAction => "ua",
            Self::Permission => "pm",
            Self::Assignment => "as",
            Self::Code => "cd",
            Self::Outbox => "ob",
            Self::JwtKey => "jk",
            Self::Key => "key",
            Self::Wallet => "wa",
            Self::Signature => "sig",
            Self::Presignature => "ps",
            Self::Transfer => "xfr",
            Self::Transaction => "tx",
            Self::Session => "ss",
        }
    }
}

const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// A fresh id of the given kind.
pub fn new_id(kind: IdKind) -> String {
    let mut raw = [0u8; 26];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let chars: Vec<u8> = raw.iter().map(|b| ALPHABET[(b & 31) as usize]).collect();
    // 26 symbols of 5 bits each; grouped 5-5-16 like Dfns ids.
    let s = String::from_utf8_lossy(&chars);
    format!("{}-{}-{}-{}", kind.prefix(), &s[..5], &s[5..10], &s[10..])
}

/// Whether `id` is shaped like an id of `kind` (prefix and alphabet). Used to answer a
/// malformed id with a 404 without touching the database.
pub fn looks_like(kind: IdKind, id: &str) -> bool {
    let Some(rest) = id
        .strip_prefix(kind.prefix())
        .and_then(|r| r.strip_prefix('-'))
    else {
        return false;
    };
    rest.len() <= 64
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_shape_and_are_distinct() {
        let a = new_id(IdKind::User);
        let b = new_id(IdKind::User);
        assert_ne!(a, b);
        assert!(a.starts_with("us-"));
        assert_eq!(a.len(), 3 + 5 + 1 + 5 + 1 + 16);
        assert!(looks_like(IdKind::User, &a));
        assert!(!looks_like(IdKind::Org, &a));
        assert!(!looks_like(IdKind::User, "us-"));
        assert!(!looks_like(IdKind::User, "us-ABC"));
    }
}
