//! Solana: an address is the wallet's Ed25519 public key in base58.

use crate::error::{Error, Result};

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
}
