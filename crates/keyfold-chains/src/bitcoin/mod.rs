//! Bitcoin: P2WPKH addresses for ECDSA keys, P2TR (BIP-341 key path) for Schnorr keys, and the
//! DER encoding Bitcoin scripts expect of an ECDSA signature.
//!
//! Everything here is the `bitcoin` crate (0.32) and its `secp256k1`: this module only maps
//! Keyfold's keys and networks onto it. A Schnorr wallet's key is the untweaked FROST group key
//! (the *internal key*); its address commits to the BIP-341 tweak of that key with no script
//! tree (BIP-86), so a key-path spend is signed with `taprootMerkleRoot: ""`.

pub mod transfer;

use bitcoin::hashes::Hash as _;
use bitcoin::key::{CompressedPublicKey, UntweakedPublicKey};
use bitcoin::psbt::Psbt;
use bitcoin::secp256k1::{PublicKey, Secp256k1, XOnlyPublicKey, ecdsa};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::taproot::TapNodeHash;
use bitcoin::{Address, KnownHrp, ScriptBuf, TxOut};

use crate::error::{Error, Result};
use crate::{KeyScheme, Network};

fn hrp(network: Network) -> Result<KnownHrp> {
    Ok(match network {
        Network::Bitcoin => KnownHrp::Mainnet,
        Network::BitcoinTestnet3 | Network::BitcoinTestnet4 | Network::BitcoinSignet => {
            KnownHrp::Testnets
        }
        other => {
            return Err(Error::invalid(format!("{other} is not a Bitcoin network")));
        }
    })
}

fn public_key(bytes: &[u8]) -> Result<PublicKey> {
    PublicKey::from_slice(bytes).map_err(|_| {
        Error::invalid("a secp256k1 public key must be a valid 33- or 65-byte SEC1 point")
    })
}

/// The internal (untweaked) x-only key of a Schnorr wallet.
pub fn internal_key(public: &[u8]) -> Result<UntweakedPublicKey> {
    Ok(public_key(public)?.x_only_public_key().0)
}

/// The wallet address: P2WPKH for an ECDSA key, P2TR (key path, no script tree) for Schnorr.
pub fn address(network: Network, scheme: KeyScheme, public: &[u8]) -> Result<String> {
    let hrp = hrp(network)?;
    let address = match scheme {
        KeyScheme::Ecdsa => Address::p2wpkh(&CompressedPublicKey(public_key(public)?), hrp),
        KeyScheme::Schnorr => Address::p2tr(
            &Secp256k1::verification_only(),
            internal_key(public)?,
            None,
            hrp,
        ),
        KeyScheme::Eddsa => {
            return Err(Error::invalid("Bitcoin wallets take ECDSA or Schnorr keys"));
        }
    };
    Ok(address.to_string())
}

/// The BIP-341 output key for `internal` with an optional script-tree `merkle_root`: what a
/// key-path signature must verify under.
pub fn taproot_output_key(internal: &[u8; 32], merkle_root: Option<[u8; 32]>) -> Result<[u8; 32]> {
    let key = XOnlyPublicKey::from_slice(internal)
        .map_err(|_| Error::invalid("not an x-only secp256k1 key"))?;
    let root = merkle_root.map(TapNodeHash::from_byte_array);
    let (tweaked, _parity) =
        bitcoin::key::TapTweak::tap_tweak(key, &Secp256k1::verification_only(), root);
    Ok(tweaked.to_x_only_public_key().serialize())
}

/// `(r, s)` as a DER signature with low S (BIP-62/BIP-146: scripts reject high S), hex.
pub fn der_signature(r: &[u8; 32], s: &[u8; 32]) -> Result<String> {
    Ok(format!("0x{}", hex::encode(low_s(r, s)?.serialize_der())))
}

/// `(r, s)` as a secp256k1 signature with S normalized low, as Bitcoin requires.
fn low_s(r: &[u8; 32], s: &[u8; 32]) -> Result<ecdsa::Signature> {
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(r);
    compact[32..].copy_from_slice(s);
    let mut sig = ecdsa::Signature::from_compact(&compact)
        .map_err(|_| Error::Internal("the cluster returned an invalid ECDSA signature".into()))?;
    sig.normalize_s();
    Ok(sig)
}

/// The most inputs one PSBT request may ask the wallet to sign (each is a threshold signature).
pub const MAX_PSBT_INPUTS: usize = 64;

