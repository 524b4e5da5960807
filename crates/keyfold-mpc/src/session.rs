//! The one interface every protocol run goes through: message in, messages out.
//!
//! WHY no sockets and no async: the signer node already has its transport (the coordinator relays
//! messages, signed by the sender's node key and encrypted to the receiver) and its own runtime.
//! A protocol run is therefore a plain state machine: [`Session::start`] returns the first
//! messages, [`Session::handle`] consumes one message from a peer and returns the next ones or the
//! result. The caller moves bytes; it never sees protocol types.
//!
//! Every message is an opaque byte string with a fixed, versioned header (see [`WIRE_VERSION`]):
//! the protocol, the caller-chosen 32-byte [`SessionId`], the sender and the intended recipient.
//! The receiver checks all of them, so a message cannot be replayed into another session or
//! protocol, nor delivered to the wrong party unnoticed. The body is CBOR of the library's own
//! message type.
//!
//! Party indices are always the parties' **key-generation indices** (`0..n`), also in signing
//! sessions where only `t` of them take part: that is the stable name a coordinator knows a signer
//! by, and the index in [`Error::Misbehaving`].

use crate::error::{Error, Result};

/// Index of a party: its position at key generation, `0..n`.
pub type PartyIndex = u16;

/// A caller-chosen identifier binding every message of one protocol run. It must never repeat
/// (derive it from a fresh random value or a unique request id).
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SessionId(pub [u8; 32]);

impl SessionId {
    /// Wraps 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        SessionId(bytes)
    }

    /// A fresh random session id (from the OS RNG).
    pub fn random() -> Self {
        use rand_core::RngCore;
        let mut b = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut b);
        SessionId(b)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// Who must receive an outgoing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// Every other party of the session. The protocols assume the relay delivers the *same* bytes
    /// to everyone; they check it themselves (echo rounds), so an equivocating relay is caught.
    Broadcast,
    /// Only this party (key-generation index). Must be encrypted to it by the transport.
    Party(PartyIndex),
}

/// A message to deliver.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Where it goes.
    pub to: Recipient,
    /// Opaque, versioned bytes; hand them unchanged to [`Session::handle`] on the receiver.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("to", &self.to)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Result of handling one message.
#[derive(Debug)]
pub enum Step<O> {
    /// Send these messages (possibly none) and wait for more.
    Continue(Vec<Outgoing>),
    /// The protocol finished. `outgoing` must still be delivered: other parties may need it.
    Done {
        /// The protocol's result.
        output: O,
        /// Last messages to deliver (usually empty).
        outgoing: Vec<Outgoing>,
    },
}

impl<O> Step<O> {
    /// The messages to send, whatever the variant.
    pub fn outgoing(&self) -> &[Outgoing] {
        match self {
            Step::Continue(o) => o,
            Step::Done { outgoing, .. } => outgoing,
        }
    }

    /// Maps the output.
    pub fn map<P>(self, f: impl FnOnce(O) -> P) -> Step<P> {
        match self {
            Step::Continue(o) => Step::Continue(o),
            Step::Done { output, outgoing } => Step::Done {
                output: f(output),
                outgoing,
            },
        }
    }
}

/// One party's view of one protocol run.
///
/// Call [`start`](Session::start) once, then [`handle`](Session::handle) for every message
/// addressed to this party, in any order (early messages of later rounds are buffered). Calling
/// `handle` before `start` starts the session implicitly and returns its first messages too.
///
/// The caller must authenticate `from` (the transport's signature over the bytes) before calling
/// `handle`: a message that parses badly is blamed on `from`.
///
/// Any error except [`Error::Transport`] is terminal: the session refuses further messages.
///
/// ECDSA sessions are not `Send` (the CGGMP state machine uses `Rc` inside); drive them from one
/// thread, or wrap them with [`crate::threaded::ThreadedSession`].
pub trait Session {
    /// What the protocol produces.
    type Output;

    /// This party's key-generation index.
    fn party(&self) -> PartyIndex;

    /// Starts the protocol and returns the first messages.
    fn start(&mut self) -> Result<Vec<Outgoing>>;

    /// Consumes one message from `from` and returns the next messages or the result.
    fn handle(&mut self, from: PartyIndex, msg: &[u8]) -> Result<Step<Self::Output>>;
}

impl<S: Session + ?Sized> Session for Box<S> {
    type Output = S::Output;
    fn party(&self) -> PartyIndex {
        (**self).party()
    }
    fn start(&mut self) -> Result<Vec<Outgoing>> {
        (**self).start()
    }
    fn handle(&mut self, from: PartyIndex, msg: &[u8]) -> Result<Step<Self::Output>> {
        (**self).handle(from, msg)
    }
}

