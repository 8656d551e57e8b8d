//! Browser sessions: tokens minted by identity travel as `HttpOnly; Secure;
//! SameSite=Strict` cookies, and a request carrying the access cookie is forwarded with
//! `authorization: Bearer …`. Partners keep using the `authorization` header.

use prost_reflect::{DynamicMessage, ReflectMessage, Value};

use crate::config::CookieConfig;

const TOKEN_PAIR: &str = "festival.identity.v1.TokenPair";
const LOGOUT_METHODS: [&str; 2] =
    ["festival.identity.v1.IdentityService.Logout", "festival.identity.v1.IdentityService.LogoutAll"];
/// Requests whose `refresh_token` may come from the refresh cookie.
const REFRESH_REQUESTS: [&str; 2] = ["festival.identity.v1.RefreshRequest", "festival.identity.v1.LogoutRequest"];

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

/// Fills an empty `refresh_token` of a Refresh or Logout request from the refresh cookie.
pub fn fill_refresh_token(message: &mut DynamicMessage, headers: &http::HeaderMap, cookies: &CookieConfig) {
    if !REFRESH_REQUESTS.contains(&message.descriptor().full_name()) {
        return;
    }
    let empty = message.get_field_by_name("refresh_token").is_none_or(|v| v.as_str().is_none_or(str::is_empty));
    if empty && let Some(token) = cookie(headers, &cookies.refresh_name) {
        message.set_field_by_name("refresh_token", Value::String(token.to_owned()));
    }
}

/// `Set-Cookie` values for a response: the session cookies when identity minted tokens,
/// expired ones on logout.
pub fn set_cookies(method_full_name: &str, response: &DynamicMessage, cookies: &CookieConfig) -> Vec<String> {
    if LOGOUT_METHODS.contains(&method_full_name) {
        return vec![
            clear(&cookies.access_name, "/", cookies),
            clear(&cookies.refresh_name, &cookies.refresh_path, cookies),
        ];
    }
    if response.descriptor().full_name() != TOKEN_PAIR {
        return Vec::new();
    }
    let text = |f: &str| response.get_field_by_name(f).and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    let expiry = |f: &str| {
        response
            .get_field_by_name(f)
            .and_then(|v| v.as_message().and_then(|m| m.get_field_by_name("seconds")).and_then(|s| s.as_i64()))
            .unwrap_or(0)
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let (access, refresh) = (text("access_token"), text("refresh_token"));
    if access.is_empty() || refresh.is_empty() {
        return Vec::new();
    }
    vec![
        set(&cookies.access_name, &access, "/", expiry("access_token_expire_time") - now, cookies),
        set(&cookies.refresh_name, &refresh, &cookies.refresh_path, expiry("refresh_token_expire_time") - now, cookies),
    ]
}

fn set(name: &str, value: &str, path: &str, max_age: i64, cookies: &CookieConfig) -> String {
    let secure = if cookies.secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={path}; Max-Age={}; HttpOnly{secure}; SameSite=Strict", max_age.max(0))
}

fn clear(name: &str, path: &str, cookies: &CookieConfig) -> String {
    set(name, "", path, 0, cookies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::COOKIE, cookie.parse().expect("header"));
        h
    }

    #[test]
    fn cookies_are_found_among_others_and_bearer_headers_win() {
        let cfg = crate::config::Config::default().cookies;
        let h = headers("theme=dark; festival_at=abc.def.ghi; festival_rt=rt_x");
        assert_eq!(cookie(&h, "festival_rt"), Some("rt_x"));
        assert_eq!(authorization(&h, &cfg).as_deref(), Some("Bearer abc.def.ghi"));
        let mut h2 = h.clone();
        h2.insert(http::header::AUTHORIZATION, "Bearer partner".parse().expect("header"));
        assert_eq!(authorization(&h2, &cfg).as_deref(), Some("Bearer partner"));
        assert_eq!(authorization(&http::HeaderMap::new(), &cfg), None);
    }

    #[test]
    fn session_cookies_are_http_only_secure_and_strict() {
        let cfg = crate::config::Config::default().cookies;
        let c = set("festival_rt", "rt_x", "/v1/auth", 60, &cfg);
        assert_eq!(c, "festival_rt=rt_x; Path=/v1/auth; Max-Age=60; HttpOnly; Secure; SameSite=Strict");
    }
}
