//! A Keyfold signer node, and the protocol the coordinator speaks to it.
//!
//! * [`node::SignerNode`] — holds one share of every key (sealed in its own database under its
//!   own key-encryption key), its identity keys, and the threshold sessions it takes part in.
//! * [`protocol`] — the JSON the coordinator and nodes exchange; transports (HTTP in
//!   production, direct calls in tests) carry it unchanged.
//!
//! No HTTP here: the server crate mounts a node behind axum, and the coordinator reaches it
//! through whatever transport it is given.

pub mod node;
pub mod protocol;

pub use node::{NodeConfig, SignerNode, group_id_of};
