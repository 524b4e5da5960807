//! The domain's [`Networks`] port: what each Dfns signature kind means on each network.
//!
//! | key / network | `Hash` | `Message` | `Eip191` | `Eip712` | `Transaction` |
//! | --- | --- | --- | --- | --- | --- |
//! | ECDSA on an EVM network | the digest | EIP-191 personal message | EIP-191 | EIP-712 | the unsigned tx; `signedData` = signed tx |
//! | ECDSA raw key (`KeyECDSA` / no network) | the digest | ECDSA-SHA256 of the message | EIP-191 | EIP-712 | — |
//! | EdDSA (`KeyEdDSA`) | Ed25519 over the 32 bytes | Ed25519 over the message | — | — | — |
//! | Schnorr (raw key) | BIP-340 over the 32 bytes, BIP-341 tweak with `taprootMerkleRoot` | BIP-340 over the message | — | — | — |
//! | ECDSA on Bitcoin (P2WPKH) | the digest; `encoded` is DER, low S | — | — | — | — (`Psbt`: BIP-143, one signature per owned input) |
//! | Schnorr on Bitcoin (P2TR) | BIP-340; `taprootMerkleRoot: ""` = key-path spend of the address | — | — | — | — (`Psbt`: BIP-341 key path per owned input) |
//! | EdDSA on Solana | Ed25519 over the 32 bytes | Ed25519 over the message | — | — | the serialized message (legacy or v0); `signedData` = the transaction with the wallet's signature in its slot, `txHash` = its id |
//!
//! Every kind with a preimage is handed to the signers as that preimage plus the hash
//! function, never as a bare digest: they hash it themselves, which is what lets them use
//! presignatures safely. Only `Hash` (the caller already hashed) goes as a digest.

use std::collections::HashMap;
use std::str::FromStr;

use keyfold_domain::DomainError;
use keyfold_domain::model::Key;
use keyfold_domain::ports::{
    BroadcastForm, ClusterSignature, CompletedSignature, Hasher, Networks, PreparedContext,
    PreparedSignature, SignMaterial,
};
use keyfold_types::keys::{KeyCurve, KeyScheme, SignatureComponents, SignatureKind};

use crate::bitcoin::{InputSignature, PsbtInputPlan};
use crate::evm::{self, UnsignedTransaction};
use crate::{Curve, Family, Network};

/// The network rules of a deployment (with its configured chain ids).
#[derive(Debug, Clone, Default)]
pub struct NetworkRules {
    chain_ids: HashMap<Network, u64>,
}

fn bad(e: crate::Error) -> DomainError {
    if e.is_bad_input() {
        DomainError::InvalidInput(e.to_string())
    } else {
        DomainError::Internal(e.to_string())
    }
}

fn hex_bytes(field: &str, s: &str) -> Result<Vec<u8>, DomainError> {
    let t = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(t).map_err(|_| DomainError::invalid(format!("{field} must be hex")))
}

fn to_chain(s: KeyScheme) -> Option<crate::KeyScheme> {
    Some(match s {
        KeyScheme::Ecdsa => crate::KeyScheme::Ecdsa,
        KeyScheme::EdDsa => crate::KeyScheme::Eddsa,
        KeyScheme::Schnorr => crate::KeyScheme::Schnorr,
        KeyScheme::Dh => return None,
    })
}

fn to_chain_curve(c: KeyCurve) -> Option<Curve> {
    Some(match c {
        KeyCurve::Secp256k1 => Curve::Secp256k1,
        KeyCurve::Ed25519 => Curve::Ed25519,
        KeyCurve::Stark => return None,
    })
}

fn from_chain(s: crate::KeyScheme, c: Curve) -> (KeyScheme, KeyCurve) {
    let scheme = match s {
        crate::KeyScheme::Ecdsa => KeyScheme::Ecdsa,
        crate::KeyScheme::Eddsa => KeyScheme::EdDsa,
        crate::KeyScheme::Schnorr => KeyScheme::Schnorr,
    };
    let curve = match c {
        Curve::Secp256k1 => KeyCurve::Secp256k1,
        Curve::Ed25519 => KeyCurve::Ed25519,
    };
    (scheme, curve)
}

