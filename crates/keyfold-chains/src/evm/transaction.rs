//! Unsigned EVM transactions (Dfns kind `Transaction`, an unsigned serialization in hex), their
//! signing hash, and the signed serialization the response returns as `signedData`.
//!
//! Accepted: legacy (pre-EIP-155 six fields, or the EIP-155 signing form with `chainId, 0, 0`),
//! EIP-2930 (`0x01`) and EIP-1559 (`0x02`), exactly as viem's `serializeTransaction(tx)` (no
//! signature) writes them. Blob (`0x03`) and EIP-7702 (`0x04`) transactions are refused: a blob
//! transaction needs sidecars we do not carry, and a set-code transaction delegates the whole
//! account, which deserves its own policy path (Dfns has the `Eip7702` kind for the authorization).
//!
//! Decoding is alloy's; on top of it the bytes must re-encode to exactly the input, so the hash we
//! sign is the hash of the very bytes the user approved and the policy engine read.

use alloy_consensus::transaction::{RlpEcdsaDecodableTx, RlpEcdsaEncodableTx};
use alloy_consensus::{SignableTransaction, Transaction, TxEip1559, TxEip2930, TxLegacy};
use alloy_eips::eip2718::Encodable2718;
use alloy_rlp::{Decodable, Header};

use super::{Address, B256, RecoverableSignature, U256, to_hex};
use crate::error::{Error, Result, clip};

/// The transaction envelope types we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxType {
    /// Untyped RLP list, with or without EIP-155 replay protection.
    Legacy,
    /// EIP-2930 access-list transaction (`0x01`).
    Eip2930,
    /// EIP-1559 dynamic-fee transaction (`0x02`).
    Eip1559,
}

/// A parsed unsigned transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedTransaction {
    tx: Tx,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tx {
    Legacy(TxLegacy),
    Eip2930(TxEip2930),
    Eip1559(TxEip1559),
}

/// A signed transaction, ready to broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTransaction {
    /// The signed EIP-2718 serialization (for legacy: the RLP list with `v, r, s`); `0x`-hex of
    /// it is the Dfns `signedData`, and `eth_sendRawTransaction` takes it as is.
    pub raw: Vec<u8>,
    /// The transaction hash, keccak256 of `raw` (the Dfns `txHash`).
    pub hash: B256,
}

impl SignedTransaction {
    /// `raw` as `0x`-hex: the `signedData` field.
    pub fn raw_hex(&self) -> String {
        to_hex(&self.raw)
    }
}

