//! Messages between signer nodes through an untrusted relay: every way the relay (or another
//! node) can attack them fails, with an error that blames the right party.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keyfold_keystore::message::{ENVELOPE_MAGIC, SIGNED_MESSAGE_MAGIC};
use keyfold_keystore::{
    Envelope, Error, Kek, MessageContext, NodeIdentity, NodePublic, SignedMessage, verify_broadcast,
};

const SID: [u8; 32] = [0xab; 32];
const OTHER_SID: [u8; 32] = [0xcd; 32];

fn p2p(session: &[u8], round: u32, sender: u16, recipient: u16) -> Vec<u8> {
    MessageContext {
        protocol: "cggmp24/sign",
        session_id: session,
        round,
        sender,
        recipient: Some(recipient),
    }
    .to_bytes()
}

fn bcast(session: &[u8], round: u32, sender: u16) -> Vec<u8> {
    MessageContext {
        protocol: "cggmp24/sign",
        session_id: session,
        round,
        sender,
        recipient: None,
    }
    .to_bytes()
}

struct Nodes {
    a: NodeIdentity,
    b: NodeIdentity,
    c: NodeIdentity,
}

fn nodes() -> Nodes {
    Nodes {
        a: NodeIdentity::generate(),
        b: NodeIdentity::generate(),
        c: NodeIdentity::generate(),
    }
}

#[test]
fn point_to_point_round_trip() {
    let n = nodes();
    let ctx = p2p(&SID, 1, 0, 1);
    for len in [0usize, 1, 100, 70_000] {
        let plaintext: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let envelope = n.a.seal_to(&n.b.public(), &ctx, &plaintext).unwrap();
        assert_eq!(envelope.recipient(), &n.b.public().enc_key);
        let bytes = envelope.to_bytes();
        assert_eq!(bytes[..4], ENVELOPE_MAGIC);
        assert_eq!(bytes.len(), 133 + len + 16);
        assert!(len < 8 || !bytes.windows(8).any(|w| w == &plaintext[..8]));
        let parsed = Envelope::from_bytes(&bytes).unwrap();
        assert_eq!(parsed, envelope);
        let opened = n.b.open_from(&n.a.public(), &ctx, &parsed).unwrap();
        assert_eq!(opened.expose_secret(), &plaintext[..]);
        // A third party with public keys only can tell who produced it.
        parsed.verify_sender(&n.a.public(), &ctx).unwrap();
    }
}

#[test]
fn two_envelopes_of_the_same_message_differ() {
    let n = nodes();
    let ctx = p2p(&SID, 1, 0, 1);
    let e1 = n.a.seal_to(&n.b.public(), &ctx, b"share").unwrap();
    let e2 = n.a.seal_to(&n.b.public(), &ctx, b"share").unwrap();
    assert_ne!(e1.to_bytes(), e2.to_bytes());
}

/// Flip every bit of the wire bytes: nothing opens. Header damage is a format error; anything
/// else breaks the signature — which a recipient cannot pin on the sender.
#[test]
fn every_bit_flip_in_an_envelope_is_detected() {
    let n = nodes();
    let ctx = p2p(&SID, 1, 0, 1);
    let bytes =
        n.a.seal_to(&n.b.public(), &ctx, b"secret share")
            .unwrap()
            .to_bytes();
    for byte in 0..bytes.len() {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[byte] ^= 1 << bit;
            let result =
                Envelope::from_bytes(&bad).and_then(|e| n.b.open_from(&n.a.public(), &ctx, &e));
            let err = result.unwrap_err();
            match byte {
                0..=4 => assert!(matches!(err, Error::Format(_)), "byte {byte}: {err:?}"),
                // recipient, enc, signature, ciphertext, tag
                _ => assert!(matches!(err, Error::BadSignature), "byte {byte}: {err:?}"),
            }
        }
    }
}

