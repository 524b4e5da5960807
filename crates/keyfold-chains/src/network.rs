//! Networks as the Dfns API names them, and what each one needs from a key.
//!
//! The spellings are the wire format (`"EthereumSepolia"`, `"KeyECDSA"`…): [`Network::as_str`] and
//! [`str::parse`] are the only place they are written, and serde goes through them. Wallets can
//! be created on every network listed; what each one can sign is decided per signature kind in
//! [`crate::rules`].
//!
//! Chain ids are *defaults*: the server's configuration may point a network at another chain (a
//! test points `EthereumSepolia` at a local anvil, chain id 31337), so callers compare a
//! transaction's chain id with the configured one, not blindly with [`Network::default_chain_id`].

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A network a wallet can be bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Network {
    /// A raw ECDSA secp256k1 key, not bound to a chain: only `Hash` signatures.
    KeyECDSA,
    /// A raw EdDSA ed25519 key, not bound to a chain: only `Hash`/`Message` signatures.
    KeyEdDSA,
    /// Ethereum mainnet (chain id 1).
    Ethereum,
    /// Ethereum Sepolia testnet (11155111).
    EthereumSepolia,
    /// Base (8453).
    Base,
    /// Base Sepolia testnet (84532).
    BaseSepolia,
    /// Polygon PoS (137).
    Polygon,
    /// Polygon Amoy testnet (80002).
    PolygonAmoy,
    /// Arbitrum One (42161).
    ArbitrumOne,
    /// Arbitrum Sepolia testnet (421614).
    ArbitrumSepolia,
    /// OP Mainnet (10).
    Optimism,
    /// OP Sepolia testnet (11155420).
    OptimismSepolia,
    /// BNB Smart Chain (56).
    Bsc,
    /// BNB Smart Chain testnet (97).
    BscTestnet,
    /// Avalanche C-Chain (43114).
    AvalancheC,
    /// Avalanche Fuji testnet C-Chain (43113).
    AvalancheCFuji,
    /// Bitcoin mainnet.
    Bitcoin,
    /// Bitcoin testnet3.
    BitcoinTestnet3,
    /// Bitcoin testnet4.
    BitcoinTestnet4,
    /// Bitcoin signet.
    BitcoinSignet,
    /// Solana mainnet.
    Solana,
    /// Solana devnet.
    SolanaDevnet,
}

/// The chain family of a network: which module of this crate handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `KeyECDSA` / `KeyEdDSA`: a bare key, no addresses or transactions.
    Key,
    /// Ethereum and EVM-compatible chains: [`crate::evm`].
    Evm,
    /// Bitcoin: [`crate::bitcoin`].
    Bitcoin,
    /// Solana: [`crate::solana`].
    Solana,
}

/// A signature scheme, spelled as the Dfns `scheme` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyScheme {
    /// `"ECDSA"`.
    Ecdsa,
    /// `"EdDSA"`.
    Eddsa,
    /// `"Schnorr"` (BIP-340).
    Schnorr,
}

/// An elliptic curve, spelled as the Dfns `curve` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// `"secp256k1"`.
    Secp256k1,
    /// `"ed25519"`.
    Ed25519,
}

const ECDSA_SECP256K1: &[(KeyScheme, Curve)] = &[(KeyScheme::Ecdsa, Curve::Secp256k1)];
const EDDSA_ED25519: &[(KeyScheme, Curve)] = &[(KeyScheme::Eddsa, Curve::Ed25519)];
// P2WPKH addresses for ECDSA keys, P2TR for Schnorr keys.
const BITCOIN_KEYS: &[(KeyScheme, Curve)] = &[
    (KeyScheme::Ecdsa, Curve::Secp256k1),
    (KeyScheme::Schnorr, Curve::Secp256k1),
];

impl Network {
    /// Every network, in declaration order.
    pub const ALL: [Network; 22] = [
        Network::KeyECDSA,
        Network::KeyEdDSA,
        Network::Ethereum,
        Network::EthereumSepolia,
        Network::Base,
        Network::BaseSepolia,
        Network::Polygon,
        Network::PolygonAmoy,
        Network::ArbitrumOne,
        Network::ArbitrumSepolia,
        Network::Optimism,
        Network::OptimismSepolia,
        Network::Bsc,
        Network::BscTestnet,
        Network::AvalancheC,
        Network::AvalancheCFuji,
        Network::Bitcoin,
        Network::BitcoinTestnet3,
        Network::BitcoinTestnet4,
        Network::BitcoinSignet,
        Network::Solana,
        Network::SolanaDevnet,
    ];

