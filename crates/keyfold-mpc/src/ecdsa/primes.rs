//! Safe primes for CGGMP24 auxiliary info.
//!
//! WHY: each party's aux info needs two Paillier primes and two ring-Pedersen primes — four safe
//! primes of 1536 bits (`SecurityLevel128::RSA_PRIME_BITLEN`; cggmp24's `PregeneratedPrimes` holds
//! `[Integer; 4]`). Each signer generates its **own**, locally: nobody else may ever see them.
//!
//! We generate them with OpenSSL's `BN_generate_prime_ex(safe = 1)` instead of the library's own
//! sieve because it is several times faster on these machines (numbers and commands in
//! `BENCHMARKS.md`); generation is independent per prime, so [`generate_primes`] runs one thread
//! per prime up to the number of cores. A signer should keep a small pool ready in the
//! background rather than generate on demand.
//!
//! Primes loaded from bytes are checked (size, primality of `p` and `(p-1)/2`, distinctness), so a
//! corrupted store fails here rather than as an unattributable proof failure inside the protocol.

use openssl::bn::{BigNum, BigNumContext};
use zeroize::Zeroizing;

use crate::cggmp::{Integer, SecLevel};
use crate::error::{Error, Result};
use crate::secret::{self, BlobKind};

/// Bits of each prime (cggmp24 `SecurityLevel128::RSA_PRIME_BITLEN`).
pub const PRIME_BITS: u32 = 1536;
/// How many safe primes one party needs for aux info.
pub const PRIMES_PER_PARTY: usize = 4;

/// The four secret safe primes one party needs for one aux-info run. Use once.
/// (Every prime is held in zeroizing memory; not `Clone` on purpose.)
pub struct PaillierPrimes {
    // Big-endian magnitudes.
    primes: [Zeroizing<Vec<u8>>; PRIMES_PER_PARTY],
}
secret::redacted_debug!(PaillierPrimes);

/// Generates one 1536-bit safe prime with OpenSSL.
pub fn generate_safe_prime() -> Result<Zeroizing<Vec<u8>>> {
    let mut p = BigNum::new().map_err(|e| Error::internal(format!("openssl: {e}")))?;
    p.generate_prime(PRIME_BITS as i32, true, None, None)
        .map_err(|e| Error::internal(format!("openssl prime generation: {e}")))?;
    let bytes = Zeroizing::new(p.to_vec());
    p.clear();
    Ok(bytes)
}

/// Generates the four safe primes for one party, one thread per prime (up to the core count).
pub fn generate_primes() -> Result<PaillierPrimes> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, PRIMES_PER_PARTY);
    let per_thread = PRIMES_PER_PARTY.div_ceil(threads);
    let mut found: Vec<Zeroizing<Vec<u8>>> = Vec::with_capacity(PRIMES_PER_PARTY);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let count = per_thread.min(PRIMES_PER_PARTY.saturating_sub(k * per_thread));
                s.spawn(move || {
                    (0..count)
                        .map(|_| generate_safe_prime())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            let results = h
                .join()
                .map_err(|_| Error::internal("prime generation thread panicked"))?;
            for r in results {
                found.push(r?);
            }
        }
        Ok::<(), Error>(())
    })?;
    PaillierPrimes::from_parts(found)
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
    /// distinctness). Takes some tens of milliseconds.
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
        let mut ctx = BigNumContext::new().map_err(|e| Error::internal(format!("openssl: {e}")))?;
        for (k, p) in self.primes.iter().enumerate() {
            if self.primes[..k].iter().any(|q| q[..] == p[..]) {
                return Err(Error::input("the four primes must be distinct"));
            }
            let bn = BigNum::from_slice(p).map_err(|e| Error::internal(format!("openssl: {e}")))?;
            if bn.num_bits() != PRIME_BITS as i32 {
                return Err(Error::input(format!(
                    "prime {k} has {} bits, need {PRIME_BITS}",
                    bn.num_bits()
                )));
            }
            let mut half = BigNum::new().map_err(|e| Error::internal(format!("openssl: {e}")))?;
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