/// One input of a PSBT that the wallet can sign, and what to sign for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsbtInputPlan {
    /// P2WPKH (ECDSA key): the BIP-143 signing preimage, to be hashed with double SHA-256 by
    /// the signers themselves (so ECDSA presignatures can be spent on it safely).
    Wpkh {
        /// Input index.
        index: usize,
        /// The BIP-143 preimage.
        preimage: Vec<u8>,
        /// The sighash type the signature commits to.
        sighash_type: EcdsaSighashType,
    },
    /// P2TR key path (Schnorr key): the BIP-341 sighash, signed with the key tweaked by
    /// `merkle_root` (none: the wallet's own address).
    TaprootKey {
        /// Input index.
        index: usize,
        /// The BIP-341 signature hash.
        sighash: [u8; 32],
        /// The script tree the output commits to, if any.
        merkle_root: Option<[u8; 32]>,
        /// The sighash type the signature commits to.
        sighash_type: TapSighashType,
    },
}

/// Parses a PSBT and works out which inputs `public` (a wallet key of `scheme`) can sign and
/// what each signature commits to. An input is the wallet's when its spent output
/// (`witness_utxo`, or the output in `non_witness_utxo`) pays to the wallet's script.
pub fn plan_psbt(
    bytes: &[u8],
    scheme: KeyScheme,
    public: &[u8],
) -> Result<(Psbt, Vec<PsbtInputPlan>)> {
    let psbt = Psbt::deserialize(bytes)
        .map_err(|e| Error::invalid(format!("psbt is not a valid PSBT: {e}")))?;
    let tx = &psbt.unsigned_tx;
    let mut spent: Vec<Option<TxOut>> = Vec::with_capacity(tx.input.len());
    for (index, (input, txin)) in psbt.inputs.iter().zip(&tx.input).enumerate() {
        let from_prev = input.non_witness_utxo.as_ref().and_then(|prev| {
            (prev.compute_txid() == txin.previous_output.txid)
                .then(|| prev.output.get(txin.previous_output.vout as usize).cloned())
                .flatten()
        });
        // Two accounts of the same spent output must agree, or the amount we commit to is
        // whichever the PSBT's author preferred.
        if let (Some(w), Some(p)) = (&input.witness_utxo, &from_prev)
            && w != p
        {
            return Err(Error::invalid(format!(
                "input {index}: witness_utxo differs from the output in non_witness_utxo"
            )));
        }
        spent.push(input.witness_utxo.clone().or(from_prev));
    }
    // A Taproot signature commits to every spent output; known once, for every input.
    let all: Option<Vec<TxOut>> = spent.iter().cloned().collect();
    let secp = Secp256k1::verification_only();
    let key = public_key(public)?;
    let mut cache = SighashCache::new(tx);
    let mut plans = Vec::new();
    for (index, (input, utxo)) in psbt.inputs.iter().zip(&spent).enumerate() {
        let Some(utxo) = utxo else { continue };
        if plans.len() == MAX_PSBT_INPUTS {
            return Err(Error::invalid(format!(
                "the PSBT asks for more than {MAX_PSBT_INPUTS} signatures from this wallet"
            )));
        }
        match scheme {
            KeyScheme::Ecdsa => {
                let wpkh = CompressedPublicKey(key).wpubkey_hash();
                if utxo.script_pubkey != ScriptBuf::new_p2wpkh(&wpkh) {
                    continue;
                }
                // Only SIGHASH_ALL: with NONE or SINGLE the signature would not commit to the
                // outputs, and whoever holds the PSBT could send these coins anywhere.
                let sighash_type = input
                    .ecdsa_hash_ty()
                    .ok()
                    .filter(|t| *t == EcdsaSighashType::All)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "input {index}: only SIGHASH_ALL is signed (the signature must commit to every output)"
                        ))
                    })?;
                let mut preimage = Vec::new();
                cache
                    .segwit_v0_encode_signing_data_to(
                        &mut preimage,
                        index,
                        &ScriptBuf::p2wpkh_script_code(wpkh),
                        utxo.value,
                        sighash_type,
                    )
                    .map_err(|e| Error::invalid(format!("input {index}: {e}")))?;
                plans.push(PsbtInputPlan::Wpkh {
                    index,
                    preimage,
                    sighash_type,
                });
            }
            KeyScheme::Schnorr => {
                let internal = key.x_only_public_key().0;
                let root = input.tap_merkle_root;
                if utxo.script_pubkey != ScriptBuf::new_p2tr(&secp, internal, root) {
                    continue;
                }
                let Some(all) = all.as_deref() else {
                    return Err(Error::invalid(
                        "a Taproot signature commits to every spent output: each input needs its witness_utxo (or non_witness_utxo)",
                    ));
                };
                let sighash_type = input
                    .taproot_hash_ty()
                    .ok()
                    .filter(|t| matches!(t, TapSighashType::Default | TapSighashType::All))
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "input {index}: only SIGHASH_DEFAULT or SIGHASH_ALL is signed (the signature must commit to every output)"
                        ))
                    })?;
                let sighash = cache
                    .taproot_key_spend_signature_hash(index, &Prevouts::All(all), sighash_type)
                    .map_err(|e| Error::invalid(format!("input {index}: {e}")))?;
                plans.push(PsbtInputPlan::TaprootKey {
                    index,
                    sighash: sighash.to_byte_array(),
                    merkle_root: root.map(|r| r.to_byte_array()),
                    sighash_type,
                });
            }
            KeyScheme::Eddsa => {
                return Err(Error::invalid("Bitcoin wallets take ECDSA or Schnorr keys"));
            }
        }
    }
    if plans.is_empty() {
        return Err(Error::invalid(
            "the PSBT has no input this wallet can sign (no spent output pays to its address)",
        ));
    }
    Ok((psbt, plans))
}

