//! A local sign-in provider for tests, speaking both dialects identity uses: Google's
//! OpenID Connect (`/google/authorize`, `/google/token` answering an RS256 ID token,
//! `/google/jwks`) and GitHub's OAuth 2 (`/github/authorize`, `/github/token`,
//! `/github/user`, `/github/user/emails`). The real client talks to it by base URL.
//!
//! It checks what a real provider checks: the client id and secret, the registered
//! redirect URI, a code used once, and the PKCE verifier against the S256 challenge. A
//! test signs in as one of its accounts with [`FakeOAuth::consent`] (the browser's visit
//! to the consent page) and can make it sign ID tokens with a key it never published.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_util::sync::CancellationToken;

const SIGNING_KEY: &str = include_str!("../keys/fake_oauth_signing.pem");
const ROGUE_KEY: &str = include_str!("../keys/fake_oauth_rogue.pem");
/// The key id of the published key (the rogue key claims it too).
pub const KEY_ID: &str = "fake-oauth-1";

/// One of the provider's accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its stable id (GitHub's are numbers: use digits for GitHub accounts).
    pub subject: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
}

/// The client registration the fake accepts (one, shared by both dialects).
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub client_secret: String,
    pub redirect_uri: String,
}

/// Where the browser was sent back to after consenting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub code: String,
    pub state: String,
}

/// A running fake provider; dropping it stops the server.
pub struct FakeOAuth {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

struct Shared {
    client: Client,
    issuer: String,
    store: Mutex<Store>,
    shutdown: CancellationToken,
    signing: EncodingKey,
    rogue: EncodingKey,
    jwk: Jwk,
}

#[derive(Default)]
struct Store {
    accounts: HashMap<String, Account>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, Account>,
    sign_with_rogue_key: bool,
    jwks_fetches: usize,
    token_requests: usize,
}

struct Grant {
    account: Account,
    challenge: String,
    nonce: Option<String>,
    redirect_uri: String,
    used: bool,
}

impl Drop for FakeOAuth {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl FakeOAuth {
    pub async fn start(client: Client) -> Self {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let signing = EncodingKey::from_rsa_pem(SIGNING_KEY.as_bytes()).expect("signing key");
        let mut jwk = Jwk::from_encoding_key(&signing, Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some(KEY_ID.into());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let shared = Arc::new(Shared {
            client,
            issuer: format!("http://{addr}/google"),
            store: Mutex::new(Store::default()),
            shutdown: CancellationToken::new(),
            signing,
            rogue: EncodingKey::from_rsa_pem(ROGUE_KEY.as_bytes()).expect("rogue key"),
            jwk,
        });
        let app = Router::new()
            .route("/{dialect}/authorize", get(authorize))
            .route("/{dialect}/token", post(token))
            .route("/google/jwks", get(jwks))
            .route("/github/user", get(github_user))
            .route("/github/user/emails", get(github_emails))
            .with_state(shared.clone());
        let stop = shared.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        Self { shared, addr }
    }

    /// `http://127.0.0.1:<port>`; the dialects live under `/google` and `/github`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The issuer its ID tokens carry.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// Adds (or replaces) an account, found at consent by its address.
    pub fn add_account(&self, account: Account) {
        self.store().accounts.insert(account.email.clone(), account);
    }

    /// From now on, signs ID tokens with a key it never published (under the published
    /// key's id): a forged token, as a client must refuse it.
    pub fn sign_with_rogue_key(&self, rogue: bool) {
        self.store().sign_with_rogue_key = rogue;
    }

    /// How often its key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.store().jwks_fetches
    }

    /// How many code exchanges were asked for.
    pub fn token_requests(&self) -> usize {
        self.store().token_requests
    }

