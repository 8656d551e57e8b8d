//! The password policy, in the spirit of NIST SP 800-63B and OWASP: long rather than
//! complicated, no well-known passwords, nothing built from the email address.
//! Each refusal names the rule, so clients can explain it.

use super::email::Email;

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;
const MIN_DISTINCT: usize = 5;

/// A policy rule a password broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordRule {
    MinLength,
    MaxLength,
    Common,
    ContainsEmail,
    TooRepetitive,
}

impl PasswordRule {
    /// Stable machine name (sent as `ErrorInfo.metadata.rule`).
    pub fn name(self) -> &'static str {
        match self {
            PasswordRule::MinLength => "min_length",
            PasswordRule::MaxLength => "max_length",
            PasswordRule::Common => "common_password",
            PasswordRule::ContainsEmail => "contains_email",
            PasswordRule::TooRepetitive => "too_repetitive",
        }
    }

    pub fn describe(self) -> String {
        match self {
            PasswordRule::MinLength => format!("must be at least {MIN_CHARS} characters"),
            PasswordRule::MaxLength => format!("must be at most {MAX_CHARS} characters"),
            PasswordRule::Common => "is a commonly used password".into(),
            PasswordRule::ContainsEmail => "must not contain your email address".into(),
            PasswordRule::TooRepetitive => {
                format!("must use at least {MIN_DISTINCT} different characters")
            }
        }
    }
}

/// Passwords that appear at the top of every breach list (lower-cased; checked after
/// lower-casing the candidate and also with trailing digits and punctuation removed).
const COMMON: &[&str] = &[
    "password",
    "passw0rd",
    "password1",
    "qwerty",
    "qwertyuiop",
    "azerty",
    "azertyuiop",
    "123456789012",
    "1234567890",
    "iloveyou",
    "letmein",
    "welcome",
    "admin",
    "football",
    "baseball",
    "sunshine",
    "princess",
    "dragon",
    "monkey",
    "master",
    "motdepasse",
    "contrasena",
    "passwort",
    "festival",
    "changeme",
    "abc123",
    "trustno1",
    "superman",
    "starwars",
    "whatever",
    "qwerty123",
    "1q2w3e4r5t6y",
    "asdfghjkl",
    "zxcvbnm",
];

pub fn check(password: &str, email: Option<&Email>) -> Result<(), PasswordRule> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordRule::MinLength);
    }
    if chars > MAX_CHARS {
        return Err(PasswordRule::MaxLength);
    }
    let lower = password.to_lowercase();
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    if COMMON.iter().any(|c| *c == lower || *c == stem) {
        return Err(PasswordRule::Common);
    }
    if let Some(email) = email {
        let local = email.local_part();
        if lower.contains(email.as_str()) || (local.chars().count() >= 4 && lower.contains(local)) {
            return Err(PasswordRule::ContainsEmail);
        }
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < MIN_DISTINCT {
        return Err(PasswordRule::TooRepetitive);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_named() {
        let email = Email::parse("ana.silva@example.com").ok();
        assert_eq!(check("short", None), Err(PasswordRule::MinLength));
        assert_eq!(check(&"x1".repeat(65), None), Err(PasswordRule::MaxLength));
        assert_eq!(check("Password1234!", None), Err(PasswordRule::Common));
        assert_eq!(check("AZERTYUIOP", None), Err(PasswordRule::MinLength));
        assert_eq!(check("azertyuiop99", None), Err(PasswordRule::Common));
        assert_eq!(check("my-ana.silva-pass", email.as_ref()), Err(PasswordRule::ContainsEmail));
        assert_eq!(check("abababababab", None), Err(PasswordRule::TooRepetitive));
        assert_eq!(check("correct horse battery staple", email.as_ref()), Ok(()));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(check("éàüöñçøåæœßð", None), Ok(()));
    }
}
