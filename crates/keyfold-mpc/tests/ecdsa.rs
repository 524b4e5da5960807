//! Threshold ECDSA (CGGMP24): aux info → keygen → sign / presign, every signature checked with
//! `k256` (including public-key recovery from the recovery id), and blame on tampering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: panics are failures

mod common;

use std::collections::HashSet;
use std::time::Instant;

use common::{ecdsa_keys, flip_from_end, pick, sid};
use k256::ecdsa::{RecoveryId, Signature, VerifyingKey, signature::hazmat::PrehashVerifier};
use keyfold_mpc::ecdsa::{self, EcdsaKeyShare, EcdsaMessage, EcdsaPrehash, EcdsaSignature};
use keyfold_mpc::sim::{self, Order};
use keyfold_mpc::{Error, PartyIndex, Session};

/// Independent check with k256: verify, then recover the key from (r, s, recid) and compare.
fn check_with_k256(pk_sec1: &[u8], prehash: &[u8; 32], sig: &EcdsaSignature) {
    let vk = VerifyingKey::from_sec1_bytes(pk_sec1).expect("group key");
    let ksig = Signature::from_scalars(sig.r, sig.s).expect("signature");
    vk.verify_prehash(prehash, &ksig).expect("k256 verifies");
    assert!(ksig.normalize_s().is_none(), "s is low");
    let recid = RecoveryId::from_byte(sig.recovery_id).expect("recid");
    let recovered = VerifyingKey::recover_from_prehash(prehash, &ksig, recid).expect("recover");
    assert_eq!(recovered, vk, "recovery id recovers the group key");
}

fn sign_all(
    shares: &[EcdsaKeyShare],
    signers: &[PartyIndex],
    prehash: EcdsaPrehash,
) -> Vec<EcdsaSignature> {
    let s = sid("sign");
    let sessions: Vec<_> = pick(shares, signers)
        .iter()
        .map(|k| ecdsa::sign(s, k, signers, prehash).expect("sign session"))
        .collect();
    let t = Instant::now();
    let out = sim::run(sessions).expect("signing");
    eprintln!("ecdsa sign with {signers:?}: {:?}", t.elapsed());
    out
}

fn presign_sign(
    shares: &[EcdsaKeyShare],
    signers: &[PartyIndex],
    msg: &EcdsaMessage,
) -> EcdsaSignature {
    let s = sid("presign");
    let sessions: Vec<_> = pick(shares, signers)
        .iter()
        .map(|k| ecdsa::presign(s, k, signers).expect("presign session"))
        .collect();
    let t = Instant::now();
    let presigs = sim::run(sessions).expect("presign");
    eprintln!("ecdsa presign with {signers:?}: {:?}", t.elapsed());
    let public = presigs[0].public().clone();
    for p in &presigs {
        assert_eq!(
            p.public(),
            &public,
            "every signer has the same public presignature data"
        );
    }
    let t = Instant::now();
    let partials: Vec<_> = presigs.into_iter().map(|p| p.issue_partial(msg)).collect();
    let sig = ecdsa::combine(&public, &partials, msg).expect("combine");
    eprintln!("ecdsa partial + combine: {:?}", t.elapsed());
    sig
}

fn full_flow(t: u16, n: u16, signers: &[PartyIndex], presigners: &[PartyIndex]) {
    let shares = ecdsa_keys(t, n);
    let pk = shares[0].public_key_compressed();
    for s in &shares {
        assert_eq!(s.public_key_compressed(), pk);
        assert_eq!((s.threshold(), s.n()), (t, n));
    }
    let uncompressed = shares[0].public_key_uncompressed();
    assert_eq!(
        VerifyingKey::from_sec1_bytes(&uncompressed).expect("uncompressed key"),
        VerifyingKey::from_sec1_bytes(&pk).expect("compressed key")
    );

    // Interactive signing of a bare hash, by a subset that is not the first t parties.
    let prehash = EcdsaPrehash([0x5a; 32]);
    let sigs = sign_all(&shares, signers, prehash);
    for sig in &sigs {
        assert_eq!(sig, &sigs[0], "all signers output the same signature");
        check_with_k256(&pk, &prehash.0, sig);
        sig.verify(&uncompressed, &prehash.0).expect("own verify");
    }

    // Presignature, then the fast online phase, for a Keccak-256 (Ethereum) message.
    let msg = EcdsaMessage::keccak256(b"keyfold presigned transfer");
    let sig = presign_sign(&shares, presigners, &msg);
    check_with_k256(&pk, &msg.digest(), &sig);
}

