//! Threshold Schnorr signatures with FROST (Zcash Foundation `frost-*` 3.x): Ed25519 and
//! secp256k1 BIP-340 / Taproot.
//!
//! WHY our own rounds around the library: `frost-core` gives the cryptographic steps (DKG
//! `part1..3`, `commit`, `sign`, `aggregate`) but no transport, and its DKG **assumes a reliable
//! broadcast channel for round 1**. Our messages go through a relaying coordinator that could show
//! different round-1 packages to different parties. So:
//!
//! * DKG round 2 carries, next to the point-to-point secret shares, an **echo**: the digest of
//!   every round-1 package the sender received (bound to the session id). A party finishes only if
//!   every echo equals its own; otherwise it aborts naming the parties involved.
//! * Signing is run without a trusted coordinator: every signer broadcasts its commitments,
//!   builds the same signing package, broadcasts its signature share with the digests of the
//!   commitments it used, and aggregates itself. Aggregation verifies each share and names a
//!   cheater; mismatching commitment digests reveal an equivocation instead of blaming an honest
//!   signer for a share computed over different commitments.
//!
//! Nonces are created inside the session, used once and dropped (zeroized by the library).
//!
//! Taproot: `frost-secp256k1-tr` already tweaks the DKG output with the BIP-341 "no script path"
//! tweak (`post_dkg`), so the group key it reports, [`FrostKeyShare::x_only_public_key`], is what
//! a plain BIP-340 signature ([`sign`] with `tweak: None`) verifies against. For a key-path spend
//! with that key as the **internal** key, pass [`TaprootTweak`]: the signature then verifies
//! against [`FrostKeyShare::tweaked_x_only_public_key`] `= P + H_TapTweak(P || merkle_root)·G`.

use std::collections::BTreeMap;

use frost_core::keys::{KeyPackage, PublicKeyPackage, dkg};
use frost_core::round1::{SigningCommitments, SigningNonces};
use frost_core::round2::SignatureShare;
use frost_core::{Ciphersuite, Identifier, SigningPackage};
use rand_core::OsRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub mod preprocessed;

use crate::ecdsa::primes::serde_bytes_wrapper::{ByteBuf, Bytes};
use crate::error::{Error, Result};
use crate::secret::{self, BlobKind};
use crate::session::{
    Outgoing, PartyIndex, ProtocolKind, Recipient, Seen, Session, SessionId, Step, Wire,
    check_party_set,
};

/// FROST(Ed25519, SHA-512).
pub type Ed25519 = frost_ed25519::Ed25519Sha512;
/// FROST(secp256k1, SHA-256) with BIP-340/BIP-341 (Taproot) conventions.
pub type Taproot = frost_secp256k1_tr::Secp256K1Sha256TR;
/// An Ed25519 key share.
pub type Ed25519KeyShare = FrostKeyShare<Ed25519>;
/// A secp256k1 Schnorr / Taproot key share.
pub type TaprootKeyShare = FrostKeyShare<Taproot>;

/// BIP-341 key-path tweak: sign for `Q = P + H_TapTweak(P || merkle_root)·G`, where `P` is the
/// group key. `merkle_root: None` is a key-path-only output (BIP-86 style).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaprootTweak {
    /// Root of the script tree, if any.
    pub merkle_root: Option<[u8; 32]>,
}

// The sealed trait exposes crate-private types (`BlobKind`) to nobody: it cannot be named or
// implemented outside this crate.
#[allow(private_interfaces)]
mod sealed {
    use super::*;

    /// Per-ciphersuite details; sealed so only our two suites exist.
    pub trait Suite: Ciphersuite + Send + Sync + 'static {
        const DKG: ProtocolKind;
        const SIGN: ProtocolKind;
        const BLOB: BlobKind;
        const NONCES_BLOB: BlobKind;
        const NAME: &'static str;
        const SUPPORTS_TWEAK: bool;

        fn sign_share(
            pkg: &SigningPackage<Self>,
            nonces: &SigningNonces<Self>,
            key: &KeyPackage<Self>,
            tweak: Option<&TaprootTweak>,
        ) -> std::result::Result<SignatureShare<Self>, frost_core::Error<Self>>;

        fn aggregate(
            pkg: &SigningPackage<Self>,
            shares: &BTreeMap<Identifier<Self>, SignatureShare<Self>>,
            public: &PublicKeyPackage<Self>,
            tweak: Option<&TaprootTweak>,
        ) -> std::result::Result<frost_core::Signature<Self>, frost_core::Error<Self>>;
    }
}

