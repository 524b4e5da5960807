//! Benchmarks behind BENCHMARKS.md. Every party runs in this one thread (the in-process
//! simulator), and times are this thread's **CPU time** (`/proc/thread-self/schedstat`), i.e. the
//! CPU of all parties together, unaffected by other load on the machine. Prime generation by
//! `generate_primes()` uses several threads and is reported as wall time.
//!
//! ```text
//! cargo run --example bench -- --primes 4                     # GMP backend (default feature)
//! cargo run --example bench -- --primes 20 --sets 5 --no-library --primes-only
//! cargo run --example bench --no-default-features --features backend-num-bigint -- --primes 4
//! ```
//! (The dev profile of this crate builds all dependencies at opt-level 3 without debug
//! assertions, so these are release-speed numbers for the arithmetic.)
//!
//! Aux info is measured with the public test primes of `tests/fixtures/primes.json` so that prime
//! generation (timed separately) does not blur the protocol's own cost; this tool is dev-only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)] // dev tool

use std::time::Duration;

/// CPU time consumed so far by the calling thread.
fn cpu_now() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// A stopwatch on this thread's CPU time.
#[derive(Clone, Copy)]
struct Instant(Duration);
impl Instant {
    fn now() -> Self {
        Instant(cpu_now())
    }
    fn elapsed(&self) -> Duration {
        cpu_now().saturating_sub(self.0)
    }
}

use keyfold_mpc::ecdsa::{self, EcdsaKeyShare, EcdsaMessage, EcdsaPrehash, PaillierPrimes, primes};
use keyfold_mpc::frost::{self, Ed25519, Taproot};
use keyfold_mpc::sim::{self, Order, Report};
use keyfold_mpc::{PartyIndex, Session, SessionId};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const FIXTURE: &str = include_str!("../tests/fixtures/primes.json");

fn fixture_primes(party: usize) -> Res<PaillierPrimes> {
    let v: serde_json::Value = serde_json::from_str(FIXTURE)?;
    let arr = v["parties"][party].as_array().ok_or("fixture")?;
    let mut hexes = Vec::new();
    for h in arr {
        hexes.push(hex::decode(h.as_str().ok_or("fixture")?)?);
    }
    Ok(PaillierPrimes::from_be_bytes([
        &hexes[0], &hexes[1], &hexes[2], &hexes[3],
    ])?)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    format!(
        "mean {:.2} s, median {:.2} s, min {:.2} s, max {:.2} s (n = {})",
        mean.as_secs_f64(),
        v[v.len() / 2].as_secs_f64(),
        v[0].as_secs_f64(),
        v[v.len() - 1].as_secs_f64(),
        v.len()
    )
}

fn run<S: Session>(sessions: Vec<S>) -> Res<(Vec<S::Output>, usize, usize)> {
    let r: Report<S::Output> = sim::run_with(sessions, Order::Fifo, |_| {});
    let (bytes, max) = (r.bytes_sent, r.max_message);
    Ok((r.into_outputs()?, bytes, max))
}

