//! Signing in with a Google or GitHub account: OAuth 2's authorization code flow with
//! PKCE (RFC 7636) and a state, OpenID Connect's ID token for Google. Here are the
//! flow's secrets, the consent page's URL, the ID token's claim checks and which account
//! a provider's account signs into; [`crate::oauth`] talks to the providers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

festival_platform::text_enum! {
    /// A sign-in provider.
    Provider { Google = "GOOGLE", Github = "GITHUB" }
}

impl Provider {
    /// From the name clients use (`google`, `github`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "google" => Some(Self::Google),
            "github" => Some(Self::Github),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Github => "github",
        }
    }
}

festival_platform::text_enum! {
    /// What a flow under way ends in.
    FlowPurpose { SignIn = "SIGN_IN", Link = "LINK" }
}

/// Prefix of a flow's state (sent through the provider and back).
pub const STATE_PREFIX: &str = "os_";
/// Prefix of a flow's binding (kept by the client that started it).
pub const BINDING_PREFIX: &str = "ob_";

/// A PKCE code verifier: 256 random bits, 43 base64url characters (RFC 7636 §4.1).
pub fn new_code_verifier() -> String {
    super::bearer::new("")
}

/// The `S256` code challenge of a verifier (RFC 7636 §4.2).
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An OpenID Connect nonce: binds the ID token to this flow.
pub fn new_nonce() -> String {
    let bytes: [u8; 18] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the consent page's URL carries.
pub struct Authorize<'a> {
    pub endpoint: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a str,
    pub state: &'a str,
    pub code_challenge: &'a str,
    /// OpenID Connect providers only.
    pub nonce: Option<&'a str>,
}

/// The provider's consent page, with the flow's parameters in its query.
pub fn authorization_url(a: &Authorize<'_>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", a.client_id)
        .append_pair("redirect_uri", a.redirect_uri)
        .append_pair("scope", a.scopes)
        .append_pair("state", a.state)
        .append_pair("code_challenge", a.code_challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(nonce) = a.nonce {
        query.append_pair("nonce", nonce);
    }
    let joiner = if a.endpoint.contains('?') { '&' } else { '?' };
    format!("{}{joiner}{}", a.endpoint, query.finish())
}

/// What a provider says of its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAccount {
    /// The provider's stable id for it.
    pub subject: String,
    pub email: String,
    pub email_verified: bool,
    /// A name to start a new account's display name with (may be empty).
    pub name: String,
}

/// An ID token's claims that are checked (OpenID Connect Core §2, §3.1.3.7).
#[derive(Debug, Clone, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<Flag>,
    #[serde(default)]
    pub name: Option<String>,
    /// The party the token was issued to, when the audience has several.
    #[serde(default)]
    pub azp: Option<String>,
}

/// `aud` is one string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, client_id: &str) -> bool {
        match self {
            Self::One(aud) => aud == client_id,
            Self::Many(auds) => auds.iter().any(|a| a == client_id),
        }
    }

    fn is_many(&self) -> bool {
        matches!(self, Self::Many(auds) if auds.len() > 1)
    }
}

/// `email_verified` is a boolean, but some providers send it as text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Flag {
    Bool(bool),
    Text(String),
}

impl Flag {
    fn is_true(&self) -> bool {
        matches!(self, Self::Bool(true)) || matches!(self, Self::Text(t) if t == "true")
    }
}

/// What an ID token must say to be taken.
pub struct Expected<'a> {
    /// The provider's issuer (`https://accounts.google.com`); Google also issues tokens
    /// as `accounts.google.com`, so the same without the scheme is taken too.
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Seconds since the epoch, from the service's clock.
    pub now: i64,
    pub leeway_secs: i64,
}