/// A FROST ciphersuite supported here: [`Ed25519`] or [`Taproot`].
pub trait FrostSuite: sealed::Suite {}
impl FrostSuite for Ed25519 {}
impl FrostSuite for Taproot {}

#[allow(private_interfaces)]
impl sealed::Suite for Ed25519 {
    const DKG: ProtocolKind = ProtocolKind::Ed25519Dkg;
    const SIGN: ProtocolKind = ProtocolKind::Ed25519Sign;
    const BLOB: BlobKind = BlobKind::Ed25519KeyShare;
    const NONCES_BLOB: BlobKind = BlobKind::Ed25519Nonces;
    const NAME: &'static str = "Ed25519";
    const SUPPORTS_TWEAK: bool = false;

    fn sign_share(
        pkg: &SigningPackage<Self>,
        nonces: &SigningNonces<Self>,
        key: &KeyPackage<Self>,
        _tweak: Option<&TaprootTweak>,
    ) -> std::result::Result<SignatureShare<Self>, frost_core::Error<Self>> {
        frost_ed25519::round2::sign(pkg, nonces, key)
    }

    fn aggregate(
        pkg: &SigningPackage<Self>,
        shares: &BTreeMap<Identifier<Self>, SignatureShare<Self>>,
        public: &PublicKeyPackage<Self>,
        _tweak: Option<&TaprootTweak>,
    ) -> std::result::Result<frost_core::Signature<Self>, frost_core::Error<Self>> {
        frost_ed25519::aggregate(pkg, shares, public)
    }
}

#[allow(private_interfaces)]
impl sealed::Suite for Taproot {
    const DKG: ProtocolKind = ProtocolKind::TaprootDkg;
    const SIGN: ProtocolKind = ProtocolKind::TaprootSign;
    const BLOB: BlobKind = BlobKind::TaprootKeyShare;
    const NONCES_BLOB: BlobKind = BlobKind::TaprootNonces;
    const NAME: &'static str = "secp256k1-tr";
    const SUPPORTS_TWEAK: bool = true;

    fn sign_share(
        pkg: &SigningPackage<Self>,
        nonces: &SigningNonces<Self>,
        key: &KeyPackage<Self>,
        tweak: Option<&TaprootTweak>,
    ) -> std::result::Result<SignatureShare<Self>, frost_core::Error<Self>> {
        match tweak {
            None => frost_secp256k1_tr::round2::sign(pkg, nonces, key),
            Some(t) => frost_secp256k1_tr::round2::sign_with_tweak(
                pkg,
                nonces,
                key,
                t.merkle_root.as_ref().map(|r| r.as_slice()),
            ),
        }
    }

    fn aggregate(
        pkg: &SigningPackage<Self>,
        shares: &BTreeMap<Identifier<Self>, SignatureShare<Self>>,
        public: &PublicKeyPackage<Self>,
        tweak: Option<&TaprootTweak>,
    ) -> std::result::Result<frost_core::Signature<Self>, frost_core::Error<Self>> {
        match tweak {
            None => frost_secp256k1_tr::aggregate(pkg, shares, public),
            Some(t) => frost_secp256k1_tr::aggregate_with_tweak(
                pkg,
                shares,
                public,
                t.merkle_root.as_ref().map(|r| r.as_slice()),
            ),
        }
    }
}

fn identifier<C: Ciphersuite>(p: PartyIndex) -> Result<Identifier<C>> {
    let v = p
        .checked_add(1)
        .ok_or_else(|| Error::input("party index too large"))?;
    Identifier::try_from(v).map_err(|e| Error::internal(format!("identifier: {e}")))
}