#[test]
fn truncated_envelopes_are_format_errors() {
    let n = nodes();
    let ctx = p2p(&SID, 1, 0, 1);
    let bytes = n.a.seal_to(&n.b.public(), &ctx, b"").unwrap().to_bytes();
    assert_eq!(bytes.len(), 149);
    for len in 0..bytes.len() {
        assert!(
            matches!(Envelope::from_bytes(&bytes[..len]), Err(Error::Format(_))),
            "len {len}"
        );
    }
    let mut wrong_version = bytes.clone();
    wrong_version[4] = 2;
    assert!(matches!(
        Envelope::from_bytes(&wrong_version),
        Err(Error::Format("unsupported message format version"))
    ));
    // A signed message is not an envelope, and vice versa.
    let signed = n.a.sign_broadcast(&bcast(&SID, 1, 0), &[0; 200]).to_bytes();
    assert!(matches!(
        Envelope::from_bytes(&signed),
        Err(Error::Format(_))
    ));
    assert!(matches!(
        SignedMessage::from_bytes(&bytes),
        Err(Error::Format(_))
    ));
}

/// The relay moves a message: to another session, round, protocol, sender slot or recipient
/// slot, or replays it into a later session. The receiver builds the context it expects, so the
/// signature no longer verifies.
#[test]
fn moved_or_replayed_envelope_fails_the_signature() {
    let n = nodes();
    let ctx = p2p(&SID, 1, 0, 1);
    let envelope = n.a.seal_to(&n.b.public(), &ctx, b"share").unwrap();
    let other_protocol = MessageContext {
        protocol: "cggmp24/presign",
        session_id: &SID,
        round: 1,
        sender: 0,
        recipient: Some(1),
    }
    .to_bytes();
    for wrong in [
        p2p(&OTHER_SID, 1, 0, 1), // replay into another session
        p2p(&SID, 2, 0, 1),       // another round
        p2p(&SID, 1, 2, 1),       // another sender slot
        p2p(&SID, 1, 0, 2),       // another recipient slot
        p2p(&SID, 1, 1, 0),       // sender and recipient swapped
        bcast(&SID, 1, 0),        // as a broadcast
        other_protocol,
        Vec::new(),
    ] {
        assert!(matches!(
            n.b.open_from(&n.a.public(), &wrong, &envelope),
            Err(Error::BadSignature)
        ));
        assert!(matches!(
            envelope.verify_sender(&n.a.public(), &wrong),
            Err(Error::BadSignature)
        ));
    }
}

#[test]
fn claimed_sender_must_match() {
    let n = nodes();
    let ctx = p2p(&SID, 1, 0, 1);
    let envelope = n.a.seal_to(&n.b.public(), &ctx, b"share").unwrap();
    // The relay says it came from C: it did not.
    assert!(matches!(
        n.b.open_from(&n.c.public(), &ctx, &envelope),
        Err(Error::BadSignature)
    ));
    assert!(matches!(
        envelope.verify_sender(&n.c.public(), &ctx),
        Err(Error::BadSignature)
    ));
    // Only A's signing key with A's encryption key is A: a mixed-up NodePublic fails too.
    let mixed = NodePublic {
        sign_key: n.a.public().sign_key,
        enc_key: n.c.public().enc_key,
    };
    assert!(matches!(
        n.b.open_from(&mixed, &ctx, &envelope),
        Err(Error::BadSignature)
    ));
}

/// The relay forwards B's message to C: C sees it is not addressed to it.
#[test]
fn a_third_node_cannot_open_it() {
    let n = nodes();
    let ctx = p2p(&SID, 1, 0, 1);
    let envelope = n.a.seal_to(&n.b.public(), &ctx, b"share").unwrap();
    // C, trying B's context (the relay could tell it): addressed to someone else.
    assert!(matches!(
        n.c.open_from(&n.a.public(), &ctx, &envelope),
        Err(Error::WrongRecipient)
    ));
    // C, with the context it expects for itself: not signed for that.
    assert!(matches!(
        n.c.open_from(&n.a.public(), &p2p(&SID, 1, 0, 2), &envelope),
        Err(Error::BadSignature)
    ));
    // Even the sender cannot open what it sent to B.
    assert!(matches!(
        n.a.open_from(&n.a.public(), &ctx, &envelope),
        Err(Error::WrongRecipient)
    ));
}

