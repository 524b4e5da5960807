//! FROST Ed25519 and secp256k1 BIP-340 / Taproot: DKG → sign, checked with `ed25519-dalek` and
//! `k256::schnorr`; Taproot key-path tweak checked against an independently computed output key;
//! blame for a bad share and for an equivocated DKG broadcast.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: panics are failures

mod common;

use common::{flip_from_end, pick, sid};
use k256::elliptic_curve::sec1::ToEncodedPoint;
use keyfold_mpc::frost::{
    self, Ed25519, Ed25519KeyShare, FrostKeyShare, Taproot, TaprootKeyShare, TaprootTweak,
};
use keyfold_mpc::sim::{self, Order};
use keyfold_mpc::{Error, KeyShare, PartyIndex, Scheme};
use sha2::Digest;

fn dkg<C: frost::FrostSuite>(t: u16, n: u16) -> Vec<FrostKeyShare<C>> {
    let s = sid("dkg");
    let sessions: Vec<_> = (0..n)
        .map(|i| frost::dkg::<C>(s, i, n, t).expect("dkg session"))
        .collect();
    let t0 = std::time::Instant::now();
    // Shuffled delivery: round-2 messages often arrive before round-1 ones and must be buffered.
    let shares = sim::run_with(
        sessions,
        Order::Shuffled(u64::from(t) * 1000 + u64::from(n)),
        |_| {},
    )
    .into_outputs()
    .expect("dkg");
    eprintln!("frost dkg {t}-of-{n}: {:?}", t0.elapsed());
    shares
}

fn sign<C: frost::FrostSuite>(
    shares: &[FrostKeyShare<C>],
    signers: &[PartyIndex],
    msg: &[u8],
    tweak: Option<TaprootTweak>,
) -> [u8; 64] {
    let s = sid("sign");
    let sessions: Vec<_> = pick(shares, signers)
        .iter()
        .map(|k| frost::sign(s, k, signers, msg, tweak).expect("sign session"))
        .collect();
    let sigs = sim::run(sessions).expect("sign");
    for sig in &sigs {
        assert_eq!(sig, &sigs[0], "every signer aggregates the same signature");
    }
    sigs[0].to_bytes()
}

fn ed25519_flow(t: u16, n: u16, signers: &[PartyIndex]) {
    let shares: Vec<Ed25519KeyShare> = dkg::<Ed25519>(t, n);
    let pk = shares[0].public_key().expect("pk");
    for s in &shares {
        assert_eq!(s.public_key().expect("pk"), pk);
        assert_eq!((s.threshold(), s.n()), (t, n));
    }
    let msg = b"solana transaction message bytes";
    let sig = sign(&shares, signers, msg, None);
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk).expect("dalek key");
    vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
        .expect("ed25519-dalek verifies");
    // a different subset signs too
    let all: Vec<PartyIndex> = (0..n).collect();
    let sig2 = sign(&shares, &all, b"other", None);
    vk.verify_strict(b"other", &ed25519_dalek::Signature::from_bytes(&sig2))
        .expect("verifies");
}

/// BIP-341 `taproot_tweak_pubkey`, computed with k256 only (independent of frost-secp256k1-tr).
fn bip341_output_key(internal_x: &[u8; 32], merkle_root: Option<&[u8; 32]>) -> [u8; 32] {
    use k256::elliptic_curve::{PrimeField, ops::Reduce};
    let tag = sha2::Sha256::digest(b"TapTweak");
    let mut h = sha2::Sha256::new();
    h.update(tag);
    h.update(tag);
    h.update(internal_x);
    if let Some(r) = merkle_root {
        h.update(r);
    }
    let t_bytes = h.finalize();
    let t = Option::<k256::Scalar>::from(k256::Scalar::from_repr(t_bytes))
        .unwrap_or_else(|| <k256::Scalar as Reduce<k256::U256>>::reduce_bytes(&t_bytes));
    let mut sec1 = [0u8; 33];
    sec1[0] = 0x02; // lift_x: the even-y point
    sec1[1..].copy_from_slice(internal_x);
    let p = k256::PublicKey::from_sec1_bytes(&sec1).expect("lift_x");
    let q = (p.to_projective() + k256::ProjectivePoint::GENERATOR * t).to_affine();
    let enc = q.to_encoded_point(true);
    let mut out = [0u8; 32];
    out.copy_from_slice(enc.x().expect("x"));
    out
}