/// Checks an ID token's claims (its signature is checked before); says which check
/// failed otherwise.
pub fn check_id_token(claims: &IdTokenClaims, expected: &Expected<'_>) -> Result<ProviderAccount, &'static str> {
    let bare_issuer = expected.issuer.strip_prefix("https://").unwrap_or(expected.issuer);
    if claims.iss != expected.issuer && claims.iss != bare_issuer {
        return Err("issuer");
    }
    if !claims.aud.contains(expected.client_id) {
        return Err("audience");
    }
    if claims.aud.is_many() && claims.azp.as_deref() != Some(expected.client_id) {
        return Err("authorized party");
    }
    if claims.exp + expected.leeway_secs <= expected.now {
        return Err("expired");
    }
    if claims.iat.is_some_and(|iat| iat > expected.now + expected.leeway_secs) {
        return Err("issued in the future");
    }
    // The token was made for this flow (and not replayed from another sign-in).
    if claims.nonce.as_deref() != Some(expected.nonce) {
        return Err("nonce");
    }
    if claims.sub.is_empty() || claims.sub.len() > MAX_SUBJECT {
        return Err("subject");
    }
    let email = claims.email.clone().filter(|e| !e.is_empty()).ok_or("email")?;
    Ok(ProviderAccount {
        subject: claims.sub.clone(),
        email,
        email_verified: claims.email_verified.as_ref().is_some_and(Flag::is_true),
        name: claims.name.clone().unwrap_or_default(),
    })
}

/// Longest provider subject kept (Google's are 21 digits, OIDC allows 255 characters).
pub const MAX_SUBJECT: usize = 255;

/// GitHub's `GET /user`.
#[derive(Debug, Clone, Deserialize)]
pub struct GithubUser {
    pub id: u64,
    pub login: String,
    #[serde(default)]
    pub name: Option<String>,
}

/// One entry of GitHub's `GET /user/emails`.
#[derive(Debug, Clone, Deserialize)]
pub struct GithubEmail {
    pub email: String,
    pub primary: bool,
    pub verified: bool,
}

/// A GitHub account: its numeric id and its primary address (verified or not: an
/// unverified primary is refused, never swapped for another address).
pub fn github_account(user: &GithubUser, emails: &[GithubEmail]) -> Result<ProviderAccount, &'static str> {
    let primary = emails.iter().find(|e| e.primary).ok_or("no primary address")?;
    Ok(ProviderAccount {
        subject: user.id.to_string(),
        email: primary.email.clone(),
        email_verified: primary.verified,
        name: user.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| user.login.clone()),
    })
}

/// Which account a provider's account signs into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInTo {
    /// The account it is linked to.
    Linked(Uuid),
    /// The account with the same address, verified by both sides: linked now.
    LinkByAddress(Uuid),
    /// Nobody has the address: a new account.
    NewAccount,
    /// The provider has not verified the address: it proves nothing.
    AddressUnverified,
    /// An account has the address, but it is not linked by the address alone: its
    /// holder signs in and links.
    LinkRequired(NoLinkByAddress),
}

/// Why an account with the provider's address is not linked by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoLinkByAddress {
    /// Not verified here: linking could hand an account someone set up with another's
    /// address to that address's owner, or the other way round.
    UnverifiedHere,
    /// The account has a second factor: a sign-in that never answers the challenge must
    /// leave no link behind.
    SecondFactor,
    /// The provider's account was unlinked once: its holder may have unlinked it because
    /// it was taken over, so only an explicit link brings it back.
    UnlinkedOnce,
}

impl NoLinkByAddress {
    /// For the audit log.
    pub fn describe(self) -> &'static str {
        match self {
            Self::UnverifiedHere => "address not verified here",
            Self::SecondFactor => "the account has a second factor",
            Self::UnlinkedOnce => "unlinked once",
        }
    }
}

/// The live account with the provider's address, as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SameAddress {
    pub user: Uuid,
    /// A mailed link to the address was followed.
    pub verified_here: bool,
    pub second_factor: bool,
}

/// `linked`: the account the provider's is linked to; `same_address`: the live account
/// with the provider's address; `unlinked`: the provider's account was unlinked once.
pub fn sign_in_to(
    linked: Option<Uuid>,
    same_address: Option<SameAddress>,
    provider_verified: bool,
    unlinked: bool,
) -> SignInTo {
    let Some(user) = linked else {
        if !provider_verified {
            return SignInTo::AddressUnverified;
        }
        return match same_address {
            None => SignInTo::NewAccount,
            Some(a) if !a.verified_here => SignInTo::LinkRequired(NoLinkByAddress::UnverifiedHere),
            Some(a) if a.second_factor => SignInTo::LinkRequired(NoLinkByAddress::SecondFactor),
            Some(_) if unlinked => SignInTo::LinkRequired(NoLinkByAddress::UnlinkedOnce),
            Some(a) => SignInTo::LinkByAddress(a.user),
        };
    };
    SignInTo::Linked(user)
}

