//! The encryption barrier: every secret a signer node stores passes through [`seal`] and comes
//! back through [`open`].
//!
//! # Threat model
//!
//! The signer's database (SQLite file or PostgreSQL), its backups and whoever administers them
//! are **untrusted**: they may read every row, change any byte, delete rows, copy a row over
//! another, or put back an old row. The [`Kek`] is the only thing they do not have. Against that:
//!
//! | attack | what stops it |
//! | --- | --- |
//! | read a share | XChaCha20-Poly1305 under a key derived from the KEK |
//! | flip a byte anywhere (header, nonce, ciphertext, tag) | the AEAD tag; the header is part of the associated data → [`Error::Tampered`] (or [`Error::Format`] / [`Error::WrongKek`] for the magic, version and key-id fields, which are read before decryption) |
//! | copy key A's share into key B's row, signer 1's into signer 2's, a presignature into a key-share column | the associated data [`Aad`] (purpose, key id, signer id, version) is authenticated but not stored: the caller rebuilds it from the row it *meant* to read → [`Error::Tampered`] |
//! | put back the share of an older refresh epoch | `Aad::version`: the caller asks for the version it expects → [`Error::Tampered`] |
//! | downgrade to an older, weaker format | the format version byte is authenticated too |
//! | open with the wrong KEK after a misconfiguration | the KEK id in the header → [`Error::WrongKek`], reported as configuration, not as an attack |
//! | nonce reuse across millions of records | 24-byte random nonces (XChaCha): collisions are negligible without any counter state to keep consistent |
//!
//! Not covered here: *deleting* a row, or rolling back the whole database to an older consistent
//! snapshot — detecting that needs state outside the database (the coordinator's view of share
//! versions, or a monotonic counter); see the README.
//!
//! # Format v1
//!
//! ```text
//! offset  len  field
//! 0       4    magic "KFSR"
//! 4       1    format version = 0x01
//! 5       8    KEK id
//! 13      24   nonce (random per record)
//! 37      n    XChaCha20-Poly1305 ciphertext of the plaintext
//! 37+n    16   Poly1305 tag
//! ```
//!
//! Associated data = bytes `0..13` (magic, version, KEK id) `||` purpose code (u8) `||` key id
//! `||` signer id `||` version (u32 BE), with key id and signer id each prefixed by their length
//! as u64 BE. The AEAD key is derived from the KEK (see [`Kek`]).

use chacha20poly1305::{AeadInPlace, Tag, XNonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::encoding::put_var;
use crate::error::{Error, Result};
use crate::kek::{KEK_ID_LEN, Kek, KekId};
use crate::secret::SecretBytes;

/// First four bytes of every sealed record.
pub const RECORD_MAGIC: [u8; 4] = *b"KFSR";
/// The record format this version writes (and the only one it reads so far).
pub const RECORD_FORMAT_VERSION: u8 = 1;

const HEADER_LEN: usize = RECORD_MAGIC.len() + 1 + KEK_ID_LEN; // 13
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Bytes a sealed record adds to its plaintext (header, nonce, tag): 53.
pub const RECORD_OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// What a sealed record holds. Part of the associated data, so a record of one purpose can never
/// be opened as another (a presignature passed off as a key share, say).
///
/// The codes are part of the format: never renumber, only add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Purpose {
    /// A threshold key share (CGGMP24 or FROST).
    KeyShare = 1,
    /// CGGMP24 auxiliary info (Paillier secret key, ring-Pedersen parameters).
    AuxInfo = 2,
    /// A CGGMP24 presignature (use once).
    Presignature = 3,
    /// Pregenerated safe primes for aux-info generation.
    Primes = 4,
    /// The node's own identity keys ([`crate::NodeIdentity`]).
    NodeIdentity = 5,
    /// Persisted state of an unfinished protocol session.
    ProtocolState = 6,
    /// A FROST nonce pair made ahead of time (use once).
    FrostNonces = 7,
}

impl Purpose {
    /// The byte written into the associated data.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The purpose with this code, if any.
    pub fn from_code(code: u8) -> Option<Purpose> {
        Some(match code {
            1 => Purpose::KeyShare,
            2 => Purpose::AuxInfo,
            3 => Purpose::Presignature,
            4 => Purpose::Primes,
            5 => Purpose::NodeIdentity,
            6 => Purpose::ProtocolState,
            7 => Purpose::FrostNonces,
            _ => return None,
        })
    }
}

