//! Solana: an address is the wallet's Ed25519 public key in base58; a `Transaction` signature
//! request carries a serialized transaction (legacy or v0, wire format, signature slots
//! zeroed or partly filled), the wallet signs the message bytes and its signature goes into
//! the slot of its key among the required signers.
//!
//! Parsing and encoding are the Solana crates' (`solana-transaction` with its bincode wire
//! format, `solana-message`); this module adds only the checks and the slot lookup.

use std::str::FromStr as _;

use bincode::Options as _;
use solana_compute_budget_interface::ComputeBudgetInstruction;
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

/// The base fee of one signature, in lamports (fixed by the protocol; a transfer has one).
pub const LAMPORTS_PER_SIGNATURE: u64 = 5000;

/// A base58 account address (32 bytes), or a 400 naming `field`.
pub fn parse_address(field: &str, s: &str) -> Result<[u8; 32]> {
    let bad = || {
        Error::invalid(format!(
            "{field} is not a Solana address (32 bytes, base58)"
        ))
    };
    let bytes = bs58::decode(s).into_vec().map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// The compute units a transfer asks for when it pays a priority fee (the fee is price ×
/// limit, so the limit is set rather than left at the 200 000 default). A System transfer
/// takes 150, each compute-budget instruction 150, a short memo a few thousand: ample.
pub const TRANSFER_COMPUTE_UNITS: u32 = 30_000;

/// The priority fee, in lamports, of a transfer at `compute_unit_price` micro-lamports per
/// compute unit (rounded up, as the runtime does).
pub fn priority_fee(compute_unit_price: u64) -> u64 {
    let micro = u128::from(compute_unit_price) * u128::from(TRANSFER_COMPUTE_UNITS);
    u64::try_from(micro.div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// The SPL Memo program (v2), deployed on every Solana cluster.
const MEMO_PROGRAM: solana_pubkey::Pubkey =
    solana_pubkey::Pubkey::from_str_const("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");

/// The unsigned wire bytes of a legacy transaction paying `lamports` from `from` (also the
/// fee payer, the one signer) to `to` with the System program, valid until `blockhash`
/// expires, with `memo` (the transfer's id) as a Memo-program instruction, and — when
/// `compute_unit_price` (micro-lamports) is not 0 — the compute-budget instructions of a
/// priority fee. The memo makes
/// every transfer a distinct message: a validator runs a message once per blockhash, so two
/// identical payments requested together would otherwise be one payment. Built by
/// `solana-message` and `solana-system-interface` (a memo's data is its UTF-8 text, signed by
/// no account); the signature slot is zeroed for [`prepare_transaction`] to fill.
pub fn unsigned_transfer(
    from: [u8; 32],
    to: [u8; 32],
    lamports: u64,
    blockhash: &str,
    memo: &str,
    compute_unit_price: u64,
) -> Result<Vec<u8>> {
    let hash = solana_hash::Hash::from_str(blockhash)
        .map_err(|_| Error::Internal("the node's blockhash is not base58 of 32 bytes".into()))?;
    let from = solana_pubkey::Pubkey::new_from_array(from);
    let to = solana_pubkey::Pubkey::new_from_array(to);
    let pay = solana_system_interface::instruction::transfer(&from, &to, lamports);
    let note = solana_instruction::Instruction {
        program_id: MEMO_PROGRAM,
        accounts: Vec::new(),
        data: memo.as_bytes().to_vec(),
    };
    let mut instructions = Vec::with_capacity(4);
    if compute_unit_price > 0 {
        instructions.push(ComputeBudgetInstruction::set_compute_unit_limit(
            TRANSFER_COMPUTE_UNITS,
        ));
        instructions.push(ComputeBudgetInstruction::set_compute_unit_price(
            compute_unit_price,
        ));
    }
    instructions.extend([pay, note]);
    let message = solana_message::Message::new_with_blockhash(&instructions, Some(&from), &hash);
    let tx = solana_transaction::Transaction::new_unsigned(message);
    wire()
        .serialize(&tx)
        .map_err(|e| Error::Internal(format!("encoding the transaction: {e}")))
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

    #[test]
    fn a_built_transfer_is_one_system_transfer_the_wallet_alone_signs() {
        let from = [7u8; 32];
        let to = [9u8; 32];
        let hash = bs58::encode([5u8; 32]).into_string();
        let bytes = unsigned_transfer(from, to, 1_234_567, &hash, "xfr-1", 0).unwrap();
        let other = unsigned_transfer(from, to, 1_234_567, &hash, "xfr-2", 0).unwrap();
        assert_ne!(bytes, other, "two transfers are two messages");
        let signing = prepare_transaction(&bytes, &from).unwrap();
        assert!(signing.only_the_wallet_is_missing());
        let m = &signing.transaction.message;
        assert_eq!(m.header().num_required_signatures, 1);
        assert_eq!(m.static_account_keys()[0].to_bytes(), from);
        assert_eq!(m.static_account_keys()[1].to_bytes(), to);
        assert_eq!(m.recent_blockhash().to_bytes(), [5u8; 32]);
        let ix = &m.instructions()[0];
        // System program instruction 2 (Transfer), then the lamports, little-endian.
        assert_eq!(ix.data[..4], 2u32.to_le_bytes());
        assert_eq!(ix.data[4..], 1_234_567u64.to_le_bytes());
        let memo = &m.instructions()[1];
        assert_eq!(
            m.static_account_keys()[usize::from(memo.program_id_index)].to_string(),
            "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
        );
        assert_eq!(memo.data, b"xfr-1");
        assert!(memo.accounts.is_empty());
        assert!(
            parse_address("to", "not-base58!")
                .unwrap_err()
                .is_bad_input()
        );
        assert!(parse_address("to", "1111").unwrap_err().is_bad_input());
    }

    #[test]
    fn a_priority_fee_sets_the_compute_budget_first() {
        let (from, to) = ([7u8; 32], [9u8; 32]);
        let hash = bs58::encode([5u8; 32]).into_string();
        let bytes = unsigned_transfer(from, to, 1_000, &hash, "xfr-1", 2_500).unwrap();
        let signing = prepare_transaction(&bytes, &from).unwrap();
        let m = &signing.transaction.message;
        let keys = m.static_account_keys();
        let programs: Vec<String> = m
            .instructions()
            .iter()
            .map(|ix| keys[usize::from(ix.program_id_index)].to_string())
            .collect();
        assert_eq!(
            programs,
            [
                "ComputeBudget111111111111111111111111111111",
                "ComputeBudget111111111111111111111111111111",
                "11111111111111111111111111111111",
                "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr",
            ]
        );
        // SetComputeUnitLimit (2) then SetComputeUnitPrice (3), little-endian.
        assert_eq!(m.instructions()[0].data[0], 2);
        assert_eq!(
            m.instructions()[0].data[1..],
            TRANSFER_COMPUTE_UNITS.to_le_bytes()
        );
        assert_eq!(m.instructions()[1].data[0], 3);
        assert_eq!(m.instructions()[1].data[1..], 2_500u64.to_le_bytes());
        assert_eq!(priority_fee(2_500), 75);
        assert_eq!(priority_fee(1), 1, "rounded up");
        assert_eq!(priority_fee(0), 0);
    }
}
