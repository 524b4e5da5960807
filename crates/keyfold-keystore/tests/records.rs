//! The encryption barrier: round trips and every way the untrusted database can attack a record.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyfold_keystore::record::{RECORD_FORMAT_VERSION, RECORD_MAGIC, RECORD_OVERHEAD};
use keyfold_keystore::{Aad, Error, Kek, Purpose, open, reseal, seal, sealed_kek_id};

const SHARE: &[u8] = b"secret share bytes 0123456789";

fn aad() -> Aad<'static> {
    Aad::new(Purpose::KeyShare, "key-abc", "signer-2", 3)
}

#[test]
fn round_trip_every_purpose_and_size() {
    let kek = Kek::generate();
    let purposes = [
        Purpose::KeyShare,
        Purpose::AuxInfo,
        Purpose::Presignature,
        Purpose::Primes,
        Purpose::NodeIdentity,
        Purpose::ProtocolState,
        Purpose::FrostNonces,
    ];
    for purpose in purposes {
        for len in [0usize, 1, 31, 32, 33, 4096, 100_000] {
            let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let aad = Aad::new(purpose, "k", "s", 1);
            let sealed = seal(&kek, &aad, &plaintext).unwrap();
            assert_eq!(sealed.len(), plaintext.len() + RECORD_OVERHEAD);
            assert_eq!(sealed[..4], RECORD_MAGIC);
            assert_eq!(sealed[4], RECORD_FORMAT_VERSION);
            assert_eq!(sealed_kek_id(&sealed).unwrap(), kek.id());
            assert_eq!(
                open(&kek, &aad, &sealed).unwrap().expose_secret(),
                &plaintext[..]
            );
        }
    }
}

#[test]
fn fresh_nonce_per_record() {
    let kek = Kek::generate();
    let a = seal(&kek, &aad(), SHARE).unwrap();
    let b = seal(&kek, &aad(), SHARE).unwrap();
    assert_ne!(a[13..37], b[13..37], "nonces repeat");
    assert_ne!(a, b);
    // The plaintext does not appear in the record.
    assert!(!a.windows(SHARE.len()).any(|w| w == SHARE));
}

/// Flip every bit of a record, one at a time: nothing opens, and the error names the field.
#[test]
fn every_bit_flip_is_detected_with_the_right_error() {
    let kek = Kek::generate();
    let sealed = seal(&kek, &aad(), SHARE).unwrap();
    for byte in 0..sealed.len() {
        for bit in 0..8 {
            let mut bad = sealed.clone();
            bad[byte] ^= 1 << bit;
            let err = open(&kek, &aad(), &bad).unwrap_err();
            match byte {
                // magic, format version: not a record we know
                0..=4 => assert!(matches!(err, Error::Format(_)), "byte {byte}: {err:?}"),
                // KEK id: claims another key; nothing is decrypted
                5..=12 => assert!(
                    matches!(err, Error::WrongKek { .. }),
                    "byte {byte}: {err:?}"
                ),
                // nonce, ciphertext, tag
                _ => assert!(matches!(err, Error::Tampered), "byte {byte}: {err:?}"),
            }
        }
    }
}

/// A record copied into another row fails: each part of the associated data matters.
#[test]
fn moved_record_is_detected() {
    let kek = Kek::generate();
    let sealed = seal(&kek, &aad(), SHARE).unwrap();
    let elsewhere = [
        Aad::new(Purpose::Presignature, "key-abc", "signer-2", 3), // other column/purpose
        Aad::new(Purpose::KeyShare, "key-abd", "signer-2", 3),     // other key
        Aad::new(Purpose::KeyShare, "key-abc", "signer-1", 3),     // other signer
        Aad::new(Purpose::KeyShare, "key-abc", "signer-2", 2),     // older share version
        Aad::new(Purpose::KeyShare, "key-abc", "signer-2", 4),     // newer share version
        Aad::new(Purpose::KeyShare, "key-ab", "csigner-2", 3),     // bytes shifted between fields
        Aad::new(Purpose::KeyShare, "", "", 0),
    ];
    for other in elsewhere {
        assert!(
            matches!(open(&kek, &other, &sealed), Err(Error::Tampered)),
            "{other:?}"
        );
    }
    assert!(open(&kek, &aad(), &sealed).is_ok());
}

