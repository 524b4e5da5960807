//! TOTP second factors (RFC 6238 via `totp-rs`: SHA-1, 6 digits, 30 s steps, one step of
//! skew — what authenticator apps implement).
//!
//! Unlike every other credential, a TOTP secret is shared: the server must hold it to check
//! codes. It is sealed (XChaCha20-Poly1305 under the server secret, the user id as associated
//! data) in the challenge while the user enrolls and in the credential afterwards, and never
//! leaves except once, in the enrollment's `otpUrl`. A code is accepted once: the matched
//! time step is stored as the credential's counter, which only moves forward (RFC 6238 §5.2).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyfold_domain::DomainError;
use rand::RngCore;
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

use crate::sealer::Sealer;

type Result<T> = std::result::Result<T, DomainError>;

const SECRET_BYTES: usize = 20;

fn aad(user_id: &str) -> Vec<u8> {
    format!("keyfold totp v1:{user_id}").into_bytes()
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret.to_vec())
        .with_issuer(Some(issuer.replace(':', " ")))
        .with_account_name(account.replace(':', " "))
        .build()
        .map_err(|e| DomainError::internal(format!("totp: {e}")))
}

/// A new secret: sealed for storage, and the `otpauth://` URL to show the user once.
pub(crate) fn enroll(
    sealer: &Sealer,
    user_id: &str,
    issuer: &str,
    account: &str,
) -> Result<(String, String)> {
    let mut secret = Zeroizing::new(vec![0u8; SECRET_BYTES]);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let url = totp(&secret, issuer, account)?
        .to_url()
        .map_err(|e| DomainError::internal(format!("totp: {e}")))?;
    let sealed = STANDARD.encode(sealer.seal(&aad(user_id), &secret)?);
    Ok((sealed, url))
}

/// The time step `code` matches now (±1 step), or None.
pub(crate) fn check(
    sealer: &Sealer,
    user_id: &str,
    sealed: &str,
    code: &str,
    now_secs: u64,
) -> Result<Option<u64>> {
    let raw = STANDARD
        .decode(sealed)
        .map_err(|_| DomainError::internal("a stored TOTP secret is not base64"))?;
    let secret = sealer.open(&aad(user_id), &raw)?;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    Ok(totp(&secret, "keyfold", "user")?.check(code, now_secs))
}