#[test]
fn invalid_public_keys_are_refused() {
    let n = nodes();
    let ctx = p2p(&SID, 1, 0, 1);
    let envelope = n.a.seal_to(&n.b.public(), &ctx, b"share").unwrap();
    // An identity point as signing key (weak), and a y-coordinate that is not on the curve.
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    let mut not_a_point = [0u8; 32];
    not_a_point[0] = 2;
    for sign_key in [identity_point, not_a_point] {
        let bad = NodePublic {
            sign_key,
            enc_key: n.a.public().enc_key,
        };
        assert!(matches!(bad.validate(), Err(Error::InvalidPublicKey(_))));
        assert!(matches!(
            n.b.open_from(&bad, &ctx, &envelope),
            Err(Error::InvalidPublicKey(_))
        ));
    }
    // Small-order X25519 keys (0 and 1 as u-coordinates).
    for u in [0u8, 1] {
        let mut enc_key = [0u8; 32];
        enc_key[0] = u;
        let bad = NodePublic {
            sign_key: n.b.public().sign_key,
            enc_key,
        };
        assert!(matches!(bad.validate(), Err(Error::InvalidPublicKey(_))));
        assert!(matches!(
            n.a.seal_to(&bad, &ctx, b"share"),
            Err(Error::InvalidPublicKey(_))
        ));
    }
    n.a.public().validate().unwrap();
}

#[test]
fn broadcast_round_trip_and_tampering() {
    let n = nodes();
    let ctx = bcast(&SID, 1, 0);
    let signed = n.a.sign_broadcast(&ctx, b"commitment");
    assert_eq!(signed.verify(&n.a.public(), &ctx).unwrap(), b"commitment");
    assert_eq!(
        verify_broadcast(&n.a.public(), &ctx, &signed).unwrap(),
        b"commitment"
    );

    let bytes = signed.to_bytes();
    assert_eq!(bytes[..4], SIGNED_MESSAGE_MAGIC);
    assert_eq!(bytes.len(), 69 + 10);
    for byte in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[byte] ^= 0x10;
        let err = SignedMessage::from_bytes(&bad)
            .and_then(|m| m.verify(&n.a.public(), &ctx).map(<[u8]>::to_vec))
            .unwrap_err();
        match byte {
            0..=4 => assert!(matches!(err, Error::Format(_)), "byte {byte}: {err:?}"),
            _ => assert!(matches!(err, Error::BadSignature), "byte {byte}: {err:?}"),
        }
    }
    for len in 0..69 {
        assert!(matches!(
            SignedMessage::from_bytes(&bytes[..len]),
            Err(Error::Format(_))
        ));
    }
    // Appending or dropping payload bytes breaks the signature.
    let mut longer = bytes.clone();
    longer.push(b'!');
    let longer = SignedMessage::from_bytes(&longer).unwrap();
    assert!(matches!(
        longer.verify(&n.a.public(), &ctx),
        Err(Error::BadSignature)
    ));

    // Another sender, session, round or sender slot; a p2p context.
    assert!(matches!(
        signed.verify(&n.b.public(), &ctx),
        Err(Error::BadSignature)
    ));
    for wrong in [
        bcast(&OTHER_SID, 1, 0),
        bcast(&SID, 2, 0),
        bcast(&SID, 1, 1),
        p2p(&SID, 1, 0, 1),
    ] {
        assert!(matches!(
            signed.verify(&n.a.public(), &wrong),
            Err(Error::BadSignature)
        ));
    }
    // Empty payload is fine.
    let empty = n.a.sign_broadcast(&ctx, b"");
    assert_eq!(empty.verify(&n.a.public(), &ctx).unwrap(), b"");
}

/// A broadcast signature and an envelope signature can never be confused (domain separation):
/// the signature of a broadcast whose payload looks like an envelope's signed fields does not
/// verify as that envelope, and vice versa.
#[test]
fn signatures_are_domain_separated() {
    let n = nodes();
    let ctx = p2p(&SID, 1, 0, 1);
    let envelope = n.a.seal_to(&n.b.public(), &ctx, b"share").unwrap();
    let bytes = envelope.to_bytes();
    let mut as_signed = b"KFSM\x01".to_vec();
    as_signed.extend_from_slice(&bytes[69..133]); // the envelope's signature
    as_signed.extend_from_slice(&bytes[133..]);
    let forged = SignedMessage::from_bytes(&as_signed).unwrap();
    assert!(matches!(
        forged.verify(&n.a.public(), &ctx),
        Err(Error::BadSignature)
    ));
}