#[test]
fn wrong_kek_is_reported_as_such() {
    let kek = Kek::generate();
    let other = Kek::generate();
    let sealed = seal(&kek, &aad(), SHARE).unwrap();
    match open(&other, &aad(), &sealed) {
        Err(Error::WrongKek { expected, found }) => {
            assert_eq!(expected, other.id());
            assert_eq!(found, kek.id());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_and_extended_records_fail() {
    let kek = Kek::generate();
    let sealed = seal(&kek, &aad(), SHARE).unwrap();
    for len in 0..sealed.len() {
        let err = open(&kek, &aad(), &sealed[..len]).unwrap_err();
        if len < RECORD_OVERHEAD {
            assert!(matches!(err, Error::Format(_)), "len {len}: {err:?}");
        } else {
            // Long enough to parse, but the tag no longer matches.
            assert!(matches!(err, Error::Tampered), "len {len}: {err:?}");
        }
    }
    let mut extended = sealed.clone();
    extended.push(0);
    assert!(matches!(
        open(&kek, &aad(), &extended),
        Err(Error::Tampered)
    ));
    assert!(matches!(
        sealed_kek_id(&sealed[..12]),
        Err(Error::Format(_))
    ));
}

#[test]
fn unknown_format_version_is_a_format_error() {
    let kek = Kek::generate();
    let mut sealed = seal(&kek, &aad(), SHARE).unwrap();
    sealed[4] = 2;
    assert!(matches!(
        open(&kek, &aad(), &sealed),
        Err(Error::Format("unsupported sealed record format version"))
    ));
}

#[test]
fn reseal_rotates_and_is_idempotent() {
    let old = Kek::generate();
    let new = Kek::generate();
    let sealed = seal(&old, &aad(), SHARE).unwrap();

    let rotated = reseal(&old, &new, &aad(), &sealed).unwrap();
    assert_eq!(sealed_kek_id(&rotated).unwrap(), new.id());
    assert_eq!(open(&new, &aad(), &rotated).unwrap().expose_secret(), SHARE);
    assert!(matches!(
        open(&old, &aad(), &rotated),
        Err(Error::WrongKek { .. })
    ));

    // Running the rotation again over an already rotated row works.
    let again = reseal(&old, &new, &aad(), &rotated).unwrap();
    assert_eq!(open(&new, &aad(), &again).unwrap().expose_secret(), SHARE);

    // A record under neither key, or bound elsewhere, is refused, not silently re-bound.
    let stranger = Kek::generate();
    let foreign = seal(&stranger, &aad(), SHARE).unwrap();
    assert!(matches!(
        reseal(&old, &new, &aad(), &foreign),
        Err(Error::WrongKek { .. })
    ));
    let other_row = Aad::new(Purpose::KeyShare, "key-xyz", "signer-2", 3);
    assert!(matches!(
        reseal(&old, &new, &other_row, &sealed),
        Err(Error::Tampered)
    ));
}

#[test]
fn errors_carry_no_secret_bytes() {
    let kek = Kek::generate();
    let sealed = seal(&kek, &aad(), SHARE).unwrap();
    let mut bad = sealed.clone();
    bad[40] ^= 1;
    let key_hex = kek.to_hex();
    for err in [
        open(&kek, &aad(), &bad).unwrap_err(),
        open(&Kek::generate(), &aad(), &sealed).unwrap_err(),
        open(&kek, &aad(), &sealed[..10]).unwrap_err(),
    ] {
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(key_hex.as_str()), "{text}");
            assert!(!text.contains(&hex::encode(SHARE)), "{text}");
            assert!(
                !text.contains(std::str::from_utf8(SHARE).unwrap()),
                "{text}"
            );
        }
    }
}
