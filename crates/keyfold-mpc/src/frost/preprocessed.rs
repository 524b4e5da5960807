//! FROST signing with preprocessing: round one (nonces and their commitments) made ahead of
//! time, so a signature needs one exchange with each signer instead of a relayed session.
//!
//! WHY: RFC 9591 §5 splits FROST into a commit round that does not depend on the message and a
//! sign round that does. A signer can make many nonce pairs in advance, keep them sealed, and
//! publish only the commitments. At signing time a coordinator picks one unused commitment per
//! signer, sends every signer the same message and commitment list, and aggregates the returned
//! shares. This is the coordinator model RFC 9591 is written for: the coordinator cannot forge
//! (each share is checked against its signer's verifying share, and the result against the group
//! key), it can only fail to produce a signature.
//!
//! The one rule that keeps the key safe: **a nonce pair is used at most once**. [`sign_share`]
//! takes [`FrostNonces`] by value; a caller that stores them must delete them durably before it
//! calls [`sign_share`] (Keyfold's signer deletes the sealed row in the same transaction that
//! records the request). A signer also refuses a commitment list that does not contain its own
//! commitment unchanged (the library's `IncorrectCommitment`).

use std::collections::BTreeMap;

use frost_core::keys::PublicKeyPackage;
use frost_core::round1::{SigningCommitments, SigningNonces};
use frost_core::round2::SignatureShare;
use frost_core::{Identifier, SigningPackage};
use rand_core::OsRng;
use zeroize::Zeroizing;

use super::{
    FrostKeyShare, FrostSuite, SchnorrSignature, TaprootTweak, identifier, map_frost_error,
};
use crate::ecdsa::primes::serde_bytes_wrapper::{ByteBuf, Bytes};
use crate::error::{Error, Result};
use crate::secret;
use crate::session::PartyIndex;

/// One signer's secret nonce pair, made ahead of time. Seal it, use it once.
pub struct FrostNonces<C: FrostSuite>(SigningNonces<C>);

impl<C: FrostSuite> std::fmt::Debug for FrostNonces<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrostNonces<{}>(<redacted>)", C::NAME)
    }
}

impl<C: FrostSuite> FrostNonces<C> {
    /// Versioned bytes for sealing at rest.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let raw = Zeroizing::new(
            self.0
                .serialize()
                .map_err(|e| Error::internal(format!("serialize nonces: {e}")))?,
        );
        secret::encode(C::NONCES_BLOB, &Bytes(&raw))
    }

    /// Reads [`to_bytes`](Self::to_bytes) output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let b: ByteBuf = secret::decode(C::NONCES_BLOB, bytes)?;
        let raw = Zeroizing::new(b.0);
        SigningNonces::<C>::deserialize(&raw)
            .map(Self)
            .map_err(|e| Error::input(format!("nonces: {e}")))
    }
}

/// Makes a nonce pair for `share` and returns it with its public commitments (the bytes a
/// coordinator collects and later hands back to every signer).
pub fn commit<C: FrostSuite>(share: &FrostKeyShare<C>) -> Result<(FrostNonces<C>, Vec<u8>)> {
    let (nonces, commitments) =
        frost_core::round1::commit::<C, _>(share.key.signing_share(), &mut OsRng);
    let bytes = commitments
        .serialize()
        .map_err(|e| Error::internal(format!("serialize commitments: {e}")))?;
    Ok((FrostNonces(nonces), bytes))
}

impl<C: FrostSuite> FrostKeyShare<C> {
    /// The group's public key package (group key and every signer's verifying share), which a
    /// coordinator needs to [`aggregate`]. Public.
    pub fn public_package_bytes(&self) -> Result<Vec<u8>> {
        self.public
            .serialize()
            .map_err(|e| Error::internal(format!("serialize public key package: {e}")))
    }
}

