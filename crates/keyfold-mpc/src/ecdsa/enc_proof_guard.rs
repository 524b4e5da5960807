//! Re-verification of the round-1 range proofs (ψ⁰, ψ¹) of CGGMP24 signing and presigning.
//!
//! WHY this exists: in `cggmp24` 0.7.0-alpha.3 (`signing.rs`, "Verify psi0, psi1 proofs") the
//! check is written as
//!
//! ```text
//! verify(psi0).err()?;   // psi0 valid   -> `?` on None returns "not faulty": psi1 never checked
//! verify(psi1).err()     // psi0 invalid -> the result only depends on psi1
//! ```
//!
//! so a message is rejected only if **both** proofs are invalid. A malicious signer can send one
//! invalid range proof and be accepted (found by our bit-flip test: a flipped bit in ψ⁰ went
//! unnoticed and signing completed). CGGMP's security argument needs both proofs. Until the
//! library is fixed we verify both ourselves, with the library's own verifier
//! (`paillier_zk::paillier_encryption_in_range_with_el_gamal`) and exactly the statement and
//! Fiat–Shamir context the library uses, before the message reaches the state machine. An honest
//! proof that failed here would make every signing fail (tests would catch it): the check can only
//! make us stricter, never weaker. Remove it when upgrading to a fixed cggmp24.

use std::collections::BTreeMap;
use std::sync::Arc;

use cggmp24::ExecutionId;
use cggmp24::security_level::SecurityLevel;
use cggmp24::signing::msg::{Msg, MsgRound1a};
use paillier_zk::paillier_encryption_in_range_with_el_gamal as pi_enc_elg;

use crate::cggmp::{Curve, Hash, SecLevel};
use crate::error::{Error, Result};
use crate::session::PartyIndex;

/// Fiat–Shamir context of ψ⁰/ψ¹, identical to cggmp24's private `unambiguous::ProofEnc`
/// (same udigest tag and fields, so the same challenge).
#[derive(udigest::Digestable)]
#[udigest(tag = "dfns.cggmp24.signing.proof_enc")]
struct ProofEnc<'a> {
    sid: ExecutionId<'a>,
    prover: u16,
    num: u8,
}

pub(crate) struct EncProofGuard {
    share: Arc<cggmp24::KeyShare<Curve, SecLevel>>,
    /// Signer set `S` (key-generation indices, sorted); position = library-local index.
    signers: Vec<PartyIndex>,
    me_local: u16,
    eid: Vec<u8>,
    round1a: BTreeMap<u16, MsgRound1a<Curve>>,
    round1b: BTreeMap<u16, cggmp24::signing::msg::MsgRound1b<Curve>>,
}

impl EncProofGuard {
    pub fn new(
        share: Arc<cggmp24::KeyShare<Curve, SecLevel>>,
        signers: Vec<PartyIndex>,
        me_local: u16,
        eid: Vec<u8>,
    ) -> Self {
        EncProofGuard {
            share,
            signers,
            me_local,
            eid,
            round1a: BTreeMap::new(),
            round1b: BTreeMap::new(),
        }
    }

    /// Looks at every incoming message (already attributed to library-local `sender`).
    pub fn inspect(&mut self, sender: u16, msg: &Msg<Curve, Hash>) -> Result<()> {
        match msg {
            Msg::Round1a(m) => {
                self.round1a.entry(sender).or_insert_with(|| m.clone());
            }
            Msg::Round1b(m) => {
                self.round1b.entry(sender).or_insert_with(|| m.clone());
            }
            _ => return Ok(()),
        }
        let (Some(a), Some(b)) = (self.round1a.get(&sender), self.round1b.get(&sender)) else {
            return Ok(());
        };
        let culprit = self
            .signers
            .get(usize::from(sender))
            .copied()
            .ok_or_else(|| Error::internal("sender outside the signer set"))?;
        let verdict = self.verify(sender, a, b);
        // Keep memory bounded: each sender is checked once.
        self.round1a.remove(&sender);
        self.round1b.remove(&sender);
        verdict.map_err(|which| {
            Error::party(
                culprit,
                format!(
                    "invalid range proof {which} in signing round 1 (re-checked by keyfold-mpc)"
                ),
            )
        })
    }

    fn verify(
        &self,
        sender: u16,
        a: &MsgRound1a<Curve>,
        b: &cggmp24::signing::msg::MsgRound1b<Curve>,
    ) -> std::result::Result<(), &'static str> {
        let aux = &self.share.aux;
        let me = self.signers.get(usize::from(self.me_local)).copied();
        let them = self.signers.get(usize::from(sender)).copied();
        let (Some(me), Some(them)) = (me, them) else {
            return Err("(unknown party)");
        };
        let Some(n_j) = aux.N.get(usize::from(them)) else {
            return Err("(no Paillier key for sender)");
        };
        let Some(r_i) = aux.pedersen_params.get(usize::from(me)) else {
            return Err("(no ring-Pedersen parameters)");
        };
        let key = paillier_zk::fast_paillier::EncryptionKey::from_n(n_j.clone());
        let verifier_aux: pi_enc_elg::Aux = r_i.into();
        let security = pi_enc_elg::SecurityParams {
            l: SecLevel::ELL,
            epsilon: SecLevel::EPSILON,
        };
        let eid = ExecutionId::new(&self.eid);
        let checks = [
            ("ψ⁰ (K)", 0u8, &a.K, &a.A1, &a.A2, &b.psi0),
            ("ψ¹ (G)", 1u8, &a.G, &a.B1, &a.B2, &b.psi1),
        ];
        for (name, num, ciphertext, pb, px, proof) in checks {
            pi_enc_elg::non_interactive::verify::<Curve, Hash>(
                &ProofEnc {
                    sid: eid,
                    prover: sender,
                    num,
                },
                &verifier_aux,
                pi_enc_elg::Data {
                    key: &key,
                    ciphertext,
                    a: &a.Y,
                    b: pb,
                    x: px,
                },
                proof,
                &security,
            )
            .map_err(|_| name)?;
        }
        Ok(())
    }
}
