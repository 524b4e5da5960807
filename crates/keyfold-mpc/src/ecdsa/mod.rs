//! Threshold ECDSA on secp256k1 (CGGMP24, `cggmp24` 0.7.0-alpha.3).
//!
//! WHY this flow: CGGMP24 needs per-party Paillier keys and ring-Pedersen parameters ("aux info")
//! that are expensive to make (safe primes, ZK proofs: tens of seconds) but can be reused by a
//! fixed group of signers for many keys. So a signer set runs [`aux_info`] once, then [`keygen`]
//! per key (milliseconds), and joins the two with [`EcdsaKeyShare::from_parts`].
//!
//! Signing is either one interactive [`sign`] session (4 rounds), or [`presign`] ahead of time
//! (3 rounds, no message) and later [`EcdsaPresignature::issue_partial`] + [`combine`] (no
//! interaction among signers, microseconds). A presignature is consumed by value: using one
//! twice leaks the key.
//!
//! What is signed: interactive signing accepts a bare 32-byte hash ([`EcdsaPrehash`]), which the
//! library proves safe. Presignature signing only accepts an [`EcdsaMessage`], built by hashing
//! the preimage ourselves (SHA-256, double SHA-256 or Keccak-256): signing a raw hash with a
//! presignature allows forgeries (cggmp24 `PrehashedDataToSign` docs, ePrint 2021/1330 §1.1.2),
//! and our design requires that a signer never signs a message it did not see.

mod enc_proof_guard;
pub mod primes;

use std::sync::Arc;

use cggmp24::generic_ec::{NonZero, Point, Scalar, coords::AlwaysHasAffineX};
use cggmp24::key_share::AnyKeyShare;
use cggmp24::{DataToSign, ExecutionId, PrehashedDataToSign};
use digest::Digest;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::cggmp::{Curve, Hash, SecLevel, SmSession, map_error};
use crate::error::{Error, Result};
use crate::secret::{self, BlobKind};
use crate::session::{
    Outgoing, PartyIndex, ProtocolKind, Session, SessionId, Step, Wire, check_party_set,
};

pub use primes::{PaillierPrimes, generate_primes};

type AuxMsg = cggmp24::key_refresh::msg::Msg<Hash, SecLevel>;
type KeygenMsg = cggmp24::keygen::ThresholdMsg<Curve, SecLevel, Hash>;
type SignMsg = cggmp24::signing::msg::Msg<Curve, Hash>;

/// Execution id given to cggmp24: binds the caller's session id and the protocol.
fn execution_id(kind: ProtocolKind, sid: &SessionId) -> Vec<u8> {
    let mut v = b"keyfold-mpc/v1/".to_vec();
    v.push(kind as u8);
    v.extend_from_slice(sid.as_bytes());
    v
}

// ---------------------------------------------------------------------------------------------
// Session wrapper
// ---------------------------------------------------------------------------------------------

/// A CGGMP24 protocol run. Not `Send`: see [`Session`].
pub struct EcdsaSession<O>(Box<dyn Session<Output = O>>);

impl<O> std::fmt::Debug for EcdsaSession<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcdsaSession(party {})", self.0.party())
    }
}

impl<O> Session for EcdsaSession<O> {
    type Output = O;
    fn party(&self) -> PartyIndex {
        self.0.party()
    }
    fn start(&mut self) -> Result<Vec<Outgoing>> {
        self.0.start()
    }
    fn handle(&mut self, from: PartyIndex, msg: &[u8]) -> Result<Step<O>> {
        self.0.handle(from, msg)
    }
}