/// Maps a FROST error to ours, translating culprit identifiers to party indices.
fn map_frost_error<C: Ciphersuite>(
    e: &frost_core::Error<C>,
    parties: &[PartyIndex],
    what: &str,
) -> Error {
    let culprits = e.culprits();
    if culprits.is_empty() {
        return Error::internal(format!("{what}: {e}"));
    }
    let mut named = Vec::new();
    for c in culprits {
        for p in parties {
            if identifier::<C>(*p).ok() == Some(c) {
                named.push(*p);
            }
        }
    }
    Error::parties(named, format!("{what}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Key share
// ---------------------------------------------------------------------------------------------

/// A FROST key share: this party's `KeyPackage` (secret; zeroized on drop by the library) and the
/// group's `PublicKeyPackage`.
#[derive(Clone)]
pub struct FrostKeyShare<C: FrostSuite> {
    me: PartyIndex,
    n: u16,
    key: KeyPackage<C>,
    public: PublicKeyPackage<C>,
}

impl<C: FrostSuite> std::fmt::Debug for FrostKeyShare<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrostKeyShare<{}>(<redacted>)", C::NAME)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ShareBlob<B> {
    me: PartyIndex,
    n: u16,
    key: B,
    public: B,
}

impl<C: FrostSuite> FrostKeyShare<C> {
    /// This party's key-generation index.
    pub fn party(&self) -> PartyIndex {
        self.me
    }
    /// Number of parties.
    pub fn n(&self) -> u16 {
        self.n
    }
    /// Threshold `t`.
    pub fn threshold(&self) -> u16 {
        *self.key.min_signers()
    }
    /// The group verifying key in the ciphersuite's encoding (Ed25519: 32 bytes; secp256k1: 33
    /// bytes SEC1 compressed).
    pub fn verifying_key_bytes(&self) -> Result<Vec<u8>> {
        self.public
            .verifying_key()
            .serialize()
            .map_err(|e| Error::internal(format!("serialize verifying key: {e}")))
    }

    /// Versioned bytes for sealing at rest.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let key = Zeroizing::new(
            self.key
                .serialize()
                .map_err(|e| Error::internal(format!("serialize key package: {e}")))?,
        );
        let public = self
            .public
            .serialize()
            .map_err(|e| Error::internal(format!("serialize public key package: {e}")))?;
        secret::encode(
            C::BLOB,
            &ShareBlob {
                me: self.me,
                n: self.n,
                key: Bytes(&key),
                public: Bytes(&public),
            },
        )
    }

    /// Reads [`to_bytes`](Self::to_bytes) output, checking the parts fit together.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let b: ShareBlob<ByteBuf> = secret::decode(C::BLOB, bytes)?;
        let key_bytes = Zeroizing::new(b.key.0);
        let key = KeyPackage::<C>::deserialize(&key_bytes)
            .map_err(|e| Error::input(format!("key package: {e}")))?;
        let public = PublicKeyPackage::<C>::deserialize(&b.public.0)
            .map_err(|e| Error::input(format!("public key package: {e}")))?;
        if *key.identifier() != identifier::<C>(b.me)?
            || key.verifying_key() != public.verifying_key()
            || public.verifying_shares().get(key.identifier()) != Some(key.verifying_share())
            || public.verifying_shares().len() != usize::from(b.n)
        {
            return Err(Error::input(
                "key package and public key package do not match",
            ));
        }
        Ok(FrostKeyShare {
            me: b.me,
            n: b.n,
            key,
            public,
        })
    }
}

impl FrostKeyShare<Ed25519> {
    /// The Ed25519 public key (32 bytes).
    pub fn public_key(&self) -> Result<[u8; 32]> {
        let v = self.verifying_key_bytes()?;
        v.try_into()
            .map_err(|_| Error::internal("Ed25519 key is not 32 bytes"))
    }
}

impl FrostKeyShare<Taproot> {
    /// The group key, SEC1 compressed (33 bytes).
    pub fn public_key_compressed(&self) -> Result<[u8; 33]> {
        let v = self.verifying_key_bytes()?;
        v.try_into()
            .map_err(|_| Error::internal("secp256k1 key is not 33 bytes"))
    }
    /// The group key, SEC1 uncompressed (65 bytes).
    pub fn public_key_uncompressed(&self) -> Result<[u8; 65]> {
        use k256::elliptic_curve::sec1::ToEncodedPoint;
        let pk = k256::PublicKey::from_sec1_bytes(&self.public_key_compressed()?)
            .map_err(|_| Error::internal("group key is not a valid point"))?;
        let enc = pk.to_encoded_point(false);
        enc.as_bytes()
            .try_into()
            .map_err(|_| Error::internal("uncompressed key is not 65 bytes"))
    }
    /// The BIP-340 x-only group key (what an untweaked signature verifies against).
    pub fn x_only_public_key(&self) -> Result<[u8; 32]> {
        let c = self.public_key_compressed()?;
        let mut x = [0u8; 32];
        x.copy_from_slice(&c[1..]);
        Ok(x)
    }
    /// The BIP-341 output key `Q = P + H_TapTweak(P || merkle_root)·G`, x-only: what a signature
    /// made with `Some(TaprootTweak { merkle_root })` verifies against.
    pub fn tweaked_x_only_public_key(&self, tweak: &TaprootTweak) -> Result<[u8; 32]> {
        use frost_secp256k1_tr::keys::Tweak;
        let tweaked = self
            .public
            .clone()
            .tweak(tweak.merkle_root.as_ref().map(|r| r.as_slice()));
        let c = tweaked
            .verifying_key()
            .serialize()
            .map_err(|e| Error::internal(format!("serialize tweaked key: {e}")))?;
        c.get(1..33)
            .and_then(|s| <[u8; 32]>::try_from(s).ok())
            .ok_or_else(|| Error::internal("tweaked key is not 33 bytes"))
    }
}

