//! Shared helpers for the integration tests: fixture primes, cached aux info, key generation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Instant;

use keyfold_mpc::ecdsa::{self, EcdsaAuxInfo, EcdsaKeyShare, PaillierPrimes};
use keyfold_mpc::{PartyIndex, SessionId, sim};

/// Public, test-only safe primes (see `examples/gen_fixture_primes.rs`).
const FIXTURE: &str = include_str!("../fixtures/primes.json");

pub fn fixture_primes(party: usize) -> PaillierPrimes {
    let v: serde_json::Value = serde_json::from_str(FIXTURE).expect("fixture json");
    let hexes: Vec<Vec<u8>> = v["parties"][party]
        .as_array()
        .expect("party primes")
        .iter()
        .map(|h| hex::decode(h.as_str().expect("hex string")).expect("hex"))
        .collect();
    PaillierPrimes::from_be_bytes([&hexes[0], &hexes[1], &hexes[2], &hexes[3]])
        .expect("valid primes")
}

pub fn sid(label: &str) -> SessionId {
    use sha2::Digest;
    let mut b = [0u8; 32];
    b.copy_from_slice(&sha2::Sha256::digest(
        format!("{label}/{:?}", SessionId::random()).as_bytes(),
    ));
    SessionId::new(b)
}

/// Runs aux-info generation for `n` parties once per test binary and caches it.
pub fn aux_infos(n: u16) -> &'static [EcdsaAuxInfo] {
    static AUX3: OnceLock<Vec<EcdsaAuxInfo>> = OnceLock::new();
    static AUX5: OnceLock<Vec<EcdsaAuxInfo>> = OnceLock::new();
    let cell = match n {
        3 => &AUX3,
        5 => &AUX5,
        _ => panic!("no aux cache for n = {n}"),
    };
    cell.get_or_init(|| {
        let s = sid("aux");
        let sessions: Vec<_> = (0..n)
            .map(|i| ecdsa::aux_info(s, i, n, fixture_primes(usize::from(i))).expect("aux session"))
            .collect();
        let t = Instant::now();
        let out = sim::run(sessions).expect("aux info");
        eprintln!(
            "aux info for n = {n}: {:?} (all parties, one thread)",
            t.elapsed()
        );
        out
    })
}

/// Generates an ECDSA key `t` of `n` and completes the shares with cached aux info.
pub fn ecdsa_keys(t: u16, n: u16) -> Vec<EcdsaKeyShare> {
    let aux = aux_infos(n);
    let s = sid("keygen");
    let sessions: Vec<_> = (0..n)
        .map(|i| ecdsa::keygen(s, i, n, t).expect("keygen session"))
        .collect();
    let t0 = Instant::now();
    let incomplete = sim::run(sessions).expect("keygen");
    eprintln!("ecdsa keygen {t}-of-{n}: {:?}", t0.elapsed());
    incomplete
        .into_iter()
        .zip(aux)
        .map(|(s, a)| EcdsaKeyShare::from_parts(s, a).expect("from_parts"))
        .collect()
}

pub fn pick<T: Clone>(all: &[T], idx: &[PartyIndex]) -> Vec<T> {
    idx.iter().map(|i| all[usize::from(*i)].clone()).collect()
}

/// Flips the lowest bit of the byte at `pos` from the end of the message.
pub fn flip_from_end(bytes: &mut [u8], pos: usize) {
    let k = bytes.len() - 1 - pos;
    bytes[k] ^= 1;
}
