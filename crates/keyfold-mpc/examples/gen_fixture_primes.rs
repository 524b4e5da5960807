//! Generates `tests/fixtures/primes.json`: 4 safe primes of 1536 bits for each of 5 test parties.
//!
//! TEST ONLY. These primes are public (committed to the repository); aux info made from them
//! protects nothing. Tests load them so CI does not spend minutes generating primes. Production
//! code never reads this file: every signer generates its own primes with
//! `keyfold_mpc::ecdsa::generate_primes()`.
//!
//! Run once: `cargo run --release --example gen_fixture_primes` (under a minute).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: panics are failures

use std::fmt::Write as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PARTIES: usize = 5;
    let mut parties = Vec::new();
    for k in 0..PARTIES {
        let t = std::time::Instant::now();
        let mut primes = Vec::new();
        for _ in 0..keyfold_mpc::ecdsa::primes::PRIMES_PER_PARTY {
            let p = keyfold_mpc::ecdsa::primes::generate_safe_prime()?;
            let mut hex = String::new();
            for b in p.iter() {
                write!(hex, "{b:02x}")?;
            }
            primes.push(hex);
        }
        eprintln!("party {k}: {:?}", t.elapsed());
        parties.push(primes);
    }
    let json = serde_json::json!({
        "warning": "TEST ONLY: public safe primes for CGGMP24 aux-info tests. Never use outside tests.",
        "bits": keyfold_mpc::ecdsa::primes::PRIME_BITS,
        "parties": parties,
    });
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/primes.json");
    std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")?;
    eprintln!("wrote {path}");
    Ok(())
}