impl UnsignedTransaction {
    /// Parses an unsigned serialized transaction (raw bytes; see [`Self::parse_hex`]).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let Some(&first) = bytes.first() else {
            return Err(Error::invalid("transaction is empty"));
        };
        let tx = match first {
            0xc0..=0xff => Tx::Legacy(decode_legacy(bytes)?),
            0x01 => Tx::Eip2930(decode_typed(&bytes[1..], "EIP-2930")?),
            0x02 => Tx::Eip1559(decode_typed(&bytes[1..], "EIP-1559")?),
            0x03 => {
                return Err(Error::Unsupported(
                    "blob transactions (EIP-4844, type 0x03) are not supported".into(),
                ));
            }
            0x04 => {
                return Err(Error::Unsupported(
                    "EIP-7702 set-code transactions (type 0x04) are not supported".into(),
                ));
            }
            0x00 | 0x05..=0x7f => {
                return Err(Error::Unsupported(format!(
                    "transaction type 0x{first:02x} is not supported (legacy, 0x01 and 0x02 are)"
                )));
            }
            0x80..=0xbf => {
                return Err(Error::invalid(
                    "transaction must be an RLP list (legacy) or an EIP-2718 typed transaction",
                ));
            }
        };
        let this = Self { tx };
        if this.signing_preimage() != bytes {
            return Err(Error::invalid(
                "transaction is not in canonical encoding (it does not re-encode to the same bytes)",
            ));
        }
        Ok(this)
    }

    /// Parses the hex string of a Dfns `Transaction` request (`0x` optional).
    pub fn parse_hex(transaction: &str) -> Result<Self> {
        Self::parse(&super::parse_hex(transaction, "transaction")?)
    }

    /// The envelope type.
    pub fn tx_type(&self) -> TxType {
        match self.tx {
            Tx::Legacy(_) => TxType::Legacy,
            Tx::Eip2930(_) => TxType::Eip2930,
            Tx::Eip1559(_) => TxType::Eip1559,
        }
    }

    /// The digest to sign: keccak256 of the unsigned serialization (for an EIP-155 legacy
    /// transaction, of `rlp([nonce, gasPrice, gas, to, value, data, chainId, 0, 0])`).
    pub fn signing_hash(&self) -> B256 {
        match &self.tx {
            Tx::Legacy(tx) => tx.signature_hash(),
            Tx::Eip2930(tx) => tx.signature_hash(),
            Tx::Eip1559(tx) => tx.signature_hash(),
        }
    }

    /// The chain id; `None` only for a pre-EIP-155 legacy transaction (replayable on any chain).
    pub fn chain_id(&self) -> Option<u64> {
        self.inner().chain_id()
    }

    /// `Ok` when the transaction carries exactly this chain id. A pre-EIP-155 transaction (no
    /// chain id) is refused too: signed, it would be valid on every EVM chain.
    pub fn ensure_chain_id(&self, expected: u64) -> Result<()> {
        match self.chain_id() {
            Some(id) if id == expected => Ok(()),
            Some(id) => Err(Error::invalid(format!(
                "transaction chain id {id} does not match the wallet's network (chain id {expected})"
            ))),
            None => Err(Error::invalid(format!(
                "transaction has no chain id (pre-EIP-155) and would be valid on any chain; \
                 set chainId {expected}"
            ))),
        }
    }

    /// The sender's nonce.
    pub fn nonce(&self) -> u64 {
        self.inner().nonce()
    }

    /// The recipient; `None` for a contract creation.
    pub fn to(&self) -> Option<Address> {
        self.inner().to()
    }

    /// The value transferred, in wei.
    pub fn value(&self) -> U256 {
        self.inner().value()
    }

    /// The call data (or init code for a contract creation).
    pub fn input(&self) -> &[u8] {
        self.inner().input()
    }

    /// The gas limit.
    pub fn gas_limit(&self) -> u64 {
        self.inner().gas_limit()
    }

    /// The most the sender pays per gas: `maxFeePerGas` (EIP-1559) or `gasPrice`.
    pub fn max_fee_per_gas(&self) -> u128 {
        self.inner().max_fee_per_gas()
    }

    /// `maxPriorityFeePerGas` of an EIP-1559 transaction.
    pub fn max_priority_fee_per_gas(&self) -> Option<u128> {
        self.inner().max_priority_fee_per_gas()
    }

    /// Signs nothing: attaches the cluster's signature over [`Self::signing_hash`] and returns the
    /// signed serialization. Legacy: `v = recid + 35 + 2·chainId` (EIP-155) or `27 + recid`
    /// without a chain id; typed: `yParity = recid`. Checks that the parts are canonical (see
    /// [`RecoverableSignature::new`]) but not whose key signed: call
    /// [`RecoverableSignature::verify`] with the wallet's address for that.
    pub fn attach_signature(&self, r: B256, s: B256, recid: u8) -> Result<SignedTransaction> {
        let signature = RecoverableSignature::new(r, s, recid)?.to_alloy();
        Ok(match &self.tx {
            Tx::Legacy(tx) => signed(tx.clone().into_signed(signature)),
            Tx::Eip2930(tx) => signed(tx.clone().into_signed(signature)),
            Tx::Eip1559(tx) => signed(tx.clone().into_signed(signature)),
        })
    }

    fn inner(&self) -> &dyn TxFields {
        match &self.tx {
            Tx::Legacy(tx) => tx,
            Tx::Eip2930(tx) => tx,
            Tx::Eip1559(tx) => tx,
        }
    }

    /// The unsigned serialization that [`Self::signing_hash`] hashes (keccak256). Signers that
    /// use presignatures hash this themselves.
    pub fn signing_preimage(&self) -> Vec<u8> {
        match &self.tx {
            Tx::Legacy(tx) => tx.encoded_for_signing(),
            Tx::Eip2930(tx) => tx.encoded_for_signing(),
            Tx::Eip1559(tx) => tx.encoded_for_signing(),
        }
    }
}

/// The accessors we need, object-safe over the three alloy transaction types.
trait TxFields {
    fn chain_id(&self) -> Option<u64>;
    fn nonce(&self) -> u64;
    fn to(&self) -> Option<Address>;
    fn value(&self) -> U256;
    fn input(&self) -> &[u8];
    fn gas_limit(&self) -> u64;
    fn max_fee_per_gas(&self) -> u128;
    fn max_priority_fee_per_gas(&self) -> Option<u128>;
}

