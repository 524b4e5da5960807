//! What the coordinator and a signer node say to each other (JSON over HTTP, or in-process
//! in tests).
//!
//! The coordinator starts a session on each chosen node, then relays the nodes' messages to
//! each other until every node reports it is done. Every relayed message is sealed by its
//! sender's node key: point-to-point messages are encrypted to the recipient and signed,
//! broadcasts are signed — so the coordinator can route them but can neither read nor forge
//! them, nor move one to another session, round or recipient.

use keyfold_domain::ports::ActionEvidence;
use keyfold_keystore::NodePublic;
use serde::{Deserialize, Serialize};

/// One signer of a group, at its party index (its position in [`Group::members`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub signer_id: String,
    pub public: NodePublic,
}

/// The signers that share keys: `n = members.len()`, any `threshold` of them can sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub group_id: String,
    pub threshold: u16,
    pub members: Vec<Member>,
}

impl Group {
    pub fn n(&self) -> u16 {
        u16::try_from(self.members.len()).unwrap_or(u16::MAX)
    }

    pub fn index_of(&self, signer_id: &str) -> Option<u16> {
        self.members
            .iter()
            .position(|m| m.signer_id == signer_id)
            .and_then(|i| u16::try_from(i).ok())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    EcdsaAuxInfo,
    EcdsaKeygen,
    EcdsaSign,
    EcdsaPresign,
    Ed25519Dkg,
    Ed25519Sign,
    TaprootDkg,
    TaprootSign,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaAuxInfo => "cggmp24/aux-info",
            Self::EcdsaKeygen => "cggmp24/keygen",
            Self::EcdsaSign => "cggmp24/sign",
            Self::EcdsaPresign => "cggmp24/presign",
            Self::Ed25519Dkg => "frost-ed25519/dkg",
            Self::Ed25519Sign => "frost-ed25519/sign",
            Self::TaprootDkg => "frost-secp256k1-tr/dkg",
            Self::TaprootSign => "frost-secp256k1-tr/sign",
        }
    }

    /// Whether every member of the group takes part (key generation, aux info) rather than
    /// a quorum of signers.
    pub fn whole_group(self) -> bool {
        matches!(
            self,
            Self::EcdsaAuxInfo | Self::EcdsaKeygen | Self::Ed25519Dkg | Self::TaprootDkg
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Hasher {
    Keccak256,
    Sha256,
    DoubleSha256,
}

/// What to sign. Preimages are hashed by each signer itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SignInput {
    /// ECDSA over a given 32-byte digest (hex). Never with a presignature.
    Digest { digest: String },
    /// ECDSA over `hasher(preimage)` (hex).
    Preimage { hasher: Hasher, preimage: String },
    /// Ed25519 / BIP-340 over a message (hex); `taproot` applies the BIP-341 key-path tweak
    /// (with an optional merkle root, hex).
    Message {
        message: String,
        #[serde(default)]
        taproot: bool,
        merkle_root: Option<String>,
    },
}

/// `POST /v1/sessions`: join a protocol run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartSession {
    /// 32 random bytes, hex; unique per run.
    pub session_id: String,
    pub protocol: Protocol,
    pub group: Group,
    /// Key generation: the id to store the new share under. Signing: the key to use.
    pub key_id: Option<String>,
    /// Signing and presigning: the party indices taking part (ascending).
    #[serde(default)]
    pub signers: Vec<u16>,
    pub input: Option<SignInput>,
    /// Presigning: the id to store the presignature under.
    pub presignature_id: Option<String>,
    /// The user action that asked for a signature; recorded by the node.
    pub evidence: Option<ActionEvidence>,
}

/// A relayed protocol message: `body` is a sealed envelope (point-to-point) or a signed
/// message (broadcast), base64url.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    pub from: u16,
    pub to: Option<u16>,
    pub body: String,
}

/// `POST /v1/sessions/{id}/messages`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepRequest {
    pub messages: Vec<WireMessage>,
}

