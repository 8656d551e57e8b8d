//! Links sent by mail: a password reset (short-lived) and an address verification. The
//! token is 256 random bits, prefixed by purpose; only its hash is stored, it is spent
//! once, and it expires.

festival_platform::text_enum! {
    /// What a mailed link is for.
    Purpose { PasswordReset = "PASSWORD_RESET", EmailVerification = "EMAIL_VERIFICATION" }
}

impl Purpose {
    /// The token's prefix: a reset link cannot be taken for a verification one.
    pub fn prefix(self) -> &'static str {
        match self {
            Purpose::PasswordReset => "pr_",
            Purpose::EmailVerification => "ev_",
        }
    }
}

pub fn new_token(purpose: Purpose) -> String {
    super::bearer::new(purpose.prefix())
}

pub fn hash_token(token: &str) -> Vec<u8> {
    super::bearer::hash(token)
}

/// The link a mail carries: `base` (the web app's page) with the token in the fragment
/// (base64url, nothing to escape): a fragment never reaches a server's logs or another
/// site's Referer; the page reads it and posts it.
pub fn link(base: &str, token: &str) -> String {
    format!("{base}#token={token}")
}

/// The text of a reset mail.
pub fn reset_mail(link: &str, minutes: i64) -> (String, String) {
    (
        "Reset your festival password".to_owned(),
        format!(
            "Someone asked to reset the password of your festival account.\n\n\
             If it was you, choose a new password here within {minutes} minutes:\n{link}\n\n\
             Every device signed in to the account will be signed out.\n\
             If it was not you, ignore this message: your password stays as it is.\n"
        ),
    )
}

/// The text of a verification mail.
pub fn verification_mail(link: &str) -> (String, String) {
    (
        "Confirm your email address".to_owned(),
        format!("Confirm that this address belongs to your festival account:\n{link}\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_purpose_and_only_their_hash_is_kept() {
        let (reset, verify) = (new_token(Purpose::PasswordReset), new_token(Purpose::EmailVerification));
        assert!(reset.starts_with("pr_") && verify.starts_with("ev_") && reset.len() > 40);
        assert_ne!(new_token(Purpose::PasswordReset), reset);
        assert_eq!(hash_token(&reset), hash_token(&reset));
        assert_ne!(hash_token(&reset), hash_token(&verify));
        assert_eq!(link("https://fest.example/reset", "pr_x"), "https://fest.example/reset#token=pr_x");
        assert_eq!(link("https://fest.example/a?lang=fr", "pr_x"), "https://fest.example/a?lang=fr#token=pr_x");
        let (_, body) = reset_mail("https://fest.example/reset#token=pr_x", 30);
        assert!(body.contains("within 30 minutes") && body.contains("pr_x"));
    }
}