#[test]
fn ecdsa_2_of_3() {
    full_flow(2, 3, &[2, 1], &[0, 2]);
}

#[test]
fn ecdsa_3_of_5() {
    full_flow(3, 5, &[4, 1, 3], &[0, 2, 4]);
}

#[test]
fn ecdsa_out_of_order_delivery() {
    let shares = ecdsa_keys(2, 3);
    let signers = [0, 2];
    let s = sid("shuffled");
    let prehash = EcdsaPrehash([7; 32]);
    let sessions: Vec<_> = pick(&shares, &signers)
        .iter()
        .map(|k| ecdsa::sign(s, k, &signers, prehash).expect("session"))
        .collect();
    let report = sim::run_with(sessions, Order::Shuffled(0x1234_5678), |_| {});
    eprintln!(
        "ecdsa 2-of-3 sign: {} deliveries, {} bytes sent, largest message {} bytes",
        report.deliveries, report.bytes_sent, report.max_message
    );
    let sigs = report.into_outputs().expect("signing");
    check_with_k256(&shares[0].public_key_compressed(), &prehash.0, &sigs[0]);
}

/// A bit flipped in one message of party `culprit` makes the receiver abort naming `culprit`.
#[test]
fn ecdsa_tampered_message_names_sender() {
    let shares = ecdsa_keys(2, 3);
    let signers = [0, 1];
    let culprit: PartyIndex = 1;
    let mut library_blame = false;
    // Tamper with different messages of the culprit (by arrival order at party 0), at the end
    // (a curve point: fails to parse) or in the middle (inside a big integer or proof: parses, and
    // the library's own checks must catch and attribute it). Each run must blame the culprit.
    // (#0 round 1a broadcast, #2 its echo hash, #3 round 2 proofs, #4 round 3, #5 round 4.)
    // The echo (#2) is a short CBOR array of hash bytes: its last byte is always a hash byte,
    // so flipping it always changes the echoed hash (a flip in the middle may hit a CBOR
    // header instead, which made this case depend on the hash's value).
    // cggmp24 cannot attribute a bad final partial signature (round 4) in interactive signing:
    // that one must abort without a culprit. (Presignature combining does name it; see below.)
    // #1 (round 1b: the ψ⁰ and ψ¹ range proofs) is the case cggmp24 alpha.3 itself misses; our
    // re-check (src/ecdsa/enc_proof_guard.rs) must catch a flip in either proof.
    let cases = [
        (0usize, 0.0),
        (1, 0.5),
        (1, 0.2),
        (2, 0.0),
        (3, 0.5),
        (4, 0.5),
        (5, 0.0),
    ];
    for (target, from_end) in cases {
        let s = sid("tamper");
        let prehash = EcdsaPrehash([9; 32]);
        let sessions: Vec<_> = pick(&shares, &signers)
            .iter()
            .map(|k| ecdsa::sign(s, k, &signers, prehash).expect("session"))
            .collect();
        let mut seen = 0usize;
        let mut tampered_len = 0;
        let report = sim::run_with(sessions, Order::Fifo, |d| {
            if d.from == culprit && d.to == 0 {
                if seen == target {
                    tampered_len = d.bytes.len();
                    let pos = (d.bytes.len() as f64 * from_end) as usize;
                    flip_from_end(&mut d.bytes, pos);
                }
                seen += 1;
            }
        });
        let err = report.outcomes[0]
            .err()
            .cloned()
            .expect("party 0 must fail");
        eprintln!(
            "tampered message #{target} ({tampered_len} bytes, at {from_end} from end): {err}"
        );
        if target == 5 {
            assert!(matches!(err, Error::Aborted(_)), "{err}");
            continue;
        }
        assert_eq!(err.culprits(), &[culprit], "{err}");
        if !err.to_string().contains("malformed") {
            library_blame = true;
        }
    }
    assert!(
        library_blame,
        "at least one case exercised cggmp24's own blame"
    );
}