impl NetworkRules {
    /// Rules with chain ids overridden per network (e.g. `EthereumSepolia` on a local anvil).
    pub fn new(chain_ids: impl IntoIterator<Item = (String, u64)>) -> Result<Self, DomainError> {
        let mut map = HashMap::new();
        for (name, id) in chain_ids {
            let n = Network::from_str(&name).map_err(bad)?;
            map.insert(n, id);
        }
        Ok(Self { chain_ids: map })
    }

    fn network(&self, name: &str) -> Result<Network, DomainError> {
        Network::from_str(name).map_err(bad)
    }

    fn chain_id(&self, n: Network) -> Option<u64> {
        self.chain_ids
            .get(&n)
            .copied()
            .or_else(|| n.default_chain_id())
    }

    fn message_material(key: &Key, message: Vec<u8>) -> Result<SignMaterial, DomainError> {
        Ok(match key.scheme {
            KeyScheme::Ecdsa => SignMaterial::EcdsaPreimage {
                hasher: Hasher::Sha256,
                preimage: message,
            },
            KeyScheme::EdDsa => SignMaterial::Ed25519 { message },
            KeyScheme::Schnorr => SignMaterial::Schnorr {
                message,
                taproot: None,
            },
            KeyScheme::Dh => return Err(DomainError::invalid("DH keys cannot sign")),
        })
    }
}

fn plain(material: SignMaterial) -> PreparedSignature {
    PreparedSignature {
        materials: vec![material],
        context: PreparedContext::None,
    }
}

impl Networks for NetworkRules {
    fn canonical(&self, network: &str) -> Result<String, DomainError> {
        Ok(self.network(network)?.as_str().to_string())
    }

    fn key_spec(
        &self,
        network: &str,
        scheme: Option<KeyScheme>,
        curve: Option<KeyCurve>,
    ) -> Result<(KeyScheme, KeyCurve), DomainError> {
        let n = self.network(network)?;
        let (ds, dc) = n.default_key_type();
        let wanted_scheme = match scheme {
            Some(s) => {
                to_chain(s).ok_or_else(|| DomainError::invalid("DH keys cannot back a wallet"))?
            }
            None => ds,
        };
        let wanted_curve = match curve {
            Some(c) => to_chain_curve(c)
                .ok_or_else(|| DomainError::invalid("stark keys are not supported"))?,
            None if scheme.is_some() => match wanted_scheme {
                crate::KeyScheme::Eddsa => Curve::Ed25519,
                _ => Curve::Secp256k1,
            },
            None => dc,
        };
        if !n.accepts_key(wanted_scheme, wanted_curve) {
            let (s, c) = from_chain(wanted_scheme, wanted_curve);
            return Err(DomainError::invalid(format!(
                "{} wallets cannot use {} {} keys",
                n.as_str(),
                s.as_str(),
                c.as_str()
            )));
        }
        Ok(from_chain(wanted_scheme, wanted_curve))
    }

    fn address(&self, network: &str, key: &Key) -> Result<Option<String>, DomainError> {
        let n = self.network(network)?;
        match n.family() {
            Family::Evm => {
                let a = evm::address_from_public_key(&key.public_key).map_err(bad)?;
                Ok(Some(evm::checksum(&a)))
            }
            Family::Bitcoin => {
                let scheme = to_chain(key.scheme)
                    .ok_or_else(|| DomainError::invalid("DH keys cannot back a wallet"))?;
                Ok(Some(
                    crate::bitcoin::address(n, scheme, &key.public_key).map_err(bad)?,
                ))
            }
            Family::Solana => Ok(Some(crate::solana::address(&key.public_key).map_err(bad)?)),
            Family::Key => Ok(None),
        }
    }

