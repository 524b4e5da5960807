//! Solana: an address is the wallet's Ed25519 public key in base58; a `Transaction` signature
//! request carries a serialized transaction (legacy or v0, wire format, signature slots
//! zeroed or partly filled), the wallet signs the message bytes and its signature goes into
//! the slot of its key among the required signers.
//!
//! Parsing and encoding are the Solana crates' (`solana-transaction` with its bincode wire
//! format, `solana-message`); this module adds only the checks and the slot lookup.

use bincode::Options as _;
use solana_transaction::versioned::VersionedTransaction;

use crate::error::{Error, Result};

/// The largest transaction the network accepts (`PACKET_DATA_SIZE`: 1280 − 48 bytes).
pub const MAX_TRANSACTION_BYTES: u64 = 1232;

/// A parsed transaction that `public` must sign, and what it signs.
#[derive(Debug)]
pub struct SolanaSigning {
    transaction: VersionedTransaction,
    slot: usize,
    /// The serialized message: the exact bytes the Ed25519 signature covers.
    pub message: Vec<u8>,
}

fn wire() -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_limit(MAX_TRANSACTION_BYTES)
        .with_fixint_encoding()
        .reject_trailing_bytes()
}

/// Parses a wire-format transaction and finds the wallet key among its required signers.
pub fn prepare_transaction(bytes: &[u8], public: &[u8]) -> Result<SolanaSigning> {
    let transaction: VersionedTransaction = wire()
        .deserialize(bytes)
        .map_err(|e| Error::invalid(format!("transaction is not a Solana transaction: {e}")))?;
    transaction
        .sanitize()
        .map_err(|e| Error::invalid(format!("transaction is malformed: {e}")))?;
    let required = usize::from(transaction.message.header().num_required_signatures);
    let slot = transaction.message.static_account_keys()[..required]
        .iter()
        .position(|k| k.as_ref() == public)
        .ok_or_else(|| {
            Error::invalid("the transaction does not require this wallet's signature")
        })?;
    let message = transaction.message.serialize();
    Ok(SolanaSigning {
        transaction,
        slot,
        message,
    })
}

impl SolanaSigning {
    /// Whether every required signature other than the wallet's is already present, so the
    /// transaction is complete once the wallet signs.
    pub fn only_the_wallet_is_missing(&self) -> bool {
        let required = usize::from(self.transaction.message.header().num_required_signatures);
        self.transaction
            .signatures
            .iter()
            .take(required)
            .enumerate()
            .all(|(i, s)| i == self.slot || s.as_ref().iter().any(|b| *b != 0))
    }

    /// The transaction with `signature` in the wallet's slot, serialized, and its id (the
    /// base58 first signature, which is what explorers and RPC call the transaction) — `None`
    /// while the fee payer's slot is still empty (the wallet is a co-signer).
    pub fn attach(mut self, signature: &[u8; 64]) -> Result<(Vec<u8>, Option<String>)> {
        let slot = self
            .transaction
            .signatures
            .get_mut(self.slot)
            .ok_or_else(|| Error::Internal("signature slot out of range".into()))?;
        *slot = solana_transaction::Signature::from(*signature);
        let bytes = wire()
            .serialize(&self.transaction)
            .map_err(|e| Error::Internal(format!("encoding the transaction: {e}")))?;
        let id = self
            .transaction
            .signatures
            .first()
            .filter(|s| s.as_ref().iter().any(|b| *b != 0))
            .map(|s| s.to_string());
        Ok((bytes, id))
    }
}

/// The base58 address of a 32-byte Ed25519 public key.
pub fn address(public: &[u8]) -> Result<String> {
    let key: [u8; 32] = public
        .try_into()
        .map_err(|_| Error::invalid("an Ed25519 public key must be 32 bytes"))?;
    Ok(bs58::encode(key).into_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn well_known_addresses() {
        // The system program (all zeros) and the SPL token program id.
        assert_eq!(
            address(&[0u8; 32]).unwrap(),
            "11111111111111111111111111111111"
        );
        let token = hex::decode("06ddf6e1d765a193d9cbe146ceeb79ac1cb485ed5f5b37913a8cf5857eff00a9")
            .unwrap();
        assert_eq!(
            address(&token).unwrap(),
            "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
        );
        assert!(address(&[1u8; 31]).unwrap_err().is_bad_input());
    }

    #[test]
    fn malformed_transactions_are_bad_input() {
        let key = [3u8; 32];
        for bytes in [&[][..], &[1, 2][..], &[0u8; 2000][..]] {
            assert!(prepare_transaction(bytes, &key).unwrap_err().is_bad_input());
        }
    }
}