/// A signature for one planned input, as the cluster returned it (already verified).
#[derive(Debug, Clone, Copy)]
pub enum InputSignature {
    /// ECDSA `(r, s)`.
    Ecdsa {
        /// r
        r: [u8; 32],
        /// s
        s: [u8; 32],
    },
    /// BIP-340 signature.
    Schnorr([u8; 64]),
}

/// Puts each signature into its input (`partial_sigs` for P2WPKH, `tap_key_sig` for P2TR) and
/// returns the serialized PSBT. The PSBT is left for the caller to finalize.
pub fn attach_psbt_signatures(
    mut psbt: Psbt,
    public: &[u8],
    plans: &[PsbtInputPlan],
    signatures: &[InputSignature],
) -> Result<Vec<u8>> {
    if plans.len() != signatures.len() {
        return Err(Error::Internal(
            "one signature per PSBT input expected".into(),
        ));
    }
    let key = public_key(public)?;
    let mismatch = || Error::Internal("the signature does not fit the PSBT input".into());
    for (plan, sig) in plans.iter().zip(signatures) {
        match (plan, sig) {
            (
                PsbtInputPlan::Wpkh {
                    index,
                    sighash_type,
                    ..
                },
                InputSignature::Ecdsa { r, s },
            ) => {
                let signature = low_s(r, s)?;
                psbt.inputs
                    .get_mut(*index)
                    .ok_or_else(mismatch)?
                    .partial_sigs
                    .insert(
                        bitcoin::PublicKey::new(key),
                        bitcoin::ecdsa::Signature {
                            signature,
                            sighash_type: *sighash_type,
                        },
                    );
            }
            (
                PsbtInputPlan::TaprootKey {
                    index,
                    sighash_type,
                    ..
                },
                InputSignature::Schnorr(sig),
            ) => {
                let signature = bitcoin::secp256k1::schnorr::Signature::from_slice(sig)
                    .map_err(|_| mismatch())?;
                psbt.inputs
                    .get_mut(*index)
                    .ok_or_else(mismatch)?
                    .tap_key_sig = Some(bitcoin::taproot::Signature {
                    signature,
                    sighash_type: *sighash_type,
                });
            }
            _ => return Err(mismatch()),
        }
    }
    Ok(psbt.serialize())
}

/// A PSBT signed by the wallet, finalized for broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedTransaction {
    /// The network serialization (with witnesses), lower-case hex without prefix: what
    /// `sendrawtransaction` takes.
    pub raw_hex: String,
    /// The txid (display order, hex).
    pub txid: String,
    /// Inputs minus outputs, in satoshis.
    pub fee: u64,
}

/// Whether every input of `bytes` is one the wallet signs: a PSBT Keyfold is asked to
/// broadcast must be complete once the wallet has signed.
pub fn every_input_is_the_wallets(bytes: &[u8], scheme: KeyScheme, public: &[u8]) -> Result<()> {
    let (psbt, plans) = plan_psbt(bytes, scheme, public)?;
    if plans.len() != psbt.inputs.len() {
        return Err(Error::invalid(format!(
            "only {} of the PSBT's {} inputs are this wallet's: a PSBT broadcast by Keyfold must \
             spend only the wallet's outputs (sign it with /signatures and combine it yourself)",
            plans.len(),
            psbt.inputs.len()
        )));
    }
    Ok(())
}

