//! Safe primes for CGGMP24 auxiliary info.
//!
//! WHY: each party's aux info needs two Paillier primes and two ring-Pedersen primes — four safe
//! primes of 1536 bits (`SecurityLevel128::RSA_PRIME_BITLEN`; cggmp24's `PregeneratedPrimes` holds
//! `[Integer; 4]`). Each signer generates its **own**, locally: nobody else may ever see them.
//!
//! Finding them is most of a fresh cluster's set-up time, so the search is built for speed,
//! out of OpenSSL's big-number primitives (no arithmetic of our own):
//!
//! * **A combined sieve.** A safe prime is `p = 2q + 1` with `q` prime too, so a candidate `q`
//!   is worthless when either `q` or `2q + 1` has a small factor. From a random start `q0`
//!   (odd, `PRIME_BITS - 1` bits, top two bits set, from the operating system's randomness),
//!   a window of candidates `q0 + 2i` is sieved by every odd prime below [`SIEVE_BOUND`] for
//!   both conditions at once — far deeper than `BN_generate_prime_ex`'s few hundred small
//!   primes, so about 3.7 times fewer candidates reach an exponentiation (`BENCHMARKS.md`).
//! * **Cheap tests first.** A survivor costs one base-2 Fermat test of `q`, which nearly all
//!   fail; then one of `p`; then OpenSSL's `BN_is_prime_ex` with 64 Miller-Rabin rounds on
//!   both (an error probability below 2^-128 each). Only that last check decides: the sieve
//!   and the Fermat tests can only skip work.
//! * **A race with cancellation.** [`generate_primes`] runs one search per core (at most 16)
//!   until four distinct primes are in, then stops the others at their next window or
//!   surviving candidate — so no core idles while another thread finishes its share, and no
//!   thread keeps burning CPU after the set is complete.
//!
//! Measured (`cargo run -p keyfold-mpc --example bench -- --sets 10 --no-library
//! --primes-only`, `BENCHMARKS.md`): about three times faster than
//! `BN_generate_prime_ex(safe = 1)` per prime, which itself is 4–8 times faster than cggmp24's
//! own generator. Primes loaded from bytes are checked again (size, primality of `p` and
//! `(p-1)/2`, distinctness): stored primes are sealed, so this catches authentic but wrong
//! ones (a generator bug, a test fixture file) here rather than as an unattributable proof
//! failure inside the protocol.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use openssl::bn::{BigNum, BigNumContext, BigNumRef};
use zeroize::Zeroizing;

use crate::cggmp::{Integer, SecLevel};
use crate::error::{Error, Result};
use crate::secret::{self, BlobKind};

/// Bits of each prime (cggmp24 `SecurityLevel128::RSA_PRIME_BITLEN`).
pub const PRIME_BITS: u32 = 1536;
/// How many safe primes one party needs for aux info.
pub const PRIMES_PER_PARTY: usize = 4;
/// The sieve removes every candidate `q` where `q` or `2q + 1` has an odd prime factor below
/// this (about 296 000 primes: their residues cost tens of milliseconds per window, far less
/// than the exponentiations they save; 2^20 was no faster).
const SIEVE_BOUND: u32 = 1 << 22;
/// Candidates `q0 + 2i` per window.
const SIEVE_WINDOW: usize = 1 << 16;
/// Miller-Rabin rounds of the final check of `q` and of `p`.
const MR_ROUNDS: i32 = 64;

/// The four secret safe primes one party needs for one aux-info run. Use once.
/// (Every prime is held in zeroizing memory; not `Clone` on purpose.)
pub struct PaillierPrimes {
    // Big-endian magnitudes.
    primes: [Zeroizing<Vec<u8>>; PRIMES_PER_PARTY],
}
secret::redacted_debug!(PaillierPrimes);

fn ossl(e: openssl::error::ErrorStack) -> Error {
    Error::internal(format!("openssl: {e}"))
}