/// The commitments of a signing set, parsed and checked once. Parsing is most of a signer's
/// work here: every point is decoded and checked to be in the prime-order group (for Ed25519 a
/// full scalar multiplication each), so a caller checks a package once and signs with it.
///
/// A signer does not decode its own commitment: it keeps the bytes, and [`sign_checked`]
/// compares them with the commitment of the nonces it holds (the library's own check that
/// a signer's commitment is in the package unchanged, done on bytes) and signs with the
/// nonces' commitment. That saves two of the six point checks of an Ed25519 signer.
#[derive(Debug, Clone)]
pub struct CheckedPackage<C: FrostSuite> {
    commitments: BTreeMap<Identifier<C>, SigningCommitments<C>>,
    parties: Vec<PartyIndex>,
    /// The signer it was checked for, with that signer's commitment as sent (none: checked
    /// for a coordinator, every commitment decoded).
    checked_for: Option<(PartyIndex, Vec<u8>)>,
}

/// Parses the commitments of at least `t` signers of a group of `n`, all but `me`'s.
fn parse_package<C: FrostSuite>(
    n: u16,
    threshold: u16,
    commitments: &BTreeMap<PartyIndex, Vec<u8>>,
    me: Option<PartyIndex>,
) -> Result<CheckedPackage<C>> {
    if commitments.len() < usize::from(threshold) {
        return Err(Error::input(format!(
            "at least t = {threshold} signers are needed, got {}",
            commitments.len()
        )));
    }
    let mut map = BTreeMap::new();
    let mut checked_for = None;
    for (p, bytes) in commitments {
        if *p >= n {
            return Err(Error::input(format!("party {p} is not in a group of {n}")));
        }
        if Some(*p) == me {
            checked_for = Some((*p, bytes.clone()));
            continue;
        }
        let c = SigningCommitments::<C>::deserialize(bytes)
            .map_err(|e| Error::party(*p, format!("malformed commitments: {e}")))?;
        map.insert(identifier::<C>(*p)?, c);
    }
    // The signer's own bytes are compared with its nonces' commitment only once the nonces
    // are spent. So that a malformed request still burns nothing, bytes not shaped like a
    // checked peer's (every encoding of a suite's commitments has one length) are decoded
    // now, which refuses them; bytes of the right shape that are not this signer's
    // commitment burn the pair, as a different valid commitment always did.
    if let Some((mine, bytes)) = &checked_for
        && !commitments
            .iter()
            .any(|(q, other)| q != mine && other.len() == bytes.len())
    {
        SigningCommitments::<C>::deserialize(bytes)
            .map_err(|e| Error::party(*mine, format!("malformed commitments: {e}")))?;
    }
    Ok(CheckedPackage {
        commitments: map,
        parties: commitments.keys().copied().collect(),
        checked_for,
    })
}

impl<C: FrostSuite> CheckedPackage<C> {
    /// The package every signer must see for `message` (a coordinator's: every commitment
    /// decoded).
    fn for_message(&self, message: &[u8]) -> SigningPackage<C> {
        SigningPackage::new(self.commitments.clone(), message)
    }
}

/// Checks a signing package (commitments of at least `t` signers of this group, this signer
/// among them, every one well formed) without the nonces: a caller checks before it spends
/// them, so a malformed request burns nothing. Sign with [`sign_checked`].
pub fn check_package<C: FrostSuite>(
    share: &FrostKeyShare<C>,
    commitments: &BTreeMap<PartyIndex, Vec<u8>>,
) -> Result<CheckedPackage<C>> {
    if !commitments.contains_key(&share.me) {
        return Err(Error::input(
            "this signer's commitment is not in the package",
        ));
    }
    parse_package::<C>(share.n, share.threshold(), commitments, Some(share.me))
}

/// Computes this signer's share of the signature of `message` by the signers whose
/// commitments are given (this signer's own among them, unchanged). Consumes the nonces.
pub fn sign_share<C: FrostSuite>(
    share: &FrostKeyShare<C>,
    nonces: FrostNonces<C>,
    commitments: &BTreeMap<PartyIndex, Vec<u8>>,
    message: &[u8],
    tweak: Option<&TaprootTweak>,
) -> Result<Vec<u8>> {
    let package = check_package(share, commitments)?;
    sign_checked(share, nonces, &package, message, tweak)
}