/// The BIP-341 output key (x-only) for a Taproot group key given as SEC1 compressed bytes —
/// for verifiers (the coordinator) that hold no share. `merkle_root: None` is a key-path-only
/// output.
pub fn taproot_output_key(group_key: &[u8; 33], merkle_root: Option<[u8; 32]>) -> Result<[u8; 32]> {
    use frost_secp256k1_tr::keys::Tweak;
    let vk = frost_secp256k1_tr::VerifyingKey::deserialize(group_key)
        .map_err(|e| Error::input(format!("not a secp256k1 group key: {e}")))?;
    let package = frost_secp256k1_tr::keys::PublicKeyPackage::new(BTreeMap::new(), vk, None);
    let tweaked = package.tweak(merkle_root.as_ref().map(|r| r.as_slice()));
    let c = tweaked
        .verifying_key()
        .serialize()
        .map_err(|e| Error::internal(format!("serialize tweaked key: {e}")))?;
    c.get(1..33)
        .and_then(|s| <[u8; 32]>::try_from(s).ok())
        .ok_or_else(|| Error::internal("tweaked key is not 33 bytes"))
}

// ---------------------------------------------------------------------------------------------
// Message bookkeeping shared by both sessions
// ---------------------------------------------------------------------------------------------

/// Collects one message per sender and kind; a second one is misbehaviour.
struct Inbox<T> {
    got: BTreeMap<PartyIndex, T>,
    what: &'static str,
}

impl<T> Inbox<T> {
    fn new(what: &'static str) -> Self {
        Inbox {
            got: BTreeMap::new(),
            what,
        }
    }
    fn put(&mut self, from: PartyIndex, v: T) -> Result<()> {
        if self.got.contains_key(&from) {
            return Err(Error::party(from, format!("sent a second {}", self.what)));
        }
        self.got.insert(from, v);
        Ok(())
    }
    fn len(&self) -> usize {
        self.got.len()
    }
}

/// Digest of one party's broadcast, bound to the session, the protocol and the sender.
fn broadcast_digest(
    kind: ProtocolKind,
    sid: &SessionId,
    from: PartyIndex,
    bytes: &[u8],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"keyfold-mpc/v1/echo");
    h.update([kind as u8]);
    h.update(sid.as_bytes());
    h.update(from.to_be_bytes());
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
    h.finalize().into()
}

