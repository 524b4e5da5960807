//! Run a non-`Send` session on its own thread, behind a `Send` handle.
//!
//! WHY: `round_based`'s state machine (used for CGGMP24) keeps an `Rc` inside, so ECDSA sessions
//! cannot move between threads, while an async signer wants to keep sessions in a shared table and
//! touch them from whichever worker receives the next message. Rather than `unsafe impl Send`, each
//! session lives on a dedicated OS thread (cheap: sessions last seconds and there are few at once)
//! and is driven through channels. Calls still block while the protocol computes; call them from a
//! blocking context (`spawn_blocking`).

use std::sync::{Mutex, mpsc};

use crate::error::{Error, Result};
use crate::session::{Outgoing, PartyIndex, Session, Step};

enum Cmd {
    Start,
    Handle(PartyIndex, Vec<u8>),
}

enum Reply<O> {
    Started(Result<Vec<Outgoing>>),
    Handled(Result<Step<O>>),
}

/// A `Send` handle to a session running on its own thread.
pub struct ThreadedSession<O> {
    party: PartyIndex,
    tx: mpsc::Sender<Cmd>,
    // Behind a mutex only so the handle is `Sync` (it is only touched through `&mut self`).
    rx: Mutex<mpsc::Receiver<Reply<O>>>,
}

impl<O> std::fmt::Debug for ThreadedSession<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThreadedSession(party {})", self.party)
    }
}

impl<O: Send + 'static> ThreadedSession<O> {
    /// Builds the session on a new thread with `build` (which must create it there, since it may
    /// not be `Send`) and returns a handle. The thread ends when the handle is dropped.
    pub fn spawn<S, F>(build: F) -> Result<Self>
    where
        S: Session<Output = O> + 'static,
        F: FnOnce() -> Result<S> + Send + 'static,
    {
        let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>();
        let (rep_tx, rep_rx) = mpsc::channel::<Reply<O>>();
        let (init_tx, init_rx) = mpsc::channel::<Result<PartyIndex>>();
        std::thread::Builder::new()
            .name("keyfold-mpc-session".into())
            .spawn(move || {
                let mut session = match build() {
                    Ok(s) => {
                        let _ = init_tx.send(Ok(s.party()));
                        s
                    }
                    Err(e) => {
                        let _ = init_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(cmd) = cmd_rx.recv() {
                    let reply = match cmd {
                        Cmd::Start => Reply::Started(session.start()),
                        Cmd::Handle(from, msg) => Reply::Handled(session.handle(from, &msg)),
                    };
                    if rep_tx.send(reply).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::internal(format!("spawn session thread: {e}")))?;
        let party = init_rx
            .recv()
            .map_err(|_| Error::internal("session thread ended before reporting"))??;
        Ok(ThreadedSession {
            party,
            tx: cmd_tx,
            rx: Mutex::new(rep_rx),
        })
    }

    fn call(&mut self, cmd: Cmd) -> Result<Reply<O>> {
        self.tx
            .send(cmd)
            .map_err(|_| Error::internal("session thread is gone"))?;
        let rx = self
            .rx
            .get_mut()
            .map_err(|_| Error::internal("session thread is gone"))?;
        rx.recv()
            .map_err(|_| Error::internal("session thread is gone"))
    }
}

impl<O: Send + 'static> Session for ThreadedSession<O> {
    type Output = O;

    fn party(&self) -> PartyIndex {
        self.party
    }

    fn start(&mut self) -> Result<Vec<Outgoing>> {
        match self.call(Cmd::Start)? {
            Reply::Started(r) => r,
            Reply::Handled(_) => Err(Error::internal("session thread answered out of order")),
        }
    }

    fn handle(&mut self, from: PartyIndex, msg: &[u8]) -> Result<Step<O>> {
        match self.call(Cmd::Handle(from, msg.to_vec()))? {
            Reply::Handled(r) => r,
            Reply::Started(_) => Err(Error::internal("session thread answered out of order")),
        }
    }
}