#[test]
fn ecdsa_bad_partial_signature_is_blamed() {
    let shares = ecdsa_keys(2, 3);
    let signers = [1, 2];
    let s = sid("presign-bad");
    let sessions: Vec<_> = pick(&shares, &signers)
        .iter()
        .map(|k| ecdsa::presign(s, k, &signers).expect("session"))
        .collect();
    let presigs = sim::run(sessions).expect("presign");
    let public = presigs[0].public().clone();
    let msg = EcdsaMessage::sha256(b"pay 1 BTC");
    let other = EcdsaMessage::sha256(b"pay 2 BTC");
    let mut partials = Vec::new();
    for p in presigs {
        // party 2 signs a different message than the one being combined
        let m = if p.party() == 2 { &other } else { &msg };
        partials.push(p.issue_partial(m));
    }
    let err = ecdsa::combine(&public, &partials, &msg).expect_err("must fail");
    assert_eq!(err.culprits(), &[2], "{err}");
    // Wire round trip of partials and public data.
    let bytes = partials[0].to_bytes().expect("bytes");
    assert_eq!(
        ecdsa::EcdsaPartialSignature::from_bytes(&bytes).expect("parse"),
        partials[0]
    );
    let pb = public.to_bytes().expect("bytes");
    assert_eq!(
        ecdsa::EcdsaPresignaturePublic::from_bytes(&pb).expect("parse"),
        public
    );
}

#[test]
fn ecdsa_serialization_round_trips() {
    let shares = ecdsa_keys(2, 3);
    let bytes = shares[1].to_bytes().expect("to_bytes");
    assert_eq!(bytes[0], keyfold_mpc::FORMAT_VERSION);
    let back = EcdsaKeyShare::from_bytes(&bytes).expect("from_bytes");
    assert_eq!(
        back.public_key_compressed(),
        shares[1].public_key_compressed()
    );
    assert_eq!(back.party(), 1);
    assert_eq!(format!("{back:?}"), "EcdsaKeyShare(<redacted>)");
    // through the scheme-independent type
    let any = keyfold_mpc::KeyShare::from_bytes(&bytes).expect("any");
    assert_eq!(any.scheme(), keyfold_mpc::Scheme::EcdsaSecp256k1);
    assert_eq!(
        any.public_key().expect("pk"),
        shares[1].public_key_compressed().to_vec()
    );
    // aux info
    let aux = &common::aux_infos(3)[2];
    let aux_back =
        ecdsa::EcdsaAuxInfo::from_bytes(&aux.to_bytes().expect("aux bytes")).expect("aux");
    assert_eq!((aux_back.party(), aux_back.n()), (2, 3));
    // a key share blob is not aux info
    assert!(matches!(
        ecdsa::EcdsaAuxInfo::from_bytes(&bytes),
        Err(Error::InvalidInput(_))
    ));
    eprintln!(
        "sizes: key share {} bytes, aux info {} bytes",
        bytes.len(),
        aux.to_bytes().expect("aux").len()
    );
    // presignature round trip, then use it
    let signers = [0, 1];
    let s = sid("presig-bytes");
    let sessions: Vec<_> = pick(&shares, &signers)
        .iter()
        .map(|k| ecdsa::presign(s, k, &signers).expect("session"))
        .collect();
    let presigs = sim::run(sessions).expect("presign");
    let public = presigs[0].public().clone();
    let msg = EcdsaMessage::double_sha256(b"bitcoin sighash preimage");
    let blobs: Vec<_> = presigs
        .into_iter()
        .map(|p| {
            let b = p.to_bytes().expect("presig bytes");
            assert_eq!(format!("{p:?}"), "EcdsaPresignature(<redacted>)");
            b
        })
        .collect();
    let sign_with = |msg: &EcdsaMessage| {
        let partials: Vec<_> = blobs
            .iter()
            .map(|b| {
                ecdsa::EcdsaPresignature::from_bytes(b)
                    .expect("presig")
                    .issue_partial(msg)
            })
            .collect();
        let sig = ecdsa::combine(&public, &partials, msg).expect("combine");
        check_with_k256(&shares[0].public_key_compressed(), &msg.digest(), &sig);
        sig
    };
    sign_with(&msg);
    // The recovery id is read off the presignature's R, its y-parity flipped when low-S
    // normalization negates s: R is fixed here, so both ids appearing means both branches
    // ran and were checked by k256's recovery. (Only a test may spend one presignature on
    // several messages: in production that gives the key away.) Each message takes either
    // branch with probability 1/2; 32 of them miss one with probability 2^-31.
    let ids: HashSet<u8> = (0..32u8)
        .map(|i| sign_with(&EcdsaMessage::sha256(&[i])).recovery_id)
        .collect();
    assert_eq!(ids.len(), 2, "both recovery ids seen: {ids:?}");
}

