//! Sessions at the edge, in two modes.
//!
//! - **Cookie mode (browsers).** A request that carries `Origin` or `Sec-Fetch-Site` comes
//!   from a browser: browsers send them and page script cannot remove them. (Not
//!   `Sec-Fetch-Mode`: Node's built-in `fetch` sends that one too.) Identity's
//!   tokens then travel only as `__Host-` cookies (`HttpOnly; Secure; SameSite=Strict;
//!   Path=/`) and are taken out of the response body, so script (or an injected one) never
//!   sees a token. Refresh and Logout take the refresh token from its cookie. This holds
//!   on REST and gRPC-web alike.
//! - **Bearer mode (partners, apps, servers).** Anything else gets the tokens in the body
//!   and sends `authorization: Bearer …`; no cookies are set.
//!
//! A request carrying the access cookie is forwarded with `authorization: Bearer …`; an
//! explicit `authorization` header wins.

use festival_proto::identity::v1 as pb;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use crate::config::CookieConfig;

const TOKEN_PAIR: &str = "festival.identity.v1.TokenPair";
const IDENTITY: &str = "festival.identity.v1.IdentityService";
/// Requests whose `refresh_token` may come from the refresh cookie (same layout).
const REFRESH_REQUESTS: [&str; 2] = ["festival.identity.v1.RefreshRequest", "festival.identity.v1.LogoutRequest"];

/// What a call does to the session, by the identity method it calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCall {
    /// Login, VerifyMfa or CompleteOAuthLogin: answers a token pair.
    SignIn,
    /// Refresh: spends a refresh token, answers a token pair.
    Refresh,
    /// Logout: spends a refresh token, ends the session.
    SignOut,
    /// LogoutAll: ends every session.
    SignOutEverywhere,
    Other,
}

impl SessionCall {
    /// From a gRPC method's full name (`festival.identity.v1.IdentityService.Login`) or
    /// path (`/festival.identity.v1.IdentityService/Login`).
    pub fn of(method: &str) -> Self {
        let method = method.trim_start_matches('/').replacen('/', ".", 1);
        let Some(name) = method.strip_prefix(IDENTITY).and_then(|m| m.strip_prefix('.')) else {
            return Self::Other;
        };
        match name {
            // A sign-in with a second factor ends with VerifyMfa (Login then only
            // answers a challenge, and no cookies are set for it); one with a provider
            // ends with CompleteOAuthLogin (or its VerifyMfa).
            "Login" | "VerifyMfa" | "CompleteOAuthLogin" => Self::SignIn,
            "Refresh" => Self::Refresh,
            "Logout" => Self::SignOut,
            "LogoutAll" => Self::SignOutEverywhere,
            _ => Self::Other,
        }
    }

    /// Any call that starts, continues or ends a session.
    pub fn touches_session(self) -> bool {
        self != Self::Other
    }

    pub fn mints_tokens(self) -> bool {
        matches!(self, Self::SignIn | Self::Refresh)
    }

    pub fn spends_refresh_token(self) -> bool {
        matches!(self, Self::Refresh | Self::SignOut)
    }

    pub fn ends_session(self) -> bool {
        matches!(self, Self::SignOut | Self::SignOutEverywhere)
    }
}

/// A browser's session call (sign-in, refresh, sign-out) from another site's page:
/// refused, or a cross-site form posting the attacker's own credentials, provider code
/// or refresh token would sign the victim's browser into the attacker's account (login
/// CSRF). Browsers say where a request comes from: `Sec-Fetch-Site`, else `Origin`. The
/// gateway's own origin and the configured CORS origins may (never a `*`).
pub fn cross_site_session_call(headers: &http::HeaderMap, allowed_origins: &[String]) -> bool {
    let origin = headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok());
    let allowed =
        origin.is_some_and(|o| allowed_origins.iter().any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(o)));
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin" | "none") => false,
        Some(_) => !allowed,
        None => origin.is_some_and(|o| !allowed && !same_host(o, headers)),
    }
}