/// A provider may be unlinked while another way to sign in stays.
pub fn may_unlink(has_password: bool, linked: usize) -> bool {
    has_password || linked > 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: serde_json::Value) -> IdTokenClaims {
        serde_json::from_value(json).expect("claims")
    }

    fn expected(now: i64) -> Expected<'static> {
        Expected { issuer: "https://accounts.google.com", client_id: "app", nonce: "n0nce", now, leeway_secs: 60 }
    }

    fn good(now: i64) -> serde_json::Value {
        serde_json::json!({
            "iss": "https://accounts.google.com", "sub": "1234", "aud": "app", "exp": now + 300,
            "iat": now, "nonce": "n0nce", "email": "ana@example.com", "email_verified": true, "name": "Ana"
        })
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let verifier = new_code_verifier();
        assert_eq!(verifier.len(), 43, "{verifier}");
        assert_ne!(verifier, new_code_verifier());
    }

    #[test]
    fn the_consent_url_carries_the_flow_encoded() {
        let url = authorization_url(&Authorize {
            endpoint: "https://idp.example/auth?prompt=select_account",
            client_id: "app id",
            redirect_uri: "https://fest.example/cb?x=1&y=2",
            scopes: "openid email profile",
            state: "os_abc",
            code_challenge: "ch",
            nonce: Some("n"),
        });
        assert_eq!(
            url,
            "https://idp.example/auth?prompt=select_account&response_type=code&client_id=app+id\
             &redirect_uri=https%3A%2F%2Ffest.example%2Fcb%3Fx%3D1%26y%3D2&scope=openid+email+profile\
             &state=os_abc&code_challenge=ch&code_challenge_method=S256&nonce=n"
        );
    }

    #[test]
    fn a_good_id_token_names_its_account() {
        let now = 1_800_000_000;
        let account = check_id_token(&claims(good(now)), &expected(now)).expect("good");
        assert_eq!(
            account,
            ProviderAccount {
                subject: "1234".into(),
                email: "ana@example.com".into(),
                email_verified: true,
                name: "Ana".into()
            }
        );
        let mut bare = good(now);
        bare["iss"] = "accounts.google.com".into();
        bare["email_verified"] = "true".into();
        bare["aud"] = serde_json::json!(["app", "other"]);
        bare["azp"] = "app".into();
        assert!(check_id_token(&claims(bare), &expected(now)).expect("bare issuer").email_verified);
    }

    #[test]
    fn each_claim_check_refuses_its_own_fault() {
        let now = 1_800_000_000;
        let cases: Vec<(&str, serde_json::Value, &str)> = vec![
            ("iss", "https://evil.example".into(), "issuer"),
            ("aud", "another-app".into(), "audience"),
            ("aud", serde_json::json!(["app", "other"]), "authorized party"),
            ("exp", (now - 61).into(), "expired"),
            ("iat", (now + 3600).into(), "issued in the future"),
            ("nonce", "n0ncf".into(), "nonce"),
            ("nonce", serde_json::Value::Null, "nonce"),
            ("sub", "".into(), "subject"),
            ("email", serde_json::Value::Null, "email"),
        ];
        assert!(!cases.is_empty());
        for (field, value, fault) in cases {
            let mut token = good(now);
            token[field] = value;
            assert_eq!(check_id_token(&claims(token), &expected(now)), Err(fault), "{field}");
        }
        let mut unverified = good(now);
        unverified["email_verified"] = false.into();
        assert!(!check_id_token(&claims(unverified), &expected(now)).expect("parsed").email_verified);
        let mut missing = good(now);
        missing.as_object_mut().expect("object").remove("email_verified");
        assert!(!check_id_token(&claims(missing), &expected(now)).expect("parsed").email_verified);
    }

    #[test]
    fn a_github_account_is_its_id_and_primary_address() {
        let user = GithubUser { id: 42, login: "octo".into(), name: None };
        let emails = vec![
            GithubEmail { email: "old@example.com".into(), primary: false, verified: true },
            GithubEmail { email: "octo@example.com".into(), primary: true, verified: false },
        ];
        let account = github_account(&user, &emails).expect("account");
        assert_eq!((account.subject.as_str(), account.email.as_str()), ("42", "octo@example.com"));
        assert!(!account.email_verified, "the unverified primary is not swapped for a verified other");
        assert_eq!(account.name, "octo");
        assert_eq!(github_account(&user, &emails[..1]), Err("no primary address"));
    }

    #[test]
    fn which_account_a_provider_signs_into() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let verified = Some(SameAddress { user: b, verified_here: true, second_factor: false });
        let unverified = Some(SameAddress { user: b, verified_here: false, second_factor: false });
        let with_mfa = Some(SameAddress { user: b, verified_here: true, second_factor: true });
        assert_eq!(sign_in_to(Some(a), verified, false, false), SignInTo::Linked(a), "the link wins");
        assert_eq!(sign_in_to(None, verified, true, false), SignInTo::LinkByAddress(b));
        assert_eq!(sign_in_to(None, verified, true, true), SignInTo::LinkRequired(NoLinkByAddress::UnlinkedOnce));
        assert_eq!(sign_in_to(None, unverified, true, false), SignInTo::LinkRequired(NoLinkByAddress::UnverifiedHere));
        assert_eq!(sign_in_to(None, with_mfa, true, false), SignInTo::LinkRequired(NoLinkByAddress::SecondFactor));
        assert_eq!(sign_in_to(None, verified, false, false), SignInTo::AddressUnverified);
        assert_eq!(sign_in_to(None, None, false, false), SignInTo::AddressUnverified);
        assert_eq!(sign_in_to(None, None, true, false), SignInTo::NewAccount);
        assert_eq!(sign_in_to(None, None, true, true), SignInTo::NewAccount);
    }

    #[test]
    fn the_last_way_to_sign_in_stays() {
        assert!(!may_unlink(false, 1));
        assert!(may_unlink(false, 2));
        assert!(may_unlink(true, 1));
    }

    #[test]
    fn provider_names() {
        assert_eq!(Provider::from_name("google"), Some(Provider::Google));
        assert_eq!(Provider::from_name("GitHub"), None, "exact names only");
    }
}