/// Adapts a session's output type (e.g. into [`crate::SessionOutput`] for a uniform `dyn Session`).
pub struct MapOutput<S, F> {
    inner: S,
    f: F,
}

impl<S: Session, F> std::fmt::Debug for MapOutput<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MapOutput(party {})", self.inner.party())
    }
}

impl<S, F, P> Session for MapOutput<S, F>
where
    S: Session,
    F: FnMut(S::Output) -> P,
{
    type Output = P;
    fn party(&self) -> PartyIndex {
        self.inner.party()
    }
    fn start(&mut self) -> Result<Vec<Outgoing>> {
        self.inner.start()
    }
    fn handle(&mut self, from: PartyIndex, msg: &[u8]) -> Result<Step<P>> {
        let step = self.inner.handle(from, msg)?;
        Ok(step.map(&mut self.f))
    }
}

/// Convenience combinators for sessions.
pub trait SessionExt: Session + Sized {
    /// Maps the output type.
    fn map_output<P, F: FnMut(Self::Output) -> P>(self, f: F) -> MapOutput<Self, F> {
        MapOutput { inner: self, f }
    }
}
impl<S: Session + Sized> SessionExt for S {}

// ---------------------------------------------------------------------------------------------
// Wire format
// ---------------------------------------------------------------------------------------------

/// Version of the message wire format (first byte of every message).
///
/// Layout, version 1 (39-byte header, then the body):
///
/// | bytes  | field                                                        |
/// |--------|--------------------------------------------------------------|
/// | 0      | wire version (1)                                             |
/// | 1      | protocol ([`ProtocolKind`] as u8)                            |
/// | 2..34  | session id                                                   |
/// | 34..36 | sender, u16 big-endian (key-generation index)                |
/// | 36     | 0 = broadcast, 1 = point-to-point                            |
/// | 37..39 | recipient, u16 big-endian (`0xffff` for broadcast)           |
/// | 39..   | body: CBOR of the protocol library's message                 |
pub const WIRE_VERSION: u8 = 1;
const HEADER_LEN: usize = 39;

/// Which protocol a message (or a session) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProtocolKind {
    /// CGGMP24 auxiliary info (Paillier keys, ring-Pedersen parameters).
    EcdsaAuxInfo = 1,
    /// CGGMP24 threshold key generation.
    EcdsaKeygen = 2,
    /// CGGMP24 full signing.
    EcdsaSign = 3,
    /// CGGMP24 presignature generation.
    EcdsaPresign = 4,
    /// FROST Ed25519 DKG.
    Ed25519Dkg = 5,
    /// FROST Ed25519 signing.
    Ed25519Sign = 6,
    /// FROST secp256k1 Taproot DKG.
    TaprootDkg = 7,
    /// FROST secp256k1 Taproot (BIP-340) signing.
    TaprootSign = 8,
}

impl ProtocolKind {
    fn from_u8(b: u8) -> Option<Self> {
        use ProtocolKind::*;
        Some(match b {
            1 => EcdsaAuxInfo,
            2 => EcdsaKeygen,
            3 => EcdsaSign,
            4 => EcdsaPresign,
            5 => Ed25519Dkg,
            6 => Ed25519Sign,
            7 => TaprootDkg,
            8 => TaprootSign,
            _ => return None,
        })
    }
}

/// The routing context of one party in one session; encodes and checks message headers.
#[derive(Debug, Clone)]
pub(crate) struct Wire {
    pub kind: ProtocolKind,
    pub sid: SessionId,
    pub me: PartyIndex,
}

/// A decoded, checked incoming message.
pub(crate) struct Received<M> {
    pub from: PartyIndex,
    pub broadcast: bool,
    pub body: M,
}

impl Wire {
    pub fn encode<M: serde::Serialize>(&self, to: Recipient, body: &M) -> Result<Outgoing> {
        let mut bytes = Vec::with_capacity(256);
        bytes.push(WIRE_VERSION);
        bytes.push(self.kind as u8);
        bytes.extend_from_slice(&self.sid.0);
        bytes.extend_from_slice(&self.me.to_be_bytes());
        match to {
            Recipient::Broadcast => {
                bytes.push(0);
                bytes.extend_from_slice(&u16::MAX.to_be_bytes());
            }
            Recipient::Party(j) => {
                bytes.push(1);
                bytes.extend_from_slice(&j.to_be_bytes());
            }
        }
        ciborium::into_writer(body, &mut bytes)
            .map_err(|e| Error::internal(format!("encode message: {e}")))?;
        Ok(Outgoing { to, bytes })
    }