fn check_n(n: u16, i: PartyIndex) -> Result<()> {
    if n < 2 {
        return Err(Error::input("need at least 2 parties"));
    }
    if i >= n {
        return Err(Error::input(format!(
            "party index {i} out of range (n = {n})"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Aux info
// ---------------------------------------------------------------------------------------------

/// A party's CGGMP24 auxiliary info: its Paillier secret key and everyone's Paillier public keys
/// and ring-Pedersen parameters. Secret. Reusable for any number of keys of the same signer set
/// (same `n`, same indices).
pub struct EcdsaAuxInfo {
    i: PartyIndex,
    inner: cggmp24::key_share::AuxInfo<SecLevel>,
}
secret::redacted_debug!(EcdsaAuxInfo);

#[derive(serde::Serialize, serde::Deserialize)]
struct AuxBlob<A> {
    i: PartyIndex,
    aux: A,
}

impl EcdsaAuxInfo {
    /// This party's index.
    pub fn party(&self) -> PartyIndex {
        self.i
    }

    /// Number of parties the aux info was generated for.
    pub fn n(&self) -> u16 {
        u16::try_from(self.inner.N.len()).unwrap_or(u16::MAX)
    }

    /// Versioned bytes for sealing at rest. Note: the Paillier primes inside are big integers
    /// the bigint library does not wipe on drop; the returned copy is zeroized.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        secret::encode(
            BlobKind::EcdsaAuxInfo,
            &AuxBlob {
                i: self.i,
                aux: &self.inner,
            },
        )
    }

    /// Reads [`to_bytes`](Self::to_bytes) output (validated by the library on load).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let b: AuxBlob<cggmp24::key_share::AuxInfo<SecLevel>> =
            secret::decode(BlobKind::EcdsaAuxInfo, bytes)?;
        if usize::from(b.i) >= b.aux.N.len() {
            return Err(Error::input("aux info index out of range"));
        }
        Ok(EcdsaAuxInfo {
            i: b.i,
            inner: b.aux,
        })
    }
}

/// Starts aux-info generation for party `i` of `n` with this party's own fresh primes.
/// Expensive (ZK proofs over 3072-bit moduli); run once per signer set.
pub fn aux_info(
    sid: SessionId,
    i: PartyIndex,
    n: u16,
    primes: PaillierPrimes,
) -> Result<EcdsaSession<EcdsaAuxInfo>> {
    check_n(n, i)?;
    let pregenerated = primes.to_pregenerated()?;
    drop(primes);
    let kind = ProtocolKind::EcdsaAuxInfo;
    let parties: Vec<PartyIndex> = (0..n).collect();
    let eid = execution_id(kind, &sid);
    let blame = parties.clone();
    let s = SmSession::<AuxMsg, EcdsaAuxInfo>::new(
        Wire { kind, sid, me: i },
        parties,
        move |party| async move {
            let mut rng = OsRng;
            cggmp24::aux_info_gen(ExecutionId::new(&eid), i, n, pregenerated)
                .start(&mut rng, party)
                .await
                .map(|inner| EcdsaAuxInfo { i, inner })
                .map_err(|e| map_error(&e, &blame))
        },
    );
    Ok(EcdsaSession(Box::new(s)))
}

// ---------------------------------------------------------------------------------------------
// Keygen
// ---------------------------------------------------------------------------------------------

/// Output of [`keygen`]: a key share without aux info. Secret.
pub struct EcdsaIncompleteShare {
    inner: cggmp24::IncompleteKeyShare<Curve>,
}
secret::redacted_debug!(EcdsaIncompleteShare);

impl EcdsaIncompleteShare {
    /// This party's index.
    pub fn party(&self) -> PartyIndex {
        self.inner.i
    }
    /// Number of parties.
    pub fn n(&self) -> u16 {
        self.inner.n()
    }
    /// Threshold `t`.
    pub fn threshold(&self) -> u16 {
        self.inner.min_signers()
    }
    /// Group public key, SEC1 compressed (33 bytes).
    pub fn public_key_compressed(&self) -> [u8; 33] {
        compressed(&self.inner.shared_public_key)
    }
    /// Versioned bytes for sealing at rest.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        secret::encode(BlobKind::EcdsaIncompleteShare, &self.inner)
    }
    /// Reads [`to_bytes`](Self::to_bytes) output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(EcdsaIncompleteShare {
            inner: secret::decode(BlobKind::EcdsaIncompleteShare, bytes)?,
        })
    }
}