/// The odd primes below [`SIEVE_BOUND`] (sieve of Eratosthenes, once per process).
fn sieve_primes() -> &'static [u32] {
    static PRIMES: OnceLock<Vec<u32>> = OnceLock::new();
    PRIMES.get_or_init(|| {
        let n = SIEVE_BOUND as usize;
        let mut composite = vec![false; n];
        let mut out = Vec::new();
        for i in 3..n {
            if i % 2 == 1 && !composite.get(i).copied().unwrap_or(true) {
                out.push(i as u32);
                let mut j = i.saturating_mul(i);
                while j < n {
                    if let Some(c) = composite.get_mut(j) {
                        *c = true;
                    }
                    j += 2 * i;
                }
            }
        }
        out
    })
}

/// Sets `alive[i]` to whether candidate `q = start + 2i` survives: neither `q` nor `2q + 1` has
/// an odd prime factor below [`SIEVE_BOUND`].
fn sieve(start: &BigNumRef, alive: &mut [bool]) -> Result<()> {
    alive.fill(true);
    for &r in sieve_primes() {
        // start + 2i is divisible by r when i ≡ -start / 2, and 2(start + 2i) + 1 is when
        // i ≡ ((r - 1) / 2 - start) / 2 (mod r); 1/2 is (r + 1) / 2 modulo an odd r.
        let r64 = u64::from(r);
        let s = start.mod_word(r).map_err(ossl)?;
        let half = r64 / 2 + 1; // (r + 1) / 2, as r is odd
        for target in [0, (r64 - 1) / 2] {
            let mut i = ((target + r64 - s) % r64 * half % r64) as usize;
            while let Some(a) = alive.get_mut(i) {
                *a = false;
                i += r as usize;
            }
        }
    }
    Ok(())
}

/// Searches for one safe prime of `bits` bits (its top two bits set, so a product of two has
/// exactly `2 * bits`) until one is found or `stop` is set (`None`). See the module docs.
pub(crate) fn search_safe_prime(
    bits: u32,
    stop: &AtomicBool,
) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if bits < 32 {
        return Err(Error::input(
            "safe primes of fewer than 32 bits are not searched for",
        ));
    }
    let mut ctx = BigNumContext::new_secure().map_err(ossl)?;
    let (zero, one, two) = (
        BigNum::new().map_err(ossl)?,
        BigNum::from_u32(1).map_err(ossl)?,
        BigNum::from_u32(2).map_err(ossl)?,
    );
    // Secure big numbers are wiped when freed.
    let mut start = BigNum::new_secure().map_err(ossl)?;
    let mut q = BigNum::new_secure().map_err(ossl)?;
    let mut p = BigNum::new_secure().map_err(ossl)?;
    let mut exp = BigNum::new_secure().map_err(ossl)?;
    let mut rem = BigNum::new_secure().map_err(ossl)?;
    // Which candidates survived tells `start` modulo every small prime: wiped when dropped.
    let mut alive = Zeroizing::new(vec![true; SIEVE_WINDOW]);
    let mut random = Zeroizing::new(vec![0u8; (bits as usize - 1).div_ceil(8)]);
    let fermat_base2 = |n: &BigNumRef,
                        exp: &mut BigNum,
                        rem: &mut BigNum,
                        ctx: &mut BigNumContext|
     -> Result<bool> {
        exp.checked_sub(n, &one).map_err(ossl)?;
        rem.mod_exp(&two, exp, n, ctx).map_err(ossl)?;
        // 2^(n-1) mod n is 1 exactly when it has one significant bit.
        Ok(rem.num_bits() == 1)
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        // bits - 1 random bits from the operating system, the top two and the lowest set.
        rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut random)
            .map_err(|e| Error::internal(format!("randomness: {e}")))?;
        start.copy_from_slice(&random).map_err(ossl)?;
        let top = bits as i32 - 2;
        start.mask_bits(top + 1).map_err(ossl)?;
        for bit in [top, top - 1, 0] {
            start.set_bit(bit).map_err(ossl)?;
        }
        sieve(&start, &mut alive)?;
        for (i, _) in alive.iter().enumerate().filter(|(_, a)| **a) {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            q.checked_add(&start, &zero).map_err(ossl)?;
            q.add_word(2 * i as u32).map_err(ossl)?;
            if !fermat_base2(&q, &mut exp, &mut rem, &mut ctx)? {
                continue;
            }
            p.lshift1(&q).map_err(ossl)?;
            p.add_word(1).map_err(ossl)?;
            if p.num_bits() != bits as i32 || !fermat_base2(&p, &mut exp, &mut rem, &mut ctx)? {
                continue;
            }
            if q.is_prime(MR_ROUNDS, &mut ctx).map_err(ossl)?
                && p.is_prime(MR_ROUNDS, &mut ctx).map_err(ossl)?
            {
                return Ok(Some(Zeroizing::new(p.to_vec())));
            }
        }
    }
}

