//! Unambiguous encodings shared by the formats.
//!
//! Rule: every variable-length field is prefixed by its length as a **u64, big-endian**; integers
//! are big-endian; fixed-length fields (keys, nonces, signatures) are written as they are. With
//! that rule two different tuples never encode to the same bytes, so associated data and signed
//! transcripts cannot be confused by shifting bytes from one field into the next
//! (`("ab", "c")` vs `("a", "bc")`).

/// Appends `field` with its u64 big-endian length prefix.
pub(crate) fn put_var(out: &mut Vec<u8>, field: &[u8]) {
    // usize is at most 64 bits on every target Rust supports, so this is lossless.
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

/// Serde helpers: compact bytes as one unpadded base64url string (in every serde format, so the
/// form is the same in JSON and in any binary transport). Parsing always goes through the type's
/// one `from_bytes`.
pub(crate) mod compact_serde {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&URL_SAFE_NO_PAD.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .map_err(|_| D::Error::custom("expected unpadded base64url"))
    }
}
