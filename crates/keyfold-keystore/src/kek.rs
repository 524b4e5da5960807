//! [`Kek`]: the signer node's key-encryption key.
//!
//! One 32-byte key per signer node encrypts everything that node stores (key shares, aux info,
//! presignatures, primes, its own identity key). It lives outside the database — in a file
//! readable only by the signer's user, or in an environment variable (a KMS later) — so that a
//! copy of the database, a backup, or a compromised database server yields only ciphertext.
//!
//! What the type guarantees:
//!
//! * the key bytes are zeroized on drop; `Debug` prints `<redacted>`; no `Display`, no serde;
//! * [`Kek::from_file`] refuses a file that group or others can read (a key that may already
//!   have leaked should not be used silently);
//! * [`Kek::id`] is a short, non-secret fingerprint written into every sealed record, so opening
//!   a record with the wrong key reports [`Error::WrongKek`] (a configuration error) instead of
//!   [`Error::Tampered`] (an attack on storage) — the operator's response to the two differs.
//!
//! The AEAD key is not the KEK itself but `HKDF-SHA256(ikm = KEK, salt = none,
//! info = "keyfold/keystore/v1/record-key")`, so the same KEK can later wrap other things (a KMS
//! data key, a backup) without two uses ever sharing an AEAD key.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::Redacted;

/// Length of a KEK in bytes.
pub const KEK_LEN: usize = 32;
/// Length of a [`KekId`] in bytes.
pub const KEK_ID_LEN: usize = 8;

const KEK_ID_LABEL: &[u8] = b"keyfold/keystore/v1/kek-id";
const RECORD_KEY_INFO: &[u8] = b"keyfold/keystore/v1/record-key";
/// A KEK file holds 64 hex digits and maybe a newline; anything much larger is not a KEK file.
const MAX_KEK_FILE_LEN: u64 = 4096;

/// The key-encryption key of one signer node. Secret.
pub struct Kek {
    key: Zeroizing<[u8; KEK_LEN]>,
    id: KekId,
}

impl Kek {
    /// A fresh random key from the operating system's RNG.
    pub fn generate() -> Kek {
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        OsRng.fill_bytes(&mut key[..]);
        Kek::from_zeroizing(key)
    }

    /// From raw bytes (for a future KMS integration). Refuses the all-zero key, which is always a
    /// placeholder left in a configuration, never a real key.
    pub fn from_bytes(bytes: [u8; KEK_LEN]) -> Result<Kek> {
        let key = Zeroizing::new(bytes);
        if key.iter().all(|b| *b == 0) {
            return Err(Error::InvalidKek(
                "the all-zero key is a placeholder, not a key",
            ));
        }
        Ok(Kek::from_zeroizing(key))
    }

    /// From 64 hexadecimal digits (surrounding whitespace, e.g. a trailing newline, is ignored).
    pub fn from_hex(text: &str) -> Result<Kek> {
        let text = text.trim();
        if text.len() != 2 * KEK_LEN {
            return Err(Error::InvalidKek(
                "expected 64 hexadecimal digits (32 bytes)",
            ));
        }
        let mut key = Zeroizing::new([0u8; KEK_LEN]);
        // The decoder's own error names the offending character: never pass it on.
        hex::decode_to_slice(text, &mut key[..])
            .map_err(|_| Error::InvalidKek("expected 64 hexadecimal digits (32 bytes)"))?;
        if key.iter().all(|b| *b == 0) {
            return Err(Error::InvalidKek(
                "the all-zero key is a placeholder, not a key",
            ));
        }
        Ok(Kek::from_zeroizing(key))
    }