    fn prepare(
        &self,
        network: Option<&str>,
        key: &Key,
        kind: &SignatureKind,
    ) -> Result<PreparedSignature, DomainError> {
        let net = network.map(|n| self.network(n)).transpose()?;
        let evm = net.is_some_and(|n| n.family() == Family::Evm);
        let bitcoin = net.is_some_and(|n| n.family() == Family::Bitcoin);
        match kind {
            SignatureKind::Hash {
                hash,
                taproot_merkle_root,
            } => {
                let digest: [u8; 32] = hex_bytes("hash", hash)?.try_into().map_err(|_| {
                    DomainError::invalid("hash must be 32 bytes (64 hex characters)")
                })?;
                Ok(plain(match key.scheme {
                    KeyScheme::Ecdsa => {
                        if taproot_merkle_root.is_some() {
                            return Err(DomainError::invalid(
                                "taprootMerkleRoot is for Schnorr keys",
                            ));
                        }
                        if bitcoin {
                            return Ok(PreparedSignature {
                                materials: vec![SignMaterial::EcdsaDigest(digest)],
                                context: PreparedContext::BitcoinDer,
                            });
                        }
                        SignMaterial::EcdsaDigest(digest)
                    }
                    KeyScheme::EdDsa => {
                        if taproot_merkle_root.is_some() {
                            return Err(DomainError::invalid(
                                "taprootMerkleRoot is for Schnorr keys",
                            ));
                        }
                        SignMaterial::Ed25519 {
                            message: digest.to_vec(),
                        }
                    }
                    KeyScheme::Schnorr => SignMaterial::Schnorr {
                        message: digest.to_vec(),
                        taproot: match taproot_merkle_root.as_deref() {
                            None => None,
                            Some("") => Some(None),
                            Some(root) => Some(Some(
                                hex_bytes("taprootMerkleRoot", root)?
                                    .try_into()
                                    .map_err(|_| {
                                        DomainError::invalid("taprootMerkleRoot must be 32 bytes")
                                    })?,
                            )),
                        },
                    },
                    KeyScheme::Dh => return Err(DomainError::invalid("DH keys cannot sign")),
                }))
            }
            SignatureKind::Message { message } => {
                if bitcoin {
                    return Err(DomainError::invalid(
                        "Bitcoin wallets sign Hash and Psbt requests, not Message",
                    ));
                }
                let m = hex_bytes("message", message)?;
                if evm {
                    Ok(plain(SignMaterial::EcdsaPreimage {
                        hasher: Hasher::Keccak256,
                        preimage: evm::message_preimage(&m),
                    }))
                } else {
                    Ok(plain(Self::message_material(key, m)?))
                }
            }
            SignatureKind::Eip191 { message } => {
                if key.scheme != KeyScheme::Ecdsa
                    || net.is_some_and(|n| n.family() != Family::Evm && n.family() != Family::Key)
                {
                    return Err(DomainError::invalid(
                        "Eip191 signatures need an ECDSA key on an EVM network",
                    ));
                }
                let m = hex_bytes("message", message)?;
                Ok(plain(SignMaterial::EcdsaPreimage {
                    hasher: Hasher::Keccak256,
                    preimage: evm::message_preimage(&m),
                }))
            }
            SignatureKind::Eip712 {
                types,
                domain,
                message,
                primary_type,
            } => {
                if key.scheme != KeyScheme::Ecdsa
                    || net.is_some_and(|n| n.family() != Family::Evm && n.family() != Family::Key)
                {
                    return Err(DomainError::invalid(
                        "Eip712 signatures need an ECDSA key on an EVM network",
                    ));
                }
                let mut doc =
                    serde_json::json!({"types": types, "domain": domain, "message": message});
                if let Some(p) = primary_type {
                    doc["primaryType"] = serde_json::Value::String(p.clone());
                }
                let preimage = evm::eip712_preimage(&doc).map_err(bad)?;
                Ok(plain(SignMaterial::EcdsaPreimage {
                    hasher: Hasher::Keccak256,
                    preimage,
                }))
            }
            SignatureKind::Transaction { transaction } => {
                if net.is_some_and(|n| n.family() == Family::Solana) {
                    let hex_tx = transaction.as_str().ok_or_else(|| {
                        DomainError::invalid("transaction must be a hex string for Solana networks")
                    })?;
                    let raw = hex_bytes("transaction", hex_tx)?;
                    let signing =
                        crate::solana::prepare_transaction(&raw, &key.public_key).map_err(bad)?;
                    return Ok(PreparedSignature {
                        materials: vec![SignMaterial::Ed25519 {
                            message: signing.message,
                        }],
                        context: PreparedContext::SolanaTransaction(raw),
                    });
                }
                let Some(n) = net.filter(|n| n.family() == Family::Evm) else {
                    return Err(DomainError::invalid(match net {
                        Some(n) if n.family() == Family::Bitcoin => format!(
                            "Bitcoin wallets sign transactions as Psbt requests ({n}), not Transaction"
                        ),
                        _ => "Transaction signatures need a wallet on a chain network".to_string(),
                    }));
                };
                let hex_tx = transaction.as_str().ok_or_else(|| {
                    DomainError::invalid("transaction must be a hex string for EVM networks")
                })?;
                let tx = UnsignedTransaction::parse_hex(hex_tx).map_err(bad)?;
                if let Some(id) = self.chain_id(n) {
                    tx.ensure_chain_id(id).map_err(bad)?;
                }
                let preimage = tx.signing_preimage();
                Ok(PreparedSignature {
                    materials: vec![SignMaterial::EcdsaPreimage {
                        hasher: Hasher::Keccak256,
                        preimage: preimage.clone(),
                    }],
                    context: PreparedContext::EvmTransaction(hex_bytes("transaction", hex_tx)?),
                })
            }
            SignatureKind::Psbt { psbt } => {
                if !bitcoin {
                    return Err(DomainError::invalid(
                        "Psbt signatures are for Bitcoin wallets",
                    ));
                }
                let raw = hex_bytes("psbt", psbt)?;
                let (_, plans) =
                    crate::bitcoin::plan_psbt(&raw, chain_scheme(key)?, &key.public_key)
                        .map_err(bad)?;
                let materials = plans
                    .into_iter()
                    .map(|p| match p {
                        PsbtInputPlan::Wpkh { preimage, .. } => SignMaterial::EcdsaPreimage {
                            hasher: Hasher::DoubleSha256,
                            preimage,
                        },
                        PsbtInputPlan::TaprootKey {
                            sighash,
                            merkle_root,
                            ..
                        } => SignMaterial::Schnorr {
                            message: sighash.to_vec(),
                            taproot: Some(merkle_root),
                        },
                    })
                    .collect();
                Ok(PreparedSignature {
                    materials,
                    context: PreparedContext::BitcoinPsbt(raw),
                })
            }
        }
    }