/// Generates one 1536-bit safe prime (see the module docs).
pub fn generate_safe_prime() -> Result<Zeroizing<Vec<u8>>> {
    search_safe_prime(PRIME_BITS, &AtomicBool::new(false))?
        .ok_or_else(|| Error::internal("the prime search stopped"))
}

/// The four safe primes for one party: one search per core, the first four distinct primes
/// found win and the other searches stop (see the module docs). The threads inherit the
/// caller's scheduling priority.
pub fn generate_primes() -> Result<PaillierPrimes> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Result<Zeroizing<Vec<u8>>>>();
    let found = std::thread::scope(|s| {
        for _ in 0..threads {
            let (tx, stop) = (tx.clone(), &stop);
            s.spawn(move || {
                while let Some(found) = search_safe_prime(PRIME_BITS, stop).transpose() {
                    let failed = found.is_err();
                    if tx.send(found).is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut found: Vec<Zeroizing<Vec<u8>>> = Vec::with_capacity(PRIMES_PER_PARTY);
        let collected = loop {
            if found.len() == PRIMES_PER_PARTY {
                break Ok(());
            }
            match rx.recv() {
                Ok(Ok(p)) if !found.iter().any(|f| f[..] == p[..]) => found.push(p),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => break Err(e),
                Err(_) => break Err(Error::internal("every prime search ended")),
            }
        };
        stop.store(true, Ordering::Relaxed);
        collected.map(|()| found)
    })?;
    PaillierPrimes::from_parts(found)
}

/// Generates one safe prime with OpenSSL's own `BN_generate_prime_ex(safe = 1)` (for
/// benchmarks and comparison).
pub fn generate_safe_prime_with_openssl() -> Result<Zeroizing<Vec<u8>>> {
    let mut p = BigNum::new_secure().map_err(ossl)?;
    p.generate_prime(PRIME_BITS as i32, true, None, None)
        .map_err(|e| Error::internal(format!("openssl prime generation: {e}")))?;
    Ok(Zeroizing::new(p.to_vec()))
}

/// Generates one safe prime with cggmp24's own generator (for benchmarks and comparison).
pub fn generate_safe_prime_with_library() -> Zeroizing<Vec<u8>> {
    let p = Integer::generate_safe_prime(&mut rand_core::OsRng, PRIME_BITS);
    Zeroizing::new(p.to_bytes_msf())
}

impl PaillierPrimes {
    fn from_parts(parts: Vec<Zeroizing<Vec<u8>>>) -> Result<Self> {
        let primes: [Zeroizing<Vec<u8>>; PRIMES_PER_PARTY] = parts
            .try_into()
            .map_err(|_| Error::input(format!("need exactly {PRIMES_PER_PARTY} primes")))?;
        Ok(PaillierPrimes { primes })
    }

    /// Builds from four big-endian safe primes, checking them (size, safe primality,
    /// distinctness): eight 64-round Miller-Rabin tests of 1536-bit numbers.
    pub fn from_be_bytes(primes: [&[u8]; PRIMES_PER_PARTY]) -> Result<Self> {
        let parts: Vec<Zeroizing<Vec<u8>>> = primes
            .iter()
            .map(|p| Zeroizing::new(strip_leading_zeros(p).to_vec()))
            .collect();
        let me = Self::from_parts(parts)?;
        me.validate()?;
        Ok(me)
    }

    fn validate(&self) -> Result<()> {
        // Secure big numbers and context: the secret primes are wiped when freed.
        let mut ctx = BigNumContext::new_secure().map_err(ossl)?;
        for (k, p) in self.primes.iter().enumerate() {
            if self.primes[..k].iter().any(|q| q[..] == p[..]) {
                return Err(Error::input("the four primes must be distinct"));
            }
            let mut bn = BigNum::new_secure().map_err(ossl)?;
            bn.copy_from_slice(p).map_err(ossl)?;
            if bn.num_bits() != PRIME_BITS as i32 {
                return Err(Error::input(format!(
                    "prime {k} has {} bits, need {PRIME_BITS}",
                    bn.num_bits()
                )));
            }
            let mut half = BigNum::new_secure().map_err(ossl)?;
            half.rshift1(&bn)
                .map_err(|e| Error::internal(format!("openssl: {e}")))?;
            let safe = bn
                .is_prime(0, &mut ctx)
                .and_then(|a| Ok(a && half.is_prime(0, &mut ctx)?))
                .map_err(|e| Error::internal(format!("openssl: {e}")))?;
            if !safe {
                return Err(Error::input(format!("prime {k} is not a safe prime")));
            }
        }
        Ok(())
    }

    /// Converts into cggmp24's `PregeneratedPrimes` (also re-checks the size).
    pub fn to_pregenerated(&self) -> Result<cggmp24::PregeneratedPrimes<SecLevel>> {
        let ints: [Integer; PRIMES_PER_PARTY] =
            std::array::from_fn(|k| Integer::from_bytes_msf(&self.primes[k]));
        cggmp24::PregeneratedPrimes::<SecLevel>::try_from(ints)
            .map_err(|_| Error::input("primes are smaller than the security level requires"))
    }

    /// Serializes for sealing at rest (versioned).
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>> {
        let v: Vec<&[u8]> = self.primes.iter().map(|p| p.as_slice()).collect();
        let wrapped: Vec<serde_bytes_wrapper::Bytes<'_>> =
            v.into_iter().map(serde_bytes_wrapper::Bytes).collect();
        secret::encode(BlobKind::PaillierPrimes, &wrapped)
    }

    /// Reads what [`to_bytes`](Self::to_bytes) wrote, re-validating the primes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let v: Vec<serde_bytes_wrapper::ByteBuf> = secret::decode(BlobKind::PaillierPrimes, bytes)?;
        let parts: Vec<Zeroizing<Vec<u8>>> = v.into_iter().map(|b| Zeroizing::new(b.0)).collect();
        let me = Self::from_parts(parts)?;
        me.validate()?;
        Ok(me)
    }
}

fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

/// Minimal byte-string serde helpers so CBOR stores bytes as one byte string, not an array.
pub(crate) mod serde_bytes_wrapper {
    pub struct Bytes<'a>(pub &'a [u8]);
    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    pub struct ByteBuf(pub Vec<u8>);
    impl serde::Serialize for ByteBuf {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }
    impl<'de> serde::Deserialize<'de> for ByteBuf {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = ByteBuf;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a byte string")
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v.to_vec()))
                }
                fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<ByteBuf, E> {
                    Ok(ByteBuf(v))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<ByteBuf, A::Error> {
                    let mut out = Vec::new();
                    while let Some(b) = seq.next_element::<u8>()? {
                        out.push(b);
                    }
                    Ok(ByteBuf(out))
                }
            }
            d.deserialize_bytes(V)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: panics are failures