impl<T: Transaction> TxFields for T {
    fn chain_id(&self) -> Option<u64> {
        Transaction::chain_id(self)
    }
    fn nonce(&self) -> u64 {
        Transaction::nonce(self)
    }
    fn to(&self) -> Option<Address> {
        Transaction::to(self)
    }
    fn value(&self) -> U256 {
        Transaction::value(self)
    }
    fn input(&self) -> &[u8] {
        Transaction::input(self)
    }
    fn gas_limit(&self) -> u64 {
        Transaction::gas_limit(self)
    }
    fn max_fee_per_gas(&self) -> u128 {
        Transaction::max_fee_per_gas(self)
    }
    fn max_priority_fee_per_gas(&self) -> Option<u128> {
        Transaction::max_priority_fee_per_gas(self)
    }
}

fn signed<T: RlpEcdsaEncodableTx + Send + Sync>(
    tx: alloy_consensus::Signed<T>,
) -> SignedTransaction {
    SignedTransaction {
        raw: tx.encoded_2718(),
        hash: *tx.hash(),
    }
}

fn rlp_error(what: &str, e: alloy_rlp::Error) -> Error {
    Error::invalid(format!("malformed {what} transaction: {}", clip(e)))
}

/// A legacy unsigned transaction: `rlp([nonce, gasPrice, gas, to, value, data])` or, with EIP-155,
/// `rlp([…, chainId, 0, 0])`. alloy's own `Decodable` for `TxLegacy` is deliberately lenient
/// (non-zero sentinels, bytes past the list), so the list framing is checked here, with alloy's
/// field decoders.
fn decode_legacy(bytes: &[u8]) -> Result<TxLegacy> {
    let mut buf = bytes;
    let mut payload = Header::decode_bytes(&mut buf, true).map_err(|e| rlp_error("legacy", e))?;
    if !buf.is_empty() {
        return Err(Error::invalid(
            "unexpected bytes after the legacy transaction",
        ));
    }
    let mut tx = TxLegacy::rlp_decode_fields(&mut payload).map_err(|e| rlp_error("legacy", e))?;
    if payload.is_empty() {
        return Ok(tx);
    }
    let chain_id = u64::decode(&mut payload).map_err(|e| rlp_error("legacy", e))?;
    let r = U256::decode(&mut payload).map_err(|e| rlp_error("legacy", e))?;
    let s = U256::decode(&mut payload).map_err(|e| rlp_error("legacy", e))?;
    if !payload.is_empty() {
        return Err(Error::invalid("legacy transaction has more than 9 fields"));
    }
    if !r.is_zero() || !s.is_zero() {
        return Err(Error::invalid(
            "legacy transaction is already signed (v, r, s are set); send the unsigned serialization",
        ));
    }
    if chain_id == 0 {
        return Err(Error::invalid("EIP-155 chain id must not be 0"));
    }
    tx.chain_id = Some(chain_id);
    Ok(tx)
}