fn avg<F: FnMut() -> Res<()>>(iters: u32, mut f: F) -> Res<Duration> {
    let t = Instant::now();
    for _ in 0..iters {
        f()?;
    }
    Ok(t.elapsed() / iters)
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u32| -> u32 {
        args.iter()
            .position(|a| a == name)
            .and_then(|k| args.get(k + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let n_primes = arg("--primes", 0);
    let iters = arg("--iters", 10);
    let rate_secs = arg("--rate-secs", 20);
    let backend = if cfg!(feature = "backend-num-bigint") {
        "num-bigint"
    } else {
        "rug (GMP)"
    };
    println!("backend: {backend}");

    if n_primes > 0 {
        // Per prime, one thread each: ours, OpenSSL's own, and (unless --no-library, it takes
        // minutes) cggmp24's. Wall time of a single-threaded call.
        let with_library = !args.iter().any(|a| a == "--no-library");
        let (mut ours, mut ossl, mut lib) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n_primes {
            let t = Instant::now();
            let _ = primes::generate_safe_prime()?;
            ours.push(t.elapsed());
            let t = Instant::now();
            let _ = primes::generate_safe_prime_with_openssl()?;
            ossl.push(t.elapsed());
            if with_library {
                let t = Instant::now();
                let _ = primes::generate_safe_prime_with_library();
                lib.push(t.elapsed());
            }
        }
        println!(
            "| safe prime 1536 bit, ours (combined sieve + OpenSSL tests) | {} |",
            stats(ours)
        );
        println!(
            "| safe prime 1536 bit, OpenSSL BN_generate_prime_ex | {} |",
            stats(ossl)
        );
        if with_library {
            println!(
                "| safe prime 1536 bit, cggmp24 generator ({backend}) | {} |",
                stats(lib)
            );
        }
        let mut sets = Vec::new();
        for _ in 0..arg("--sets", 1) {
            let t = std::time::Instant::now();
            let _ = ecdsa::generate_primes()?;
            sets.push(t.elapsed());
        }
        println!(
            "| generate_primes() (4 primes, threads = cores) wall | {} |",
            stats(sets)
        );
        if args.iter().any(|a| a == "--primes-only") {
            return Ok(());
        }
    }

    // Aux info (2-of-3 signer set; aux info depends on n only).
    let n: u16 = 3;
    let sid = SessionId::random();
    let sessions = (0..n)
        .map(|i| ecdsa::aux_info(sid, i, n, fixture_primes(usize::from(i))?).map_err(Into::into))
        .collect::<Res<Vec<_>>>()?;
    let t = Instant::now();
    let (aux, bytes, max) = run(sessions)?;
    println!(
        "| aux info, n = 3, all parties | {:.2} s | total sent {} KiB, largest message {} KiB |",
        t.elapsed().as_secs_f64(),
        bytes / 1024,
        max / 1024
    );

    // Keygen per scheme.
    let mut shares: Vec<EcdsaKeyShare> = Vec::new();
    let mut kg_bytes = 0;
    let d = avg(iters, || {
        let sid = SessionId::random();
        let s = (0..n)
            .map(|i| ecdsa::keygen(sid, i, n, 2))
            .collect::<Result<Vec<_>, _>>()?;
        let (inc, b, _) = run(s)?;
        kg_bytes = b;
        shares = inc
            .into_iter()
            .zip(&aux)
            .map(|(s, a)| EcdsaKeyShare::from_parts(s, a))
            .collect::<Result<_, _>>()?;
        Ok(())
    })?;
    println!(
        "| ECDSA keygen 2-of-3 (+ from_parts) | {} | {} B sent |",
        ms(d),
        kg_bytes
    );
    let mut fb = 0;
    let d = avg(iters, || {
        let sid = SessionId::random();
        let s = (0..n)
            .map(|i| frost::dkg::<Ed25519>(sid, i, n, 2))
            .collect::<Result<Vec<_>, _>>()?;
        fb = run(s)?.1;
        Ok(())
    })?;
    println!("| FROST Ed25519 DKG 2-of-3 | {} | {} B sent |", ms(d), fb);
    let mut tr_shares = Vec::new();
    let d = avg(iters, || {
        let sid = SessionId::random();
        let s = (0..n)
            .map(|i| frost::dkg::<Taproot>(sid, i, n, 2))
            .collect::<Result<Vec<_>, _>>()?;
        let (o, b, _) = run(s)?;
        tr_shares = o;
        fb = b;
        Ok(())
    })?;
    println!(
        "| FROST secp256k1-tr DKG 2-of-3 | {} | {} B sent |",
        ms(d),
        fb
    );

    let signers: [PartyIndex; 2] = [0, 2];
    let pick = |v: &[EcdsaKeyShare]| -> Vec<EcdsaKeyShare> {
        signers.iter().map(|i| v[usize::from(*i)].clone()).collect()
    };

    // ECDSA full interactive signing.
    let mut sb = (0, 0);
    let d = avg(iters, || {
        let sid = SessionId::random();
        let s = pick(&shares)
            .iter()
            .map(|k| ecdsa::sign(sid, k, &signers, EcdsaPrehash([1; 32])))
            .collect::<Result<Vec<_>, _>>()?;
        let (_, b, m) = run(s)?;
        sb = (b, m);
        Ok(())
    })?;
    println!(
        "| ECDSA sign 2-of-3, interactive (CPU of both signers) | {} | {} B sent, largest {} B |",
        ms(d),
        sb.0,
        sb.1
    );

    // Presign, then online.
    let mut presigs = Vec::new();
    let d = avg(iters, || {
        let sid = SessionId::random();
        let s = pick(&shares)
            .iter()
            .map(|k| ecdsa::presign(sid, k, &signers))
            .collect::<Result<Vec<_>, _>>()?;
        let (p, b, m) = run(s)?;
        sb = (b, m);
        presigs.push(p);
        Ok(())
    })?;
    println!(
        "| ECDSA presign 2-of-3 (CPU of both signers) | {} | {} B sent, largest {} B |",
        ms(d),
        sb.0,
        sb.1
    );
    let msg = EcdsaMessage::keccak256(b"a transaction");
    let online_n = presigs.len() as u32;
    let t = Instant::now();
    for p in presigs.drain(..) {
        let public = p[0].public().clone();
        let partials: Vec<_> = p.into_iter().map(|x| x.issue_partial(&msg)).collect();
        ecdsa::combine(&public, &partials, &msg)?;
    }
    println!(
        "| ECDSA online: 2 partials + combine (checks + verify + recid) | {} |",
        ms(t.elapsed() / online_n)
    );

    // FROST signing.
    let ed = {
        let sid = SessionId::random();
        let s = (0..n)
            .map(|i| frost::dkg::<Ed25519>(sid, i, n, 2))
            .collect::<Result<Vec<_>, _>>()?;
        run(s)?.0
    };
    let d = avg(iters * 10, || {
        let sid = SessionId::random();
        let s = signers
            .iter()
            .map(|i| frost::sign(sid, &ed[usize::from(*i)], &signers, b"msg", None))
            .collect::<Result<Vec<_>, _>>()?;
        fb = run(s)?.1;
        Ok(())
    })?;
    println!(
        "| FROST Ed25519 sign 2-of-3 (both signers) | {} | {} B sent |",
        ms(d),
        fb
    );
    let d = avg(iters * 10, || {
        let sid = SessionId::random();
        let s = signers
            .iter()
            .map(|i| frost::sign(sid, &tr_shares[usize::from(*i)], &signers, &[7; 32], None))
            .collect::<Result<Vec<_>, _>>()?;
        fb = run(s)?.1;
        Ok(())
    })?;
    println!(
        "| FROST secp256k1-tr sign 2-of-3 (both signers) | {} | {} B sent |",
        ms(d),
        fb
    );
    let d = avg(iters * 10, || {
        let sid = SessionId::random();
        let tw = Some(frost::TaprootTweak { merkle_root: None });
        let s = signers
            .iter()
            .map(|i| frost::sign(sid, &tr_shares[usize::from(*i)], &signers, &[7; 32], tw))
            .collect::<Result<Vec<_>, _>>()?;
        run(s)?;
        Ok(())
    })?;
    println!(
        "| FROST secp256k1-tr sign, BIP-341 tweak (both signers) | {} |",
        ms(d)
    );

    // In-process presign + sign rate.
    let t = Instant::now();
    let mut count = 0u32;
    while t.elapsed() < Duration::from_secs(u64::from(rate_secs)) {
        let sid = SessionId::random();
        let s = pick(&shares)
            .iter()
            .map(|k| ecdsa::presign(sid, k, &signers))
            .collect::<Result<Vec<_>, _>>()?;
        let p = run(s)?.0;
        let public = p[0].public().clone();
        let m = EcdsaMessage::keccak256(&count.to_be_bytes());
        let partials: Vec<_> = p.into_iter().map(|x| x.issue_partial(&m)).collect();
        ecdsa::combine(&public, &partials, &m)?;
        count += 1;
    }
    let rate = f64::from(count) / t.elapsed().as_secs_f64();
    println!(
        "| ECDSA presign + sign, in-process, one thread (both signers) | {rate:.2} signatures/s ({count} in {:.0} s) |",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