fn schnorr_verify(x_only: &[u8; 32], msg: &[u8; 32], sig: &[u8; 64]) {
    use k256::schnorr::signature::hazmat::PrehashVerifier;
    let vk = k256::schnorr::VerifyingKey::from_bytes(x_only).expect("x-only key");
    let s = k256::schnorr::Signature::try_from(&sig[..]).expect("signature");
    vk.verify_prehash(msg, &s).expect("k256 BIP-340 verifies");
}

fn taproot_flow(t: u16, n: u16, signers: &[PartyIndex]) {
    let shares: Vec<TaprootKeyShare> = dkg::<Taproot>(t, n);
    let x = shares[0].x_only_public_key().expect("x-only");
    let compressed = shares[0].public_key_compressed().expect("compressed");
    let uncompressed = shares[0].public_key_uncompressed().expect("uncompressed");
    assert_eq!(&compressed[1..], &x[..]);
    assert_eq!(&uncompressed[1..33], &x[..]);
    for s in &shares {
        assert_eq!(s.x_only_public_key().expect("x"), x);
    }
    let sighash: [u8; 32] = sha2::Sha256::digest(b"taproot sighash").into();

    // Plain BIP-340 against the group key.
    let sig = sign(&shares, signers, &sighash, None);
    schnorr_verify(&x, &sighash, &sig);

    // BIP-341 key path, no script tree, and with a script tree.
    let root = [0xabu8; 32];
    for merkle_root in [None, Some(root)] {
        let tweak = TaprootTweak { merkle_root };
        let q = bip341_output_key(&x, merkle_root.as_ref());
        assert_eq!(
            shares[0]
                .tweaked_x_only_public_key(&tweak)
                .expect("tweaked"),
            q
        );
        let sig = sign(&shares, signers, &sighash, Some(tweak));
        schnorr_verify(&q, &sighash, &sig);
    }
}

#[test]
fn ed25519_2_of_3() {
    ed25519_flow(2, 3, &[2, 1]);
}

#[test]
fn ed25519_3_of_5() {
    ed25519_flow(3, 5, &[4, 0, 2]);
}

#[test]
fn taproot_2_of_3() {
    taproot_flow(2, 3, &[1, 2]);
}

#[test]
fn taproot_3_of_5() {
    taproot_flow(3, 5, &[1, 3, 4]);
}

#[test]
fn frost_tampered_share_names_sender() {
    let shares = dkg::<Taproot>(2, 3);
    let signers = [0, 2];
    let s = sid("tamper");
    let sessions: Vec<_> = pick(&shares, &signers)
        .iter()
        .map(|k| frost::sign(s, k, &signers, &[1; 32], None).expect("session"))
        .collect();
    let mut n_from_2 = 0;
    let report = sim::run_with(sessions, Order::Fifo, |d| {
        if d.from == 2 {
            n_from_2 += 1;
            if n_from_2 == 2 {
                // Second message of party 2 = its signature share. Flip the lowest bit of the
                // big-endian scalar (last byte of the `share` byte string): it still parses, so
                // the library's share verification must catch it and name the signer.
                flip_last_byte_of_field(&mut d.bytes, b"share");
            }
        }
    });
    let err = report.outcomes[0].err().cloned().expect("party 0 fails");
    eprintln!("tampered share: {err}");
    assert_eq!(err.culprits(), &[2]);
    assert!(err.to_string().contains("Invalid signature share"), "{err}");

    // Ed25519 DKG: a flipped bit in a round-2 secret share is blamed on its sender.
    let s = sid("tamper-dkg");
    let sessions: Vec<_> = (0..3)
        .map(|i| frost::dkg::<Ed25519>(s, i, 3, 2).expect("dkg"))
        .collect();
    let report = sim::run_with(sessions, Order::Fifo, |d| {
        if d.from == 1 && d.to == 0 && !d.broadcast {
            flip_from_end(&mut d.bytes, 3);
        }
    });
    let err = report.outcomes[0].err().cloned().expect("party 0 fails");
    eprintln!("tampered dkg share: {err}");
    assert_eq!(err.culprits(), &[1]);
}

