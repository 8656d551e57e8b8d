//! Stripe's webhook signature: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=…][,v0=…]`,
//! where each `v1` is HMAC-SHA256 over `"<t>.<raw body>"` keyed with an endpoint secret.
//! Only `v1` counts (`v0` is Stripe's test scheme); during a secret rotation Stripe sends
//! one `v1` per secret, and we may hold several secrets: any match of any pair passes.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a signature was refused (logged, never sent back in detail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No header, or no `t=` or no `v1=` in it.
    Malformed,
    /// The timestamp is further from now than the tolerance, either way.
    Stale,
    /// No `v1` matches any secret.
    Mismatch,
}

/// At most this many `v1` signatures are looked at (Stripe sends one per active secret).
const MAX_SIGNATURES: usize = 8;

/// Checks `header` over `payload` at `now` (unix seconds). One MAC per secret, compared
/// in constant time with each candidate: the work is bounded by the secrets configured,
/// not by what a caller puts in the header.
pub fn verify(header: &str, payload: &[u8], secrets: &[String], now: i64, tolerance_secs: i64) -> Result<(), Refusal> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',').take(2 * MAX_SIGNATURES + 2) {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex)) if signatures.len() < MAX_SIGNATURES => signatures.extend(decode_hex(hex)),
            _ => {}
        }
    }
    let (Some(t), false) = (timestamp, signatures.is_empty()) else { return Err(Refusal::Malformed) };
    if i128::from(now).abs_diff(i128::from(t)) > u128::from(tolerance_secs.unsigned_abs()) {
        return Err(Refusal::Stale);
    }
    for secret in secrets {
        let expected = mac(secret, t, payload).finalize().into_bytes();
        if signatures.iter().any(|candidate| same_in_constant_time(candidate, &expected)) {
            return Ok(());
        }
    }
    Err(Refusal::Mismatch)
}

/// Equal bytes, compared without an early exit.
fn same_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The header Stripe would send for `payload` signed with `secret` at `t` (tests, tools).
pub fn sign(secret: &str, t: i64, payload: &[u8]) -> String {
    let digest = mac(secret, t, payload).finalize().into_bytes();
    format!("t={t},v1={}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn mac(secret: &str, t: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// 32 bytes from 64 hex digits; anything else is no signature.
fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;

    fn secrets(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_signature_by_a_configured_secret_passes() {
        let header = sign("whsec_a", NOW, BODY);
        assert_eq!(verify(&header, BODY, &secrets(&["whsec_a"]), NOW, 300), Ok(()));
        // The second of two configured secrets (after a rotation).
        assert_eq!(verify(&header, BODY, &secrets(&["whsec_new", "whsec_a"]), NOW + 300, 300), Ok(()));
    }

    #[test]
    fn two_v1_signatures_during_a_rotation_pass_with_either_secret() {
        let old = sign("whsec_old", NOW, BODY);
        let new = sign("whsec_new", NOW, BODY);
        let header = format!("{old},{}", new.split_once(',').map(|(_, v1)| v1).unwrap_or_default());
        assert_eq!(verify(&header, BODY, &secrets(&["whsec_old"]), NOW, 300), Ok(()));
        assert_eq!(verify(&header, BODY, &secrets(&["whsec_new"]), NOW, 300), Ok(()));
        assert_eq!(verify(&header, BODY, &secrets(&["whsec_other"]), NOW, 300), Err(Refusal::Mismatch));
    }

    #[test]
    fn tampering_staleness_and_malformed_headers_are_refused() {
        let header = sign("whsec_a", NOW, BODY);
        let mut changed = BODY.to_vec();
        changed[10] ^= 1;
        assert_eq!(verify(&header, &changed, &secrets(&["whsec_a"]), NOW, 300), Err(Refusal::Mismatch));
        assert_eq!(verify(&header, BODY, &secrets(&["whsec_b"]), NOW, 300), Err(Refusal::Mismatch));
        assert_eq!(verify(&header, BODY, &secrets(&["whsec_a"]), NOW + 301, 300), Err(Refusal::Stale));
        assert_eq!(verify(&header, BODY, &secrets(&["whsec_a"]), NOW - 301, 300), Err(Refusal::Stale));
        let v0_only = header.replace("v1=", "v0=");
        assert_eq!(verify(&v0_only, BODY, &secrets(&["whsec_a"]), NOW, 300), Err(Refusal::Malformed));
        for garbage in
            ["", "garbage", "t=,v1=", "v1=abc", &format!("t=x,{}", &header[header.find(',').unwrap_or(0) + 1..])]
        {
            assert_eq!(verify(garbage, BODY, &secrets(&["whsec_a"]), NOW, 300), Err(Refusal::Malformed), "{garbage}");
        }
    }
}
