//! Ethereum addresses: from a secp256k1 public key, and from user-supplied text.

use super::Address;
use crate::error::{Error, Result, clip};

/// The address of a secp256k1 public key given in SEC1 form, compressed (33 bytes, `02`/`03`)
/// or uncompressed (65 bytes, `04`): the last 20 bytes of keccak256 of the 64-byte `x‖y`.
/// Points that are not on the curve are rejected. `Display` of the result is EIP-55.
pub fn address_from_public_key(public_key: &[u8]) -> Result<Address> {
    match (public_key.len(), public_key.first()) {
        (33, Some(0x02 | 0x03)) | (65, Some(0x04)) => {}
        (len, _) => {
            return Err(Error::invalid(format!(
                "a secp256k1 public key must be 33 bytes (compressed, 02/03) or 65 bytes \
                 (uncompressed, 04), got {len} bytes"
            )));
        }
    }
    let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
        .map_err(|_| Error::invalid("public key is not a point on secp256k1"))?;
    Ok(Address::from_public_key(&key))
}

/// The EIP-55 mixed-case checksum form (`0x` + 40 hex), what Dfns returns as a wallet address.
pub fn checksum(address: &Address) -> String {
    address.to_checksum(None)
}

/// Parses `0x` + 40 hex digits. All-lower-case and all-upper-case forms carry no checksum and are
/// accepted as they are; a mixed-case form must be the correct EIP-55 checksum (a mistyped digit
/// in a checksummed address is then caught instead of sending funds to the wrong account).
pub fn parse_address(s: &str) -> Result<Address> {
    let Some(digits) = s.strip_prefix("0x") else {
        return Err(Error::invalid(format!(
            "address must start with 0x: `{}`",
            clip(s)
        )));
    };
    if digits.len() != 40 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::invalid(format!(
            "address must be 0x followed by 40 hex digits: `{}`",
            clip(s)
        )));
    }
    let address: Address = digits
        .parse()
        .map_err(|_| Error::invalid(format!("invalid address `{}`", clip(s))))?;
    let has_lower = digits.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = digits.bytes().any(|b| b.is_ascii_uppercase());
    if has_lower && has_upper && checksum(&address) != s {
        return Err(Error::invalid(format!(
            "address `{s}` has an invalid EIP-55 checksum"
        )));
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    // The test vectors of EIP-55 itself.
    const EIP55: [&str; 8] = [
        "0x52908400098527886E0F7030069857D2E4169EE7",
        "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
        "0xde709f2102306220921060314715629080e2fb77",
        "0x27b1fdb04752bbc536007a920d24acb045561c26",
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn eip55_vectors() {
        for s in EIP55 {
            let a = parse_address(s).unwrap();
            assert_eq!(checksum(&a), s);
            assert_eq!(a.to_string(), s);
            // Single-case forms parse without a checksum.
            assert_eq!(parse_address(&s.to_lowercase()).unwrap(), a);
            assert_eq!(
                parse_address(&format!("0x{}", s[2..].to_uppercase())).unwrap(),
                a
            );
        }
    }

    #[test]
    fn rejects_bad_addresses() {
        // One letter's case flipped: a mixed-case string with a wrong checksum.
        let err = parse_address("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD").unwrap_err();
        assert!(err.is_bad_input());
        assert!(err.to_string().contains("checksum"), "{err}");
        for bad in [
            "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0X5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed00",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeg",
            "0x",
            "",
        ] {
            assert!(parse_address(bad).unwrap_err().is_bad_input(), "{bad}");
        }
    }

    #[test]
    fn public_key_forms() {
        // Private key 1: the generator point. Its address is well known.
        let g_uncompressed = alloy_primitives::hex!(
            "0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
            "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
        );
        let g_compressed = alloy_primitives::hex!(
            "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
        );
        let want = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";
        assert_eq!(
            address_from_public_key(&g_uncompressed)
                .unwrap()
                .to_string(),
            want
        );
        assert_eq!(
            address_from_public_key(&g_compressed).unwrap().to_string(),
            want
        );

        // Wrong prefix for the length, wrong lengths, raw 64-byte keys, off-curve points.
        let mut wrong = g_compressed;
        wrong[0] = 0x04;
        assert!(address_from_public_key(&wrong).is_err());
        assert!(address_from_public_key(&g_uncompressed[1..]).is_err());
        assert!(address_from_public_key(&[]).is_err());
        let mut off_curve = g_uncompressed;
        off_curve[64] ^= 1;
        let err = address_from_public_key(&off_curve).unwrap_err();
        assert_eq!(err.to_string(), "public key is not a point on secp256k1");
        let mut bad_x = [0xffu8; 33];
        bad_x[0] = 0x02;
        assert!(address_from_public_key(&bad_x).unwrap_err().is_bad_input());
    }
}