/// Compares the echo of party `k` with ours and names who is involved in a mismatch.
fn check_echo(
    me: PartyIndex,
    k: PartyIndex,
    parties: &[PartyIndex],
    ours: &[[u8; 32]],
    theirs: &[[u8; 32]],
    what: &str,
) -> Result<()> {
    if theirs.len() != ours.len() {
        return Err(Error::party(
            k,
            format!("echo of {what} has the wrong length"),
        ));
    }
    let differing: Vec<PartyIndex> = parties
        .iter()
        .zip(ours.iter().zip(theirs))
        .filter(|(_, (a, b))| a != b)
        .map(|(p, _)| *p)
        .collect();
    if differing.is_empty() {
        return Ok(());
    }
    // Party k saw something else than we did for the parties in `differing`: either they
    // equivocated (sent different broadcasts) or k lies about what it received.
    let mut culprits = vec![k];
    culprits.extend(differing.iter().copied().filter(|p| *p != me));
    Err(Error::parties(
        culprits,
        format!(
            "inconsistent broadcast: party {k} received a different {what} from part(y/ies) {differing:?}"
        ),
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    New,
    Round1,
    Round2,
    Done,
    Failed,
}

fn guard(phase: Phase) -> Result<()> {
    match phase {
        Phase::Done => Err(Error::input("session already finished")),
        Phase::Failed => Err(Error::input("session failed earlier")),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// DKG
// ---------------------------------------------------------------------------------------------

#[derive(serde::Serialize, serde::Deserialize)]
enum DkgMsg {
    /// Broadcast: the frost round-1 package (serialized by frost).
    Round1(ByteBuf),
    /// Broadcast: digests of all round-1 packages received, in party order (ours included).
    Echo(Vec<[u8; 32]>),
    /// Point-to-point: the frost round-2 package (a secret share for the recipient).
    Round2(ByteBuf),
}

#[derive(serde::Serialize)]
enum DkgMsgRef<'a> {
    Round1(Bytes<'a>),
    Echo(&'a [[u8; 32]]),
    Round2(Bytes<'a>),
}

/// One party's run of the FROST DKG (with echo broadcast for round 1).
pub struct FrostDkgSession<C: FrostSuite> {
    wire: Wire,
    n: u16,
    t: u16,
    parties: Vec<PartyIndex>,
    phase: Phase,
    round1_secret: Option<dkg::round1::SecretPackage<C>>,
    round2_secret: Option<dkg::round2::SecretPackage<C>>,
    my_round1_bytes: Vec<u8>,
    round1: Inbox<(dkg::round1::Package<C>, Vec<u8>)>,
    echoes: Inbox<Vec<[u8; 32]>>,
    round2: Inbox<dkg::round2::Package<C>>,
    my_echo: Vec<[u8; 32]>,
    seen: Seen,
}

impl<C: FrostSuite> std::fmt::Debug for FrostDkgSession<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrostDkgSession<{}>(party {})", C::NAME, self.wire.me)
    }
}

/// Starts a FROST DKG (`t` of `n`) for party `i`.
pub fn dkg<C: FrostSuite>(
    sid: SessionId,
    i: PartyIndex,
    n: u16,
    t: u16,
) -> Result<FrostDkgSession<C>> {
    if n < 2 || i >= n {
        return Err(Error::input(format!(
            "party {i} of {n}: need n >= 2 and i < n"
        )));
    }
    if t < 2 || t > n {
        return Err(Error::input(format!("threshold {t} must be in 2..={n}")));
    }
    Ok(FrostDkgSession {
        wire: Wire {
            kind: C::DKG,
            sid,
            me: i,
        },
        n,
        t,
        parties: (0..n).collect(),
        phase: Phase::New,
        round1_secret: None,
        round2_secret: None,
        my_round1_bytes: Vec::new(),
        round1: Inbox::new("round-1 package"),
        echoes: Inbox::new("echo"),
        round2: Inbox::new("round-2 package"),
        my_echo: Vec::new(),
        seen: Seen::default(),
    })
}

impl<C: FrostSuite> FrostDkgSession<C> {
    fn others(&self) -> usize {
        usize::from(self.n) - 1
    }

    fn ident(&self, p: PartyIndex) -> Result<Identifier<C>> {
        identifier::<C>(p)
    }

    fn do_start(&mut self) -> Result<Vec<Outgoing>> {
        let me = self.ident(self.wire.me)?;
        let (secret, package) = dkg::part1::<C, _>(me, self.n, self.t, OsRng)
            .map_err(|e| Error::internal(format!("dkg part1: {e}")))?;
        let bytes = package
            .serialize()
            .map_err(|e| Error::internal(format!("serialize round-1 package: {e}")))?;
        let out = self
            .wire
            .encode(Recipient::Broadcast, &DkgMsgRef::Round1(Bytes(&bytes)))?;
        self.my_round1_bytes = bytes;
        self.round1_secret = Some(secret);
        self.phase = Phase::Round1;
        Ok(vec![out])
    }

    /// Moves on as far as the messages received so far allow.
    fn advance(&mut self) -> Result<Step<FrostKeyShare<C>>> {
        let mut out = Vec::new();
        if self.phase == Phase::Round1 && self.round1.len() == self.others() {
            let mut packages = BTreeMap::new();
            for (p, (pkg, _)) in &self.round1.got {
                packages.insert(self.ident(*p)?, pkg.clone());
            }
            let secret = self
                .round1_secret
                .take()
                .ok_or_else(|| Error::internal("round-1 secret missing"))?;
            let (secret2, round2_packages) = dkg::part2(secret, &packages)
                .map_err(|e| map_frost_error(&e, &self.parties, "dkg round 1"))?;
            self.round2_secret = Some(secret2);
            // Echo: digest of every round-1 package, ours included, in party order.
            let mut echo = Vec::with_capacity(usize::from(self.n));
            for p in &self.parties {
                let bytes = if *p == self.wire.me {
                    &self.my_round1_bytes
                } else {
                    &self
                        .round1
                        .got
                        .get(p)
                        .ok_or_else(|| Error::internal("round-1 package missing"))?
                        .1
                };
                echo.push(broadcast_digest(self.wire.kind, &self.wire.sid, *p, bytes));
            }
            out.push(
                self.wire
                    .encode(Recipient::Broadcast, &DkgMsgRef::Echo(&echo))?,
            );
            self.my_echo = echo;
            for p in &self.parties {
                if *p == self.wire.me {
                    continue;
                }
                let pkg = round2_packages
                    .get(&self.ident(*p)?)
                    .ok_or_else(|| Error::internal("round-2 package missing"))?;
                let bytes = Zeroizing::new(
                    pkg.serialize()
                        .map_err(|e| Error::internal(format!("serialize round-2 package: {e}")))?,
                );
                out.push(
                    self.wire
                        .encode(Recipient::Party(*p), &DkgMsgRef::Round2(Bytes(&bytes)))?,
                );
            }
            self.phase = Phase::Round2;
        }
        if self.phase == Phase::Round2
            && self.echoes.len() == self.others()
            && self.round2.len() == self.others()
        {
            for (k, echo) in &self.echoes.got {
                check_echo(
                    self.wire.me,
                    *k,
                    &self.parties,
                    &self.my_echo,
                    echo,
                    "round-1 package",
                )?;
            }
            let mut r1 = BTreeMap::new();
            for (p, (pkg, _)) in &self.round1.got {
                r1.insert(self.ident(*p)?, pkg.clone());
            }
            let mut r2 = BTreeMap::new();
            for (p, pkg) in &self.round2.got {
                r2.insert(self.ident(*p)?, pkg.clone());
            }
            let secret2 = self
                .round2_secret
                .take()
                .ok_or_else(|| Error::internal("round-2 secret missing"))?;
            let (key, public) = dkg::part3(&secret2, &r1, &r2)
                .map_err(|e| map_frost_error(&e, &self.parties, "dkg round 2"))?;
            self.round2.got.clear();
            self.phase = Phase::Done;
            return Ok(Step::Done {
                output: FrostKeyShare {
                    me: self.wire.me,
                    n: self.n,
                    key,
                    public,
                },
                outgoing: out,
            });
        }
        Ok(Step::Continue(out))
    }

    fn do_handle(&mut self, from: PartyIndex, msg: &[u8]) -> Result<Step<FrostKeyShare<C>>> {
        let mut first = Vec::new();
        if self.phase == Phase::New {
            first = self.do_start()?;
        }
        let rx = self.wire.decode::<DkgMsg>(from, msg)?;
        self.seen.check(from, msg)?;
        if from >= self.n {
            return Err(Error::transport(format!(
                "party {from} is not in this session"
            )));
        }
        match rx.body {
            DkgMsg::Round1(b) => {
                if !rx.broadcast {
                    return Err(Error::party(from, "round-1 package sent point-to-point"));
                }
                let pkg = dkg::round1::Package::<C>::deserialize(&b.0)
                    .map_err(|e| Error::party(from, format!("malformed round-1 package: {e}")))?;
                self.round1.put(from, (pkg, b.0))?;
            }
            DkgMsg::Echo(e) => {
                if !rx.broadcast {
                    return Err(Error::party(from, "echo sent point-to-point"));
                }
                self.echoes.put(from, e)?;
            }
            DkgMsg::Round2(b) => {
                if rx.broadcast {
                    return Err(Error::party(from, "secret share broadcast"));
                }
                let bytes = Zeroizing::new(b.0);
                let pkg = dkg::round2::Package::<C>::deserialize(&bytes)
                    .map_err(|e| Error::party(from, format!("malformed round-2 package: {e}")))?;
                self.round2.put(from, pkg)?;
            }
        }
        let step = self.advance()?;
        Ok(prepend(first, step))
    }
}

fn prepend<O>(mut first: Vec<Outgoing>, step: Step<O>) -> Step<O> {
    if first.is_empty() {
        return step;
    }
    match step {
        Step::Continue(mut o) => {
            first.append(&mut o);
            Step::Continue(first)
        }
        Step::Done {
            output,
            mut outgoing,
        } => {
            first.append(&mut outgoing);
            Step::Done {
                output,
                outgoing: first,
            }
        }
    }
}

impl<C: FrostSuite> Session for FrostDkgSession<C> {
    type Output = FrostKeyShare<C>;

    fn party(&self) -> PartyIndex {
        self.wire.me
    }

    fn start(&mut self) -> Result<Vec<Outgoing>> {
        guard(self.phase)?;
        if self.phase != Phase::New {
            return Err(Error::input("session already started"));
        }
        let r = self.do_start();
        if r.is_err() {
            self.phase = Phase::Failed;
        }
        r
    }

    fn handle(&mut self, from: PartyIndex, msg: &[u8]) -> Result<Step<Self::Output>> {
        guard(self.phase)?;
        let r = self.do_handle(from, msg);
        if let Err(e) = &r
            && !e.is_recoverable()
        {
            self.phase = Phase::Failed;
        }
        r
    }
}

// ---------------------------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------------------------

/// A 64-byte Schnorr signature: Ed25519 `R || S`, or BIP-340 `x(R) || s`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SchnorrSignature(pub [u8; 64]);

impl SchnorrSignature {
    /// The 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// The library's signature in its 64-byte encoding.
    fn of<C: FrostSuite>(sig: &frost_core::Signature<C>) -> Result<Self> {
        let bytes = sig
            .serialize()
            .map_err(|e| Error::internal(format!("serialize signature: {e}")))?;
        bytes
            .try_into()
            .map(SchnorrSignature)
            .map_err(|_| Error::internal("signature is not 64 bytes"))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
enum SignMsg {
    /// Broadcast: this signer's nonce commitments.
    Commit(ByteBuf),
    /// Broadcast: the signature share and the digests of the commitments it was computed over.
    Share {
        share: ByteBuf,
        commitments: Vec<[u8; 32]>,
    },
}

#[derive(serde::Serialize)]
enum SignMsgRef<'a> {
    Commit(Bytes<'a>),
    Share {
        share: Bytes<'a>,
        commitments: &'a [[u8; 32]],
    },
}

/// One signer's run of FROST signing (2 rounds, every signer aggregates).
pub struct FrostSignSession<C: FrostSuite> {
    wire: Wire,
    share: FrostKeyShare<C>,
    signers: Vec<PartyIndex>,
    message: Vec<u8>,
    tweak: Option<TaprootTweak>,
    phase: Phase,
    nonces: Option<SigningNonces<C>>,
    my_commit: Option<(SigningCommitments<C>, Vec<u8>)>,
    commits: Inbox<(SigningCommitments<C>, Vec<u8>)>,
    shares: Inbox<(SignatureShare<C>, Vec<[u8; 32]>)>,
    package: Option<SigningPackage<C>>,
    my_share: Option<SignatureShare<C>>,
    commit_digests: Vec<[u8; 32]>,
    seen: Seen,
}

impl<C: FrostSuite> std::fmt::Debug for FrostSignSession<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrostSignSession<{}>(party {})", C::NAME, self.wire.me)
    }
}

/// Starts FROST signing of `message` by `signers` (at least `t` key-generation indices including
/// ours). Ed25519 signs the message itself (PureEdDSA); BIP-340 signs the given bytes (usually a
/// 32-byte sighash). `tweak` is for Taproot key-path spends only.
pub fn sign<C: FrostSuite>(
    sid: SessionId,
    share: &FrostKeyShare<C>,
    signers: &[PartyIndex],
    message: &[u8],
    tweak: Option<TaprootTweak>,
) -> Result<FrostSignSession<C>> {
    let mut set = signers.to_vec();
    set.sort_unstable();
    check_party_set(&set, share.n, share.me)?;
    if set.len() < usize::from(share.threshold()) {
        return Err(Error::input(format!(
            "at least t = {} signers are needed, got {}",
            share.threshold(),
            set.len()
        )));
    }
    if tweak.is_some() && !C::SUPPORTS_TWEAK {
        return Err(Error::input(format!(
            "{} signatures take no tweak",
            C::NAME
        )));
    }
    Ok(FrostSignSession {
        wire: Wire {
            kind: C::SIGN,
            sid,
            me: share.me,
        },
        share: share.clone(),
        signers: set,
        message: message.to_vec(),
        tweak,
        phase: Phase::New,
        nonces: None,
        my_commit: None,
        commits: Inbox::new("commitment"),
        shares: Inbox::new("signature share"),
        package: None,
        my_share: None,
        commit_digests: Vec::new(),
        seen: Seen::default(),
    })
}

impl<C: FrostSuite> FrostSignSession<C> {
    fn others(&self) -> usize {
        self.signers.len() - 1
    }

    fn do_start(&mut self) -> Result<Vec<Outgoing>> {
        let (nonces, commitments) =
            frost_core::round1::commit::<C, _>(self.share.key.signing_share(), &mut OsRng);
        let bytes = commitments
            .serialize()
            .map_err(|e| Error::internal(format!("serialize commitments: {e}")))?;
        let out = self
            .wire
            .encode(Recipient::Broadcast, &SignMsgRef::Commit(Bytes(&bytes)))?;
        self.nonces = Some(nonces);
        self.my_commit = Some((commitments, bytes));
        self.phase = Phase::Round1;
        Ok(vec![out])
    }

    fn advance(&mut self) -> Result<Step<SchnorrSignature>> {
        let mut out = Vec::new();
        if self.phase == Phase::Round1 && self.commits.len() == self.others() {
            let (my_commitments, my_bytes) = self
                .my_commit
                .as_ref()
                .ok_or_else(|| Error::internal("own commitments missing"))?;
            let mut map = BTreeMap::new();
            let mut digests = Vec::with_capacity(self.signers.len());
            for p in &self.signers {
                let (c, bytes) = if *p == self.wire.me {
                    (*my_commitments, my_bytes)
                } else {
                    let (c, b) = self
                        .commits
                        .got
                        .get(p)
                        .ok_or_else(|| Error::internal("commitment missing"))?;
                    (*c, b)
                };
                map.insert(identifier::<C>(*p)?, c);
                digests.push(broadcast_digest(self.wire.kind, &self.wire.sid, *p, bytes));
            }
            let package = SigningPackage::new(map, &self.message);
            let nonces = self
                .nonces
                .take()
                .ok_or_else(|| Error::internal("nonces missing"))?;
            let share = C::sign_share(&package, &nonces, &self.share.key, self.tweak.as_ref())
                .map_err(|e| map_frost_error(&e, &self.signers, "sign"))?;
            drop(nonces);
            let share_bytes = share.serialize();
            out.push(self.wire.encode(
                Recipient::Broadcast,
                &SignMsgRef::Share {
                    share: Bytes(&share_bytes),
                    commitments: &digests,
                },
            )?);
            self.package = Some(package);
            self.my_share = Some(share);
            self.commit_digests = digests;
            self.phase = Phase::Round2;
        }
        if self.phase == Phase::Round2 && self.shares.len() == self.others() {
            for (k, (_, digests)) in &self.shares.got {
                check_echo(
                    self.wire.me,
                    *k,
                    &self.signers,
                    &self.commit_digests,
                    digests,
                    "nonce commitment",
                )?;
            }
            let mut shares = BTreeMap::new();
            for (p, (s, _)) in &self.shares.got {
                shares.insert(identifier::<C>(*p)?, *s);
            }
            let mine = self
                .my_share
                .ok_or_else(|| Error::internal("own share missing"))?;
            shares.insert(identifier::<C>(self.wire.me)?, mine);
            let package = self
                .package
                .as_ref()
                .ok_or_else(|| Error::internal("signing package missing"))?;
            let sig = C::aggregate(package, &shares, &self.share.public, self.tweak.as_ref())
                .map_err(|e| map_frost_error(&e, &self.signers, "aggregate"))?;
            let output = SchnorrSignature::of(&sig)?;
            self.phase = Phase::Done;
            return Ok(Step::Done {
                output,
                outgoing: out,
            });
        }
        Ok(Step::Continue(out))
    }

    fn do_handle(&mut self, from: PartyIndex, msg: &[u8]) -> Result<Step<SchnorrSignature>> {
        let mut first = Vec::new();
        if self.phase == Phase::New {
            first = self.do_start()?;
        }
        let rx = self.wire.decode::<SignMsg>(from, msg)?;
        self.seen.check(from, msg)?;
        if !self.signers.contains(&from) {
            return Err(Error::transport(format!(
                "party {from} is not a signer here"
            )));
        }
        if !rx.broadcast {
            return Err(Error::party(from, "signing message sent point-to-point"));
        }
        match rx.body {
            SignMsg::Commit(b) => {
                let c = SigningCommitments::<C>::deserialize(&b.0)
                    .map_err(|e| Error::party(from, format!("malformed commitments: {e}")))?;
                self.commits.put(from, (c, b.0))?;
            }
            SignMsg::Share { share, commitments } => {
                let s = SignatureShare::<C>::deserialize(&share.0)
                    .map_err(|e| Error::party(from, format!("malformed signature share: {e}")))?;
                self.shares.put(from, (s, commitments))?;
            }
        }
        let step = self.advance()?;
        Ok(prepend(first, step))
    }
}

impl<C: FrostSuite> Session for FrostSignSession<C> {
    type Output = SchnorrSignature;

    fn party(&self) -> PartyIndex {
        self.wire.me
    }

    fn start(&mut self) -> Result<Vec<Outgoing>> {
        guard(self.phase)?;
        if self.phase != Phase::New {
            return Err(Error::input("session already started"));
        }
        let r = self.do_start();
        if r.is_err() {
            self.phase = Phase::Failed;
        }
        r
    }

    fn handle(&mut self, from: PartyIndex, msg: &[u8]) -> Result<Step<Self::Output>> {
        guard(self.phase)?;
        let r = self.do_handle(from, msg);
        if let Err(e) = &r
            && !e.is_recoverable()
        {
            self.phase = Phase::Failed;
        }
        r
    }
}