    fn complete(
        &self,
        prepared: &PreparedSignature,
        key: &Key,
        signatures: &[ClusterSignature],
    ) -> Result<CompletedSignature, DomainError> {
        if signatures.len() != prepared.materials.len() || signatures.is_empty() {
            return Err(DomainError::internal(
                "one signature per prepared material expected",
            ));
        }
        let components = signatures
            .iter()
            .map(|sig| components(&prepared.context, sig))
            .collect::<Result<Vec<_>, _>>()?;
        let (signed_data, tx_hash) = match (&prepared.context, signatures) {
            (PreparedContext::EvmTransaction(raw), [ClusterSignature::Ecdsa { r, s, recid }]) => {
                let tx = UnsignedTransaction::parse(raw).map_err(bad)?;
                let signed = tx
                    .attach_signature((*r).into(), (*s).into(), *recid)
                    .map_err(bad)?;
                (Some(signed.raw_hex()), Some(evm::to_hex(signed.hash)))
            }
            (PreparedContext::EvmTransaction(_), _) => {
                return Err(DomainError::internal(
                    "an EVM transaction takes one ECDSA signature",
                ));
            }
            (PreparedContext::BitcoinPsbt(raw), _) => {
                let (psbt, plans) =
                    crate::bitcoin::plan_psbt(raw, chain_scheme(key)?, &key.public_key)
                        .map_err(bad)?;
                let sigs: Vec<InputSignature> = signatures
                    .iter()
                    .map(|s| match s {
                        ClusterSignature::Ecdsa { r, s, .. } => {
                            InputSignature::Ecdsa { r: *r, s: *s }
                        }
                        ClusterSignature::Schnorr(sig) => InputSignature::Schnorr(*sig),
                    })
                    .collect();
                let signed =
                    crate::bitcoin::attach_psbt_signatures(psbt, &key.public_key, &plans, &sigs)
                        .map_err(bad)?;
                (Some(evm::to_hex(&signed)), None)
            }
            (PreparedContext::SolanaTransaction(raw), [ClusterSignature::Schnorr(sig)]) => {
                let (signed, id) = crate::solana::prepare_transaction(raw, &key.public_key)
                    .and_then(|s| s.attach(sig))
                    .map_err(bad)?;
                (Some(evm::to_hex(&signed)), id)
            }
            (PreparedContext::SolanaTransaction(_), _) => {
                return Err(DomainError::internal(
                    "a Solana transaction takes one Ed25519 signature",
                ));
            }
            (PreparedContext::None | PreparedContext::BitcoinDer, _) => (None, None),
        };
        Ok(CompletedSignature {
            components,
            signed_data,
            tx_hash,
        })
    }

