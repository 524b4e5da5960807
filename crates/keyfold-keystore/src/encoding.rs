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

/// Serde helpers: compact bytes as base64url (no padding) in human-readable formats such as JSON,
/// raw bytes in binary formats. Parsing always goes through the type's one `from_bytes`.
pub(crate) mod compact_serde {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&URL_SAFE_NO_PAD.encode(bytes))
        } else {
            serializer.serialize_bytes(bytes)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            URL_SAFE_NO_PAD
                .decode(text.as_bytes())
                .map_err(|_| D::Error::custom("expected unpadded base64url"))
        } else {
            <serde_bytes_buf::ByteBuf>::deserialize(deserializer).map(|b| b.0)
        }
    }

    /// Accepts bytes as a byte string or as a sequence (formats differ), without `serde_bytes`.
    mod serde_bytes_buf {
        use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};

        pub(crate) struct ByteBuf(pub(crate) Vec<u8>);

        impl<'de> Deserialize<'de> for ByteBuf {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = ByteBuf;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v.to_vec()))
                    }
                    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                        Ok(ByteBuf(v))
                    }
                    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ByteBuf, A::Error> {
                        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                        while let Some(b) = seq.next_element::<u8>()? {
                            out.push(b);
                        }
                        Ok(ByteBuf(out))
                    }
                }
                deserializer.deserialize_byte_buf(V)
            }
        }
    }
}