/// Flips the lowest bit of the last byte of the CBOR byte string that follows the text key `key`.
fn flip_last_byte_of_field(bytes: &mut [u8], key: &[u8]) {
    let at = bytes
        .windows(key.len())
        .position(|w| w == key)
        .expect("field present");
    let h = at + key.len();
    let (start, len) = match bytes[h] {
        0x40..=0x57 => (h + 1, usize::from(bytes[h] - 0x40)),
        0x58 => (h + 2, usize::from(bytes[h + 1])),
        other => panic!("unexpected CBOR header {other:#x}"),
    };
    bytes[start + len - 1] ^= 1;
}

/// A relay (or party 1) showing party 2 a different round-1 package of party 1 than party 0 saw is
/// caught by the echo round instead of producing inconsistent keys.
#[test]
fn frost_dkg_detects_equivocated_broadcast() {
    let s = sid("equivocate");
    let n = 3;
    // A second, independent round-1 package for party 1 (same session), shown only to party 2.
    let mut evil_twin = frost::dkg::<Ed25519>(s, 1, n, 2).expect("twin");
    let twin_round1 = keyfold_mpc::Session::start(&mut evil_twin)
        .expect("twin start")
        .remove(0);
    let sessions: Vec<_> = (0..n)
        .map(|i| frost::dkg::<Ed25519>(s, i, n, 2).expect("dkg"))
        .collect();
    let mut replaced = false;
    let report = sim::run_with(sessions, Order::Fifo, |d| {
        // party 1's first message is its round-1 broadcast
        if d.from == 1 && d.to == 2 && !replaced {
            replaced = true;
            d.bytes = twin_round1.bytes.clone();
        }
    });
    let errors: Vec<Error> = report
        .outcomes
        .iter()
        .filter_map(|o| o.err().cloned())
        .collect();
    assert!(!errors.is_empty(), "someone must notice");
    for e in &errors {
        eprintln!("equivocation: {e}");
        assert!(
            e.culprits().contains(&1) || e.culprits().contains(&2),
            "{e}"
        );
    }
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| o.err().is_some() || matches!(o, sim::Outcome::Stalled)),
        "nobody may finish with a key"
    );
}

