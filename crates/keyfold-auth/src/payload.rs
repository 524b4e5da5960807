//! What a user action binds: the request body, up to spelling.
//!
//! A user action signs the body *string* the client meant to send, and the server must only
//! act on that body. Clients do not always send the exact bytes they signed — the Python SDK
//! signs `json.dumps` output (non-ASCII escaped as `\u00e9`) but its HTTP library sends raw
//! UTF-8, and it signs `""` for an empty body yet sends `{}`. So the binding is a digest of a
//! canonical form that keeps everything that can change meaning and drops only spelling:
//!
//! * JSON is re-serialized compactly with the same keys **in the same order, duplicates
//!   kept**, strings decoded then re-escaped one way, integers as integers;
//! * an empty body and `{}` are the same (no fields);
//! * anything else — not JSON, or containing a non-integer or out-of-range number, whose
//!   decimal spelling could hide a difference after rounding — is bound byte for byte.
//!
//! Two bodies with the same canonical form parse to the same request, so accepting one for
//! the other cannot change what the server does.

use std::fmt::Write as _;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use keyfold_domain::secrets::sha256_hex;

#[derive(Debug, PartialEq)]
enum Canon {
    Null,
    Bool(bool),
    Int(i128),
    Str(String),
    Arr(Vec<Canon>),
    Obj(Vec<(String, Canon)>),
}

struct CanonVisitor;

impl<'de> Visitor<'de> for CanonVisitor {
    type Value = Canon;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON without floating-point numbers")
    }
    fn visit_unit<E>(self) -> Result<Canon, E> {
        Ok(Canon::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Canon, E> {
        Ok(Canon::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Canon, E> {
        Ok(Canon::Int(i128::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Canon, E> {
        Ok(Canon::Int(i128::from(v)))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Canon, E> {
        Err(E::custom("floating-point numbers are bound byte for byte"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Canon, E> {
        Ok(Canon::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Canon, E> {
        Ok(Canon::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Canon, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Canon>()? {
            items.push(v);
        }
        Ok(Canon::Arr(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Canon, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Canon>()? {
            entries.push((k, v));
        }
        Ok(Canon::Obj(entries))
    }
}

impl<'de> Deserialize<'de> for Canon {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Canon, D::Error> {
        d.deserialize_any(CanonVisitor)
    }
}

fn write_str(out: &mut String, s: &str) {
    // serde_json's escaping of a plain string cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

fn write(out: &mut String, c: &Canon) {
    match c {
        Canon::Null => out.push_str("null"),
        Canon::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Canon::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Canon::Str(s) => write_str(out, s),
        Canon::Arr(items) => {
            out.push('[');
            for (n, v) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write(out, v);
            }
            out.push(']');
        }
        Canon::Obj(entries) => {
            out.push('{');
            for (n, (k, v)) in entries.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                write(out, v);
            }
            out.push('}');
        }
    }
}

/// The canonical form of a request body (see the module docs).
pub fn canonical(body: &[u8]) -> Vec<u8> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Vec::new();
    }
    match serde_json::from_slice::<Canon>(body) {
        Ok(Canon::Obj(entries)) if entries.is_empty() => Vec::new(),
        Ok(c) => {
            let mut out = String::with_capacity(body.len());
            write(&mut out, &c);
            out.into_bytes()
        }
        Err(_) => body.to_vec(),
    }
}

/// The digest a user action binds: hex SHA-256 of [`canonical`] (prefixed so it can never
/// collide with a digest of raw bytes made elsewhere).
pub fn payload_digest(body: &[u8]) -> String {
    let mut tagged = b"keyfold-payload-v1\n".to_vec();
    tagged.extend_from_slice(&canonical(body));
    sha256_hex(&tagged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) -> bool {
        payload_digest(a.as_bytes()) == payload_digest(b.as_bytes())
    }

    #[test]
    fn spelling_does_not_matter() {
        assert!(same(r#"{"a":"café"}"#, r#"{"a":"caf\u00e9"}"#));
        assert!(same(
            r#"{"a": 1, "b": [true, null]}"#,
            r#"{"a":1,"b":[true,null]}"#
        ));
        assert!(same("", "{}"));
        assert!(same("  ", "{ }"));
        assert!(same(r#"{"a":"\/"}"#, r#"{"a":"/"}"#));
    }

    #[test]
    fn meaning_does() {
        assert!(!same(r#"{"a":1}"#, r#"{"a":2}"#));
        assert!(
            !same(r#"{"a":1,"b":2}"#, r#"{"b":2,"a":1}"#),
            "order is kept"
        );
        assert!(
            !same(r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
            "duplicates are kept"
        );
        assert!(!same(r#"{"a":"1"}"#, r#"{"a":1}"#));
        assert!(!same("[]", "{}"));
        assert!(!same("", "null"));
        // Numbers that could round together are compared byte for byte.
        assert!(!same(r#"{"a":1.0000000000000001}"#, r#"{"a":1.0}"#));
        assert!(!same(
            r#"{"a":123456789012345678901234567890}"#,
            r#"{"a":123456789012345678901234567891}"#
        ));
        assert!(same(r#"{"a":1.5}"#, r#"{"a":1.5}"#));
        assert!(
            !same(r#"{"a":1.5}"#, r#"{"a": 1.5}"#),
            "floats bind exact bytes"
        );
        // Not JSON: exact bytes.
        assert!(same("{oops", "{oops"));
        assert!(!same("{oops", "{oops "));
    }
}