    /// The browser's visit to the consent page at `authorization_url`, signed in as the
    /// account with `email`: follows nothing, returns where the provider sends it back
    /// (the code and the state), or the status it answered instead.
    pub async fn consent(&self, authorization_url: &str, email: &str) -> Result<Redirect, u16> {
        let url = format!("{authorization_url}&login_hint={}", form_encode(email));
        let (status, location) = get_location(&url).await;
        if status != 302 {
            return Err(status);
        }
        let location = location.ok_or(status)?;
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let params = pairs(query.as_bytes());
        Ok(Redirect {
            code: params.get("code").cloned().unwrap_or_default(),
            state: params.get("state").cloned().unwrap_or_default(),
        })
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Shared {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A GET over a fresh connection: the status and the `Location` header.
async fn get_location(url: &str) -> (u16, Option<String>) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let location = answer
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("location")).map(|(_, v)| v.trim()))
        .map(str::to_owned);
    (status, location)
}

fn random_token(prefix: &str) -> String {
    format!("{prefix}{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn pairs(encoded: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(encoded).into_owned().collect()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn authorize(State(shared): State<Arc<Shared>>, Path(dialect): Path<String>, uri: Uri) -> Response {
    let q = pairs(uri.query().unwrap_or_default().as_bytes());
    let param = |k: &str| q.get(k).cloned().unwrap_or_default();
    if !matches!(dialect.as_str(), "google" | "github") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let client = &shared.client;
    if param("response_type") != "code" || param("client_id") != client.client_id {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // A redirect URI not registered is never followed (an open redirect otherwise).
    if param("redirect_uri") != client.redirect_uri {
        return oauth_error(StatusCode::BAD_REQUEST, "redirect_uri_mismatch");
    }
    if param("code_challenge_method") != "S256" || param("code_challenge").len() != 43 || param("state").is_empty() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    if dialect == "google" && param("nonce").is_empty() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let Some(account) = shared.store().accounts.get(&param("login_hint")).cloned() else {
        return oauth_error(StatusCode::FORBIDDEN, "access_denied");
    };
    let code = random_token("code_");
    shared.store().codes.insert(
        code.clone(),
        Grant {
            account,
            challenge: param("code_challenge"),
            nonce: q.get("nonce").cloned(),
            redirect_uri: param("redirect_uri"),
            used: false,
        },
    );
    let back = format!("{}?code={}&state={}", client.redirect_uri, form_encode(&code), form_encode(&param("state")));
    (StatusCode::FOUND, [(header::LOCATION, back)]).into_response()
}

async fn token(State(shared): State<Arc<Shared>>, Path(dialect): Path<String>, body: bytes::Bytes) -> Response {
    let form = pairs(&body);
    let param = |k: &str| form.get(k).cloned().unwrap_or_default();
    // GitHub answers refusals with 200 and an error field; Google with 400.
    let refuse = |error: &str| {
        let status = if dialect == "github" { StatusCode::OK } else { StatusCode::BAD_REQUEST };
        oauth_error(status, error)
    };
    let mut store = shared.store();
    store.token_requests += 1;
    let client = &shared.client;
    if param("client_id") != client.client_id || param("client_secret") != client.client_secret {
        return refuse("invalid_client");
    }
    if param("grant_type") != "authorization_code" {
        return refuse("unsupported_grant_type");
    }
    let Some(grant) = store.codes.get_mut(&param("code")) else {
        return refuse("invalid_grant");
    };
    if grant.used || grant.redirect_uri != param("redirect_uri") {
        return refuse("invalid_grant");
    }
    grant.used = true;
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(param("code_verifier").as_bytes()));
    if challenge != grant.challenge {
        return refuse("invalid_grant");
    }
    let (account, nonce) = (grant.account.clone(), grant.nonce.clone());
    let access_token = random_token("at_");
    store.access_tokens.insert(access_token.clone(), account.clone());
    let rogue = store.sign_with_rogue_key;
    drop(store);
    let mut answer = json!({ "access_token": access_token, "token_type": "Bearer", "expires_in": 3600 });
    if dialect == "google" {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": shared.issuer, "sub": account.subject, "aud": client.client_id,
            "iat": now, "exp": now + 3600, "nonce": nonce, "email": account.email,
            "email_verified": account.email_verified, "name": account.name,
        });
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KEY_ID.into());
        let key = if rogue { &shared.rogue } else { &shared.signing };
        answer["id_token"] = jsonwebtoken::encode(&header, &claims, key).expect("sign").into();
    }
    Json(answer).into_response()
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    shared.store().jwks_fetches += 1;
    Json(json!({ "keys": [shared.jwk] })).into_response()
}

fn account_of(shared: &Shared, headers: &HeaderMap) -> Option<Account> {
    let token = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?;
    shared.store().access_tokens.get(token).cloned()
}

async fn github_user(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if headers.get(header::USER_AGENT).is_none() {
        return StatusCode::FORBIDDEN.into_response();
    }
    let Some(account) = account_of(&shared, &headers) else { return StatusCode::UNAUTHORIZED.into_response() };
    let id: u64 = account.subject.parse().unwrap_or_default();
    let login = account.email.split('@').next().unwrap_or_default().to_owned();
    Json(json!({ "id": id, "login": login, "name": account.name })).into_response()
}

async fn github_emails(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let Some(account) = account_of(&shared, &headers) else { return StatusCode::UNAUTHORIZED.into_response() };
    Json(json!([
        { "email": format!("noreply-{}@users.github.example", account.subject), "primary": false, "verified": true },
        { "email": account.email, "primary": true, "verified": account.email_verified },
    ]))
    .into_response()
}