    fn check_broadcastable(
        &self,
        network: &str,
        key: &Key,
        kind: &SignatureKind,
    ) -> Result<(), DomainError> {
        let n = self.network(network)?;
        match (n.family(), kind) {
            (Family::Evm, SignatureKind::Transaction { .. }) => Ok(()),
            (Family::Bitcoin, SignatureKind::Psbt { psbt }) => {
                let raw = hex_bytes("psbt", psbt)?;
                crate::bitcoin::every_input_is_the_wallets(
                    &raw,
                    chain_scheme(key)?,
                    &key.public_key,
                )
                .map_err(bad)
            }
            (Family::Solana, SignatureKind::Transaction { transaction }) => {
                let hex_tx = transaction.as_str().ok_or_else(|| {
                    DomainError::invalid("transaction must be a hex string for Solana networks")
                })?;
                let raw = hex_bytes("transaction", hex_tx)?;
                let signing =
                    crate::solana::prepare_transaction(&raw, &key.public_key).map_err(bad)?;
                if signing.only_the_wallet_is_missing() {
                    Ok(())
                } else {
                    Err(DomainError::invalid(
                        "the transaction still needs other signers' signatures; sign it with \
                         /signatures and broadcast it yourself once complete",
                    ))
                }
            }
            (Family::Bitcoin, _) => Err(DomainError::invalid(format!(
                "{n} transactions are broadcast as kind Psbt"
            ))),
            (Family::Evm | Family::Solana, _) => Err(DomainError::invalid(format!(
                "{n} transactions are broadcast as kind Transaction"
            ))),
            (Family::Key, _) => Err(DomainError::invalid(format!(
                "{n} is a raw key: there is no chain to broadcast to"
            ))),
        }
    }

    fn broadcast_form(
        &self,
        network: &str,
        signed_data: &str,
        tx_hash: Option<&str>,
    ) -> Result<BroadcastForm, DomainError> {
        let n = self.network(network)?;
        let missing = || DomainError::internal("a signed transaction without its id");
        match n.family() {
            Family::Bitcoin => {
                let f =
                    crate::bitcoin::finalize_psbt(&hex_bytes("psbt", signed_data)?).map_err(bad)?;
                Ok(BroadcastForm {
                    raw: f.raw_hex,
                    tx_hash: f.txid,
                    fee: Some(f.fee.to_string()),
                })
            }
            Family::Evm | Family::Solana => Ok(BroadcastForm {
                raw: signed_data.to_string(),
                tx_hash: tx_hash.ok_or_else(missing)?.to_string(),
                fee: None,
            }),
            Family::Key => Err(DomainError::invalid(format!(
                "{n} is a raw key: there is no chain to broadcast to"
            ))),
        }
    }
}

fn chain_scheme(key: &Key) -> Result<crate::KeyScheme, DomainError> {
    to_chain(key.scheme).ok_or_else(|| DomainError::invalid("DH keys cannot sign"))
}

/// The API's `signature` object for one cluster signature: `encoded` is r‖s‖v for ECDSA
/// (DER on Bitcoin) and the 64-byte signature for Schnorr and EdDSA.
fn components(
    context: &PreparedContext,
    signature: &ClusterSignature,
) -> Result<SignatureComponents, DomainError> {
    Ok(match signature {
        ClusterSignature::Ecdsa { r, s, recid } => {
            let encoded = match context {
                PreparedContext::BitcoinDer | PreparedContext::BitcoinPsbt(_) => {
                    crate::bitcoin::der_signature(r, s).map_err(bad)?
                }
                _ => evm::encode_signature((*r).into(), (*s).into(), *recid).map_err(bad)?,
            };
            SignatureComponents {
                r: evm::to_hex(r),
                s: evm::to_hex(s),
                recid: Some(*recid),
                encoded: Some(encoded),
            }
        }
        ClusterSignature::Schnorr(sig) => SignatureComponents {
            r: evm::to_hex(&sig[..32]),
            s: evm::to_hex(&sig[32..]),
            recid: None,
            encoded: Some(evm::to_hex(sig)),
        },
    })
}