/// An `Origin` naming the host the request was sent to.
fn same_host(origin: &str, headers: &http::HeaderMap) -> bool {
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).is_some_and(|host| host == authority)
}

/// Whether the request comes from a browser (cookie mode).
pub fn is_browser(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::ORIGIN) || headers.contains_key("sec-fetch-site")
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The caller's access token: the `authorization` header, else the access cookie.
pub fn authorization(headers: &http::HeaderMap, cookies: &CookieConfig) -> Option<String> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return Some(value.to_owned());
    }
    cookie(headers, &cookies.access_name).map(|token| format!("Bearer {token}"))
}

/// Fills an empty `refresh_token` of a Refresh or Logout request from the refresh cookie
/// (cookie mode only: the caller checks [`is_browser`]).
pub fn fill_refresh_token(message: &mut DynamicMessage, headers: &http::HeaderMap, cookies: &CookieConfig) {
    if !REFRESH_REQUESTS.contains(&message.descriptor().full_name()) {
        return;
    }
    let empty = message.get_field_by_name("refresh_token").is_none_or(|v| v.as_str().is_none_or(str::is_empty));
    if empty && let Some(token) = cookie(headers, &cookies.refresh_name) {
        message.set_field_by_name("refresh_token", Value::String(token.to_owned()));
    }
}

/// A REST response on its way out: in cookie mode, a token pair's tokens move from the
/// body into cookies; a sign-out clears them. Returns the `Set-Cookie` values.
pub fn on_rest_response(
    method_full_name: &str,
    response: &mut DynamicMessage,
    browser: bool,
    cookies: &CookieConfig,
) -> Vec<String> {
    let call = SessionCall::of(method_full_name);
    let mut set = Vec::new();
    if browser && call.mints_tokens() && response.descriptor().full_name() == TOKEN_PAIR {
        if let Ok(pair) = response.transcode_to::<pb::TokenPair>() {
            set = session_cookies(&pair, cookies);
        }
        response.clear_field_by_name("access_token");
        response.clear_field_by_name("refresh_token");
    }
    if call.ends_session() {
        set.extend(clearing_cookies(cookies));
    }
    set
}

