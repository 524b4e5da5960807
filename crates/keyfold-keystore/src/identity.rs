//! [`NodeIdentity`]: who a signer node is to the other nodes.
//!
//! Each signer node has two long-term key pairs:
//!
//! * an **Ed25519** signing key — everything the node says to other nodes is signed with it, so a
//!   third party holding only the public keys can tell who produced a message (and blame a
//!   cheating signer with evidence);
//! * an **X25519** static key — other nodes encrypt point-to-point messages to it (HPKE), and the
//!   node uses it to authenticate the messages it encrypts (HPKE Auth mode).
//!
//! Two keys rather than one converted key: using one secret in two algorithms (signature and key
//! agreement) is a cross-protocol risk that costs nothing to avoid.
//!
//! The secret halves live only inside this type (zeroized on drop, redacted `Debug`) and reach
//! storage only through the barrier ([`NodeIdentity::to_sealed`], purpose
//! [`Purpose::NodeIdentity`]). The public halves ([`NodePublic`]) are distributed through the
//! cluster configuration; they are the trust anchor of every message check, so the configuration
//! they come from must be authentic (an operator-written file, not something the coordinator
//! hands out).

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::{CryptoRng, OsRng, RngCore};
use serde::{Deserialize, Serialize};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::kek::Kek;
use crate::record::{Aad, Purpose, open, seal};
use crate::secret::Redacted;

/// Key id used in the associated data of a sealed node identity.
pub const NODE_IDENTITY_KEY_ID: &str = "node-identity";
/// Format of the sealed node identity's plaintext: `0x01 || ed25519 seed (32) || x25519 secret (32)`.
const IDENTITY_FORMAT_VERSION: u8 = 1;
const IDENTITY_PLAINTEXT_LEN: usize = 1 + 32 + 32;
/// Associated-data version of the sealed identity record (the plaintext layout above).
const IDENTITY_RECORD_VERSION: u32 = 1;

/// A signer node's long-term secret keys. Secret.
pub struct NodeIdentity {
    pub(crate) sign: SigningKey,
    pub(crate) enc: StaticSecret,
    pub(crate) public: NodePublic,
}

impl NodeIdentity {
    /// Fresh keys from the operating system's RNG.
    pub fn generate() -> NodeIdentity {
        NodeIdentity::generate_with(&mut OsRng)
    }

    /// Fresh keys from the given RNG (deterministic identities for known-answer tests).
    pub(crate) fn generate_with<R: RngCore + CryptoRng>(rng: &mut R) -> NodeIdentity {
        let sign = SigningKey::generate(rng);
        let enc = StaticSecret::random_from_rng(rng);
        NodeIdentity::from_keys(sign, enc)
    }

    fn from_keys(sign: SigningKey, enc: StaticSecret) -> NodeIdentity {
        let public = NodePublic {
            sign_key: sign.verifying_key().to_bytes(),
            enc_key: x25519_dalek::PublicKey::from(&enc).to_bytes(),
        };
        NodeIdentity { sign, enc, public }
    }

    /// The public keys to publish in the cluster configuration.
    pub fn public(&self) -> NodePublic {
        self.public
    }

    /// Seals both secret keys under the node's KEK, bound to `signer_id` (a database that swaps
    /// two signers' identity rows gets [`Error::Tampered`]).
    pub fn to_sealed(&self, kek: &Kek, signer_id: &str) -> Result<Vec<u8>> {
        let mut plaintext = Zeroizing::new(Vec::with_capacity(IDENTITY_PLAINTEXT_LEN));
        plaintext.push(IDENTITY_FORMAT_VERSION);
        plaintext.extend_from_slice(self.sign.as_bytes());
        plaintext.extend_from_slice(self.enc.as_bytes());
        seal(kek, &identity_aad(signer_id), &plaintext)
    }