/// [`sign_share`] with a package [`check_package`] returned for this share.
pub fn sign_checked<C: FrostSuite>(
    share: &FrostKeyShare<C>,
    nonces: FrostNonces<C>,
    package: &CheckedPackage<C>,
    message: &[u8],
    tweak: Option<&TaprootTweak>,
) -> Result<Vec<u8>> {
    if tweak.is_some() && !C::SUPPORTS_TWEAK {
        return Err(Error::input(format!(
            "{} signatures take no tweak",
            C::NAME
        )));
    }
    let Some((me, sent)) = package.checked_for.as_ref().filter(|(p, _)| *p == share.me) else {
        return Err(Error::input("the package was not checked for this signer"));
    };
    let mine = SigningCommitments::<C>::from(&nonces.0);
    let mine_bytes = mine
        .serialize()
        .map_err(|e| Error::internal(format!("serialize commitments: {e}")))?;
    if mine_bytes != *sent {
        return Err(Error::input(
            "the package does not hold this signer's commitment unchanged",
        ));
    }
    let mut commitments = package.commitments.clone();
    commitments.insert(identifier::<C>(*me)?, mine);
    let pkg = SigningPackage::new(commitments, message);
    let out = C::sign_share(&pkg, &nonces.0, &share.key, tweak).map_err(|e| match e {
        frost_core::Error::IncorrectCommitment | frost_core::Error::MissingCommitment => {
            Error::input("the package does not hold this signer's commitment unchanged")
        }
        e => map_frost_error(&e, &package.parties, "sign"),
    });
    drop(nonces);
    Ok(out?.serialize())
}

/// A group's public key package, parsed (its points decoded and checked once): what a
/// coordinator keeps per key to [`aggregate_with`].
#[derive(Debug, Clone)]
pub struct PublicPackage<C: FrostSuite> {
    public: PublicKeyPackage<C>,
    n: u16,
    threshold: u16,
}

impl<C: FrostSuite> PublicPackage<C> {
    /// Reads [`FrostKeyShare::public_package_bytes`] output.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let public = PublicKeyPackage::<C>::deserialize(bytes)
            .map_err(|e| Error::input(format!("public key package: {e}")))?;
        let n = u16::try_from(public.verifying_shares().len())
            .map_err(|_| Error::input("too many verifying shares"))?;
        let threshold = public
            .min_signers()
            .ok_or_else(|| Error::input("public key package without a threshold"))?;
        Ok(Self {
            public,
            n,
            threshold,
        })
    }
}

/// Combines the signers' shares into the group signature. Every share is checked: a wrong one
/// fails with the party that sent it named.
pub fn aggregate<C: FrostSuite>(
    public_package: &[u8],
    commitments: &BTreeMap<PartyIndex, Vec<u8>>,
    shares: &BTreeMap<PartyIndex, Vec<u8>>,
    message: &[u8],
    tweak: Option<&TaprootTweak>,
) -> Result<SchnorrSignature> {
    let public = PublicPackage::<C>::from_bytes(public_package)?;
    aggregate_with(&public, commitments, shares, message, tweak)
}

/// [`aggregate`] with the key's public package parsed already.
pub fn aggregate_with<C: FrostSuite>(
    public: &PublicPackage<C>,
    commitments: &BTreeMap<PartyIndex, Vec<u8>>,
    shares: &BTreeMap<PartyIndex, Vec<u8>>,
    message: &[u8],
    tweak: Option<&TaprootTweak>,
) -> Result<SchnorrSignature> {
    if tweak.is_some() && !C::SUPPORTS_TWEAK {
        return Err(Error::input(format!(
            "{} signatures take no tweak",
            C::NAME
        )));
    }
    if shares.keys().ne(commitments.keys()) {
        return Err(Error::input(
            "shares and commitments name different signers",
        ));
    }
    let pkg =
        parse_package::<C>(public.n, public.threshold, commitments, None)?.for_message(message);
    let mut map: BTreeMap<Identifier<C>, SignatureShare<C>> = BTreeMap::new();
    for (p, bytes) in shares {
        let s = SignatureShare::<C>::deserialize(bytes)
            .map_err(|e| Error::party(*p, format!("malformed signature share: {e}")))?;
        map.insert(identifier::<C>(*p)?, s);
    }
    let parties: Vec<PartyIndex> = shares.keys().copied().collect();
    let sig = C::aggregate(&pkg, &map, &public.public, tweak)
        .map_err(|e| map_frost_error(&e, &parties, "aggregate"))?;
    SchnorrSignature::of(&sig)
}