/// The cookies holding a token pair; none when a token is missing.
pub fn session_cookies(pair: &pb::TokenPair, cookies: &CookieConfig) -> Vec<String> {
    if pair.access_token.is_empty() || pair.refresh_token.is_empty() {
        return Vec::new();
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let until = |t: &Option<prost_types::Timestamp>| t.as_ref().map_or(0, |t| t.seconds) - now;
    vec![
        set(&cookies.access_name, &pair.access_token, until(&pair.access_token_expire_time), cookies),
        set(&cookies.refresh_name, &pair.refresh_token, until(&pair.refresh_token_expire_time), cookies),
    ]
}

/// Removes the tokens of a pair (cookie mode: they are in the cookies).
pub fn strip_tokens(pair: &mut pb::TokenPair) {
    pair.access_token.clear();
    pair.refresh_token.clear();
}

/// Expired session cookies, for a sign-out.
pub fn clearing_cookies(cookies: &CookieConfig) -> Vec<String> {
    vec![set(&cookies.access_name, "", 0, cookies), set(&cookies.refresh_name, "", 0, cookies)]
}

/// `Path=/` for both: the `__Host-` prefix requires it, and it also carries the refresh
/// cookie to gRPC-web's `/festival.identity.v1.IdentityService/Refresh`. The gateway
/// never forwards cookies upstream.
fn set(name: &str, value: &str, max_age: i64, cookies: &CookieConfig) -> String {
    let secure = if cookies.secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; Max-Age={}; HttpOnly{secure}; SameSite=Strict", max_age.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().expect("header"));
        }
        h
    }

    #[test]
    fn cookies_are_found_among_others_and_bearer_headers_win() {
        let cfg = crate::config::Config::default().cookies;
        let h = headers(&[("cookie", "theme=dark; __Host-festival_at=abc.def.ghi; __Host-festival_rt=rt_x")]);
        assert_eq!(cookie(&h, "__Host-festival_rt"), Some("rt_x"));
        assert_eq!(authorization(&h, &cfg).as_deref(), Some("Bearer abc.def.ghi"));
        let mut h2 = h.clone();
        h2.insert(http::header::AUTHORIZATION, "Bearer partner".parse().expect("header"));
        assert_eq!(authorization(&h2, &cfg).as_deref(), Some("Bearer partner"));
        assert_eq!(authorization(&http::HeaderMap::new(), &cfg), None);
    }

    #[test]
    fn session_cookies_are_host_prefixed_http_only_secure_and_strict() {
        let cfg = crate::config::Config::default().cookies;
        let c = set(&cfg.refresh_name, "rt_x", 60, &cfg);
        assert_eq!(c, "__Host-festival_rt=rt_x; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Strict");
    }

    #[test]
    fn browsers_are_told_by_the_headers_they_always_send() {
        assert!(is_browser(&headers(&[("origin", "https://tickets.example")])));
        assert!(is_browser(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!is_browser(&headers(&[("authorization", "Bearer x"), ("user-agent", "partner/1.0")])));
        assert!(!is_browser(&headers(&[("sec-fetch-mode", "cors")])), "Node's fetch (undici) is not a browser");
    }

    #[test]
    fn sign_ins_from_other_sites_are_told_apart() {
        let allowed = ["https://tickets.example".to_owned()];
        let cross = |pairs: &[(&'static str, &'static str)]| cross_site_session_call(&headers(pairs), &allowed);
        assert!(!cross(&[("origin", "https://tickets.example")]), "a configured origin");
        assert!(!cross(&[("origin", "https://tickets.example"), ("sec-fetch-site", "cross-site")]));
        assert!(!cross(&[("sec-fetch-site", "same-origin"), ("origin", "https://api.example")]), "the gateway's own");
        assert!(!cross(&[("origin", "https://api.example"), ("host", "api.example")]), "same host, older browser");
        assert!(cross(&[("origin", "https://evil.example")]));
        assert!(cross(&[("origin", "null")]), "a sandboxed or file page");
        assert!(cross(&[("sec-fetch-site", "cross-site")]), "a form without an Origin");
        assert!(cross(&[("sec-fetch-site", "same-site"), ("origin", "https://blog.tickets.example")]));
        assert!(!cross(&[]), "not a browser: bearer mode, no cookies");
        let star = ["*".to_owned(), "https://tickets.example/".to_owned()];
        assert!(cross_site_session_call(&headers(&[("origin", "https://evil.example")]), &star), "never `*`");
        assert!(!cross_site_session_call(&headers(&[("origin", "https://tickets.example")]), &star), "a trailing /");
    }

    #[test]
    fn session_calls_are_known_by_path_and_full_name() {
        assert_eq!(SessionCall::of("/festival.identity.v1.IdentityService/Login"), SessionCall::SignIn);
        assert_eq!(SessionCall::of("festival.identity.v1.IdentityService.VerifyMfa"), SessionCall::SignIn);
        assert_eq!(SessionCall::of("/festival.identity.v1.IdentityService/CompleteOAuthLogin"), SessionCall::SignIn);
        assert_eq!(SessionCall::of("festival.identity.v1.IdentityService.Refresh"), SessionCall::Refresh);
        assert_eq!(SessionCall::of("festival.identity.v1.IdentityService.LogoutAll"), SessionCall::SignOutEverywhere);
        assert_eq!(SessionCall::of("/festival.identity.v1.IdentityService/GetMe"), SessionCall::Other);
        assert_eq!(SessionCall::of("/festival.program.v1.ProgramService/Login"), SessionCall::Other);
    }
}