/// Associated data: what a record is bound to. Authenticated, **not stored** in the record: the
/// caller rebuilds it from the row it asked for (the key id it looked up, its own signer id, the
/// share version it expects), which is exactly what makes a moved or replayed record fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aad<'a> {
    /// What the record holds.
    pub purpose: Purpose,
    /// The key (wallet key, presignature id, ...) this record belongs to.
    pub key_id: &'a str,
    /// The signer node that owns the record.
    pub signer_id: &'a str,
    /// The record's version (e.g. the share's refresh epoch).
    pub version: u32,
}

impl<'a> Aad<'a> {
    /// Bundles the parts.
    pub fn new(purpose: Purpose, key_id: &'a str, signer_id: &'a str, version: u32) -> Self {
        Aad {
            purpose,
            key_id,
            signer_id,
            version,
        }
    }

    /// The associated data fed to the AEAD: the record header, then these fields.
    fn associated_data(&self, header: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            header.len() + 1 + 16 + self.key_id.len() + self.signer_id.len() + 4,
        );
        out.extend_from_slice(header);
        out.push(self.purpose.code());
        put_var(&mut out, self.key_id.as_bytes());
        put_var(&mut out, self.signer_id.as_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out
    }
}

/// Encrypts `plaintext` under `kek`, bound to `aad`, with a fresh random nonce.
pub fn seal(kek: &Kek, aad: &Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.try_fill_bytes(&mut nonce).map_err(|_| Error::Rng)?;
    seal_with_nonce(kek, aad, plaintext, &nonce)
}

/// [`seal`] with a caller-chosen nonce. Only for known-answer tests: a repeated nonce under the
/// same key destroys confidentiality, which is why this is not public.
pub(crate) fn seal_with_nonce(
    kek: &Kek,
    aad: &Aad<'_>,
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Result<Vec<u8>> {
    let cipher = kek.record_cipher()?;
    // Zeroizing while it holds plaintext: if encryption fails, the copy is wiped on drop.
    let mut out = Zeroizing::new(Vec::with_capacity(RECORD_OVERHEAD + plaintext.len()));
    out.extend_from_slice(&RECORD_MAGIC);
    out.push(RECORD_FORMAT_VERSION);
    out.extend_from_slice(&kek.id().to_bytes());
    let ad = aad.associated_data(&out[..HEADER_LEN]);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(
            &XNonce::from(*nonce),
            &ad,
            &mut out[HEADER_LEN + NONCE_LEN..],
        )
        .map_err(|_| Error::TooLarge("plaintext is too large for one record"))?;
    out.extend_from_slice(&tag);
    // Now ciphertext only: hand it out without the zeroizing wrapper.
    Ok(std::mem::take(&mut *out))
}

/// Decrypts a record sealed by [`seal`], checking that it is bound to `aad`.
///
/// Errors: [`Error::Format`] (truncated, not a record, unknown format version),
/// [`Error::WrongKek`] (sealed under another key; nothing decrypted), [`Error::Tampered`]
/// (modified, or bound to other associated data).
pub fn open(kek: &Kek, aad: &Aad<'_>, sealed: &[u8]) -> Result<SecretBytes> {
    let parts = Parts::parse(sealed)?;
    if parts.kek_id != kek.id() {
        return Err(Error::WrongKek {
            expected: kek.id(),
            found: parts.kek_id,
        });
    }
    let cipher = kek.record_cipher()?;
    let ad = aad.associated_data(parts.header);
    let mut buffer = Zeroizing::new(parts.ciphertext.to_vec());
    cipher
        .decrypt_in_place_detached(
            &XNonce::from(*parts.nonce),
            &ad,
            &mut buffer[..],
            &Tag::from(*parts.tag),
        )
        .map_err(|_| Error::Tampered)?;
    Ok(SecretBytes::from(buffer))
}

/// Re-encrypts a record for KEK rotation: opens it with `old` and seals it under `new` with a
/// fresh nonce. Idempotent: a record already under `new` is opened with `new` and sealed again,
/// so a rotation job that crashed half-way can simply run again over every row.
pub fn reseal(old: &Kek, new: &Kek, aad: &Aad<'_>, sealed: &[u8]) -> Result<Vec<u8>> {
    let found = sealed_kek_id(sealed)?;
    let plaintext = if found == old.id() {
        open(old, aad, sealed)?
    } else if found == new.id() {
        open(new, aad, sealed)?
    } else {
        return Err(Error::WrongKek {
            expected: old.id(),
            found,
        });
    };
    seal(new, aad, plaintext.expose_secret())
}

/// The id of the KEK a record was sealed under, read from its header without decrypting (for a
/// rotation job selecting the rows it still has to reseal, or for an error message).
pub fn sealed_kek_id(sealed: &[u8]) -> Result<KekId> {
    Parts::parse(sealed).map(|p| p.kek_id)
}

/// A record split into its fields (lengths checked).
struct Parts<'a> {
    header: &'a [u8],
    kek_id: KekId,
    nonce: &'a [u8; NONCE_LEN],
    ciphertext: &'a [u8],
    tag: &'a [u8; TAG_LEN],
}

