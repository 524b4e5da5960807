//! # keyfold-chains — what each network means by an address, a transaction and a signature
//!
//! Keyfold's signer cluster signs 32-byte digests and knows nothing of chains. Everything
//! chain-specific between a Dfns API request and that digest lives here, as pure functions with
//! no I/O (the one exception is [`rpc`], the JSON-RPC client behind the domain's `ChainRpc`
//! port): which networks exist and what key each needs ([`Network`]), how a public key becomes an
//! address, how a `Message`, `Eip712` or `Transaction` signature request becomes the digest to
//! sign, and how the cluster's `(r, s)` becomes the `signature` and `signedData` of the response,
//! checked against the wallet's address before it is returned.
//!
//! One module per chain family, so each family brings its own dependencies and tests:
//!
//! | module | networks | status |
//! | --- | --- | --- |
//! | [`evm`] | Ethereum, Base, Polygon, Arbitrum, Optimism, BSC, Avalanche C and their testnets | implemented |
//! | [`bitcoin`] | Bitcoin, BitcoinTestnet3/4, BitcoinSignet | addresses (P2WPKH, P2TR), `Hash` (DER for ECDSA, BIP-341 tweak for Schnorr) and `Psbt` signatures; native transfers (coin selection, PSBT) |
//! | [`solana`] | Solana, SolanaDevnet | addresses, `Hash`/`Message`/`Transaction` (legacy and v0) signatures; native transfers |
//!
//! Errors are one enum, [`Error`]: bad input (a 400 with a message for the caller) versus
//! internal (a signature from the cluster that does not check out, a bug).
//!
//! We do not implement encodings or cryptography here: RLP, EIP-2718/155/1559/2930, EIP-712 and
//! signature recovery come from the maintained `alloy` crates and `k256`; this crate adds the
//! Dfns shapes, strict parsing and clear errors, and proves the result against viem
//! (`tests/viem_vectors.rs`).

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod bitcoin;
mod error;
pub mod evm;
mod network;
pub mod rpc;
pub mod rules;
pub mod solana;

pub use error::{Error, Result};
pub use network::{Curve, Family, KeyScheme, Network};