/// Moves each input's signature into its final witness (P2WPKH: `[signature, public key]`;
/// P2TR key path: `[signature]`) and extracts the transaction. Refuses a transaction whose
/// fee rate is absurd (the `bitcoin` crate's bound), which is almost always an amount typo.
pub fn finalize_psbt(bytes: &[u8]) -> Result<FinalizedTransaction> {
    let mut psbt = Psbt::deserialize(bytes)
        .map_err(|e| Error::invalid(format!("psbt is not a valid PSBT: {e}")))?;
    for (index, input) in psbt.inputs.iter_mut().enumerate() {
        let mut witness = bitcoin::Witness::new();
        if let Some(sig) = input.tap_key_sig.take() {
            witness.push(sig.to_vec());
        } else if let [(key, sig)] = input.partial_sigs.iter().collect::<Vec<_>>().as_slice() {
            witness.push(sig.to_vec());
            witness.push(key.to_bytes());
        } else {
            return Err(Error::invalid(format!(
                "input {index} is not signed by the wallet; the PSBT cannot be finalized"
            )));
        }
        input.final_script_witness = Some(witness);
        input.partial_sigs.clear();
        input.sighash_type = None;
        input.bip32_derivation.clear();
        input.tap_key_origins.clear();
        input.tap_internal_key = None;
        input.tap_merkle_root = None;
        input.redeem_script = None;
        input.witness_script = None;
    }
    let fee = psbt
        .fee()
        .map_err(|e| Error::invalid(format!("the PSBT's fee cannot be computed: {e}")))?
        .to_sat();
    let tx = psbt
        .extract_tx()
        .map_err(|e| Error::invalid(format!("refusing to broadcast: {e}")))?;
    Ok(FinalizedTransaction {
        raw_hex: bitcoin::consensus::encode::serialize_hex(&tx),
        txid: tx.compute_txid().to_string(),
        fee,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// BIP-341 wallet test vector 0 (`scriptPubKey` section): no script tree.
    #[test]
    fn bip341_vector_no_script_tree() {
        let internal = h32("d6889cb081036e0faefa3a35157ad71086b123b2b144b649798b494c300a961d");
        assert_eq!(
            hex::encode(taproot_output_key(&internal, None).unwrap()),
            "53a1f6e454df1aa2776a2814a721372d6258050de330b3c6d10ee8f4e0dda343"
        );
        // Either parity of the full key gives the same internal x-only key and address.
        for prefix in [0x02u8, 0x03] {
            let mut full = vec![prefix];
            full.extend_from_slice(&internal);
            assert_eq!(
                address(Network::Bitcoin, KeyScheme::Schnorr, &full).unwrap(),
                "bc1p2wsldez5mud2yam29q22wgfh9439spgduvct83k3pm50fcxa5dps59h4z5"
            );
        }
    }

    /// BIP-86 test vector: the first receiving address of account 0.
    #[test]
    fn bip86_vector() {
        let mut full = vec![0x02];
        full.extend_from_slice(&h32(
            "cc8a4bc64d897bddc5fbc2f670f7a8ba0b386779106cf1223c6fc5d7cd6fc115",
        ));
        assert_eq!(
            address(Network::Bitcoin, KeyScheme::Schnorr, &full).unwrap(),
            "bc1p5cyxnuxmeuwuvkwfem96lqzszd02n6xdcjrs20cac6yqjjwudpxqkedrcr"
        );
    }

    /// BIP-173's P2WPKH examples (the generator point's key), mainnet and testnet.
    #[test]
    fn p2wpkh_vector() {
        let g = hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
            .unwrap();
        assert_eq!(
            address(Network::Bitcoin, KeyScheme::Ecdsa, &g).unwrap(),
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
        );
        for n in [
            Network::BitcoinTestnet3,
            Network::BitcoinTestnet4,
            Network::BitcoinSignet,
        ] {
            assert_eq!(
                address(n, KeyScheme::Ecdsa, &g).unwrap(),
                "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx"
            );
        }
    }

    #[test]
    fn refusals() {
        let g = hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
            .unwrap();
        assert!(
            address(Network::Ethereum, KeyScheme::Ecdsa, &g)
                .unwrap_err()
                .is_bad_input()
        );
        assert!(
            address(Network::Bitcoin, KeyScheme::Eddsa, &g)
                .unwrap_err()
                .is_bad_input()
        );
        assert!(
            address(Network::Bitcoin, KeyScheme::Ecdsa, &[5u8; 33])
                .unwrap_err()
                .is_bad_input()
        );
    }

    #[test]
    fn der_is_low_s() {
        let r = [0x11u8; 32];
        // n - 1: the highest valid S; DER must carry n - (n - 1) = 1.
        let high = h32("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140");
        let der = der_signature(&r, &high).unwrap();
        assert!(der.ends_with("020101"), "{der}");
    }
}