/// Starts threshold key generation (`t` of `n`) for party `i`.
pub fn keygen(
    sid: SessionId,
    i: PartyIndex,
    n: u16,
    t: u16,
) -> Result<EcdsaSession<EcdsaIncompleteShare>> {
    check_n(n, i)?;
    if t < 2 || t > n {
        return Err(Error::input(format!("threshold {t} must be in 2..={n}")));
    }
    let kind = ProtocolKind::EcdsaKeygen;
    let parties: Vec<PartyIndex> = (0..n).collect();
    let eid = execution_id(kind, &sid);
    let blame = parties.clone();
    let s = SmSession::<KeygenMsg, EcdsaIncompleteShare>::new(
        Wire { kind, sid, me: i },
        parties,
        move |party| async move {
            let mut rng = OsRng;
            cggmp24::keygen::<Curve>(ExecutionId::new(&eid), i, n)
                .set_threshold(t)
                .set_security_level::<SecLevel>()
                .start(&mut rng, party)
                .await
                .map(|inner| EcdsaIncompleteShare { inner })
                .map_err(|e| map_error(&e, &blame))
        },
    );
    Ok(EcdsaSession(Box::new(s)))
}

// ---------------------------------------------------------------------------------------------
// Key share
// ---------------------------------------------------------------------------------------------

/// A complete CGGMP24 key share (keygen output + aux info). Secret; cheap to clone (shared).
#[derive(Clone)]
pub struct EcdsaKeyShare {
    inner: Arc<cggmp24::KeyShare<Curve, SecLevel>>,
}
secret::redacted_debug!(EcdsaKeyShare);

impl EcdsaKeyShare {
    /// Joins a keygen output with the same party's aux info (validated by the library).
    pub fn from_parts(share: EcdsaIncompleteShare, aux: &EcdsaAuxInfo) -> Result<Self> {
        if share.party() != aux.party() || share.n() != aux.n() {
            return Err(Error::input(format!(
                "key share (party {} of {}) and aux info (party {} of {}) do not match",
                share.party(),
                share.n(),
                aux.party(),
                aux.n()
            )));
        }
        let inner = cggmp24::KeyShare::from_parts((share.inner, aux.inner.clone()))
            .map_err(|e| Error::input(format!("key share and aux info do not fit: {e}")))?;
        Ok(EcdsaKeyShare {
            inner: Arc::new(inner),
        })
    }

    /// This party's key-generation index.
    pub fn party(&self) -> PartyIndex {
        self.inner.core.i
    }
    /// Number of parties.
    pub fn n(&self) -> u16 {
        self.inner.n()
    }
    /// Threshold `t`.
    pub fn threshold(&self) -> u16 {
        self.inner.min_signers()
    }
    /// Group public key, SEC1 compressed (33 bytes).
    pub fn public_key_compressed(&self) -> [u8; 33] {
        compressed(&self.inner.core.shared_public_key)
    }
    /// Group public key, SEC1 uncompressed (65 bytes, `0x04 || x || y`).
    pub fn public_key_uncompressed(&self) -> [u8; 65] {
        let enc = self.inner.core.shared_public_key.to_bytes(false);
        let mut out = [0u8; 65];
        if enc.len() == 65 {
            out.copy_from_slice(&enc);
        }
        out
    }
    /// Versioned bytes for sealing at rest.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        secret::encode(BlobKind::EcdsaKeyShare, &*self.inner)
    }
    /// Reads [`to_bytes`](Self::to_bytes) output (validated by the library on load).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let inner: cggmp24::KeyShare<Curve, SecLevel> =
            secret::decode(BlobKind::EcdsaKeyShare, bytes)?;
        Ok(EcdsaKeyShare {
            inner: Arc::new(inner),
        })
    }

    fn public_point(&self) -> NonZero<Point<Curve>> {
        self.inner.core.shared_public_key
    }

    /// Checks a signer set and returns it sorted, so every signer derives the same order.
    fn signer_set(&self, signers: &[PartyIndex]) -> Result<Vec<PartyIndex>> {
        let mut s = signers.to_vec();
        s.sort_unstable();
        check_party_set(&s, self.n(), self.party())?;
        if s.len() != usize::from(self.threshold()) {
            return Err(Error::input(format!(
                "exactly t = {} signers must take part, got {}",
                self.threshold(),
                s.len()
            )));
        }
        Ok(s)
    }
}

