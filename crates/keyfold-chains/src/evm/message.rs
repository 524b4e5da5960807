//! EIP-191 `personal_sign` messages (Dfns kinds `Message` and `Eip191` on an EVM wallet).

use super::B256;

/// The EIP-191 version `0x45` digest that `personal_sign`, viem's `hashMessage` and ethers'
/// `hashMessage` compute: `keccak256("\x19Ethereum Signed Message:\n" ‖ len(message) ‖ message)`,
/// the length in decimal ASCII. The message is the raw bytes the request's hex decodes to.
pub fn message_digest(message: &[u8]) -> B256 {
    alloy_primitives::eip191_hash_message(message)
}

/// What [`message_digest`] hashes: `"\x19Ethereum Signed Message:\n" ‖ len ‖ message`.
pub fn message_preimage(message: &[u8]) -> Vec<u8> {
    let mut pre = format!("\x19Ethereum Signed Message:\n{}", message.len()).into_bytes();
    pre.extend_from_slice(message);
    pre
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use alloy_primitives::{b256, keccak256};

    #[test]
    fn known_digests() {
        // ethers / viem `hashMessage("Hello World")`.
        assert_eq!(
            message_digest(b"Hello World"),
            b256!("a1de988600a42c4b4ab089b619297c17d53cffae5d5120d82d8a92d0bb3b78f2")
        );
        // The definition, spelled out (the length is decimal, not a byte).
        let msg = [0xffu8; 12];
        let mut pre = b"\x19Ethereum Signed Message:\n12".to_vec();
        pre.extend_from_slice(&msg);
        assert_eq!(message_digest(&msg), keccak256(&pre));
        assert_eq!(message_preimage(&msg), pre);
        assert_eq!(
            message_digest(b""),
            keccak256(b"\x19Ethereum Signed Message:\n0")
        );
    }
}