#[test]
fn serde_json_forms() {
    let n = nodes();
    let ctx = p2p(&SID, 1, 0, 1);

    let public = n.a.public();
    let json = serde_json::to_string(&public).unwrap();
    assert_eq!(
        json,
        format!(
            r#"{{"sign_key":"{}","enc_key":"{}"}}"#,
            hex::encode(public.sign_key),
            hex::encode(public.enc_key)
        )
    );
    assert_eq!(serde_json::from_str::<NodePublic>(&json).unwrap(), public);
    for bad in [
        r#"{"sign_key":"00","enc_key":"00"}"#.to_owned(),
        format!(
            r#"{{"sign_key":"{}","enc_key":"{}"}}"#,
            hex::encode([0u8; 32]),
            hex::encode(public.enc_key)
        ),
        format!(
            r#"{{"sign_key":"{}","enc_key":"{}"}}"#,
            hex::encode(public.sign_key),
            hex::encode([0u8; 32])
        ),
        format!(
            r#"{{"sign_key":"{}","enc_key":"{}","extra":1}}"#,
            hex::encode(public.sign_key),
            hex::encode(public.enc_key)
        ),
    ] {
        assert!(serde_json::from_str::<NodePublic>(&bad).is_err(), "{bad}");
    }

    let envelope = n.a.seal_to(&n.b.public(), &ctx, b"share").unwrap();
    let json = serde_json::to_string(&envelope).unwrap();
    assert!(json.starts_with("\"S0ZFT"), "{json}"); // base64url of "KFEN"
    assert!(!json.contains('=') && !json.contains('+') && !json.contains('/'));
    let back: Envelope = serde_json::from_str(&json).unwrap();
    assert_eq!(back, envelope);
    assert_eq!(
        n.b.open_from(&n.a.public(), &ctx, &back)
            .unwrap()
            .expose_secret(),
        b"share"
    );

    let signed = n.a.sign_broadcast(&bcast(&SID, 1, 0), b"commitment");
    let json = serde_json::to_string(&signed).unwrap();
    let back: SignedMessage = serde_json::from_str(&json).unwrap();
    assert_eq!(back, signed);

    for bad in ["\"not base64!\"", "\"S0ZFTgE=\"", "\"AAAA\"", "42"] {
        assert!(serde_json::from_str::<Envelope>(bad).is_err(), "{bad}");
        assert!(serde_json::from_str::<SignedMessage>(bad).is_err(), "{bad}");
    }
}

#[test]
fn identity_sealed_round_trip_and_binding() {
    let kek = Kek::generate();
    let identity = NodeIdentity::generate();
    let sealed = identity.to_sealed(&kek, "signer-1").unwrap();
    let restored = NodeIdentity::from_sealed(&kek, "signer-1", &sealed).unwrap();
    assert_eq!(restored.public(), identity.public());

    // The restored identity speaks as the original.
    let peer = NodeIdentity::generate();
    let ctx = p2p(&SID, 1, 0, 1);
    let envelope = restored.seal_to(&peer.public(), &ctx, b"x").unwrap();
    assert_eq!(
        peer.open_from(&identity.public(), &ctx, &envelope)
            .unwrap()
            .expose_secret(),
        b"x"
    );
    let back = peer.seal_to(&identity.public(), &ctx, b"y").unwrap();
    assert_eq!(
        restored
            .open_from(&peer.public(), &ctx, &back)
            .unwrap()
            .expose_secret(),
        b"y"
    );

    // Bound to its signer and its KEK.
    assert!(matches!(
        NodeIdentity::from_sealed(&kek, "signer-2", &sealed),
        Err(Error::Tampered)
    ));
    assert!(matches!(
        NodeIdentity::from_sealed(&Kek::generate(), "signer-1", &sealed),
        Err(Error::WrongKek { .. })
    ));
    // A key share sealed for the same signer is not an identity.
    let share = keyfold_keystore::seal(
        &kek,
        &keyfold_keystore::Aad::new(
            keyfold_keystore::Purpose::KeyShare,
            keyfold_keystore::identity::NODE_IDENTITY_KEY_ID,
            "signer-1",
            1,
        ),
        &[1; 65],
    )
    .unwrap();
    assert!(matches!(
        NodeIdentity::from_sealed(&kek, "signer-1", &share),
        Err(Error::Tampered)
    ));
}