fn compressed(p: &NonZero<Point<Curve>>) -> [u8; 33] {
    let enc = p.to_bytes(true);
    let mut out = [0u8; 33];
    if enc.len() == 33 {
        out.copy_from_slice(&enc);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What is signed
// ---------------------------------------------------------------------------------------------

/// Double SHA-256 (Bitcoin's `sha256d`) as a `Digest`, so cggmp24 can hash the preimage itself.
#[derive(Clone, Default)]
pub struct Sha256d(sha2::Sha256);
impl std::fmt::Debug for Sha256d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256d")
    }
}
impl digest::HashMarker for Sha256d {}
impl digest::OutputSizeUser for Sha256d {
    type OutputSize = digest::typenum::U32;
}
impl digest::Update for Sha256d {
    fn update(&mut self, data: &[u8]) {
        digest::Update::update(&mut self.0, data);
    }
}
impl digest::FixedOutput for Sha256d {
    fn finalize_into(self, out: &mut digest::Output<Self>) {
        let first = self.0.finalize();
        let second = sha2::Sha256::digest(first);
        out.copy_from_slice(&second);
    }
}

#[derive(Clone)]
enum MsgHasher {
    Sha256(sha2::Sha256),
    Sha256d(Sha256d),
    Keccak256(Box<sha3::Keccak256>),
}

/// A message whose preimage this signer hashed itself. Required for presignature signing.
#[derive(Clone)]
pub struct EcdsaMessage {
    hasher: MsgHasher,
    digest: [u8; 32],
}

impl std::fmt::Debug for EcdsaMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcdsaMessage({})", hex32(&self.digest))
    }
}

fn hex32(b: &[u8; 32]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl EcdsaMessage {
    fn new(hasher: MsgHasher) -> Self {
        let digest: [u8; 32] = match hasher.clone() {
            MsgHasher::Sha256(h) => h.finalize().into(),
            MsgHasher::Sha256d(h) => h.finalize().into(),
            MsgHasher::Keccak256(h) => (*h).finalize().into(),
        };
        EcdsaMessage { hasher, digest }
    }
    /// `SHA-256(preimage)`.
    pub fn sha256(preimage: &[u8]) -> Self {
        Self::new(MsgHasher::Sha256(sha2::Sha256::new_with_prefix(preimage)))
    }
    /// `SHA-256(SHA-256(preimage))` (Bitcoin legacy / SegWit v0 sighash).
    pub fn double_sha256(preimage: &[u8]) -> Self {
        Self::new(MsgHasher::Sha256d(Sha256d::new_with_prefix(preimage)))
    }
    /// `Keccak-256(preimage)` (Ethereum).
    pub fn keccak256(preimage: &[u8]) -> Self {
        Self::new(MsgHasher::Keccak256(Box::new(
            sha3::Keccak256::new_with_prefix(preimage),
        )))
    }
    /// The 32-byte hash that is signed.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
    fn data_to_sign(&self) -> DataToSign<Curve> {
        match &self.hasher {
            MsgHasher::Sha256(h) => DataToSign::from_digest(h.clone()),
            MsgHasher::Sha256d(h) => DataToSign::from_digest(h.clone()),
            MsgHasher::Keccak256(h) => DataToSign::from_digest((**h).clone()),
        }
    }
}

/// A bare 32-byte message hash, accepted by interactive signing only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EcdsaPrehash(pub [u8; 32]);

impl std::fmt::Debug for EcdsaPrehash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcdsaPrehash({})", hex32(&self.0))
    }
}