    /// The Dfns spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Network::KeyECDSA => "KeyECDSA",
            Network::KeyEdDSA => "KeyEdDSA",
            Network::Ethereum => "Ethereum",
            Network::EthereumSepolia => "EthereumSepolia",
            Network::Base => "Base",
            Network::BaseSepolia => "BaseSepolia",
            Network::Polygon => "Polygon",
            Network::PolygonAmoy => "PolygonAmoy",
            Network::ArbitrumOne => "ArbitrumOne",
            Network::ArbitrumSepolia => "ArbitrumSepolia",
            Network::Optimism => "Optimism",
            Network::OptimismSepolia => "OptimismSepolia",
            Network::Bsc => "Bsc",
            Network::BscTestnet => "BscTestnet",
            Network::AvalancheC => "AvalancheC",
            Network::AvalancheCFuji => "AvalancheCFuji",
            Network::Bitcoin => "Bitcoin",
            Network::BitcoinTestnet3 => "BitcoinTestnet3",
            Network::BitcoinTestnet4 => "BitcoinTestnet4",
            Network::BitcoinSignet => "BitcoinSignet",
            Network::Solana => "Solana",
            Network::SolanaDevnet => "SolanaDevnet",
        }
    }

    /// Which family (and so which module) handles this network.
    pub const fn family(self) -> Family {
        match self {
            Network::KeyECDSA | Network::KeyEdDSA => Family::Key,
            Network::Bitcoin
            | Network::BitcoinTestnet3
            | Network::BitcoinTestnet4
            | Network::BitcoinSignet => Family::Bitcoin,
            Network::Solana | Network::SolanaDevnet => Family::Solana,
            _ => Family::Evm,
        }
    }

    /// `true` for an EVM network.
    pub const fn is_evm(self) -> bool {
        matches!(self.family(), Family::Evm)
    }

    /// `true` for test networks.
    pub const fn is_testnet(self) -> bool {
        matches!(
            self,
            Network::EthereumSepolia
                | Network::BaseSepolia
                | Network::PolygonAmoy
                | Network::ArbitrumSepolia
                | Network::OptimismSepolia
                | Network::BscTestnet
                | Network::AvalancheCFuji
                | Network::BitcoinTestnet3
                | Network::BitcoinTestnet4
                | Network::BitcoinSignet
                | Network::SolanaDevnet
        )
    }

    /// The public chain id of an EVM network (`None` for every other family). A deployment may
    /// configure another one (see the module docs).
    pub const fn default_chain_id(self) -> Option<u64> {
        Some(match self {
            Network::Ethereum => 1,
            Network::EthereumSepolia => 11_155_111,
            Network::Base => 8453,
            Network::BaseSepolia => 84_532,
            Network::Polygon => 137,
            Network::PolygonAmoy => 80_002,
            Network::ArbitrumOne => 42_161,
            Network::ArbitrumSepolia => 421_614,
            Network::Optimism => 10,
            Network::OptimismSepolia => 11_155_420,
            Network::Bsc => 56,
            Network::BscTestnet => 97,
            Network::AvalancheC => 43_114,
            Network::AvalancheCFuji => 43_113,
            _ => return None,
        })
    }

    /// The (scheme, curve) pairs a wallet on this network may use. EVM: ECDSA secp256k1 only.
    pub const fn key_types(self) -> &'static [(KeyScheme, Curve)] {
        match self.family() {
            Family::Evm => ECDSA_SECP256K1,
            Family::Bitcoin => BITCOIN_KEYS,
            Family::Solana => EDDSA_ED25519,
            Family::Key => match self {
                Network::KeyEdDSA => EDDSA_ED25519,
                _ => ECDSA_SECP256K1,
            },
        }
    }

    /// The key type a new wallet on this network gets when the request does not say.
    pub const fn default_key_type(self) -> (KeyScheme, Curve) {
        self.key_types()[0]
    }

    /// `true` when a key of this scheme and curve can back a wallet on this network.
    pub fn accepts_key(self, scheme: KeyScheme, curve: Curve) -> bool {
        self.key_types().contains(&(scheme, curve))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Network {
    type Err = Error;

    /// Exact, case-sensitive Dfns spelling; anything else is [`Error::InvalidInput`].
    fn from_str(s: &str) -> Result<Self> {
        Network::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("unknown or unsupported network `{}`", clip(s))))
    }
}