/// A typed unsigned transaction body (after the type byte): `rlp([chainId, …])`.
fn decode_typed<T: RlpEcdsaDecodableTx>(payload: &[u8], what: &str) -> Result<T> {
    let mut buf = payload;
    match T::rlp_decode(&mut buf) {
        Ok(tx) if buf.is_empty() => Ok(tx),
        Ok(_) => Err(Error::invalid(format!(
            "unexpected bytes after the {what} transaction"
        ))),
        Err(e) => {
            let mut again = payload;
            if T::rlp_decode_signed(&mut again).is_ok_and(|_| again.is_empty()) {
                Err(Error::invalid(format!(
                    "{what} transaction is already signed; send the unsigned serialization"
                )))
            } else {
                Err(rlp_error(what, e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use alloy_primitives::{address, b256, hex};

    // The example of EIP-155: nonce 9, 20 gwei, 21000 gas, to 0x3535…, 1 ether, chain id 1,
    // signed with the private key 0x4646…46.
    const EIP155_SIGNING_DATA: [u8; 45] = hex!(
        "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080018080"
    );
    const EIP155_SIGNED: [u8; 110] = hex!(
        "f86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83"
    );

    #[test]
    fn eip155_example() {
        let tx = UnsignedTransaction::parse(&EIP155_SIGNING_DATA).unwrap();
        assert_eq!(tx.tx_type(), TxType::Legacy);
        assert_eq!(
            tx.signing_hash(),
            b256!("daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53")
        );
        assert_eq!(tx.chain_id(), Some(1));
        assert_eq!(tx.nonce(), 9);
        assert_eq!(
            tx.to(),
            Some(address!("3535353535353535353535353535353535353535"))
        );
        assert_eq!(tx.value(), U256::from(10u128.pow(18)));
        assert_eq!(tx.gas_limit(), 21000);
        assert_eq!(tx.max_fee_per_gas(), 20_000_000_000);
        assert!(tx.input().is_empty());
        tx.ensure_chain_id(1).unwrap();
        assert!(tx.ensure_chain_id(5).unwrap_err().is_bad_input());

        let r = b256!("28ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276");
        let s = b256!("67cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83");
        let signed = tx.attach_signature(r, s, 0).unwrap();
        assert_eq!(signed.raw, EIP155_SIGNED); // v = 37 = 0 + 35 + 2·1
        assert_eq!(signed.hash, alloy_primitives::keccak256(EIP155_SIGNED));
        assert_eq!(
            signed.raw_hex(),
            format!("0x{}", hex::encode(EIP155_SIGNED))
        );

        // The signer of the EIP's example is the key 0x4646…46.
        let sig = RecoverableSignature::new(r, s, 0).unwrap();
        sig.verify(
            &tx.signing_hash(),
            &address!("9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F"),
        )
        .unwrap();
    }

    #[test]
    fn refuses_signed_and_non_canonical() {
        // The signed form of the example is not an unsigned transaction.
        let err = UnsignedTransaction::parse(&EIP155_SIGNED).unwrap_err();
        assert!(err.to_string().contains("already signed"), "{err}");
        // Trailing byte.
        let mut trailing = EIP155_SIGNING_DATA.to_vec();
        trailing.push(0);
        assert!(
            UnsignedTransaction::parse(&trailing)
                .unwrap_err()
                .is_bad_input()
        );
        // Truncated.
        assert!(UnsignedTransaction::parse(&EIP155_SIGNING_DATA[..40]).is_err());
        // A list header that is longer than needed (non-canonical length).
        let mut long_header = vec![0xf8, EIP155_SIGNING_DATA.len() as u8 - 1];
        long_header.extend_from_slice(&EIP155_SIGNING_DATA[1..]);
        assert!(UnsignedTransaction::parse(&long_header).is_err());
        // Chain id 0 in the EIP-155 form.
        let zero_chain = hex!(
            "ec098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a764000080808080"
        );
        assert!(UnsignedTransaction::parse(&zero_chain).is_err());
        // Empty input, a bare string, unknown and refused types.
        assert_eq!(
            UnsignedTransaction::parse(&[]).unwrap_err().to_string(),
            "transaction is empty"
        );
        assert!(UnsignedTransaction::parse(&[0x83, 1, 2, 3]).is_err());
        for (ty, want) in [(3u8, "blob"), (4, "EIP-7702"), (0x05, "0x05"), (0, "0x00")] {
            let err = UnsignedTransaction::parse(&[ty, 0xc0]).unwrap_err();
            assert!(matches!(err, Error::Unsupported(_)), "{err}");
            assert!(err.to_string().contains(want), "{err}");
        }
        assert!(UnsignedTransaction::parse_hex("0xzz").is_err());
    }

    #[test]
    fn pre_eip155_legacy() {
        // rlp([nonce 0, gasPrice 1, gas 21000, to 0x3535…, value 0, data ""]) with no chain id.
        let mut bytes = vec![0xdc, 0x80, 0x01, 0x82, 0x52, 0x08, 0x94];
        bytes.extend_from_slice(&[0x35; 20]);
        bytes.extend_from_slice(&[0x80, 0x80]);
        let tx = UnsignedTransaction::parse(&bytes).unwrap();
        assert_eq!(tx.chain_id(), None);
        assert!(tx.ensure_chain_id(1).is_err());
        let r = B256::with_last_byte(1);
        let s = B256::with_last_byte(2);
        let signed = tx.attach_signature(r, s, 1).unwrap();
        // v = 28 without EIP-155.
        let mut buf = &signed.raw[..];
        let payload = Header::decode_bytes(&mut buf, true).unwrap();
        assert_eq!(&payload[payload.len() - 4..], &[0x80, 0x1c, 0x01, 0x02][..]);
    }
}