impl From<&EcdsaMessage> for EcdsaPrehash {
    fn from(m: &EcdsaMessage) -> Self {
        EcdsaPrehash(m.digest)
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------

/// A standard secp256k1 ECDSA signature, low-S normalized, with its recovery id.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct EcdsaSignature {
    /// `r`, big-endian.
    pub r: [u8; 32],
    /// `s`, big-endian, `s <= n/2`.
    pub s: [u8; 32],
    /// Recovery id (0 or 1; y-parity of `R`, plus 2 if `R.x >= n`, which never happens in
    /// practice): the public key is recoverable from `(r, s, recovery_id)` and the hash.
    pub recovery_id: u8,
}

impl EcdsaSignature {
    /// `r || s` (64 bytes).
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.r);
        out[32..].copy_from_slice(&self.s);
        out
    }

    /// `r || s || v` with `v = recovery_id` (65 bytes; Ethereum adds 27 or the EIP-155 offset).
    pub fn to_bytes_with_recovery_id(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&self.to_bytes());
        out[64] = self.recovery_id;
        out
    }

    /// Verifies against a SEC1 public key and a 32-byte hash, including the recovery id.
    pub fn verify(&self, public_key_sec1: &[u8], prehash: &[u8; 32]) -> Result<()> {
        let vk = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key_sec1)
            .map_err(|_| Error::input("invalid public key"))?;
        self.recovers_to(&vk, prehash)
    }

    /// Recovers the public key from `(r, s, recovery_id)` and the hash and compares it with
    /// `vk`. One k256 recovery is a full verification (it checks the signature against the key
    /// it recovers) that also proves the recovery id.
    fn recovers_to(&self, vk: &k256::ecdsa::VerifyingKey, prehash: &[u8; 32]) -> Result<()> {
        use k256::ecdsa::{RecoveryId, VerifyingKey};
        let sig = k256::ecdsa::Signature::from_scalars(self.r, self.s)
            .map_err(|_| Error::input("invalid signature encoding"))?;
        let recid = RecoveryId::from_byte(self.recovery_id)
            .ok_or_else(|| Error::input("invalid recovery id"))?;
        let recovered = VerifyingKey::recover_from_prehash(prehash, &sig, recid)
            .map_err(|_| Error::input("signature does not verify"))?;
        if recovered != *vk {
            return Err(Error::input("recovery id does not recover the public key"));
        }
        Ok(())
    }

    fn from_library(
        sig: &cggmp24::Signature<Curve>,
        public_key: &NonZero<Point<Curve>>,
        prehash: &[u8; 32],
    ) -> Result<Self> {
        use k256::ecdsa::{RecoveryId, VerifyingKey};
        let mut r = [0u8; 32];
        let mut s = [0u8; 32];
        r.copy_from_slice(&sig.r.to_be_bytes());
        s.copy_from_slice(&sig.s.to_be_bytes());
        let vk = VerifyingKey::from_sec1_bytes(&public_key.to_bytes(true))
            .map_err(|_| Error::internal("group public key rejected by k256"))?;
        let ksig = k256::ecdsa::Signature::from_scalars(r, s)
            .map_err(|_| Error::internal("signature rejected by k256"))?;
        let recid = RecoveryId::trial_recovery_from_prehash(&vk, prehash, &ksig)
            .map_err(|_| Error::internal("no recovery id recovers the group key"))?;
        Ok(EcdsaSignature {
            r,
            s,
            recovery_id: recid.to_byte(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Interactive signing
// ---------------------------------------------------------------------------------------------

/// Starts interactive signing of a 32-byte hash by exactly `t` signers (key-generation indices,
/// any order). Every signer outputs the same signature.
pub fn sign(
    sid: SessionId,
    share: &EcdsaKeyShare,
    signers: &[PartyIndex],
    prehash: EcdsaPrehash,
) -> Result<EcdsaSession<EcdsaSignature>> {
    let s_set = share.signer_set(signers)?;
    let me = share.party();
    let local = local_index(&s_set, me)?;
    let kind = ProtocolKind::EcdsaSign;
    let eid = execution_id(kind, &sid);
    let share = share.clone();
    let blame = s_set.clone();
    let mut guard =
        enc_proof_guard::EncProofGuard::new(share.inner.clone(), s_set.clone(), local, eid.clone());
    let s = SmSession::<SignMsg, EcdsaSignature>::new(
        Wire { kind, sid, me },
        s_set.clone(),
        move |party| async move {
            let mut rng = OsRng;
            let data = PrehashedDataToSign::<Curve>::from_scalar(Scalar::from_be_bytes_mod_order(
                prehash.0,
            ));
            let sig = cggmp24::signing(ExecutionId::new(&eid), local, &s_set, &share.inner)
                .sign(&mut rng, party, &data)
                .await
                .map_err(|e| map_error(&e, &blame))?;
            EcdsaSignature::from_library(&sig, &share.public_point(), &prehash.0)
        },
    );
    let s = s.with_inspector(Box::new(move |sender, msg| guard.inspect(sender, msg)));
    Ok(EcdsaSession(Box::new(s)))
}

fn local_index(set: &[PartyIndex], me: PartyIndex) -> Result<u16> {
    set.iter()
        .position(|p| *p == me)
        .and_then(|k| u16::try_from(k).ok())
        .ok_or_else(|| Error::input("own index not among the signers"))
}

// ---------------------------------------------------------------------------------------------
// Presignatures
// ---------------------------------------------------------------------------------------------

/// Public data of a presignature, needed to check partial signatures and combine them.
/// Identical at every signer of the presign session; not secret.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct EcdsaPresignaturePublic {
    sid: SessionId,
    signers: Vec<PartyIndex>,
    public_key: NonZero<Point<Curve>>,
    gamma: NonZero<Point<Curve>>,
    /// `(tilde_Delta_j, tilde_S_j)` per signer, in `signers` order.
    commitments: Vec<(Point<Curve>, Point<Curve>)>,
}

impl EcdsaPresignaturePublic {
    /// The presign session id (identifies the presignature).
    pub fn id(&self) -> SessionId {
        self.sid
    }
    /// The signers (sorted key-generation indices) whose partial signatures are needed.
    pub fn signers(&self) -> &[PartyIndex] {
        &self.signers
    }
    /// Group public key (SEC1 compressed).
    pub fn public_key_compressed(&self) -> [u8; 33] {
        compressed(&self.public_key)
    }
    /// Versioned bytes (public data; no zeroizing needed, returned as such for uniformity).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(secret::encode(BlobKind::EcdsaPresignaturePublic, self)?.to_vec())
    }
    /// Reads [`to_bytes`](Self::to_bytes) output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        secret::decode(BlobKind::EcdsaPresignaturePublic, bytes)
    }
}

/// This signer's presignature. Secret; **use once**: [`issue_partial`](Self::issue_partial)
/// consumes it. If it is persisted, the store must delete it before the partial signature leaves
/// the node, so a restart or a backup can never bring it back.
pub struct EcdsaPresignature {
    me: PartyIndex,
    inner: cggmp24::Presignature<Curve>,
    public: EcdsaPresignaturePublic,
}
secret::redacted_debug!(EcdsaPresignature);

#[derive(serde::Serialize, serde::Deserialize)]
struct PresigBlob<P, Q> {
    me: PartyIndex,
    presig: P,
    public: Q,
}

/// One signer's share of a signature made from a presignature. Not secret.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct EcdsaPartialSignature {
    /// Presignature (presign session) id.
    pub presignature: SessionId,
    /// Signer (key-generation index).
    pub signer: PartyIndex,
    sigma: Scalar<Curve>,
}

