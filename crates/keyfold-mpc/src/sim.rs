//! In-process simulation: runs N sessions in one process by routing their [`Outgoing`] messages.
//!
//! WHY: every protocol test (here and in the signer crate) needs the same thing — several
//! parties, a relay that delivers broadcasts to everyone and point-to-point messages to one,
//! optionally out of order or tampered with. Tests write that once, here. Enabled by the
//! `test-util` feature (and in this crate's own unit tests); never in production builds.

use std::collections::VecDeque;

use crate::error::Error;
use crate::session::{Outgoing, PartyIndex, Recipient, Session, Step};

/// One message in flight, visible to a tamper hook.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Sender.
    pub from: PartyIndex,
    /// Receiver.
    pub to: PartyIndex,
    /// Whether the sender broadcast it.
    pub broadcast: bool,
    /// The bytes (may be modified by the hook).
    pub bytes: Vec<u8>,
    /// Sequence number of this delivery (0-based, in send order).
    pub seq: usize,
}

/// How one party ended.
#[derive(Debug)]
pub enum Outcome<O> {
    /// It produced its output.
    Done(O),
    /// It failed with this (terminal) error.
    Failed(Error),
    /// The network ran dry before it finished (another party stopped).
    Stalled,
}

impl<O> Outcome<O> {
    /// The output, if any.
    pub fn ok(self) -> Option<O> {
        match self {
            Outcome::Done(o) => Some(o),
            _ => None,
        }
    }
    /// The error, if any.
    pub fn err(&self) -> Option<&Error> {
        match self {
            Outcome::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// Delivery order.
#[derive(Debug, Clone, Copy)]
pub enum Order {
    /// First sent, first delivered.
    Fifo,
    /// Pseudo-random order from a seed (tests buffering of early messages).
    Shuffled(u64),
}

/// Result of a simulation.
#[derive(Debug)]
pub struct Report<O> {
    /// One outcome per session, in the order the sessions were given.
    pub outcomes: Vec<Outcome<O>>,
    /// Deliveries made (a broadcast counts once per receiver).
    pub deliveries: usize,
    /// Total bytes of distinct outgoing messages (a broadcast counts once).
    pub bytes_sent: usize,
    /// Largest single message.
    pub max_message: usize,
    /// Recoverable (`Transport`) errors seen, with the receiving party.
    pub transport_errors: Vec<(PartyIndex, Error)>,
}

impl<O> Report<O> {
    /// All outputs, or the first failure (a stall is reported as `Aborted`).
    pub fn into_outputs(self) -> Result<Vec<O>, Error> {
        let mut out = Vec::with_capacity(self.outcomes.len());
        let mut stalled = false;
        let mut first_err = None;
        for o in self.outcomes {
            match o {
                Outcome::Done(v) => out.push(v),
                Outcome::Failed(e) => {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
                Outcome::Stalled => stalled = true,
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if stalled {
            return Err(Error::Aborted("simulation stalled".into()));
        }
        Ok(out)
    }
}

/// Runs the sessions to completion with FIFO delivery and no tampering.
pub fn run<S: Session>(sessions: Vec<S>) -> Result<Vec<S::Output>, Error> {
    run_with(sessions, Order::Fifo, |_| {}).into_outputs()
}

/// Runs the sessions with a delivery order and a hook that may modify (or empty, to drop) each
/// delivery before it reaches its receiver.
pub fn run_with<S: Session>(
    mut sessions: Vec<S>,
    order: Order,
    mut tamper: impl FnMut(&mut Delivery),
) -> Report<S::Output> {
    let ids: Vec<PartyIndex> = sessions.iter().map(|s| s.party()).collect();
    let mut outcomes: Vec<Option<Outcome<S::Output>>> = sessions.iter().map(|_| None).collect();
    let mut queue: VecDeque<Delivery> = VecDeque::new();
    let mut seq = 0usize;
    let mut report_bytes = 0usize;
    let mut max_message = 0usize;
    let mut deliveries = 0usize;
    let mut transport_errors = Vec::new();
    let mut rng = match order {
        Order::Fifo => 0,
        Order::Shuffled(s) => s | 1,
    };

    let mut enqueue = |from: PartyIndex, out: Vec<Outgoing>, queue: &mut VecDeque<Delivery>| {
        for o in out {
            report_bytes += o.bytes.len();
            max_message = max_message.max(o.bytes.len());
            let targets: Vec<PartyIndex> = match o.to {
                Recipient::Broadcast => ids.iter().copied().filter(|p| *p != from).collect(),
                Recipient::Party(p) => vec![p],
            };
            for to in targets {
                queue.push_back(Delivery {
                    from,
                    to,
                    broadcast: o.to == Recipient::Broadcast,
                    bytes: o.bytes.clone(),
                    seq,
                });
                seq += 1;
            }
        }
    };

    for (k, s) in sessions.iter_mut().enumerate() {
        match s.start() {
            Ok(out) => enqueue(ids[k], out, &mut queue),
            Err(e) => outcomes[k] = Some(Outcome::Failed(e)),
        }
    }

    while !queue.is_empty() {
        let idx = match order {
            Order::Fifo => 0,
            Order::Shuffled(_) => {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % queue.len() as u64) as usize
            }
        };
        let Some(mut d) = queue.remove(idx) else {
            break;
        };
        tamper(&mut d);
        if d.bytes.is_empty() {
            continue; // dropped by the hook
        }
        let Some(k) = ids.iter().position(|p| *p == d.to) else {
            continue;
        };
        if outcomes[k].is_some() {
            continue;
        }
        deliveries += 1;
        match sessions[k].handle(d.from, &d.bytes) {
            Ok(Step::Continue(out)) => enqueue(d.to, out, &mut queue),
            Ok(Step::Done { output, outgoing }) => {
                enqueue(d.to, outgoing, &mut queue);
                outcomes[k] = Some(Outcome::Done(output));
            }
            Err(e) if e.is_recoverable() => transport_errors.push((d.to, e)),
            Err(e) => outcomes[k] = Some(Outcome::Failed(e)),
        }
    }

    Report {
        outcomes: outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Stalled))
            .collect(),
        deliveries,
        bytes_sent: report_bytes,
        max_message,
        transport_errors,
    }
}