    /// Checks the header (errors are `Transport`: the message is not ours) and decodes the body
    /// (errors are `Misbehaving(from)`: the authenticated sender sent garbage).
    pub fn decode<M: serde::de::DeserializeOwned>(
        &self,
        from: PartyIndex,
        msg: &[u8],
    ) -> Result<Received<M>> {
        if msg.len() < HEADER_LEN {
            return Err(Error::party(from, "message shorter than its header"));
        }
        if msg[0] != WIRE_VERSION {
            return Err(Error::party(
                from,
                format!("unsupported wire version {}", msg[0]),
            ));
        }
        if ProtocolKind::from_u8(msg[1]) != Some(self.kind) {
            return Err(Error::transport(format!(
                "message for protocol {} delivered to a {:?} session",
                msg[1], self.kind
            )));
        }
        if msg[2..34] != self.sid.0 {
            return Err(Error::transport("message for another session id"));
        }
        let sender = u16::from_be_bytes([msg[34], msg[35]]);
        if sender != from {
            return Err(Error::transport(format!(
                "message from party {sender} relayed as coming from party {from}"
            )));
        }
        if from == self.me {
            return Err(Error::transport("message from ourselves"));
        }
        let broadcast = match msg[36] {
            0 => true,
            1 => {
                let to = u16::from_be_bytes([msg[37], msg[38]]);
                if to != self.me {
                    return Err(Error::transport(format!(
                        "point-to-point message for party {to} delivered to party {}",
                        self.me
                    )));
                }
                false
            }
            other => {
                return Err(Error::party(
                    from,
                    format!("invalid message type byte {other}"),
                ));
            }
        };
        let body: M = ciborium::from_reader(&msg[HEADER_LEN..])
            .map_err(|e| Error::party(from, format!("malformed message: {e}")))?;
        Ok(Received {
            from,
            broadcast,
            body,
        })
    }
}

/// Remembers the messages a session has accepted, so a relay that delivers the same bytes twice
/// (a retry) gets a recoverable `Transport` error instead of making the session blame the sender
/// for sending a second message. A *different* second message for the same round is still
/// misbehaviour, reported by the protocol.
#[derive(Debug, Default)]
pub(crate) struct Seen(std::collections::HashSet<[u8; 32]>);

impl Seen {
    pub fn check(&mut self, from: PartyIndex, msg: &[u8]) -> Result<()> {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(from.to_be_bytes());
        h.update(msg);
        if self.0.insert(h.finalize().into()) {
            Ok(())
        } else {
            Err(Error::transport(format!(
                "duplicate message from party {from} ignored"
            )))
        }
    }
}

/// Checks that `parties` is a sorted-able set of distinct indices `< n` containing `me`.
pub(crate) fn check_party_set(parties: &[PartyIndex], n: u16, me: PartyIndex) -> Result<()> {
    for (k, p) in parties.iter().enumerate() {
        if *p >= n {
            return Err(Error::input(format!(
                "party index {p} out of range (n = {n})"
            )));
        }
        if parties[..k].contains(p) {
            return Err(Error::input(format!("party index {p} listed twice")));
        }
    }
    if !parties.contains(&me) {
        return Err(Error::input(format!(
            "own index {me} is not among the parties {parties:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Body {
        x: u32,
    }

    #[test]
    fn header_round_trip_and_checks() -> Result<()> {
        let sid = SessionId([7; 32]);
        let a = Wire {
            kind: ProtocolKind::Ed25519Sign,
            sid,
            me: 0,
        };
        let b = Wire { me: 1, ..a.clone() };
        let c = Wire { me: 2, ..a.clone() };
        let out = a.encode(Recipient::Party(1), &Body { x: 5 })?;
        let got: Received<Body> = b.decode(0, &out.bytes)?;
        assert_eq!(got.body, Body { x: 5 });
        assert!(!got.broadcast);
        // wrong recipient
        assert!(matches!(
            c.decode::<Body>(0, &out.bytes),
            Err(Error::Transport(_))
        ));
        // wrong claimed sender
        assert!(matches!(
            b.decode::<Body>(2, &out.bytes),
            Err(Error::Transport(_))
        ));
        // other session
        let other = Wire {
            sid: SessionId([8; 32]),
            ..b.clone()
        };
        assert!(matches!(
            other.decode::<Body>(0, &out.bytes),
            Err(Error::Transport(_))
        ));
        // corrupted body blames the sender
        let mut bad = out.bytes.clone();
        bad.truncate(HEADER_LEN + 1);
        assert_eq!(
            b.decode::<Body>(0, &bad)
                .err()
                .map(|e| e.culprits().to_vec()),
            Some(vec![0])
        );
        Ok(())
    }
}