impl EcdsaPartialSignature {
    /// Versioned bytes for the wire.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        Ok(secret::encode(BlobKind::EcdsaPartialSignature, self)?.to_vec())
    }
    /// Reads [`to_bytes`](Self::to_bytes) output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        secret::decode(BlobKind::EcdsaPartialSignature, bytes)
    }
}

impl EcdsaPresignature {
    /// Public data (send it to whoever combines; every signer has the same).
    pub fn public(&self) -> &EcdsaPresignaturePublic {
        &self.public
    }

    /// This signer's index.
    pub fn party(&self) -> PartyIndex {
        self.me
    }

    /// Signs `message` with this presignature, consuming it.
    pub fn issue_partial(self, message: &EcdsaMessage) -> EcdsaPartialSignature {
        let EcdsaPresignature { me, inner, public } = self;
        let partial = inner.issue_partial_signature(message.data_to_sign());
        EcdsaPartialSignature {
            presignature: public.sid,
            signer: me,
            sigma: partial.sigma,
        }
    }

    /// Versioned bytes for sealing at rest.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        secret::encode(
            BlobKind::EcdsaPresignature,
            &PresigBlob {
                me: self.me,
                presig: &self.inner,
                public: &self.public,
            },
        )
    }

    /// Reads [`to_bytes`](Self::to_bytes) output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let b: PresigBlob<cggmp24::Presignature<Curve>, EcdsaPresignaturePublic> =
            secret::decode(BlobKind::EcdsaPresignature, bytes)?;
        if !b.public.signers.contains(&b.me) {
            return Err(Error::input("presignature owner is not among its signers"));
        }
        Ok(EcdsaPresignature {
            me: b.me,
            inner: b.presig,
            public: b.public,
        })
    }
}