/// A node's answer to start or step: messages to relay and, once finished, the outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepResponse {
    pub outgoing: Vec<WireMessage>,
    pub done: Option<SessionDone>,
}

/// What a finished session produced (secrets stay on the node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum SessionDone {
    AuxInfoStored,
    /// The group public key, hex (SEC1 compressed for secp256k1, 32 bytes for ed25519).
    KeyStored {
        public_key: String,
    },
    /// The presignature's public part, base64url.
    PresignatureStored {
        public: String,
    },
    EcdsaSignature {
        r: String,
        s: String,
        recid: u8,
    },
    /// R‖s, hex.
    SchnorrSignature {
        signature: String,
    },
}

/// `POST /v1/partial-signatures`: spend a presignature on a message this node hashes itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartialSignRequest {
    pub key_id: String,
    pub presignature_id: String,
    pub hasher: Hasher,
    /// Hex.
    pub preimage: String,
    pub evidence: Option<ActionEvidence>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartialSignResponse {
    /// The partial signature, base64url.
    pub partial: String,
}

/// `POST /v1/nonces`: make FROST nonce pairs ahead of time for a key; each is sealed and stored
/// under its id until one signature spends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoncesRequest {
    pub key_id: String,
    pub ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoncesResponse {
    /// The public commitments, base64url, in the order of the ids.
    pub commitments: Vec<String>,
    /// The key's public key package (group key and verifying shares), base64url: what a
    /// coordinator needs to aggregate.
    pub public: String,
}

/// `POST /v1/frost-shares`: spend one nonce pair made ahead of time on a message. Every signer
/// receives the same commitments (one per signer, its own among them).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrostShareRequest {
    pub key_id: String,
    pub nonce_id: String,
    /// Party index → commitments (base64url).
    pub commitments: std::collections::BTreeMap<u16, String>,
    /// A [`SignInput::Message`].
    pub input: SignInput,
    pub evidence: Option<ActionEvidence>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FrostShareResponse {
    /// The signature share, base64url.
    pub share: String,
}

/// The most nonce pairs one [`NoncesRequest`] may ask for.
pub const MAX_NONCES_PER_REQUEST: usize = 256;

/// `GET /v1/info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub signer_id: String,
    pub public: NodePublic,
    pub version: String,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeHealth {
    pub signer_id: String,
    /// Sets of safe primes ready for aux-info generation.
    pub prime_sets: i64,
    /// Whether a prime set is being generated right now.
    pub generating_primes: bool,
    /// Groups this node holds aux info for.
    pub aux_groups: Vec<String>,
    pub sessions: usize,
    /// When this node process started (ms since the epoch, the node's clock). A node burns
    /// its presignatures and FROST nonces when it starts, so a coordinator forgets the ones it
    /// indexed before then (by its own clock: a skew only wastes some or costs a fallback).
    #[serde(default)]
    pub started_at: i64,
}

/// Why a node refused or failed, in terms the coordinator acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum NodeError {
    /// The request is malformed or inconsistent with the node's state.
    #[error("bad request: {message}")]
    BadRequest { message: String },
    /// The session is unknown (finished, expired, or the node restarted).
    #[error("unknown session")]
    UnknownSession,
    /// Not ready for this yet (no primes, no aux info).
    #[error("not ready: {message}")]
    NotReady { message: String },
    /// A stored secret failed its integrity check: this node's data was tampered with.
    #[error("tampered: {message}")]
    Tampered { message: String },
    /// Parties (indices) misbehaved in the protocol.
    #[error("misbehaving parties {parties:?}: {message}")]
    Misbehaving { parties: Vec<u16>, message: String },
    /// The node could not reach or understand the peer (transport), or failed internally.
    #[error("node failure: {message}")]
    Failure { message: String },
}

impl NodeError {
    pub fn bad(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
        }
    }
    pub fn failure(message: impl Into<String>) -> Self {
        Self::Failure {
            message: message.into(),
        }
    }
}