    /// From a file holding the key in hex (as written by [`Kek::generate_file`]).
    ///
    /// On unix the file must not be accessible by group or others (`chmod 600`), otherwise
    /// [`Error::KekFilePermissions`]. The permissions are checked on the opened file, not on the
    /// path, so a swap between check and read is not possible.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Kek> {
        let path = path.as_ref();
        let file_err = |source| Error::KekFile {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(file_err)?;
        let meta = file.metadata().map_err(file_err)?;
        if !meta.is_file() {
            return Err(file_err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(Error::KekFilePermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        if meta.len() > MAX_KEK_FILE_LEN {
            return Err(Error::InvalidKek("the file is too large to hold a key"));
        }
        // Sized up front so reading never reallocates (a reallocation would leave a copy of the
        // key in freed memory).
        let mut text = Zeroizing::new(Vec::with_capacity(MAX_KEK_FILE_LEN as usize + 1));
        file.by_ref()
            .take(MAX_KEK_FILE_LEN + 1)
            .read_to_end(&mut text)
            .map_err(file_err)?;
        let text = std::str::from_utf8(&text)
            .map_err(|_| Error::InvalidKek("the file is not hexadecimal text"))?;
        Kek::from_hex(text)
    }

    /// From an environment variable holding the key in hex.
    ///
    /// Prefer [`Kek::from_file`] in production: a process's environment is copied into child
    /// processes and shown by tools such as `ps e` and `/proc/<pid>/environ`.
    pub fn from_env(var: &str) -> Result<Kek> {
        let text = Zeroizing::new(std::env::var(var).map_err(|_| Error::KekEnv {
            var: var.to_owned(),
        })?);
        Kek::from_hex(&text)
    }

    /// Generates a key and writes it, in hex, to a **new** file created with mode `0600` (on
    /// unix). Fails if the file exists: a KEK is never overwritten, since every record sealed
    /// under it would be lost.
    pub fn generate_file(path: impl AsRef<Path>) -> Result<Kek> {
        use std::io::Write;
        let path = path.as_ref();
        let file_err = |source| Error::KekFile {
            path: path.to_path_buf(),
            source,
        };
        let kek = Kek::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(file_err)?;
        let mut line = kek.to_hex();
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(file_err)?;
        file.sync_all().map_err(file_err)?;
        Ok(kek)
    }

    /// The key in hex (to hand to an operator or a secret manager once, at generation).
    pub fn to_hex(&self) -> Zeroizing<String> {
        // 64 digits + room for a newline: no reallocation when the caller appends one.
        let mut out = Zeroizing::new(String::with_capacity(2 * KEK_LEN + 1));
        for byte in self.key.iter() {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        out
    }

    /// The non-secret fingerprint stored in every record sealed under this key.
    pub fn id(&self) -> KekId {
        self.id
    }

    /// The AEAD for records: XChaCha20-Poly1305 under the HKDF-derived record key.
    pub(crate) fn record_cipher(&self) -> Result<XChaCha20Poly1305> {
        let hkdf = Hkdf::<Sha256>::new(None, &self.key[..]);
        let mut record_key = Zeroizing::new([0u8; 32]);
        hkdf.expand(RECORD_KEY_INFO, &mut record_key[..])
            .map_err(|_| Error::InvalidKek("cannot derive the record key"))?;
        // The cipher keeps its own copy and zeroizes it on drop.
        Ok(XChaCha20Poly1305::new((&*record_key).into()))
    }

    fn from_zeroizing(key: Zeroizing<[u8; KEK_LEN]>) -> Kek {
        let mut hasher = Sha256::new();
        hasher.update(KEK_ID_LABEL);
        hasher.update(&key[..]);
        let digest = hasher.finalize();
        let mut id = [0u8; KEK_ID_LEN];
        id.copy_from_slice(&digest[..KEK_ID_LEN]);
        Kek { key, id: KekId(id) }
    }
}

impl zeroize::ZeroizeOnDrop for Kek {}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("key", &Redacted)
            .finish()
    }
}

/// A short non-secret fingerprint of a [`Kek`]: the first 8 bytes of
/// `SHA-256("keyfold/keystore/v1/kek-id" || key)`. Identifies which key sealed a record; reveals
/// nothing usable about the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KekId(pub [u8; KEK_ID_LEN]);

impl KekId {
    /// The raw bytes.
    pub fn to_bytes(self) -> [u8; KEK_ID_LEN] {
        self.0
    }
}

impl std::fmt::Display for KekId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for KekId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KekId({self})")
    }
}