/// Starts presignature generation by exactly `t` signers. No message is involved; the output is
/// used later with [`EcdsaPresignature::issue_partial`] and [`combine`].
pub fn presign(
    sid: SessionId,
    share: &EcdsaKeyShare,
    signers: &[PartyIndex],
) -> Result<EcdsaSession<EcdsaPresignature>> {
    let s_set = share.signer_set(signers)?;
    let me = share.party();
    let local = local_index(&s_set, me)?;
    let kind = ProtocolKind::EcdsaPresign;
    let eid = execution_id(kind, &sid);
    let share = share.clone();
    let blame = s_set.clone();
    let mut guard =
        enc_proof_guard::EncProofGuard::new(share.inner.clone(), s_set.clone(), local, eid.clone());
    let s = SmSession::<SignMsg, EcdsaPresignature>::new(
        Wire { kind, sid, me },
        s_set.clone(),
        move |party| async move {
            let mut rng = OsRng;
            let (presig, public) =
                cggmp24::signing(ExecutionId::new(&eid), local, &s_set, &share.inner)
                    .generate_presignature(&mut rng, party)
                    .await
                    .map_err(|e| map_error(&e, &blame))?;
            if public.commitments.len() != s_set.len() {
                return Err(Error::internal(
                    "presignature commitments do not match signers",
                ));
            }
            Ok(EcdsaPresignature {
                me,
                inner: presig,
                public: EcdsaPresignaturePublic {
                    sid,
                    signers: s_set.clone(),
                    public_key: share.public_point(),
                    gamma: public.Gamma,
                    commitments: public
                        .commitments
                        .iter()
                        .map(|c| (c.tilde_Delta, c.tilde_S))
                        .collect(),
                },
            })
        },
    );
    let s = s.with_inspector(Box::new(move |sender, msg| guard.inspect(sender, msg)));
    Ok(EcdsaSession(Box::new(s)))
}