    /// Opens what [`NodeIdentity::to_sealed`] wrote.
    pub fn from_sealed(kek: &Kek, signer_id: &str, sealed: &[u8]) -> Result<NodeIdentity> {
        let plaintext = open(kek, &identity_aad(signer_id), sealed)?;
        // Authenticated, so a bad layout here is a future format or our own bug, not an attack.
        let bytes: &[u8; IDENTITY_PLAINTEXT_LEN] = plaintext
            .expose_secret()
            .try_into()
            .map_err(|_| Error::Format("node identity has the wrong length"))?;
        if bytes[0] != IDENTITY_FORMAT_VERSION {
            return Err(Error::Format("unsupported node identity format"));
        }
        let mut sign_seed = Zeroizing::new([0u8; 32]);
        sign_seed.copy_from_slice(&bytes[1..33]);
        let mut enc_secret = Zeroizing::new([0u8; 32]);
        enc_secret.copy_from_slice(&bytes[33..65]);
        Ok(NodeIdentity::from_keys(
            SigningKey::from_bytes(&sign_seed),
            StaticSecret::from(*enc_secret),
        ))
    }
}

fn identity_aad(signer_id: &str) -> Aad<'_> {
    Aad::new(
        Purpose::NodeIdentity,
        NODE_IDENTITY_KEY_ID,
        signer_id,
        IDENTITY_RECORD_VERSION,
    )
}

impl zeroize::ZeroizeOnDrop for NodeIdentity {}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("public", &self.public)
            .field("secret_keys", &Redacted)
            .finish()
    }
}

/// A signer node's public keys: what every other node and the coordinator know it by.
///
/// Serde: `{"sign_key": "<64 hex>", "enc_key": "<64 hex>"}`; deserialization rejects keys that
/// are not valid points or are of small order. The fields are public for convenience; the
/// checks run again whenever a key is used.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "NodePublicHex", into = "NodePublicHex")]
pub struct NodePublic {
    /// Ed25519 verifying key (compressed Edwards point).
    pub sign_key: [u8; 32],
    /// X25519 public key (Montgomery u-coordinate).
    pub enc_key: [u8; 32],
}

impl NodePublic {
    /// Builds and validates.
    pub fn new(sign_key: [u8; 32], enc_key: [u8; 32]) -> Result<NodePublic> {
        let public = NodePublic { sign_key, enc_key };
        public.validate()?;
        Ok(public)
    }

    /// Checks both keys: the signing key is a valid, non-weak Ed25519 point; the encryption key is
    /// not of small order (a small-order X25519 key makes every shared secret predictable).
    pub fn validate(&self) -> Result<()> {
        self.verifying_key()?;
        // A clamped scalar is a multiple of the cofactor 8, so it maps every small-order point
        // (and only those) to the all-zero output.
        let probe = x25519_dalek::x25519([0x42; 32], self.enc_key);
        if probe == [0u8; 32] {
            return Err(Error::InvalidPublicKey("encryption key is of small order"));
        }
        Ok(())
    }

    /// The Ed25519 verifying key, checked.
    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey> {
        let key = VerifyingKey::from_bytes(&self.sign_key)
            .map_err(|_| Error::InvalidPublicKey("signing key is not an Ed25519 point"))?;
        if key.is_weak() {
            return Err(Error::InvalidPublicKey("signing key is of small order"));
        }
        Ok(key)
    }
}

impl std::fmt::Debug for NodePublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePublic")
            .field("sign_key", &hex::encode(self.sign_key))
            .field("enc_key", &hex::encode(self.enc_key))
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodePublicHex {
    sign_key: String,
    enc_key: String,
}

impl From<NodePublic> for NodePublicHex {
    fn from(public: NodePublic) -> Self {
        NodePublicHex {
            sign_key: hex::encode(public.sign_key),
            enc_key: hex::encode(public.enc_key),
        }
    }
}

impl TryFrom<NodePublicHex> for NodePublic {
    type Error = Error;

    fn try_from(value: NodePublicHex) -> Result<Self> {
        let mut sign_key = [0u8; 32];
        let mut enc_key = [0u8; 32];
        hex::decode_to_slice(&value.sign_key, &mut sign_key)
            .map_err(|_| Error::InvalidPublicKey("sign_key must be 64 hexadecimal digits"))?;
        hex::decode_to_slice(&value.enc_key, &mut enc_key)
            .map_err(|_| Error::InvalidPublicKey("enc_key must be 64 hexadecimal digits"))?;
        NodePublic::new(sign_key, enc_key)
    }
}