mod tests {
    use super::*;

    /// Deterministic Miller-Rabin for `n < 2^64` (these bases suffice), independent of OpenSSL.
    fn is_prime_u64(n: u64) -> bool {
        if n < 2 {
            return false;
        }
        const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
        if let Some(b) = BASES.iter().find(|&&b| n.is_multiple_of(b)) {
            return n == *b;
        }
        let mulmod = |a: u64, b: u64| (u128::from(a) * u128::from(b) % u128::from(n)) as u64;
        let powmod = |mut b: u64, mut e: u64| {
            let mut r = 1u64;
            while e > 0 {
                if e & 1 == 1 {
                    r = mulmod(r, b);
                }
                b = mulmod(b, b);
                e >>= 1;
            }
            r
        };
        let (mut d, mut s) = (n - 1, 0);
        while d.is_multiple_of(2) {
            d /= 2;
            s += 1;
        }
        BASES.iter().all(|&a| {
            let mut x = powmod(a, d);
            if x == 1 || x == n - 1 {
                return true;
            }
            for _ in 1..s {
                x = mulmod(x, x);
                if x == n - 1 {
                    return true;
                }
            }
            false
        })
    }

    #[test]
    fn small_searches_find_safe_primes_of_the_asked_size() {
        for _ in 0..40 {
            let p = search_safe_prime(64, &AtomicBool::new(false))
                .unwrap()
                .unwrap();
            let p = u64::from_be_bytes(p[..].try_into().unwrap());
            assert_eq!(p >> 62, 0b11, "64 bits, the top two set: {p:#x}");
            assert!(
                is_prime_u64(p) && is_prime_u64(p / 2),
                "{p} is a safe prime"
            );
        }
    }