/// Combines the `t` partial signatures of one presignature into a signature of `message`.
/// Checks every partial first and names the signer of a bad one; checks the result against the
/// group key and computes the recovery id.
pub fn combine(
    public: &EcdsaPresignaturePublic,
    partials: &[EcdsaPartialSignature],
    message: &EcdsaMessage,
) -> Result<EcdsaSignature> {
    let mut ordered = Vec::with_capacity(public.signers.len());
    for signer in &public.signers {
        let mut it = partials.iter().filter(|p| p.signer == *signer);
        let p = it
            .next()
            .ok_or_else(|| Error::input(format!("missing partial signature of party {signer}")))?;
        if it.next().is_some() {
            return Err(Error::input(format!(
                "two partial signatures from party {signer}"
            )));
        }
        if p.presignature != public.sid {
            return Err(Error::input(format!(
                "partial signature of party {signer} is for another presignature"
            )));
        }
        ordered.push(*p);
    }
    if partials.len() != ordered.len() {
        return Err(Error::input(
            "partial signatures from parties outside the signer set",
        ));
    }

    let lib_public = cggmp24::signing::PresignaturePublicData {
        Gamma: public.gamma,
        commitments: public
            .commitments
            .iter()
            .map(|(d, s)| cggmp24::signing::PresignatureCommitment {
                tilde_Delta: *d,
                tilde_S: *s,
            })
            .collect(),
    };
    let lib_partials: Vec<cggmp24::PartialSignature<Curve>> = ordered
        .iter()
        .map(|p| cggmp24::PartialSignature { sigma: p.sigma })
        .collect();
    // The library checks every partial (`sigma_j * Gamma == m * tilde_Delta_j + r * tilde_S_j`)
    // before it sums them. Only when that fails are the checks repeated one by one, to name
    // the culprit: the happy path pays for them once.
    let Some(sig) =
        cggmp24::PartialSignature::combine(&lib_partials, &lib_public, message.data_to_sign())
    else {
        let m = message.data_to_sign().to_scalar();
        let r = public.gamma.x().to_scalar();
        let bad: Vec<PartyIndex> = ordered
            .iter()
            .zip(&public.commitments)
            .filter(|(p, (delta, s))| p.sigma * *public.gamma != m * delta + r * s)
            .map(|(p, _)| p.signer)
            .collect();
        return Err(if bad.is_empty() {
            Error::Aborted("partial signatures do not combine".into())
        } else {
            Error::parties(bad, "invalid partial signature")
        });
    };
    // The recovery id comes from `Gamma`, not from trial recoveries. The partial equations sum
    // to `s * Gamma = m * G + r * X`, so `Gamma` is the signature's `R` for the unnormalized sum;
    // low-S normalization negates `s` and with it `R`, flipping the y-parity. `R.x >= n` (r was
    // reduced) is told by `r`'s bytes differing from `R.x`'s.
    let unnormalized: Scalar<Curve> = ordered.iter().map(|p| p.sigma).sum();
    let negated = sig.s.as_ref() != &unnormalized;
    let gamma = public.gamma.to_bytes(true);
    let r = sig.r.to_be_bytes();
    let (Some(parity), Some(x)) = (gamma.first(), gamma.get(1..33)) else {
        return Err(Error::internal("unexpected point encoding"));
    };
    let recovery_id = k256::ecdsa::RecoveryId::new((parity & 1 == 1) != negated, x != &r[..]);
    let mut out = EcdsaSignature {
        r: [0u8; 32],
        s: [0u8; 32],
        recovery_id: recovery_id.to_byte(),
    };
    out.r.copy_from_slice(&r);
    out.s.copy_from_slice(&sig.s.to_be_bytes());
    out.verify(&public.public_key.to_bytes(true), &message.digest)
        .map_err(|_| Error::Aborted("combined signature is invalid for the group key".into()))?;
    Ok(out)
}
