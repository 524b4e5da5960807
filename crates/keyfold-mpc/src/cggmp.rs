//! Driver that turns a cggmp24 async protocol into a [`Session`].
//!
//! WHY: cggmp24 writes its protocols as async functions over a `round_based` party. The
//! `round_based::state_machine::wrap_protocol` wrapper polls such a future by hand, so no async
//! runtime is needed; this module adds what our interface needs on top:
//!
//! * the protocol future **owns** everything it uses (key share, parties, session id, message),
//!   so the session is `'static` and can be stored by the signer between network round trips;
//! * library messages are CBOR-encoded inside our versioned, session-bound header;
//! * library-local party indices (`0..t` in signing) are mapped to key-generation indices;
//! * library errors are mapped to [`Error`] with the culprits the library names.
//!
//! Blame mapping: cggmp24 0.7.0-alpha.3 records the faulty party of every abort
//! (`AbortBlame { faulty_party, .. }`) and of every routing error (`RoundInputError { sender, .. }`)
//! but keeps those types private; only their `Debug` output is reachable. We read the indices from
//! it. The family is pinned to one exact version and `tests/ecdsa.rs` checks the mapping with a
//! tampered message, so a format change cannot pass unnoticed.

use std::future::Future;

use cggmp24::round_based::{
    Incoming, MessageDestination, MessageType, Outgoing as RbOutgoing,
    state_machine::{ProceedResult, StateMachine},
};

use crate::error::{Error, Result, chain};
use crate::session::{Outgoing, PartyIndex, Recipient, Seen, Session, Step, Wire};

pub(crate) type Curve = cggmp24::supported_curves::Secp256k1;
pub(crate) type SecLevel = cggmp24::security_level::SecurityLevel128;
pub(crate) type Hash = sha2::Sha256;
pub(crate) use cggmp24::backend::Integer;

type BoxedSm<M, O> = Box<dyn StateMachine<Output = Result<O>, Msg = M>>;
/// Extra check of an incoming message (library-local sender index) before the library sees it.
pub(crate) type Inspector<M> = Box<dyn FnMut(u16, &M) -> Result<()>>;

enum State<M, O> {
    Running(BoxedSm<M, O>),
    Finished,
    Failed,
}

/// A cggmp24 protocol run as a [`Session`].
pub(crate) struct SmSession<M, O> {
    wire: Wire,
    /// `parties[k]` is the key-generation index of library-local party `k`.
    parties: Vec<PartyIndex>,
    state: State<M, O>,
    started: bool,
    next_msg_id: u64,
    inspector: Option<Inspector<M>>,
    seen: Seen,
}

impl<M, O> SmSession<M, O>
where
    M: serde::Serialize + serde::de::DeserializeOwned + 'static,
    O: 'static,
{
    /// `protocol` receives the library party and must map its errors with [`map_error`].
    pub fn new<F, Fut>(wire: Wire, parties: Vec<PartyIndex>, protocol: F) -> Self
    where
        F: FnOnce(cggmp24::round_based::state_machine::MpcParty<M>) -> Fut,
        Fut: Future<Output = Result<O>> + 'static,
    {
        let sm = cggmp24::round_based::state_machine::wrap_protocol(protocol);
        SmSession {
            wire,
            parties,
            state: State::Running(Box::new(sm)),
            started: false,
            next_msg_id: 0,
            inspector: None,
            seen: Seen::default(),
        }
    }

    /// Adds a check run on every incoming message before the library sees it.
    pub fn with_inspector(mut self, inspector: Inspector<M>) -> Self {
        self.inspector = Some(inspector);
        self
    }

    fn local_index(&self, party: PartyIndex) -> Option<u16> {
        self.parties
            .iter()
            .position(|p| *p == party)
            .and_then(|k| u16::try_from(k).ok())
    }

    fn encode(&self, msg: RbOutgoing<M>) -> Result<Outgoing> {
        let to = match msg.recipient {
            MessageDestination::AllParties => Recipient::Broadcast,
            MessageDestination::OneParty(k) => Recipient::Party(
                *self
                    .parties
                    .get(usize::from(k))
                    .ok_or_else(|| Error::internal("library addressed an unknown party"))?,
            ),
        };
        self.wire.encode(to, &msg.msg)
    }

    /// Runs the state machine until it needs a message it does not have, or finishes.
    fn drive(&mut self, mut incoming: Option<Incoming<M>>) -> Result<Step<O>> {
        let mut out = Vec::new();
        loop {
            let State::Running(sm) = &mut self.state else {
                return Err(Error::internal("driving a finished session"));
            };
            match sm.proceed() {
                ProceedResult::SendMsg(msg) => {
                    let encoded = self.encode(msg)?;
                    out.push(encoded);
                }
                ProceedResult::NeedsOneMoreMessage => match incoming.take() {
                    Some(msg) => {
                        if sm.received_msg(msg).is_err() {
                            return Err(Error::internal("state machine refused a message"));
                        }
                    }
                    None => return Ok(Step::Continue(out)),
                },
                ProceedResult::Yielded => {}
                ProceedResult::Output(result) => {
                    self.state = State::Finished;
                    return result.map(|output| Step::Done {
                        output,
                        outgoing: out,
                    });
                }
                ProceedResult::Error(e) => {
                    return Err(Error::internal(format!("state machine: {e}")));
                }
            }
        }
    }

    fn guard(&self) -> Result<()> {
        match self.state {
            State::Running(_) => Ok(()),
            State::Finished => Err(Error::input("session already finished")),
            State::Failed => Err(Error::input("session failed earlier")),
        }
    }

    fn fail_on_terminal<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && !e.is_recoverable()
        {
            self.state = State::Failed;
        }
        r
    }
}

