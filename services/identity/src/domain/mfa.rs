//! The second factor: time-based one-time codes (RFC 6238 — HMAC-SHA1, 30-second steps,
//! six digits, what every authenticator app reads from an `otpauth://` URI) and
//! single-use recovery codes. Pure functions; the store keeps the last accepted step so a
//! code is accepted once.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Seconds per time step.
pub const STEP_SECS: i64 = 30;
/// Bytes of a TOTP secret: 160 bits, as RFC 4226 recommends for HMAC-SHA1.
pub const SECRET_LEN: usize = 20;
/// Recovery codes handed out when MFA is switched on.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (base32: 80 bits, beyond guessing even offline from its
/// unsalted hash).
const RECOVERY_CODE_CHARS: usize = 16;
/// Prefix of a sign-in's MFA challenge, so it cannot be taken for any other token.
pub const CHALLENGE_PREFIX: &str = "mfa_";
/// Wrong codes one challenge takes before it is spent (sign in again, which is throttled).
pub const MAX_CHALLENGE_ATTEMPTS: i32 = 5;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The time step `t` falls in.
pub fn step_at(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(STEP_SECS)
}

/// The six-digit code of `step` (RFC 4226's dynamic truncation over HMAC-SHA1).
pub fn code_at_step(secret: &[u8], step: i64) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = u32::from_be_bytes([digest[offset] & 0x7f, digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    bin % 1_000_000
}

/// The code of `step` as an authenticator app shows it.
pub fn format_code(code: u32) -> String {
    format!("{code:06}")
}

/// What the holder typed: a six-digit code or a recovery code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Totp(u32),
    /// Normalised (upper case, no separators).
    Recovery(String),
}

/// Reads a typed code (spaces and dashes ignored), or `None` when it is neither shape.
pub fn parse_code(raw: &str) -> Option<Presented> {
    let compact: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
        return compact.parse().ok().map(Presented::Totp);
    }
    let upper = compact.to_ascii_uppercase();
    (upper.len() == RECOVERY_CODE_CHARS && upper.bytes().all(|b| BASE32.contains(&b)))
        .then_some(Presented::Recovery(upper))
}

/// The step a code matches, if any: the current step or one either side (clocks drift,
/// people type slowly), and only a step later than the last one accepted, so a code —
/// or an older one still inside the window — is accepted once.
pub fn accepted_step(secret: &[u8], code: u32, now: DateTime<Utc>, last_accepted_step: i64) -> Option<i64> {
    let current = step_at(now);
    (current - 1..=current + 1).filter(|&step| step > last_accepted_step).find(|&step| {
        // Compared in constant time: the code is the secret's output.
        let expected = code_at_step(secret, step).to_be_bytes();
        let given = code.to_be_bytes();
        expected.iter().zip(given).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    })
}

/// A fresh TOTP secret.
pub fn new_secret() -> [u8; SECRET_LEN] {
    rand::random()
}

/// RFC 4648 base32 without padding: how authenticator apps take a secret.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Reads RFC 4648 base32 (upper case, no padding), as an app or a test types a secret.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = BASE32.iter().position(|&b| b == c)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

/// The `otpauth://` URI an authenticator app scans (Google's key-URI format, which the
/// others follow): the festival platform as issuer, the account's email as label.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    /// Everything but RFC 3986's unreserved characters.
    const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    let issuer_enc = utf8_percent_encode(issuer, ESCAPED);
    let account_enc = utf8_percent_encode(account, ESCAPED);
    format!(
        "otpauth://totp/{issuer_enc}:{account_enc}?secret={}&issuer={issuer_enc}&algorithm=SHA1&digits=6&period={STEP_SECS}",
        base32(secret)
    )
}

/// A recovery code as handed out: sixteen base32 characters in groups of four.
pub fn new_recovery_code() -> String {
    let bytes: [u8; 10] = rand::random();
    let plain = base32(&bytes);
    plain.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect::<Vec<_>>().join("-")
}

/// What is stored of a recovery code (normalised as [`parse_code`] returns it).
pub fn hash_recovery_code(normalised: &str) -> Vec<u8> {
    Sha256::new().chain_update(b"festival.identity.recovery-code:").chain_update(normalised).finalize().to_vec()
}

/// A sign-in's MFA challenge: 256 random bits, prefixed; only its hash is stored.
pub fn new_challenge() -> String {
    super::bearer::new(CHALLENGE_PREFIX)
}

pub fn hash_challenge(challenge: &str) -> Vec<u8> {
    super::bearer::hash(challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows, truncated to six digits.
    #[test]
    fn codes_match_the_rfc_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, 287_082),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
        ] {
            let at = DateTime::from_timestamp(t, 0).expect("time");
            assert_eq!(code_at_step(secret, step_at(at)), code, "t = {t}");
        }
        assert_eq!(format_code(5_924), "005924");
    }

    #[test]
    fn a_code_is_accepted_within_one_step_and_only_once() {
        let secret = b"12345678901234567890";
        let now = DateTime::from_timestamp(1_234_567_890, 0).expect("time");
        let step = step_at(now);
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = code_at_step(secret, step + offset);
            assert_eq!(accepted_step(secret, code, now, 0).is_some(), accepted, "offset {offset}");
        }
        let code = code_at_step(secret, step);
        assert_eq!(accepted_step(secret, code, now, 0), Some(step));
        assert_eq!(accepted_step(secret, code, now, step), None, "replayed");
        let earlier = code_at_step(secret, step - 1);
        assert_eq!(accepted_step(secret, earlier, now, step), None, "older than the last accepted");
        assert_eq!(accepted_step(b"another secret......", code, now, 0), None);
    }

    #[test]
    fn base32_and_the_uri_follow_rfc_4648_and_the_key_uri_format() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        let secret = new_secret();
        assert_eq!(from_base32(&base32(&secret)).as_deref(), Some(secret.as_slice()));
        assert_eq!(from_base32("MZ1"), None);
        assert_eq!(
            otpauth_uri("Festival", "ana@example.com", b"12345678901234567890"),
            "otpauth://totp/Festival:ana%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Festival\
             &algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn typed_codes_are_read_leniently_and_nothing_else_is() {
        assert_eq!(parse_code(" 123 456 "), Some(Presented::Totp(123_456)));
        assert_eq!(parse_code("012345"), Some(Presented::Totp(12_345)));
        let code = new_recovery_code();
        assert_eq!(code.len(), 19, "{code}");
        let Some(Presented::Recovery(normalised)) = parse_code(&code.to_lowercase()) else { panic!("{code}") };
        assert_eq!(normalised, code.replace('-', ""));
        assert_ne!(hash_recovery_code(&normalised), hash_recovery_code(&new_recovery_code().replace('-', "")));
        for bad in
            ["", "12345", "1234567", "12345a", "ABCD-EFGH-IJKL-MNO1", "ÄBCD-EFGH-IJKL-MNOP", "x".repeat(500).as_str()]
        {
            assert_eq!(parse_code(bad), None, "{bad}");
        }
    }
}