impl KeyScheme {
    /// The Dfns spelling: `ECDSA`, `EdDSA`, `Schnorr`.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyScheme::Ecdsa => "ECDSA",
            KeyScheme::Eddsa => "EdDSA",
            KeyScheme::Schnorr => "Schnorr",
        }
    }
}

impl fmt::Display for KeyScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyScheme {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        [KeyScheme::Ecdsa, KeyScheme::Eddsa, KeyScheme::Schnorr]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(format!("unknown or unsupported key scheme `{}`", clip(s)))
            })
    }
}

impl Curve {
    /// The Dfns spelling: `secp256k1`, `ed25519`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Curve::Secp256k1 => "secp256k1",
            Curve::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Curve {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        [Curve::Secp256k1, Curve::Ed25519]
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("unknown or unsupported curve `{}`", clip(s))))
    }
}

use crate::error::clip;

macro_rules! serde_via_str {
    ($($ty:ty),*) => {$(
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

serde_via_str!(Network, KeyScheme, Curve);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for n in Network::ALL {
            assert_eq!(n.as_str().parse::<Network>().unwrap(), n);
            assert_eq!(n.to_string(), n.as_str());
            let json = serde_json::to_string(&n).unwrap();
            assert_eq!(json, format!("\"{}\"", n.as_str()));
            assert_eq!(serde_json::from_str::<Network>(&json).unwrap(), n);
        }
        assert!("ethereum".parse::<Network>().unwrap_err().is_bad_input());
        assert!("Tron".parse::<Network>().is_err());
        assert!(serde_json::from_str::<Network>("\"EthereumGoerli\"").is_err());
    }

    #[test]
    fn chain_ids() {
        let expected = [
            (Network::Ethereum, 1),
            (Network::EthereumSepolia, 11155111),
            (Network::Base, 8453),
            (Network::BaseSepolia, 84532),
            (Network::Polygon, 137),
            (Network::PolygonAmoy, 80002),
            (Network::ArbitrumOne, 42161),
            (Network::ArbitrumSepolia, 421614),
            (Network::Optimism, 10),
            (Network::OptimismSepolia, 11155420),
            (Network::Bsc, 56),
            (Network::BscTestnet, 97),
            (Network::AvalancheC, 43114),
            (Network::AvalancheCFuji, 43113),
        ];
        for (n, id) in expected {
            assert_eq!(n.default_chain_id(), Some(id), "{n}");
            assert!(n.is_evm());
            assert_eq!(n.key_types(), &[(KeyScheme::Ecdsa, Curve::Secp256k1)]);
        }
        let evm = Network::ALL.into_iter().filter(|n| n.is_evm()).count();
        assert_eq!(evm, expected.len());
        for n in Network::ALL.into_iter().filter(|n| !n.is_evm()) {
            assert_eq!(n.default_chain_id(), None);
        }
    }

    #[test]
    fn keys() {
        assert!(Network::KeyEdDSA.accepts_key(KeyScheme::Eddsa, Curve::Ed25519));
        assert!(!Network::KeyEdDSA.accepts_key(KeyScheme::Ecdsa, Curve::Secp256k1));
        assert!(Network::Bitcoin.accepts_key(KeyScheme::Schnorr, Curve::Secp256k1));
        assert!(!Network::Base.accepts_key(KeyScheme::Schnorr, Curve::Secp256k1));
        assert_eq!(
            Network::Solana.default_key_type(),
            (KeyScheme::Eddsa, Curve::Ed25519)
        );
        assert_eq!("EdDSA".parse::<KeyScheme>().unwrap(), KeyScheme::Eddsa);
        assert_eq!("secp256k1".parse::<Curve>().unwrap(), Curve::Secp256k1);
        assert!("ecdsa".parse::<KeyScheme>().is_err());
    }
}
