//! Transfers Keyfold builds itself: an EIP-1559 transaction paying the native coin, or calling
//! an ERC-20's `transfer(to, amount)`; and the few ERC-20 reads the API needs (`balanceOf`,
//! `decimals`, `symbol`). Encoding is alloy's (`alloy-consensus` for the envelope,
//! `alloy-dyn-abi` for the ABI); this module only picks the fields.

use alloy_consensus::{SignableTransaction, TxEip1559};
use alloy_dyn_abi::{DynSolType, DynSolValue};
use alloy_primitives::{Bytes, TxKind, keccak256};

use super::{Address, U256};
use crate::error::{Error, Result};

/// The 4-byte selector of a Solidity function signature.
fn selector(signature: &str) -> [u8; 4] {
    let h = keccak256(signature.as_bytes());
    [h[0], h[1], h[2], h[3]]
}

fn call(signature: &str, args: Vec<DynSolValue>) -> Vec<u8> {
    let mut data = selector(signature).to_vec();
    data.extend(DynSolValue::Tuple(args).abi_encode_params());
    data
}

/// `transfer(address,uint256)` call data.
pub fn erc20_transfer_data(to: Address, amount: U256) -> Vec<u8> {
    call(
        "transfer(address,uint256)",
        vec![DynSolValue::Address(to), DynSolValue::Uint(amount, 256)],
    )
}

/// `balanceOf(address)` call data.
pub fn erc20_balance_of_data(owner: Address) -> Vec<u8> {
    call("balanceOf(address)", vec![DynSolValue::Address(owner)])
}

/// `decimals()` call data.
pub fn erc20_decimals_data() -> Vec<u8> {
    call("decimals()", vec![])
}

/// `symbol()` call data.
pub fn erc20_symbol_data() -> Vec<u8> {
    call("symbol()", vec![])
}

/// A `uint256` return value.
pub fn decode_uint(ret: &[u8]) -> Result<U256> {
    match DynSolType::Tuple(vec![DynSolType::Uint(256)]).abi_decode_params(ret) {
        Ok(DynSolValue::Tuple(v)) => match v.as_slice() {
            [DynSolValue::Uint(x, _)] => Ok(*x),
            _ => Err(Error::invalid("not a uint256 return value")),
        },
        _ => Err(Error::invalid("not a uint256 return value")),
    }
}

/// A `string` return value.
pub fn decode_string(ret: &[u8]) -> Result<String> {
    match DynSolType::Tuple(vec![DynSolType::String]).abi_decode_params(ret) {
        Ok(DynSolValue::Tuple(v)) => match v.as_slice() {
            [DynSolValue::String(s)] => Ok(s.clone()),
            _ => Err(Error::invalid("not a string return value")),
        },
        _ => Err(Error::invalid("not a string return value")),
    }
}

/// The fields of an EIP-1559 transaction Keyfold builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eip1559Fields {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The sender's nonce.
    pub nonce: u64,
    /// The recipient, or the token contract.
    pub to: Address,
    /// Wei sent along.
    pub value: U256,
    /// Call data (empty for a plain payment).
    pub data: Vec<u8>,
    /// Gas limit.
    pub gas_limit: u64,
    /// Max fee per gas, wei.
    pub max_fee_per_gas: u128,
    /// Max priority fee (tip) per gas, wei.
    pub max_priority_fee_per_gas: u128,
}

/// The unsigned serialization (`0x02 ‖ rlp(...)`), exactly what viem's
/// `serializeTransaction` writes for an unsigned EIP-1559 transaction, and what the
/// `Transaction` signature kind takes.
pub fn unsigned_eip1559(f: &Eip1559Fields) -> Vec<u8> {
    let tx = TxEip1559 {
        chain_id: f.chain_id,
        nonce: f.nonce,
        gas_limit: f.gas_limit,
        max_fee_per_gas: f.max_fee_per_gas,
        max_priority_fee_per_gas: f.max_priority_fee_per_gas,
        to: TxKind::Call(f.to),
        value: f.value,
        access_list: Default::default(),
        input: Bytes::from(f.data.clone()),
    };
    tx.encoded_for_signing()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::evm::UnsignedTransaction;

    #[test]
    fn erc20_selectors_are_the_standard_ones() {
        assert_eq!(
            hex::encode(selector("transfer(address,uint256)")),
            "a9059cbb"
        );
        assert_eq!(hex::encode(selector("balanceOf(address)")), "70a08231");
        assert_eq!(hex::encode(selector("decimals()")), "313ce567");
        assert_eq!(hex::encode(selector("symbol()")), "95d89b41");
        let to: Address = "0x00000000000000000000000000000000000000aa"
            .parse()
            .unwrap();
        let data = erc20_transfer_data(to, U256::from(5u8));
        assert_eq!(data.len(), 4 + 64);
        assert_eq!(data[4 + 31], 0xaa);
        assert_eq!(data[4 + 63], 5);
    }

    #[test]
    fn built_transactions_parse_back_as_the_transaction_kind() {
        let f = Eip1559Fields {
            chain_id: 11155111,
            nonce: 7,
            to: "0x00000000000000000000000000000000000000aa"
                .parse()
                .unwrap(),
            value: U256::from(1_000u32),
            data: vec![],
            gas_limit: 21_000,
            max_fee_per_gas: 3_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
        };
        let raw = unsigned_eip1559(&f);
        assert_eq!(raw[0], 2);
        let tx = UnsignedTransaction::parse(&raw).unwrap();
        assert_eq!(tx.nonce(), 7);
        assert_eq!(tx.chain_id(), Some(11155111));
        assert_eq!(tx.value(), U256::from(1_000u32));
        assert_eq!(tx.gas_limit(), 21_000);
    }

    #[test]
    fn return_values_decode() {
        let mut word = [0u8; 32];
        word[31] = 6;
        assert_eq!(decode_uint(&word).unwrap(), U256::from(6u8));
        let enc = DynSolValue::Tuple(vec![DynSolValue::String("KTUSD".into())]).abi_encode_params();
        assert_eq!(decode_string(&enc).unwrap(), "KTUSD");
        assert!(decode_uint(&[1, 2]).is_err());
    }
}