#[test]
fn frost_serialization_and_parameters() {
    let shares = dkg::<Ed25519>(2, 3);
    let bytes = shares[2].to_bytes().expect("bytes");
    let back = Ed25519KeyShare::from_bytes(&bytes).expect("back");
    assert_eq!(
        back.public_key().expect("pk"),
        shares[2].public_key().expect("pk")
    );
    assert_eq!(format!("{back:?}"), "FrostKeyShare<Ed25519>(<redacted>)");
    let any = KeyShare::from_bytes(&bytes).expect("any");
    assert_eq!(any.scheme(), Scheme::Ed25519);
    assert_eq!(format!("{any:?}"), "KeyShare(<redacted>)");
    // an Ed25519 blob is not a Taproot share
    assert!(matches!(
        TaprootKeyShare::from_bytes(&bytes),
        Err(Error::InvalidInput(_))
    ));
    // the restored share still signs
    let restored: Vec<_> = shares
        .iter()
        .map(|s| Ed25519KeyShare::from_bytes(&s.to_bytes().expect("b")).expect("s"))
        .collect();
    let sig = sign(&restored, &[0, 2], b"after restart", None);
    let vk =
        ed25519_dalek::VerifyingKey::from_bytes(&shares[0].public_key().expect("pk")).expect("vk");
    vk.verify_strict(
        b"after restart",
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .expect("verifies");
    // parameter checks
    assert!(matches!(
        frost::sign(sid("x"), &shares[0], &[0], b"m", None),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        frost::sign(
            sid("x"),
            &shares[0],
            &[0, 1],
            b"m",
            Some(TaprootTweak { merkle_root: None })
        ),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        frost::dkg::<Taproot>(sid("x"), 3, 3, 2),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn dyn_sessions_share_one_interface() {
    let s = sid("dyn");
    let sessions: Vec<keyfold_mpc::DynSession> = (0..3)
        .map(|i| keyfold_mpc::boxed(frost::dkg::<Taproot>(s, i, 3, 2).expect("dkg")))
        .collect();
    let outs = sim::run(sessions).expect("dkg");
    for o in outs {
        assert!(matches!(
            o,
            keyfold_mpc::SessionOutput::KeyShare(KeyShare::Taproot(_))
        ));
    }
}

/// A relay retry (the same bytes twice) is ignored with a recoverable error; a *different* second
/// round-1 package from the same party is equivocation and names it.
#[test]
fn duplicates_are_recoverable_equivocation_is_not() {
    use keyfold_mpc::Session;
    let s = sid("dup");
    let mut a = frost::dkg::<Ed25519>(s, 0, 2, 2).expect("a");
    let mut b = frost::dkg::<Ed25519>(s, 1, 2, 2).expect("b");
    let _ = a.start().expect("a start");
    let from_b = b.start().expect("b start");
    a.handle(1, &from_b[0].bytes).expect("first delivery");
    let err = a.handle(1, &from_b[0].bytes).expect_err("duplicate");
    assert!(err.is_recoverable(), "{err}");
    let mut b_twin = frost::dkg::<Ed25519>(s, 1, 2, 2).expect("twin");
    let other = b_twin.start().expect("twin start");
    let err = a.handle(1, &other[0].bytes).expect_err("second package");
    assert_eq!(err.culprits(), &[1], "{err}");
}

// ---------------------------------------------------------------------------------------------
// Preprocessed signing: nonces made ahead of time, one exchange per signer
// ---------------------------------------------------------------------------------------------

use keyfold_mpc::frost::preprocessed::{self, FrostNonces};
use std::collections::BTreeMap;

/// Each signer commits ahead of time (nonces go through their sealed byte form, as on a node),
/// then signs the coordinator's package; the coordinator aggregates.
fn preprocessed_sign<C: frost::FrostSuite>(
    shares: &[FrostKeyShare<C>],
    signers: &[PartyIndex],
    msg: &[u8],
    tweak: Option<TaprootTweak>,
) -> [u8; 64] {
    let mut stored = BTreeMap::new();
    let mut commitments = BTreeMap::new();
    for p in signers {
        let (nonces, c) = preprocessed::commit(&shares[usize::from(*p)]).expect("commit");
        stored.insert(*p, nonces.to_bytes().expect("nonce bytes"));
        commitments.insert(*p, c);
    }
    let mut out = BTreeMap::new();
    for p in signers {
        let nonces = FrostNonces::<C>::from_bytes(&stored[p]).expect("nonces");
        let share = preprocessed::sign_share(
            &shares[usize::from(*p)],
            nonces,
            &commitments,
            msg,
            tweak.as_ref(),
        )
        .expect("share");
        out.insert(*p, share);
    }
    let public = shares[0].public_package_bytes().expect("public package");
    preprocessed::aggregate::<C>(&public, &commitments, &out, msg, tweak.as_ref())
        .expect("aggregate")
        .to_bytes()
}

#[test]
fn preprocessed_ed25519_verifies_with_dalek() {
    for (t, n, signers) in [(2u16, 3u16, vec![0u16, 2]), (3, 5, vec![1, 3, 4])] {
        let shares = dkg::<Ed25519>(t, n);
        let pk = shares[0].public_key().expect("pk");
        let msg = b"a solana message signed with preprocessed nonces";
        let sig = preprocessed_sign(&shares, &signers, msg, None);
        ed25519_dalek::VerifyingKey::from_bytes(&pk)
            .expect("key")
            .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
            .expect("ed25519-dalek verifies");
    }
}

#[test]
fn preprocessed_taproot_verifies_with_k256() {
    for (t, n, signers) in [(2u16, 3u16, vec![1u16, 2]), (3, 5, vec![0, 2, 4])] {
        let shares = dkg::<Taproot>(t, n);
        let x = shares[0].x_only_public_key().expect("x-only");
        let sighash: [u8; 32] = sha2::Sha256::digest(b"preprocessed sighash").into();
        schnorr_verify(
            &x,
            &sighash,
            &preprocessed_sign(&shares, &signers, &sighash, None),
        );
        let tweak = TaprootTweak {
            merkle_root: Some([7; 32]),
        };
        let q = bip341_output_key(&x, tweak.merkle_root.as_ref());
        schnorr_verify(
            &q,
            &sighash,
            &preprocessed_sign(&shares, &signers, &sighash, Some(tweak)),
        );
    }
}

#[test]
fn preprocessed_refuses_a_changed_commitment_and_names_a_bad_share() {
    let shares = dkg::<Ed25519>(2, 3);
    let (n0, c0) = preprocessed::commit(&shares[0]).expect("commit");
    let (n1, c1) = preprocessed::commit(&shares[1]).expect("commit");
    let (_, other) = preprocessed::commit(&shares[0]).expect("commit");
    // A coordinator that swaps in another commitment for signer 0 gets a refusal, not a share.
    let lying: BTreeMap<PartyIndex, Vec<u8>> = [(0, other), (1, c1.clone())].into();
    let n0_again = FrostNonces::<Ed25519>::from_bytes(&n0.to_bytes().unwrap()).unwrap();
    let err = preprocessed::sign_share(&shares[0], n0_again, &lying, b"m", None).unwrap_err();
    assert!(err.to_string().contains("commitment"), "{err}");
    // A package without the signer is refused too.
    let without: BTreeMap<PartyIndex, Vec<u8>> = [(1, c1.clone()), (2, c0.clone())].into();
    let n0_again = FrostNonces::<Ed25519>::from_bytes(&n0.to_bytes().unwrap()).unwrap();
    assert!(preprocessed::sign_share(&shares[0], n0_again, &without, b"m", None).is_err());

    // Honest package; signer 1's share is altered in transit: aggregation names signer 1.
    let honest: BTreeMap<PartyIndex, Vec<u8>> = [(0, c0), (1, c1)].into();
    let s0 = preprocessed::sign_share(&shares[0], n0, &honest, b"m", None).unwrap();
    let mut s1 = preprocessed::sign_share(&shares[1], n1, &honest, b"m", None).unwrap();
    s1[0] ^= 1;
    let public = shares[0].public_package_bytes().unwrap();
    let got: BTreeMap<PartyIndex, Vec<u8>> = [(0, s0), (1, s1)].into();
    let err = preprocessed::aggregate::<Ed25519>(&public, &honest, &got, b"m", None).unwrap_err();
    assert_eq!(err.culprits(), &[1], "{err}");
    // Nonces print nothing secret; their bytes are a typed blob another suite refuses.
    let (n, _) = preprocessed::commit(&shares[2]).unwrap();
    assert!(format!("{n:?}").contains("<redacted>"));
    assert!(FrostNonces::<Taproot>::from_bytes(&n.to_bytes().unwrap()).is_err());
}