impl<M, O> Session for SmSession<M, O>
where
    M: serde::Serialize + serde::de::DeserializeOwned + 'static,
    O: 'static,
{
    type Output = O;

    fn party(&self) -> PartyIndex {
        self.wire.me
    }

    fn start(&mut self) -> Result<Vec<Outgoing>> {
        self.guard()?;
        if self.started {
            return Err(Error::input("session already started"));
        }
        self.started = true;
        let r = match self.drive(None) {
            Ok(Step::Continue(out)) => Ok(out),
            Ok(Step::Done { .. }) => Err(Error::internal("protocol finished without messages")),
            Err(e) => Err(e),
        };
        self.fail_on_terminal(r)
    }

    fn handle(&mut self, from: PartyIndex, msg: &[u8]) -> Result<Step<O>> {
        self.guard()?;
        let mut first = Vec::new();
        if !self.started {
            first = self.start()?;
        }
        let decoded = self.wire.decode::<M>(from, msg)?;
        self.seen.check(from, msg)?;
        let Some(sender) = self.local_index(decoded.from) else {
            return Err(Error::transport(format!(
                "party {from} does not take part in this session"
            )));
        };
        if let Some(inspect) = &mut self.inspector {
            let r = inspect(sender, &decoded.body);
            self.fail_on_terminal(r)?;
        }
        let incoming = Incoming {
            id: self.next_msg_id,
            sender,
            msg_type: if decoded.broadcast {
                MessageType::Broadcast
            } else {
                MessageType::P2P
            },
            msg: decoded.body,
        };
        self.next_msg_id += 1;
        let r = self.drive(Some(incoming));
        let step = self.fail_on_terminal(r)?;
        Ok(match step {
            Step::Continue(mut out) => {
                first.append(&mut out);
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
        })
    }
}

/// Maps a cggmp24 error to ours, naming culprits (translated to key-generation indices).
pub(crate) fn map_error(err: &(dyn std::error::Error + 'static), parties: &[PartyIndex]) -> Error {
    let text = chain(err);
    let debug = format!("{err:?}");
    let to_keygen = |k: u16| parties.get(usize::from(k)).copied();
    if debug.contains("RouteReceivedError") {
        let culprits = indices_after(&debug, "sender: ")
            .into_iter()
            .filter_map(to_keygen)
            .collect();
        return Error::parties(culprits, text);
    }
    if debug.contains("Aborted(") {
        let culprits = indices_after(&debug, "faulty_party: ")
            .into_iter()
            .filter_map(to_keygen)
            .collect();
        return Error::parties(culprits, text);
    }
    if debug.contains("InvalidArgs") || debug.contains("InvalidKeyShare(") {
        return Error::InvalidInput(text);
    }
    Error::Internal(text)
}

/// All decimal numbers that directly follow `marker` in `s`.
fn indices_after(s: &str, marker: &str) -> Vec<u16> {
    s.match_indices(marker)
        .filter_map(|(pos, m)| {
            let rest = &s[pos + m.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn reads_blame_from_debug() {
        let s = "SigningError(Aborted(InvalidPsi([(AbortBlame { faulty_party: 1, data_message: 4, proof_message: 4 }, (None, Some(x), None)), (AbortBlame { faulty_party: 2, data_message: 5, proof_message: 5 }, _)])))";
        assert_eq!(indices_after(s, "faulty_party: "), vec![1, 2]);
        assert_eq!(indices_after("x sender: 17, n", "sender: "), vec![17]);
    }
}
