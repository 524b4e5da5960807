//! Keys and signatures (`/keys`, `/keys/{keyId}/signatures`, and the wallet signature
//! endpoints, which share the signature shapes). Dfns `generated/keys` and `generated/wallets`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum KeyScheme {
    #[serde(rename = "ECDSA")]
    Ecdsa,
    #[serde(rename = "EdDSA")]
    EdDsa,
    Schnorr,
    #[serde(rename = "DH")]
    Dh,
}

impl KeyScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ecdsa => "ECDSA",
            Self::EdDsa => "EdDSA",
            Self::Schnorr => "Schnorr",
            Self::Dh => "DH",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ECDSA" => Self::Ecdsa,
            "EdDSA" => Self::EdDsa,
            "Schnorr" => Self::Schnorr,
            "DH" => Self::Dh,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyCurve {
    Secp256k1,
    Ed25519,
    Stark,
}

impl KeyCurve {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secp256k1 => "secp256k1",
            Self::Ed25519 => "ed25519",
            Self::Stark => "stark",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "secp256k1" => Self::Secp256k1,
            "ed25519" => Self::Ed25519,
            "stark" => Self::Stark,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum KeyStatus {
    Active,
    Archived,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeriveFrom {
    #[schema(max_length = 512)]
    pub key_id: String,
    #[schema(max_length = 256)]
    pub path: Option<String>,
}

/// `POST /keys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateKeyBody {
    pub scheme: KeyScheme,
    pub curve: KeyCurve,
    #[schema(max_length = 128)]
    pub name: Option<String>,
    pub master_key: Option<bool>,
    pub derive_from: Option<DeriveFrom>,
    #[schema(max_length = 512)]
    pub store_id: Option<String>,
    #[schema(max_length = 512)]
    pub delegate_to: Option<String>,
    pub delay_delegation: Option<bool>,
    /// Makes the creation idempotent (a Keyfold extension of the Dfns body).
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
}

/// A key as every `/keys` endpoint returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyResponse {
    pub id: String,
    pub scheme: KeyScheme,
    pub curve: KeyCurve,
    /// Hex-encoded public key (SEC1 compressed for secp256k1, 32 bytes for ed25519).
    pub public_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub status: KeyStatus,
    pub custodial: bool,
    pub date_created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exported: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_exported: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_deleted: Option<String>,
}

/// `POST /keys/{keyId}/delegate`: hands a key created with `delayDelegation` to an end user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelegateKeyBody {
    #[schema(max_length = 64)]
    pub delegate_to: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelegateKeyResponse {
    pub key_id: String,
    /// Always `Delegated`.
    pub status: String,
}

/// `PUT /keys/{keyId}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateKeyBody {
    #[schema(max_length = 128)]
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListKeysQuery {
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[param(max_length = 512)]
    pub pagination_token: Option<String>,
    #[param(max_length = 512)]
    pub owner: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct KeyIdPath {
    #[param(max_length = 512)]
    pub key_id: String,
}

/// The kinds of signature request Keyfold implements, with their kind-specific fields.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind")]
pub enum SignatureKind {
    /// A 32-byte hash, hex. ECDSA answers `r`, `s`, `recid`; EdDSA/Schnorr `encoded`.
    Hash {
        #[schema(max_length = 66)]
        hash: String,
        /// Schnorr keys: the BIP-341 merkle root to tweak with (`""` for none).
        #[serde(rename = "taprootMerkleRoot", skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 66)]
        taproot_merkle_root: Option<String>,
    },
    /// An arbitrary hex message. EVM wallets sign it as an EIP-191 personal message; raw keys
    /// sign the message itself.
    Message {
        #[schema(max_length = 131072)]
        message: String,
    },
    /// An EIP-191 personal message, hex.
    Eip191 {
        #[schema(max_length = 131072)]
        message: String,
    },
    /// EIP-712 typed data.
    Eip712 {
        types: serde_json::Value,
        domain: serde_json::Value,
        message: serde_json::Value,
        #[serde(rename = "primaryType", skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 256)]
        primary_type: Option<String>,
    },
    /// An unsigned, serialized transaction (hex) for the wallet's network.
    Transaction {
        #[schema(value_type = String)]
        transaction: serde_json::Value,
    },
    /// A PSBT (hex) whose inputs of this wallet get signed.
    Psbt {
        #[schema(max_length = 262144)]
        psbt: String,
    },
}

impl SignatureKind {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hash { .. } => "Hash",
            Self::Message { .. } => "Message",
            Self::Eip191 { .. } => "Eip191",
            Self::Eip712 { .. } => "Eip712",
            Self::Transaction { .. } => "Transaction",
            Self::Psbt { .. } => "Psbt",
        }
    }
}

/// `POST /keys/{keyId}/signatures` and `POST /wallets/{walletId}/signatures`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GenerateSignatureBody {
    #[serde(flatten)]
    pub kind: SignatureKind,
    /// For raw keys: the network whose conventions apply (e.g. `Ethereum` for EIP-191).
    #[schema(max_length = 64)]
    pub network: Option<String>,
    #[schema(max_length = 64)]
    pub blockchain_kind: Option<String>,
    /// Idempotency key: a retry with the same value returns the same signature.
    #[schema(max_length = 128)]
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum SignatureStatus {
    Pending,
    Executing,
    Signed,
    Confirmed,
    Failed,
    Rejected,
}

impl SignatureStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Executing => "Executing",
            Self::Signed => "Signed",
            Self::Confirmed => "Confirmed",
            Self::Failed => "Failed",
            Self::Rejected => "Rejected",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Pending" => Self::Pending,
            "Executing" => Self::Executing,
            "Signed" => Self::Signed,
            "Confirmed" => Self::Confirmed,
            "Failed" => Self::Failed,
            "Rejected" => Self::Rejected,
            _ => return None,
        })
    }
}

/// A signature's components. ECDSA: `r`, `s` (0x-hex, 32 bytes), `recid`, and `encoded`
/// (r‖s‖v, v = 27 + recid). EdDSA/Schnorr: `r`, `s` halves and `encoded` (64 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignatureComponents {
    pub r: String,
    pub s: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recid: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoded: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    pub user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

/// A signature request and (when done) its result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureResponse {
    pub id: String,
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wallet_id: Option<String>,
    pub requester: Requester,
    /// The body as requested.
    pub request_body: serde_json::Value,
    pub status: SignatureStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureComponents>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<Vec<SignatureComponents>>,
    /// The signed artefact where the kind has one (a signed transaction, a PSBT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    pub date_requested: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_signed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Path)]
pub struct KeySignaturePath {
    #[param(max_length = 512)]
    pub key_id: String,
    #[param(max_length = 512)]
    pub signature_id: String,
}