    #[test]
    fn the_sieve_removes_exactly_the_candidates_with_a_small_factor() {
        // A window whose candidate 100 is the q of a safe prime: it must survive.
        let p = search_safe_prime(64, &AtomicBool::new(false))
            .unwrap()
            .unwrap();
        let q0 = u64::from_be_bytes(p[..].try_into().unwrap()) / 2 - 200;
        let start = BigNum::from_dec_str(&q0.to_string()).unwrap();
        let mut alive = vec![false; 300];
        sieve(&start, &mut alive).unwrap();
        // The sieving primes themselves: every odd prime below 2^22 (counted independently).
        let small = sieve_primes();
        assert_eq!(small.len(), 295_946);
        assert_eq!(
            (small[..5].to_vec(), small.last()),
            (vec![3, 5, 7, 11, 13], Some(&4_194_301))
        );
        assert!(small.iter().take(2000).all(|&r| is_prime_u64(u64::from(r))));
        for (i, alive) in alive.iter().enumerate() {
            let q = q0 + 2 * i as u64;
            let p = u128::from(q) * 2 + 1;
            let has_small_factor = small
                .iter()
                .any(|&r| q.is_multiple_of(u64::from(r)) || p.is_multiple_of(u128::from(r)));
            assert_eq!(*alive, !has_small_factor, "candidate {i}: {q}");
        }
        assert!(alive[100], "the safe prime's q survives");
        assert!(
            alive.iter().filter(|a| **a).count() < 30,
            "most candidates go"
        );
    }

    #[test]
    fn a_stopped_search_ends_without_a_prime() {
        assert!(
            search_safe_prime(PRIME_BITS, &AtomicBool::new(true))
                .unwrap()
                .is_none()
        );
        assert!(search_safe_prime(16, &AtomicBool::new(false)).is_err());
    }

    /// The production path, at full size: four distinct 1536-bit safe primes that OpenSSL's
    /// checks (`validate`), GMP's (`is_probably_prime`, an independent implementation) and
    /// cggmp24's size rules accept.
    #[test]
    fn generated_primes_are_distinct_safe_primes_that_cggmp_accepts() {
        use crate::cggmp::Integer;
        use cggmp24::fast_paillier::backend::IsPrime;
        let primes = generate_primes().unwrap();
        primes.validate().unwrap();
        primes.to_pregenerated().unwrap();
        for p in &primes.primes {
            let p = Integer::from_bytes_msf(p);
            let q = (p.clone() - Integer::from(1)) / Integer::from(2);
            for n in [p, q] {
                assert_ne!(n.is_probably_prime(40, &mut rand_core::OsRng), IsPrime::No);
            }
        }
        let back = PaillierPrimes::from_bytes(&primes.to_bytes().unwrap()).unwrap();
        assert!(
            back.primes
                .iter()
                .zip(&primes.primes)
                .all(|(a, b)| a[..] == b[..])
        );
    }
}