#[test]
fn ecdsa_rejects_bad_parameters_and_foreign_messages() {
    let shares = ecdsa_keys(2, 3);
    let prehash = EcdsaPrehash([1; 32]);
    // wrong number of signers, own index missing, duplicates
    assert!(matches!(
        ecdsa::sign(sid("x"), &shares[0], &[0, 1, 2], prehash),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        ecdsa::sign(sid("x"), &shares[0], &[1, 2], prehash),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        ecdsa::sign(sid("x"), &shares[0], &[0, 0], prehash),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        ecdsa::keygen(sid("x"), 0, 3, 4),
        Err(Error::InvalidInput(_))
    ));

    // A message from another session is a recoverable transport error.
    let mut a = ecdsa::sign(sid("a"), &shares[0], &[0, 1], prehash).expect("a");
    let mut b = ecdsa::sign(sid("b"), &shares[1], &[0, 1], prehash).expect("b");
    let _ = a.start().expect("start a");
    let out_b = b.start().expect("start b");
    let err = a.handle(1, &out_b[0].bytes).expect_err("foreign session");
    assert!(err.is_recoverable(), "{err}");
    // a message claiming another sender is refused too
    let err = a.handle(2, &out_b[0].bytes).expect_err("wrong sender");
    assert!(err.is_recoverable(), "{err}");
}

#[test]
fn threaded_session_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let shares = ecdsa_keys(2, 3);
    let s = sid("threaded");
    let prehash = EcdsaPrehash([3; 32]);
    let sessions: Vec<_> = pick(&shares, &[0, 1])
        .into_iter()
        .map(|k| {
            keyfold_mpc::threaded::ThreadedSession::spawn(move || {
                ecdsa::sign(s, &k, &[0, 1], prehash)
            })
            .expect("spawn")
        })
        .collect();
    assert_send(&sessions[0]);
    let sigs = sim::run(sessions).expect("sign");
    check_with_k256(&shares[0].public_key_compressed(), &prehash.0, &sigs[0]);
}

/// cggmp24 0.7.0-alpha.3 accepts a round-1b message whose ψ¹ range proof is invalid as long as ψ⁰
/// is valid (see `src/ecdsa/enc_proof_guard.rs`). Our re-check must reject it, naming the sender.
#[test]
fn ecdsa_invalid_psi1_range_proof_is_caught() {
    let shares = ecdsa_keys(2, 3);
    let signers = [1, 2];
    let s = sid("psi1");
    let sessions: Vec<_> = pick(&shares, &signers)
        .iter()
        .map(|k| ecdsa::presign(s, k, &signers).expect("session"))
        .collect();
    let mut done = false;
    let report = sim::run_with(sessions, Order::Fifo, |d| {
        if done || d.from != 2 || d.broadcast {
            return;
        }
        // The round-1b message: find the ψ¹ proof and change one hex digit of its first integer.
        if let Some(at) = d.bytes.windows(4).position(|w| w == b"psi1")
            && let Some(k) = (at + 40..d.bytes.len()).find(|k| d.bytes[*k].is_ascii_digit())
        {
            d.bytes[k] ^= 1; // '0'<->'1', '2'<->'3', ...: still a valid hex digit
            done = true;
        }
    });
    assert!(done, "found the ψ¹ proof");
    let err = report.outcomes[0]
        .err()
        .cloned()
        .expect("party 1 must fail");
    eprintln!("tampered ψ¹: {err}");
    assert_eq!(err.culprits(), &[2], "{err}");
    assert!(err.to_string().contains("ψ¹"), "{err}");
}

#[test]
fn ecdsa_duplicate_delivery_is_recoverable() {
    let s = sid("dup");
    let mut a = ecdsa::keygen(s, 0, 2, 2).expect("a");
    let mut b = ecdsa::keygen(s, 1, 2, 2).expect("b");
    let _ = a.start().expect("a start");
    let from_b = b.start().expect("b start");
    a.handle(1, &from_b[0].bytes).expect("first delivery");
    let err = a.handle(1, &from_b[0].bytes).expect_err("duplicate");
    assert!(err.is_recoverable(), "{err}");
}