impl<'a> Parts<'a> {
    fn parse(sealed: &'a [u8]) -> Result<Parts<'a>> {
        let Some((magic, rest)) = sealed.split_first_chunk::<4>() else {
            return Err(Error::Format("sealed record is truncated"));
        };
        if *magic != RECORD_MAGIC {
            return Err(Error::Format("not a sealed record (bad magic)"));
        }
        let Some((version, rest)) = rest.split_first() else {
            return Err(Error::Format("sealed record is truncated"));
        };
        if *version != RECORD_FORMAT_VERSION {
            return Err(Error::Format("unsupported sealed record format version"));
        }
        let Some((kek_id, rest)) = rest.split_first_chunk::<KEK_ID_LEN>() else {
            return Err(Error::Format("sealed record is truncated"));
        };
        let Some((nonce, rest)) = rest.split_first_chunk::<NONCE_LEN>() else {
            return Err(Error::Format("sealed record is truncated"));
        };
        let Some((ciphertext, tag)) = rest.split_last_chunk::<TAG_LEN>() else {
            return Err(Error::Format("sealed record is truncated"));
        };
        Ok(Parts {
            header: &sealed[..HEADER_LEN],
            kek_id: KekId(*kek_id),
            nonce,
            ciphertext,
            tag,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn kat_kek() -> Kek {
        Kek::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f").unwrap()
    }

    const KAT_NONCE: [u8; NONCE_LEN] = *b"keyfold-kat-nonce-24byte";

    /// Known answer: a fixed KEK, nonce, associated data and plaintext give these exact bytes.
    /// If this fails, the format or the crypto changed and every stored record is at risk —
    /// do not update the constant; add a new format version instead.
    ///
    /// The expected bytes were cross-checked independently of this crate (Python: `hashlib` for
    /// the KEK id, `hmac` for HKDF-SHA256, libsodium via PyNaCl for XChaCha20-Poly1305); see
    /// `tests/fixtures/kat_record_v1.py`.
    #[test]
    fn known_answer_v1() {
        let kek = kat_kek();
        assert_eq!(kek.id().to_string(), KAT_KEK_ID);
        let aad = Aad::new(Purpose::KeyShare, "key-01", "signer-1", 7);
        let sealed = seal_with_nonce(&kek, &aad, b"a threshold key share", &KAT_NONCE).unwrap();
        assert_eq!(hex::encode(&sealed), KAT_SEALED);
        assert_eq!(
            open(&kek, &aad, &sealed).unwrap().expose_secret(),
            b"a threshold key share"
        );
    }

    const KAT_KEK_ID: &str = "896df77912b580ad";
    const KAT_SEALED: &str = concat!(
        "4b465352",                                         // magic "KFSR"
        "01",                                               // format version
        "896df77912b580ad",                                 // KEK id
        "6b6579666f6c642d6b61742d6e6f6e63652d323462797465", // nonce
        "60369c7010ed1edbb0549237d34a0524dd9bbe2923",       // ciphertext
        "fba9800db3ef40ba4d93e116e2a64745",                 // tag
    );

    #[test]
    fn associated_data_layout() {
        let aad = Aad::new(Purpose::AuxInfo, "k", "s1", 0x0102_0304);
        let ad = aad.associated_data(b"HDR");
        let mut expected = b"HDR".to_vec();
        expected.push(2);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(b"k");
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]);
        expected.extend_from_slice(b"s1");
        expected.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(ad, expected);
        // Shifting bytes between fields changes the encoding.
        let shifted = Aad::new(Purpose::AuxInfo, "ks", "1", 0x0102_0304).associated_data(b"HDR");
        assert_ne!(ad, shifted);
    }

    #[test]
    fn purpose_codes_round_trip() {
        for code in 0..=255u8 {
            if let Some(p) = Purpose::from_code(code) {
                assert_eq!(p.code(), code);
            }
        }
        assert_eq!(Purpose::from_code(1), Some(Purpose::KeyShare));
        assert_eq!(Purpose::from_code(6), Some(Purpose::ProtocolState));
        assert_eq!(Purpose::from_code(7), Some(Purpose::FrostNonces));
        assert_eq!(Purpose::from_code(8), None);
    }
}
