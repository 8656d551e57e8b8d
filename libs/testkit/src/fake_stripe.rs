//! A local fake of the Stripe API, so tests and the dev stack never call the internet.
//!
//! It serves what the payments service uses, through the real `async-stripe` client
//! pointed at it with `ClientBuilder::url(fake.base_url())`: Checkout Sessions (create,
//! retrieve, expire, list) and Refunds (create, retrieve, list; lists paged newest first
//! and filtered by `created`, as Stripe's), Connect Express accounts and onboarding links
//! (a hosted onboarding page under `/connect/onboard/`), destination charges with an
//! application fee (the transfer builds the account's balance; a refund's
//! `reverse_transfer` takes the vendor's share back, refused with `balance_insufficient`
//! once the balance was paid out), with Stripe's bearer-key check, idempotency keys and
//! error shapes. It also plays Stripe's side of webhooks: it builds
//! `checkout.session.*`, `refund.updated` and `charge.dispute.created` events, signs them
//! as Stripe does and POSTs them to the configured URL. Tests can make every `/v1` call
//! fail or hang ([`Mode`]) and read back what was requested and created.
//!
//! A hosted checkout page (`GET /pay/{id}`, whose form POSTs back to complete the
//! session and deliver the webhook) and control endpoints under `/_fake/` let the dev
//! stack and the smoke test drive payments without a browser; they are outside `/v1`,
//! so fault modes never block them.
//!
//! # Response shapes
//!
//! Responses are checked against async-stripe 1.0.0-rc.10's deserializers (the
//! `deser_default`/`take_out` builders in `async-stripe-shared`): a field whose default
//! is `None` must be present, one whose default is `Some(None)` may be absent or `null`;
//! enums accept any string (unknown values become `Unknown`). What that requires:
//!
//! - `CheckoutSession`: `automatic_tax`, `created`, `custom_fields`, `custom_text`,
//!   `expires_at`, `id`, `livemode`, `mode`, `payment_method_types`, `payment_status`,
//!   `shipping_options`. Nested: `automatic_tax.enabled` (its `liability`, `provider`,
//!   `status` are optional); `custom_text`'s four fields are all optional.
//! - Optional session objects the fake fills, with their required fields:
//!   `adaptive_pricing.enabled`, `phone_number_collection.enabled`,
//!   `total_details.amount_discount` and `.amount_tax`.
//! - `Refund`: `amount`, `created`, `currency`, `id`; everything else is optional.
//! - Errors (`stripe_shared::Error`): `error`, and inside it `type`.
//! - Lists (`stripe_types::List`): `data`, `has_more`, `url`.
//!
//! Every other field Stripe sends for a session is sent as `null` (see
//! [`SESSION_NULL_FIELDS`]); `payment_intent` is an id string (an unexpanded
//! `Expandable`), as Stripe sends it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::http1;

/// The secret key the dev stack's payments service is configured with.
pub const DEV_SECRET_KEY: &str = "sk_test_festival_dev";
/// The webhook signing secret the dev stack's payments service is configured with.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_festival_dev";
/// The API version stamped on events, as the Stripe account would.
pub const API_VERSION: &str = "2025-09-30.clover";

/// How long a session stays open when the request does not say (Stripe's default).
const DEFAULT_SESSION_LIFETIME_SECS: i64 = 24 * 60 * 60;
/// A webhook receiver that does not answer within this is reported as undelivered (0).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The reasons Stripe accepts when creating a refund.
const REFUND_REASONS: [&str; 3] = ["duplicate", "fraudulent", "requested_by_customer"];
const IDEMPOTENCY_MISMATCH: &str =
    "Keys for idempotent requests can only be used with the same parameters they were first used with.";

/// Session fields the fake does not model: Stripe sends them, as `null` for a session
/// like ours, and so does the fake, so clients see the same keys.
pub const SESSION_NULL_FIELDS: &[&str] = &[
    "after_expiration",
    "allow_promotion_codes",
    "billing_address_collection",
    "client_secret",
    "collected_information",
    "consent",
    "consent_collection",
    "currency_conversion",
    "customer",
    "customer_details",
    "invoice",
    "invoice_creation",
    "locale",
    "payment_link",
    "payment_method_configuration_details",
    "payment_method_options",
    "presentment_details",
    "recovered_from",
    "saved_payment_method_options",
    "setup_intent",
    "shipping_address_collection",
    "shipping_cost",
    "submit_type",
    "subscription",
    "wallet_options",
];

/// One `/v1` request as received: method, path, `Idempotency-Key` header, raw body.
pub type RecordedRequest = (String, String, Option<String>, String);

/// How the fake answers `/v1` calls, to test timeouts and provider outages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answers as Stripe would.
    Normal,
    /// Answers every `/v1` call with a 500 `api_error`, creating nothing.
    Fail500,
    /// Never answers a `/v1` call received in this mode: it is held until the mode
    /// changes (or the fake stops), then failed with a 500 and never processed.
    Hang,
    /// Processes every `/v1` call (and keeps its answer under its idempotency key), then
    /// answers a 500 anyway: an answer lost on the way back.
    LoseAnswers,
}

impl Mode {
    /// Parses the control endpoint's body: `normal`, `fail`, `hang` or `lose`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "normal" => Some(Self::Normal),
            "fail" => Some(Self::Fail500),
            "hang" => Some(Self::Hang),
            "lose" => Some(Self::LoseAnswers),
            _ => None,
        }
    }
}

/// What the fake accepts and where it sends webhooks.
#[derive(Clone)]
pub struct FakeStripeConfig {
    /// The only API key accepted (`Authorization: Bearer <key>`).
    pub secret_key: String,
    /// Signs webhook deliveries (`Stripe-Signature`).
    pub webhook_secret: String,
    /// Where [`FakeStripe::deliver`] POSTs events (`http://` only); `None` delivers nothing.
    pub webhook_url: Option<String>,
    /// Where to listen; `127.0.0.1:0` (a free port) by default.
    pub addr: Option<SocketAddr>,
}

impl Default for FakeStripeConfig {
    /// The dev stack's keys, no webhook URL, a free loopback port.
    fn default() -> Self {
        Self {
            secret_key: DEV_SECRET_KEY.to_owned(),
            webhook_secret: DEV_WEBHOOK_SECRET.to_owned(),
            webhook_url: None,
            addr: None,
        }
    }
}

/// Secrets stay out of logs and test output.
impl std::fmt::Debug for FakeStripeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeStripeConfig")
            .field("secret_key", &"<redacted>")
            .field("webhook_secret", &"<redacted>")
            .field("webhook_url", &self.webhook_url)
            .field("addr", &self.addr)
            .finish()
    }
}

/// A running fake. Dropping it stops the server (and releases any hanging requests).
pub struct FakeStripe {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl FakeStripe {
    /// Binds (a free loopback port unless `config.addr` says otherwise) and serves in a
    /// background task until the handle is dropped.
    pub async fn start(config: FakeStripeConfig) -> anyhow::Result<Self> {
        let listen = config.addr.unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let store = Store {
            public_base: format!("http://{}/", reachable(addr)),
            webhook_url: config.webhook_url,
            ..Store::default()
        };
        let shared = Arc::new(Shared {
            secret_key: config.secret_key,
            webhook_secret: config.webhook_secret,
            store: Mutex::new(store),
            mode: watch::Sender::new(Mode::Normal),
            shutdown: CancellationToken::new(),
        });
        let app = router(shared.clone());
        let stop = shared.shutdown.clone();
        tokio::spawn(async move {
            // A serve error here can only be the listener failing; the fake then stops
            // answering, which the test sees as its own failure.
            let _ = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        Ok(Self { shared, addr })
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/`, with the trailing slash `ClientBuilder::url` expects.
    pub fn base_url(&self) -> String {
        self.shared.store().public_base.clone()
    }

    /// Switches how `/v1` calls are answered; requests held by [`Mode::Hang`] are released.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.shared.mode.borrow()
    }

    /// Where later deliveries go.
    pub fn set_webhook_url(&self, url: impl Into<String>) {
        self.shared.store().webhook_url = Some(url.into());
    }

    /// Every `/v1` request received, in order, including refused and failed ones.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.store().requests.clone()
    }

    /// Every Checkout Session, in creation order, as the API returns it.
    pub fn sessions(&self) -> Vec<Value> {
        self.shared.store().sessions.iter().map(Session::to_json).collect()
    }

    pub fn session(&self, id: &str) -> Option<Value> {
        self.shared.store().sessions.iter().find(|s| s.id == id).map(Session::to_json)
    }

    /// Every payment intent (one per completed session), with `amount_received` and `metadata`.
    pub fn payment_intents(&self) -> Vec<Value> {
        self.shared.store().payment_intents.iter().map(PaymentIntent::to_json).collect()
    }

    /// Every refund, in creation order, as the API returns it.
    pub fn refunds(&self) -> Vec<Value> {
        self.shared.store().refunds.iter().map(Refund::to_json).collect()
    }

    pub fn refund(&self, id: &str) -> Option<Value> {
        self.shared.store().refunds.iter().find(|r| r.id == id).map(Refund::to_json)
    }

    /// The customer paid by card: an open session becomes `complete` and `paid`, with a
    /// succeeded payment intent carrying `payment_intent_data[metadata]`. Returns the
    /// `checkout.session.completed` event, or `None` if the session is unknown or not open.
    pub fn complete_session(&self, id: &str) -> Option<Value> {
        self.shared.complete_session(id)
    }

    /// The vendor finished Connect onboarding: its account can take charges and be paid
    /// out. Returns `account.updated` (not delivered; see [`Self::deliver`]).
    pub fn complete_onboarding(&self, account_id: &str) -> Option<Value> {
        self.shared.store().onboard(account_id).map(|(account, _)| event("account.updated", account))
    }

    /// A connected account as the API answers it.
    pub fn account(&self, account_id: &str) -> Option<Value> {
        self.shared.store().get_account(account_id).ok()
    }

    /// What a connected account holds (its transfers less reversals and payouts).
    pub fn account_balance(&self, account_id: &str) -> Option<i64> {
        self.shared.store().accounts.iter().find(|a| a.id == account_id).map(|a| a.balance)
    }

    /// Makes every refund's transfer reversal refused (`balance_insufficient`), or not.
    pub fn refuse_reversals(&self, refuse: bool) {
        self.shared.store().refuse_reversals = refuse;
    }

    /// Pays a connected account's balance out to its bank: nothing is left to reverse.
    pub fn pay_out(&self, account_id: &str) {
        if let Some(account) = self.shared.store().accounts.iter_mut().find(|a| a.id == account_id) {
            account.balance = 0;
        }
    }

    /// The customer chose a delayed method (SEPA debit): the session becomes `complete` but
    /// stays `unpaid`, its payment intent `processing`. Returns `checkout.session.completed`;
    /// follow with [`Self::async_succeed`] or [`Self::async_fail`].
    pub fn complete_session_async(&self, id: &str) -> Option<Value> {
        self.shared.store().complete(id, false).map(|s| event("checkout.session.completed", s))
    }

    /// The delayed payment cleared: returns `checkout.session.async_payment_succeeded`.
    pub fn async_succeed(&self, id: &str) -> Option<Value> {
        self.shared.store().settle(id, true).map(|s| event("checkout.session.async_payment_succeeded", s))
    }

    /// The delayed payment failed: returns `checkout.session.async_payment_failed`.
    pub fn async_fail(&self, id: &str) -> Option<Value> {
        self.shared.store().settle(id, false).map(|s| event("checkout.session.async_payment_failed", s))
    }

    /// An open session timed out: returns `checkout.session.expired`.
    pub fn expire_session(&self, id: &str) -> Option<Value> {
        self.shared.expire_session(id)
    }

    /// A refund made at Stripe itself, as an organiser does in its dashboard: through the
    /// fake's own API (so it counts against what is left to refund); its id.
    pub async fn dashboard_refund(&self, payment_intent: &str, amount: i64) -> String {
        let secret_key = self.shared.secret_key.clone();
        let body = format!("payment_intent={payment_intent}&amount={amount}");
        let request = format!(
            "POST /v1/refunds HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {secret_key}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let (status, answer) = crate::http1::Conn::open(self.addr).await.roundtrip_body(request.as_bytes()).await;
        assert_eq!(status, 200, "the fake refused the refund: {}", String::from_utf8_lossy(&answer));
        let refund: Value = serde_json::from_slice(&answer).expect("a refund");
        refund["id"].as_str().expect("refund id").to_owned()
    }

    /// The card's bank returned a refund that had succeeded (a closed card): the refund
    /// becomes `failed` and its amount refundable again. Returns `refund.updated` (not
    /// delivered; see [`Self::deliver`]), or `None` for an unknown refund.
    pub fn fail_refund(&self, refund_id: &str) -> Option<Value> {
        let mut store = self.shared.store();
        let refund = store.refunds.iter_mut().find(|r| r.id == refund_id)?;
        refund.failed = true;
        let (intent, amount) = (refund.payment_intent.clone(), refund.amount);
        let json = refund.to_json();
        if let Some(pi) = store.payment_intents.iter_mut().find(|p| p.id == intent) {
            pi.refunded -= amount;
        }
        Some(event("refund.updated", json))
    }

    /// A `refund.updated` event for a refund created through the API.
    pub fn refund_event(&self, refund_id: &str) -> Option<Value> {
        let refund = self.refund(refund_id)?;
        Some(event("refund.updated", refund))
    }

    /// A `charge.dispute.created` event. The currency and charge come from the payment
    /// intent when the fake knows it; otherwise `eur` and no charge, so tests can also
    /// send disputes about payments the fake never saw.
    pub fn dispute_event(&self, payment_intent: &str, amount: i64) -> Value {
        let known = self
            .shared
            .store()
            .payment_intents
            .iter()
            .find(|pi| pi.id == payment_intent)
            .map(|pi| (pi.currency.clone(), pi.charge.clone()));
        let (currency, charge) = match known {
            Some((currency, charge)) => (currency, Some(charge)),
            None => ("eur".to_owned(), None),
        };
        let dispute = json!({
            "id": new_id("dp"),
            "object": "dispute",
            "amount": amount,
            "charge": charge,
            "created": now(),
            "currency": currency,
            "livemode": false,
            "metadata": {},
            "payment_intent": payment_intent,
            "reason": "fraudulent",
            "status": "needs_response",
        });
        event("charge.dispute.created", dispute)
    }

    /// POSTs `event` to the webhook URL, signed now with the webhook secret. Returns the
    /// receiver's HTTP status, or 0 when there is no URL or nothing answered.
    pub async fn deliver(&self, event: &Value) -> u16 {
        self.shared.deliver(event).await
    }

    /// POSTs `body` with this exact `Stripe-Signature` header, for tests that forge or
    /// replay signatures. Returns the status as [`Self::deliver`] does.
    pub async fn deliver_raw(&self, body: &[u8], signature_header: &str) -> u16 {
        self.shared.deliver_raw(body, signature_header).await
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// The `Stripe-Signature` header value for `payload` sent at `timestamp`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<payload>" keyed by the whole secret>`.
pub fn sign(secret: &str, timestamp: i64, payload: &[u8]) -> String {
    let timestamp_text = timestamp.to_string();
    let mac = hmac_sha256_hex(secret.as_bytes(), &[timestamp_text.as_bytes(), b".".as_slice(), payload]);
    format!("t={timestamp},v1={mac}")
}

/// A Stripe event envelope around `object`, as webhooks carry it.
pub fn event(kind: &str, object: Value) -> Value {
    json!({
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": now(),
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
        "data": { "object": object },
    })
}

/// Parses an `application/x-www-form-urlencoded` body in Stripe's bracket notation into
/// nested JSON: `a[b][0][c]=x` becomes `{"a":{"b":[{"c":"x"}]}}`. A map whose keys are
/// exactly `0..n` becomes an array and `k[]=v` appends; every leaf stays a string, as sent.
pub fn parse_form(body: &[u8]) -> Value {
    let mut root = Map::new();
    for (key, value) in form_urlencoded::parse(body) {
        insert_form_value(&mut root, &key_path(&key), value.into_owned());
    }
    arrays_from_indexed_maps(Value::Object(root))
}

/// `a[b][]` → `["a", "b", ""]`; an empty segment means "append".
fn key_path(key: &str) -> Vec<&str> {
    match key.split_once('[') {
        None => vec![key],
        Some((head, rest)) => {
            let inner = rest.strip_suffix(']').unwrap_or(rest);
            std::iter::once(head).chain(inner.split("][")).collect()
        }
    }
}

fn insert_form_value(map: &mut Map<String, Value>, path: &[&str], value: String) {
    let Some((first, rest)) = path.split_first() else { return };
    let key = if first.is_empty() { map.len().to_string() } else { (*first).to_owned() };
    if rest.is_empty() {
        map.insert(key, Value::String(value));
        return;
    }
    let child = map.entry(key).or_insert(Value::Object(Map::new()));
    if !child.is_object() {
        // `a=1&a[b]=2`: the nested form wins, as it does in Stripe's parser.
        *child = Value::Object(Map::new());
    }
    if let Value::Object(child) = child {
        insert_form_value(child, rest, value);
    }
}

/// Turns maps keyed `"0".."n-1"` into arrays, ordered by index (not by key text, where
/// `"10"` sorts before `"2"`).
fn arrays_from_indexed_maps(value: Value) -> Value {
    let map = match value {
        Value::Object(map) => map,
        other => return other,
    };
    let mut map: Map<String, Value> = map.into_iter().map(|(k, v)| (k, arrays_from_indexed_maps(v))).collect();
    let len = map.len();
    let is_list = len > 0 && (0..len).all(|i| map.contains_key(&i.to_string()));
    if is_list {
        Value::Array((0..len).filter_map(|i| map.remove(&i.to_string())).collect())
    } else {
        Value::Object(map)
    }
}

/// Lowercase hex of HMAC-SHA256 over the concatenation of `parts`.
fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// A Stripe-looking id: `cs_test_3f9a…`.
fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The address to print in URLs: a fake bound to `0.0.0.0` is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    }
}

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

/// What the server task and the handle share. The store sits behind a std mutex that is
/// never held across an await.
struct Shared {
    secret_key: String,
    webhook_secret: String,
    store: Mutex<Store>,
    mode: watch::Sender<Mode>,
    shutdown: CancellationToken,
}

#[derive(Default)]
struct Store {
    public_base: String,
    webhook_url: Option<String>,
    requests: Vec<RecordedRequest>,
    sessions: Vec<Session>,
    payment_intents: Vec<PaymentIntent>,
    refunds: Vec<Refund>,
    accounts: Vec<ConnectedAccount>,
    /// Refuse every transfer reversal with `balance_insufficient` (what some accounts
    /// and charge types get from Stripe), whatever the balance.
    refuse_reversals: bool,
    /// First responses by (secret key, idempotency key), as Stripe scopes them.
    idempotency: HashMap<(String, String), Stored>,
}

/// Two form bodies with the same parameters, in any order.
fn same_params(a: &[u8], b: &[u8]) -> bool {
    let sorted = |body: &[u8]| {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        pairs.sort();
        pairs
    };
    sorted(a) == sorted(b)
}

/// The first request made with an idempotency key and what it was answered.
struct Stored {
    method: String,
    path: String,
    body: Vec<u8>,
    reply: Reply,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionStatus {
    Open,
    Complete,
    Expired,
}

impl SessionStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Complete => "complete",
            Self::Expired => "expired",
        }
    }
}

struct Session {
    id: String,
    created: i64,
    expires_at: i64,
    amount_total: i64,
    currency: String,
    metadata: Value,
    /// `payment_intent_data[metadata]`: copied onto the payment intent on completion.
    payment_intent_metadata: Value,
    client_reference_id: Option<String>,
    customer_email: Option<String>,
    success_url: Option<String>,
    cancel_url: Option<String>,
    /// The hosted page; Stripe stops returning it once the session is no longer open.
    url: String,
    status: SessionStatus,
    paid: bool,
    payment_intent: Option<String>,
    /// A destination charge: the connected account and the platform's fee.
    destination: Option<String>,
    application_fee: i64,
}

impl Session {
    fn to_json(&self) -> Value {
        let fields = [
            ("id", json!(self.id)),
            ("object", json!("checkout.session")),
            ("adaptive_pricing", json!({ "enabled": false })),
            ("amount_subtotal", json!(self.amount_total)),
            ("amount_total", json!(self.amount_total)),
            ("automatic_tax", json!({ "enabled": false, "liability": null, "provider": null, "status": null })),
            ("cancel_url", json!(self.cancel_url)),
            ("client_reference_id", json!(self.client_reference_id)),
            ("created", json!(self.created)),
            ("currency", json!(self.currency)),
            ("custom_fields", json!([])),
            (
                "custom_text",
                json!({ "after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null }),
            ),
            ("customer_creation", json!("if_required")),
            ("customer_email", json!(self.customer_email)),
            ("discounts", json!([])),
            ("expires_at", json!(self.expires_at)),
            ("livemode", json!(false)),
            ("metadata", self.metadata.clone()),
            ("mode", json!("payment")),
            ("payment_intent", json!(self.payment_intent)),
            ("payment_method_collection", json!("if_required")),
            ("payment_method_types", json!(["card"])),
            ("payment_status", json!(if self.paid { "paid" } else { "unpaid" })),
            ("phone_number_collection", json!({ "enabled": false })),
            ("shipping_options", json!([])),
            ("status", json!(self.status.as_str())),
            ("success_url", json!(self.success_url)),
            ("total_details", json!({ "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 })),
            // The value async-stripe rc.10 knows for a Stripe-hosted page.
            ("ui_mode", json!("hosted_page")),
            ("url", if self.status == SessionStatus::Open { json!(self.url) } else { Value::Null }),
        ];
        let mut object: Map<String, Value> =
            SESSION_NULL_FIELDS.iter().map(|name| ((*name).to_owned(), Value::Null)).collect();
        object.extend(fields.into_iter().map(|(name, value)| (name.to_owned(), value)));
        Value::Object(object)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IntentStatus {
    /// A delayed payment method has not cleared yet.
    Processing,
    Succeeded,
    /// The delayed payment failed; Stripe asks for another method.
    Failed,
}

impl IntentStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "requires_payment_method",
        }
    }
}

struct PaymentIntent {
    id: String,
    charge: String,
    amount: i64,
    currency: String,
    metadata: Value,
    created: i64,
    status: IntentStatus,
    refunded: i64,
    destination: Option<String>,
    application_fee: i64,
    /// Moved to the destination when the payment succeeded, and taken back since.
    transferred: i64,
    reversed: i64,
    fee_refunded: i64,
}

impl PaymentIntent {
    /// The money actually taken, which bounds refunds.
    fn captured(&self) -> i64 {
        if self.status == IntentStatus::Succeeded { self.amount } else { 0 }
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "payment_intent",
            "amount": self.amount,
            "amount_received": self.captured(),
            "created": self.created,
            "currency": self.currency,
            "latest_charge": self.charge,
            "livemode": false,
            "metadata": self.metadata,
            "status": self.status.as_str(),
            "application_fee_amount": if self.application_fee > 0 { json!(self.application_fee) } else { Value::Null },
            "transfer_data": self.destination.as_ref().map(|d| json!({ "destination": d })),
            // Not Stripe's fields: what the fake moved, for tests to read.
            "fake_transferred": self.transferred,
            "fake_reversed": self.reversed,
            "fake_fee_refunded": self.fee_refunded,
        })
    }
}

struct Refund {
    id: String,
    amount: i64,
    currency: String,
    payment_intent: String,
    charge: String,
    balance_transaction: String,
    reason: Option<String>,
    metadata: Value,
    created: i64,
    transfer_reversal: Option<String>,
    /// The card's bank sent it back (a closed card): Stripe reports it `failed`.
    failed: bool,
}

impl Refund {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "refund",
            "amount": self.amount,
            "balance_transaction": self.balance_transaction,
            "charge": self.charge,
            "created": self.created,
            "currency": self.currency,
            "destination_details": null,
            "metadata": self.metadata,
            "payment_intent": self.payment_intent,
            "reason": self.reason,
            "receipt_number": null,
            "source_transfer_reversal": null,
            "status": if self.failed { "failed" } else { "succeeded" },
            "transfer_reversal": self.transfer_reversal,
        })
    }
}

/// A Connect Express account: its onboarding state and the balance its transfers built.
struct ConnectedAccount {
    id: String,
    email: Option<String>,
    country: String,
    business_name: Option<String>,
    metadata: Value,
    created: i64,
    charges_enabled: bool,
    payouts_enabled: bool,
    details_submitted: bool,
    /// Where the last account link sends the vendor back.
    return_url: Option<String>,
    /// Available to reverse transfers from; a payout empties it.
    balance: i64,
    /// Of its transfers (lowercase).
    currency: String,
}

impl ConnectedAccount {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "account",
            "type": "express",
            "business_profile": { "name": self.business_name },
            "country": self.country,
            "email": self.email,
            "created": self.created,
            "metadata": self.metadata,
            "charges_enabled": self.charges_enabled,
            "payouts_enabled": self.payouts_enabled,
            "details_submitted": self.details_submitted,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------

/// A JSON answer to a `/v1` call; kept whole so an idempotent replay is byte-identical.
#[derive(Clone, Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
    replayed: bool,
}

type ApiResult = Result<Value, Reply>;

impl Reply {
    fn ok(body: Value) -> Self {
        Self { status: StatusCode::OK, body, replayed: false }
    }

    /// Stripe's error shape: `{"error":{"type","code","message","param"}}`, without the
    /// optional members that do not apply.
    fn error(
        status: StatusCode,
        kind: &str,
        code: Option<&str>,
        message: impl Into<String>,
        param: Option<&str>,
    ) -> Self {
        let mut error = Map::new();
        error.insert("type".to_owned(), json!(kind));
        if let Some(code) = code {
            error.insert("code".to_owned(), json!(code));
        }
        error.insert("message".to_owned(), Value::String(message.into()));
        if let Some(param) = param {
            error.insert("param".to_owned(), json!(param));
        }
        Self { status, body: json!({ "error": Value::Object(error) }), replayed: false }
    }

    fn bad_request(code: Option<&str>, message: impl Into<String>, param: Option<&str>) -> Self {
        Self::error(StatusCode::BAD_REQUEST, "invalid_request_error", code, message, param)
    }

    fn unauthorized() -> Self {
        Self::error(StatusCode::UNAUTHORIZED, "invalid_request_error", None, "Invalid API Key provided", None)
    }

    fn api_error() -> Self {
        Self::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            None,
            "An unknown error occurred (injected by the fake Stripe).",
            None,
        )
    }

    fn idempotency_mismatch() -> Self {
        Self::error(StatusCode::BAD_REQUEST, "idempotency_error", None, IDEMPOTENCY_MISMATCH, None)
    }

    fn replay(&self) -> Self {
        Self { replayed: true, ..self.clone() }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.replayed {
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        response
    }
}

fn missing(param: &str) -> Reply {
    Reply::bad_request(Some("parameter_missing"), format!("Missing required param: {param}."), Some(param))
}

fn invalid_integer(param: &str) -> Reply {
    Reply::bad_request(Some("parameter_invalid_integer"), format!("Invalid integer: {param}."), Some(param))
}

fn no_such(kind: &str, id: &str, param: &str) -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        Some("resource_missing"),
        format!("No such {kind}: '{id}'"),
        Some(param),
    )
}

// ---------------------------------------------------------------------------------------
// Form fields
// ---------------------------------------------------------------------------------------

/// A top-level string parameter.
fn text(form: &Value, key: &str) -> Option<String> {
    form.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An integer parameter (sent as a string): absent is `Ok(None)`, garbage is a 400.
fn integer(value: Option<&Value>, param: &str) -> Result<Option<i64>, Reply> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => text.parse::<i64>().map(Some).map_err(|_| invalid_integer(param)),
        Some(_) => Err(invalid_integer(param)),
    }
}

/// A list answer as Stripe pages it: newest first (`items` are oldest first, as made),
/// filtered by `created` (`created=t`, or `created[gt|gte|lt|lte]=t`), `limit` 1 to 100
/// (10 by default), starting after the object `starting_after`.
fn list(form: &Value, url: &str, items: Vec<(&str, i64, Value)>) -> ApiResult {
    let limit = integer(form.get("limit"), "limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(Reply::bad_request(None, "This value must be between 1 and 100.", Some("limit")));
    }
    let created = form.get("created");
    let exact = match created {
        Some(Value::String(_)) => integer(created, "created")?,
        _ => None,
    };
    let bound = |op: &str| integer(created.and_then(|c| c.get(op)), "created");
    let (gt, gte, lt, lte) = (bound("gt")?, bound("gte")?, bound("lt")?, bound("lte")?);
    let within = |t: i64| {
        exact.is_none_or(|e| t == e)
            && gt.is_none_or(|b| t > b)
            && gte.is_none_or(|b| t >= b)
            && lt.is_none_or(|b| t < b)
            && lte.is_none_or(|b| t <= b)
    };
    let mut newest_first: Vec<(&str, Value)> =
        items.into_iter().rev().filter(|(_, t, _)| within(*t)).map(|(id, _, v)| (id, v)).collect();
    if let Some(after) = text(form, "starting_after") {
        let Some(at) = newest_first.iter().position(|(id, _)| *id == after) else {
            return Err(no_such("object", &after, "starting_after"));
        };
        newest_first.drain(..=at);
    }
    let limit = usize::try_from(limit).unwrap_or(10);
    let has_more = newest_first.len() > limit;
    let data: Vec<Value> = newest_first.into_iter().take(limit).map(|(_, v)| v).collect();
    Ok(json!({ "object": "list", "data": data, "has_more": has_more, "url": url }))
}

/// A `metadata[k]=v` map, keeping only string values (Stripe metadata is flat).
fn string_map(value: Option<&Value>) -> Value {
    let map: Map<String, Value> = match value {
        Some(Value::Object(map)) => {
            map.iter().filter(|(_, v)| v.is_string()).map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        _ => Map::new(),
    };
    Value::Object(map)
}

struct Total {
    amount: i64,
    currency: String,
}

/// Sums `unit_amount × quantity` over `line_items[i][price_data]`, the only pricing the
/// fake supports (the payments service sends inline prices, never `price` ids).
fn line_items_total(form: &Value) -> Result<Total, Reply> {
    let items = match form.get("line_items") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => return Err(missing("line_items")),
    };
    let mut amount: i64 = 0;
    let mut currency: Option<String> = None;
    for (i, item) in items.iter().enumerate() {
        if item.get("price").is_some() {
            let param = format!("line_items[{i}][price]");
            let message = "The fake Stripe supports only price_data line items.";
            return Err(Reply::bad_request(None, message, Some(param.as_str())));
        }
        let unit_param = format!("line_items[{i}][price_data][unit_amount]");
        let unit =
            integer(item.pointer("/price_data/unit_amount"), &unit_param)?.ok_or_else(|| missing(&unit_param))?;
        let quantity_param = format!("line_items[{i}][quantity]");
        let quantity = integer(item.get("quantity"), &quantity_param)?.unwrap_or(1);
        if unit < 0 {
            return Err(invalid_integer(&unit_param));
        }
        if quantity < 1 {
            return Err(invalid_integer(&quantity_param));
        }
        let currency_param = format!("line_items[{i}][price_data][currency]");
        let item_currency =
            item.pointer("/price_data/currency").and_then(Value::as_str).ok_or_else(|| missing(&currency_param))?;
        if currency.is_none() {
            currency = Some(item_currency.to_ascii_lowercase());
        }
        amount = unit
            .checked_mul(quantity)
            .and_then(|line| amount.checked_add(line))
            .ok_or_else(|| invalid_integer(&unit_param))?;
    }
    Ok(Total { amount, currency: currency.unwrap_or_default() })
}

// ---------------------------------------------------------------------------------------
// The API, on the store
// ---------------------------------------------------------------------------------------

impl Store {
    /// Routes an authenticated, admitted `/v1` call.
    fn dispatch(&mut self, method: &str, path: &str, body: &[u8]) -> Reply {
        let form = parse_form(body);
        let route = path.strip_prefix("/v1/").unwrap_or(path);
        let segments: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
        let result = match (method, segments.as_slice()) {
            ("POST", ["checkout", "sessions"]) => self.create_session(&form),
            ("GET", ["checkout", "sessions"]) => {
                let items = self.sessions.iter().map(|s| (s.id.as_str(), s.created, s.to_json())).collect();
                list(&form, "/v1/checkout/sessions", items)
            }
            ("GET", ["checkout", "sessions", id]) => self.get_session(id),
            ("POST", ["checkout", "sessions", id, "expire"]) => self.expire(id),
            ("POST", ["refunds"]) => self.create_refund(&form),
            ("GET", ["refunds"]) => {
                let items = self.refunds.iter().map(|r| (r.id.as_str(), r.created, r.to_json())).collect();
                list(&form, "/v1/refunds", items)
            }
            ("GET", ["refunds", id]) => self.get_refund(id),
            ("POST", ["accounts"]) => self.create_account(&form),
            ("GET", ["accounts", id]) => self.get_account(id),
            ("POST", ["account_links"]) => self.create_account_link(&form),
            _ => Err(Reply::error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                None,
                format!("Unrecognized request URL ({method}: {path})."),
                None,
            )),
        };
        match result {
            Ok(body) => Reply::ok(body),
            Err(reply) => reply,
        }
    }

    fn create_session(&mut self, form: &Value) -> ApiResult {
        let mode = text(form, "mode").unwrap_or_else(|| "payment".to_owned());
        if mode != "payment" {
            return Err(Reply::bad_request(None, "The fake Stripe supports only mode=payment.", Some("mode")));
        }
        let total = line_items_total(form)?;
        let destination = form.pointer("/payment_intent_data/transfer_data/destination").and_then(Value::as_str);
        if let Some(account) = destination
            && !self.accounts.iter().any(|a| a.id == account)
        {
            return Err(no_such("destination", account, "payment_intent_data[transfer_data][destination]"));
        }
        let destination = destination.map(str::to_owned);
        let application_fee = integer(
            form.pointer("/payment_intent_data/application_fee_amount"),
            "payment_intent_data[application_fee_amount]",
        )?
        .unwrap_or(0);
        if !(0..=total.amount).contains(&application_fee) {
            let message = "The application fee must be between 0 and the amount.";
            return Err(Reply::bad_request(None, message, Some("payment_intent_data[application_fee_amount]")));
        }
        let created = now();
        let expires_at =
            integer(form.get("expires_at"), "expires_at")?.unwrap_or(created + DEFAULT_SESSION_LIFETIME_SECS);
        let id = new_id("cs_test");
        let url = format!("{}pay/{id}", self.public_base);
        let session = Session {
            id,
            created,
            expires_at,
            amount_total: total.amount,
            currency: total.currency,
            metadata: string_map(form.get("metadata")),
            payment_intent_metadata: string_map(form.pointer("/payment_intent_data/metadata")),
            client_reference_id: text(form, "client_reference_id"),
            customer_email: text(form, "customer_email"),
            success_url: text(form, "success_url"),
            cancel_url: text(form, "cancel_url"),
            url,
            status: SessionStatus::Open,
            paid: false,
            payment_intent: None,
            destination,
            application_fee,
        };
        let json = session.to_json();
        self.sessions.push(session);
        Ok(json)
    }

    fn get_session(&self, id: &str) -> ApiResult {
        self.sessions
            .iter()
            .find(|s| s.id == id)
            .map(Session::to_json)
            .ok_or_else(|| no_such("checkout.session", id, "session"))
    }

    /// Open → expired; any other status is refused as Stripe refuses it.
    fn expire(&mut self, id: &str) -> ApiResult {
        let session =
            self.sessions.iter_mut().find(|s| s.id == id).ok_or_else(|| no_such("checkout.session", id, "session"))?;
        if session.status != SessionStatus::Open {
            let message = format!(
                "Only Checkout Sessions with a status in [\"open\"] can be expired. This Checkout Session has a status of \"{}\".",
                session.status.as_str()
            );
            return Err(Reply::bad_request(None, message, None));
        }
        session.status = SessionStatus::Expired;
        Ok(session.to_json())
    }

    /// Completes an open session and creates its payment intent: succeeded when `settled`
    /// (card), processing otherwise (a delayed method). Returns the session as it is now.
    fn complete(&mut self, id: &str, settled: bool) -> Option<Value> {
        let session = self.sessions.iter_mut().find(|s| s.id == id && s.status == SessionStatus::Open)?;
        let intent = PaymentIntent {
            id: new_id("pi"),
            charge: new_id("ch"),
            amount: session.amount_total,
            currency: session.currency.clone(),
            metadata: session.payment_intent_metadata.clone(),
            created: now(),
            status: if settled { IntentStatus::Succeeded } else { IntentStatus::Processing },
            refunded: 0,
            destination: session.destination.clone(),
            application_fee: session.application_fee,
            transferred: 0,
            reversed: 0,
            fee_refunded: 0,
        };
        session.status = SessionStatus::Complete;
        session.paid = settled;
        session.payment_intent = Some(intent.id.clone());
        let json = session.to_json();
        self.payment_intents.push(intent);
        if settled {
            let intent = self.payment_intents.len() - 1;
            self.transfer(intent);
        }
        Some(json)
    }

    /// Settles a session completed with a delayed method. Returns the session as it is now,
    /// or `None` when it is not waiting for a delayed payment.
    fn settle(&mut self, id: &str, succeeded: bool) -> Option<Value> {
        let session =
            self.sessions.iter_mut().find(|s| s.id == id && s.status == SessionStatus::Complete && !s.paid)?;
        let intent_id = session.payment_intent.as_deref()?;
        let intent =
            self.payment_intents.iter_mut().find(|pi| pi.id == intent_id && pi.status == IntentStatus::Processing)?;
        intent.status = if succeeded { IntentStatus::Succeeded } else { IntentStatus::Failed };
        session.paid = succeeded;
        let json = session.to_json();
        if succeeded && let Some(index) = self.payment_intents.iter().position(|pi| pi.id == intent_id) {
            self.transfer(index);
        }
        Some(json)
    }

    /// A destination charge succeeded: the amount less the fee goes to the account.
    fn transfer(&mut self, intent: usize) {
        let pi = &mut self.payment_intents[intent];
        let Some(destination) = pi.destination.clone() else { return };
        pi.transferred = pi.amount - pi.application_fee;
        let (amount, currency) = (pi.transferred, pi.currency.clone());
        if let Some(account) = self.accounts.iter_mut().find(|a| a.id == destination) {
            account.balance += amount;
            account.currency = currency;
        }
    }

    /// Refunds part or all of what a payment intent captured, never more.
    fn create_refund(&mut self, form: &Value) -> ApiResult {
        let intent_id = form.get("payment_intent").and_then(Value::as_str).ok_or_else(|| missing("payment_intent"))?;
        let reason = text(form, "reason");
        if reason.as_deref().is_some_and(|r| !REFUND_REASONS.contains(&r)) {
            let message = "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer";
            return Err(Reply::bad_request(None, message, Some("reason")));
        }
        let requested = integer(form.get("amount"), "amount")?;
        let intent = self
            .payment_intents
            .iter_mut()
            .find(|pi| pi.id == intent_id)
            .ok_or_else(|| no_such("payment_intent", intent_id, "payment_intent"))?;
        if intent.status != IntentStatus::Succeeded {
            let message = format!("This PaymentIntent ({intent_id}) does not have a successful charge to refund.");
            return Err(Reply::bad_request(Some("charge_not_refundable"), message, Some("payment_intent")));
        }
        let remaining = intent.captured() - intent.refunded;
        if remaining <= 0 {
            let message = format!("Charge {} has already been refunded.", intent.charge);
            return Err(Reply::bad_request(Some("charge_already_refunded"), message, None));
        }
        let amount = requested.unwrap_or(remaining);
        if amount < 1 {
            return Err(invalid_integer("amount"));
        }
        if amount > remaining {
            let message = format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})");
            return Err(Reply::bad_request(Some("amount_too_large"), message, Some("amount")));
        }
        let reverse = text(form, "reverse_transfer").as_deref() == Some("true");
        let refund_fee = text(form, "refund_application_fee").as_deref() == Some("true");
        if refund_fee && intent.application_fee == 0 {
            let message = format!("The charge {} has no application fee to refund.", intent.charge);
            return Err(Reply::bad_request(None, message, Some("refund_application_fee")));
        }
        let refuse_reversals = self.refuse_reversals;
        let mut reversal = None;
        if reverse {
            let Some(destination) = intent.destination.clone() else {
                let message = "This charge has no transfer to reverse.";
                return Err(Reply::bad_request(None, message, Some("reverse_transfer")));
            };
            // The vendor's share, in proportion to what was transferred.
            let share = i64::try_from(i128::from(amount) * i128::from(intent.transferred) / i128::from(intent.amount))
                .unwrap_or(0);
            let account = self.accounts.iter_mut().find(|a| a.id == destination).ok_or_else(|| missing("account"))?;
            if refuse_reversals || account.balance < share {
                let message = "Insufficient funds in the connected account's balance to reverse the transfer.";
                return Err(Reply::bad_request(Some("balance_insufficient"), message, None));
            }
            account.balance -= share;
            intent.reversed += share;
            reversal = Some(new_id("trr"));
        }
        if refund_fee {
            intent.fee_refunded +=
                i64::try_from(i128::from(amount) * i128::from(intent.application_fee) / i128::from(intent.amount))
                    .unwrap_or(0);
        }
        intent.refunded += amount;
        let refund = Refund {
            id: new_id("re"),
            amount,
            currency: intent.currency.clone(),
            payment_intent: intent.id.clone(),
            charge: intent.charge.clone(),
            balance_transaction: new_id("txn"),
            reason,
            metadata: string_map(form.get("metadata")),
            created: now(),
            transfer_reversal: reversal,
            failed: false,
        };
        let json = refund.to_json();
        self.refunds.push(refund);
        Ok(json)
    }

    fn create_account(&mut self, form: &Value) -> ApiResult {
        if text(form, "type").as_deref() != Some("express") {
            return Err(Reply::bad_request(None, "The fake Stripe opens only express accounts.", Some("type")));
        }
        let country = text(form, "country").ok_or_else(|| missing("country"))?;
        if country.len() != 2 {
            return Err(Reply::bad_request(None, "Country must be two letters.", Some("country")));
        }
        let account = ConnectedAccount {
            id: new_id("acct"),
            email: text(form, "email"),
            country,
            business_name: form.pointer("/business_profile/name").and_then(Value::as_str).map(str::to_owned),
            metadata: string_map(form.get("metadata")),
            created: now(),
            charges_enabled: false,
            payouts_enabled: false,
            details_submitted: false,
            return_url: None,
            balance: 0,
            currency: "eur".into(),
        };
        let json = account.to_json();
        self.accounts.push(account);
        Ok(json)
    }

    fn get_account(&self, id: &str) -> ApiResult {
        self.accounts
            .iter()
            .find(|a| a.id == id)
            .map(ConnectedAccount::to_json)
            .ok_or_else(|| no_such("account", id, "account"))
    }

    fn create_account_link(&mut self, form: &Value) -> ApiResult {
        let id = text(form, "account").ok_or_else(|| missing("account"))?;
        let return_url = text(form, "return_url").ok_or_else(|| missing("return_url"))?;
        text(form, "refresh_url").ok_or_else(|| missing("refresh_url"))?;
        if text(form, "type").as_deref() != Some("account_onboarding") {
            return Err(Reply::bad_request(None, "Only account_onboarding links.", Some("type")));
        }
        let base = self.public_base.clone();
        let account =
            self.accounts.iter_mut().find(|a| a.id == id).ok_or_else(|| no_such("account", &id, "account"))?;
        account.return_url = Some(return_url);
        let created = now();
        Ok(json!({
            "object": "account_link",
            "created": created,
            "expires_at": created + 300,
            "url": format!("{base}connect/onboard/{id}"),
        }))
    }

    /// `GET /v1/balance` for a connected account (the platform's own is not modelled).
    fn balance(&self, account_id: &str) -> Reply {
        match self.accounts.iter().find(|a| a.id == account_id) {
            Some(a) => Reply::ok(json!({
                "object": "balance",
                "livemode": false,
                "available": [{ "amount": a.balance, "currency": a.currency, "source_types": { "card": a.balance } }],
                "pending": [{ "amount": 0, "currency": a.currency }],
            })),
            None => no_such("account", account_id, "Stripe-Account"),
        }
    }

    /// The vendor finished onboarding: charges and payouts enabled. The account as now.
    fn onboard(&mut self, id: &str) -> Option<(Value, Option<String>)> {
        let account = self.accounts.iter_mut().find(|a| a.id == id)?;
        account.charges_enabled = true;
        account.payouts_enabled = true;
        account.details_submitted = true;
        Some((account.to_json(), account.return_url.clone()))
    }

    fn get_refund(&self, id: &str) -> ApiResult {
        self.refunds.iter().find(|r| r.id == id).map(Refund::to_json).ok_or_else(|| no_such("refund", id, "id"))
    }
}

// ---------------------------------------------------------------------------------------
// Shared: admission, auth, idempotency, webhooks
// ---------------------------------------------------------------------------------------

impl Shared {
    /// A poisoned lock only means a test panicked elsewhere; the data is still usable and
    /// the fake should not turn one failure into many.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, method: &str, path: &str, idempotency_key: Option<String>, body: &[u8]) {
        let request = (method.to_owned(), path.to_owned(), idempotency_key, String::from_utf8_lossy(body).into_owned());
        self.store().requests.push(request);
    }

    /// Applies the fault mode to one `/v1` request: `true` lets it through. A request
    /// that arrives while hanging is held until the mode changes (or the fake stops) and
    /// is then failed, never processed: its client has given up, and a late write would
    /// surprise a test that counts what was created.
    async fn admit(&self) -> bool {
        let mut mode = self.mode.subscribe();
        let current = *mode.borrow_and_update();
        match current {
            Mode::Normal | Mode::LoseAnswers => true,
            Mode::Fail500 => false,
            Mode::Hang => {
                self.hold_while_hanging(&mut mode).await;
                false
            }
        }
    }

    async fn hold_while_hanging(&self, mode: &mut watch::Receiver<Mode>) {
        loop {
            tokio::select! {
                changed = mode.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let still_hanging = *mode.borrow_and_update() == Mode::Hang;
                    if !still_hanging {
                        return;
                    }
                }
                _ = self.shutdown.cancelled() => return,
            }
        }
    }

    /// Only `Authorization: Bearer <secret key>` is accepted.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let presented =
            headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        presented == Some(self.secret_key.as_str())
    }

    /// Answers a call, applying Stripe's idempotency: a key seen before replays its first
    /// answer if the request is the same, and is refused if it differs. Lookup, execution
    /// and storage happen under one lock, so concurrent retries create one object.
    /// (Stripe ignores keys on GET; so does the fake.)
    fn serve(&self, method: &str, path: &str, idempotency_key: Option<&str>, body: &[u8]) -> Reply {
        let mut store = self.store();
        let Some(key) = idempotency_key.filter(|_| method == "POST") else {
            return store.dispatch(method, path, body);
        };
        let slot = (self.secret_key.clone(), key.to_owned());
        if let Some(first) = store.idempotency.get(&slot) {
            // Parameters, not bytes: Stripe compares what was asked, and clients (async-stripe's
            // metadata maps) may send the same parameters in another order.
            let same = first.method == method && first.path == path && same_params(&first.body, body);
            return if same { first.reply.replay() } else { Reply::idempotency_mismatch() };
        }
        let reply = store.dispatch(method, path, body);
        let stored =
            Stored { method: method.to_owned(), path: path.to_owned(), body: body.to_vec(), reply: reply.clone() };
        store.idempotency.insert(slot, stored);
        reply
    }

    fn complete_session(&self, id: &str) -> Option<Value> {
        self.store().complete(id, true).map(|s| event("checkout.session.completed", s))
    }

    fn expire_session(&self, id: &str) -> Option<Value> {
        self.store().expire(id).ok().map(|s| event("checkout.session.expired", s))
    }

    async fn deliver(&self, event: &Value) -> u16 {
        let body = event.to_string().into_bytes();
        let signature = sign(&self.webhook_secret, now(), &body);
        self.deliver_raw(&body, &signature).await
    }

    async fn deliver_raw(&self, body: &[u8], signature_header: &str) -> u16 {
        let url = self.store().webhook_url.clone();
        let Some(url) = url else { return 0 };
        post_webhook(&url, body, signature_header).await
    }
}

/// `http://host[:port]/path`, split for the connection, the `Host` header and the
/// request line.
struct WebhookTarget {
    authority: String,
    connect: String,
    path: String,
}

impl WebhookTarget {
    fn parse(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return None;
        }
        let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok());
        let connect = if has_port { authority.to_owned() } else { format!("{authority}:80") };
        Some(Self { authority: authority.to_owned(), connect, path: path.to_owned() })
    }

    fn request(&self, body: &[u8], signature_header: &str) -> Vec<u8> {
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n\
             Content-Type: application/json\r\nStripe-Signature: {signature_header}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            self.authority,
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        request
    }
}

/// One POST with the testkit's HTTP/1.1 client. That client panics when the receiver is
/// unreachable or hangs up, so the exchange runs in its own task: a panic or a timeout
/// becomes status 0 instead of taking down the fake.
async fn post_webhook(url: &str, body: &[u8], signature_header: &str) -> u16 {
    let Some(target) = WebhookTarget::parse(url) else { return 0 };
    let Ok(mut addrs) = tokio::net::lookup_host(target.connect.clone()).await else { return 0 };
    let Some(addr) = addrs.next() else { return 0 };
    let request = target.request(body, signature_header);
    let exchange = tokio::spawn(async move {
        let mut conn = http1::Conn::open(addr).await;
        conn.roundtrip(&request).await
    });
    let abort = exchange.abort_handle();
    match tokio::time::timeout(DELIVERY_TIMEOUT, exchange).await {
        Ok(Ok(status)) => status,
        Ok(Err(_panicked)) => 0,
        Err(_elapsed) => {
            abort.abort();
            0
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/{*path}", any(api))
        .route("/pay/{id}", get(checkout_page).post(pay))
        .route("/connect/onboard/{id}", get(onboarding_page))
        .route("/_fake/checkout/sessions/{id}/complete", post(control_complete))
        .route("/_fake/checkout/sessions/{id}/expire", post(control_expire))
        .route("/_fake/mode", post(control_mode))
        .with_state(shared)
}

/// Every `/v1` call: recorded, then fault mode, then the key, then idempotency and routing.
async fn api(State(shared): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    shared.record(method.as_str(), uri.path(), idempotency_key.clone(), &body);
    if !shared.admit().await {
        return Reply::api_error().into_response();
    }
    if !shared.authorized(&headers) {
        return Reply::unauthorized().into_response();
    }
    // A connected account's balance: the account is the `Stripe-Account` header's.
    if method == Method::GET && uri.path() == "/v1/balance" {
        let account = headers.get("stripe-account").and_then(|v| v.to_str().ok()).unwrap_or_default();
        return shared.store().balance(account).into_response();
    }
    // A GET's parameters are its query string, read as a POST's form body.
    let params = if method == Method::GET { Bytes::from(uri.query().unwrap_or_default().to_owned()) } else { body };
    let reply = shared.serve(method.as_str(), uri.path(), idempotency_key.as_deref(), &params);
    if *shared.mode.borrow() == Mode::LoseAnswers {
        return Reply::api_error().into_response();
    }
    reply.into_response()
}

/// What the hosted page shows about a session.
struct PageView {
    id: String,
    amount: String,
    status: SessionStatus,
    cancel_url: Option<String>,
}

/// `GET /pay/{id}`: the stand-in for Stripe's hosted checkout.
async fn checkout_page(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let view = shared.store().sessions.iter().find(|s| s.id == id).map(|s| PageView {
        id: s.id.clone(),
        amount: format_amount(s.amount_total, &s.currency),
        status: s.status,
        cancel_url: s.cancel_url.clone(),
    });
    match view {
        Some(view) => Html(page_html(&view)).into_response(),
        None => (StatusCode::NOT_FOUND, Html("<!doctype html><p>No such Checkout Session.</p>")).into_response(),
    }
}

fn page_html(view: &PageView) -> String {
    let id = escape_html(&view.id);
    let amount = escape_html(&view.amount);
    let action = if view.status == SessionStatus::Open {
        let cancel = view
            .cancel_url
            .as_deref()
            .map(|url| format!(r#" <a href="{}">Cancel</a>"#, escape_html(url)))
            .unwrap_or_default();
        format!(r#"<form method="post" action="/pay/{id}"><button type="submit">Pay {amount}</button>{cancel}</form>"#)
    } else {
        format!("<p>This Checkout Session is {}.</p>", view.status.as_str())
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Fake Stripe Checkout</title></head>\
         <body><h1>Fake Stripe Checkout</h1><p>Session <code>{id}</code></p>\
         <p>Total: <strong>{amount}</strong></p>{action}</body></html>"
    )
}

/// `POST /pay/{id}`: the customer paid. Completes the session, delivers the event and
/// sends the browser back to `success_url` (with `{CHECKOUT_SESSION_ID}` filled in, as
/// Stripe does).
async fn pay(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let status = shared.store().sessions.iter().find(|s| s.id == id).map(|s| s.status);
    match status {
        None => return (StatusCode::NOT_FOUND, "No such Checkout Session.").into_response(),
        Some(SessionStatus::Open) => {}
        Some(other) => {
            return (StatusCode::CONFLICT, format!("This Checkout Session is {}.", other.as_str())).into_response();
        }
    }
    let Some(event) = shared.complete_session(&id) else {
        return (StatusCode::CONFLICT, "This Checkout Session is no longer open.").into_response();
    };
    let delivered = shared.deliver(&event).await;
    match event.pointer("/data/object/success_url").and_then(Value::as_str) {
        Some(url) => Redirect::to(&url.replace("{CHECKOUT_SESSION_ID}", &id)).into_response(),
        None => (StatusCode::OK, format!("Payment complete; the webhook answered {delivered}.")).into_response(),
    }
}

/// `GET /connect/onboard/{id}`: the stand-in for Stripe's hosted onboarding. The vendor
/// is onboarded at once: the account is enabled, `account.updated` delivered, and the
/// browser sent to the last link's `return_url`.
async fn onboarding_page(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let onboarded = shared.store().onboard(&id);
    let Some((account, return_url)) = onboarded else {
        return (StatusCode::NOT_FOUND, "No such account.").into_response();
    };
    let delivered = shared.deliver(&event("account.updated", account)).await;
    match return_url {
        Some(url) => Redirect::to(&url).into_response(),
        None => (StatusCode::OK, format!("Onboarded; the webhook answered {delivered}.")).into_response(),
    }
}

/// `POST /_fake/checkout/sessions/{id}/complete`
async fn control_complete(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let event = shared.complete_session(&id);
    deliver_control_event(&shared, event).await
}

/// `POST /_fake/checkout/sessions/{id}/expire`
async fn control_expire(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let event = shared.expire_session(&id);
    deliver_control_event(&shared, event).await
}

/// Answers `{"delivered": <webhook status>, "event": <event>}`, or 404 when the session
/// is unknown or not open.
async fn deliver_control_event(shared: &Shared, event: Option<Value>) -> Response {
    let Some(event) = event else {
        let body = json!({ "error": "no open Checkout Session with this id" });
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    let delivered = shared.deliver(&event).await;
    Json(json!({ "delivered": delivered, "event": event })).into_response()
}

/// `POST /_fake/mode` with body `normal`, `fail` or `hang`.
async fn control_mode(State(shared): State<Arc<Shared>>, body: String) -> Response {
    match Mode::parse(&body) {
        Some(mode) => {
            shared.mode.send_replace(mode);
            Json(json!({ "mode": body.trim() })).into_response()
        }
        None => {
            let body = json!({ "error": "the body must be normal, fail or hang" });
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    }
}

/// `4500`, `eur` → `45.00 EUR` (two decimals; good enough for a test page).
fn format_amount(minor: i64, currency: &str) -> String {
    format!("{}.{:02} {}", minor / 100, minor % 100, currency.to_ascii_uppercase())
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http1::Conn;
    use sha2::Digest;

    const SESSION_FORM: &str = "line_items[0][price_data][currency]=eur\
        &line_items[0][price_data][unit_amount]=4500\
        &line_items[0][price_data][product_data][name]=Weekend\
        &line_items[0][quantity]=2\
        &metadata[reference]=ord_1\
        &mode=payment\
        &success_url=http%3A%2F%2Flocalhost%2Fok%3Fsession%3D%7BCHECKOUT_SESSION_ID%7D\
        &cancel_url=http%3A%2F%2Flocalhost%2Fcancel\
        &client_reference_id=ord_1\
        &expires_at=1767225600\
        &payment_intent_data[metadata][payment_id]=pay_1";

    /// HMAC as RFC 2104 defines it, written out over SHA-256, to check `sign` against
    /// something that is not the hmac crate.
    fn textbook_hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
        const BLOCK: usize = 64;
        let mut block_key = if key.len() > BLOCK { Sha256::digest(key).to_vec() } else { key.to_vec() };
        block_key.resize(BLOCK, 0);
        let ipad: Vec<u8> = block_key.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = block_key.iter().map(|b| b ^ 0x5c).collect();
        let inner = Sha256::new().chain_update(&ipad).chain_update(message).finalize();
        Sha256::new().chain_update(&opad).chain_update(inner).finalize().to_vec()
    }

    fn request(method: &str, path: &str, key: &str, idempotency_key: Option<&str>, body: &str) -> Vec<u8> {
        let idempotency = idempotency_key.map(|k| format!("Idempotency-Key: {k}\r\n")).unwrap_or_default();
        format!(
            "{method} {path} HTTP/1.1\r\nHost: fake-stripe\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\n{idempotency}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    async fn call(
        conn: &mut Conn,
        method: &str,
        path: &str,
        idempotency_key: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let (status, body) = conn.roundtrip_body(&request(method, path, DEV_SECRET_KEY, idempotency_key, body)).await;
        (status, serde_json::from_slice(&body).expect("a JSON body"))
    }

    #[test]
    fn the_mac_matches_the_rfc_4231_vector() {
        let mac = hmac_sha256_hex(b"Jefe", &[b"what do ya want ".as_slice(), b"for nothing?".as_slice()]);
        assert_eq!(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn a_signature_matches_a_vector_computed_elsewhere() {
        // python3: hmac.new(b"whsec_festival_test", b'1700000000.{"id":"evt_1","object":"event"}', sha256)
        let header = sign("whsec_festival_test", 1_700_000_000, br#"{"id":"evt_1","object":"event"}"#);
        assert_eq!(header, "t=1700000000,v1=0802920d3d4a65bcc9e5d37e6fcb440e4cbe41f3c810081d0f038955323cba9b");
    }

    #[test]
    fn a_signature_is_t_and_v1_over_the_timestamp_dot_body() {
        let secret = "whsec_festival_dev";
        let payload = br#"{"id":"evt_2","type":"checkout.session.completed"}"#;
        let header = sign(secret, 1_767_225_600, payload);

        let (t, v1) = header.split_once(',').expect("two parts");
        assert_eq!(t, "t=1767225600");
        let v1 = v1.strip_prefix("v1=").expect("a v1 scheme");
        assert_eq!(v1.len(), 64);
        assert!(v1.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "lowercase hex: {v1}");

        let signed = [b"1767225600.".as_slice(), payload.as_slice()].concat();
        assert_eq!(v1, hex(&textbook_hmac_sha256(secret.as_bytes(), &signed)));
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(&signed);
        let expected: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&v1[2 * i..2 * i + 2], 16).expect("hex")).collect();
        mac.verify_slice(&expected).expect("the hmac crate agrees");
    }

    #[test]
    fn the_form_parser_builds_nested_objects_and_ordered_arrays() {
        let mut body = String::from("metadata%5Breference%5D=ord%201&expand[]=payment_intent&expand[]=line_items");
        // Out of order and past 9, where text order ("10" < "2") would be wrong.
        for i in (0..12).rev() {
            body.push_str(&format!(
                "&line_items[{i}][price_data][unit_amount]={}&line_items[{i}][quantity]=1",
                i * 100
            ));
        }
        body.push_str("&payment_intent_data[metadata][payment_id]=pay_1&mode=payment");

        let form = parse_form(body.as_bytes());

        assert_eq!(form["metadata"], json!({ "reference": "ord 1" }));
        assert_eq!(form["expand"], json!(["payment_intent", "line_items"]));
        assert_eq!(form["payment_intent_data"]["metadata"]["payment_id"], "pay_1");
        assert_eq!(form["mode"], "payment");
        let items = form["line_items"].as_array().expect("an array");
        assert_eq!(items.len(), 12);
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item["price_data"]["unit_amount"], (i * 100).to_string());
        }
    }

    #[tokio::test]
    async fn a_session_is_created_with_the_totals_and_urls_of_the_request() {
        let fake = FakeStripe::start(FakeStripeConfig::default()).await.expect("starts");
        let mut conn = Conn::open(fake.addr()).await;

        let (status, session) = call(&mut conn, "POST", "/v1/checkout/sessions", None, SESSION_FORM).await;

        assert_eq!(status, 200, "{session}");
        let id = session["id"].as_str().expect("an id");
        assert!(id.starts_with("cs_test_"));
        assert_eq!(session["object"], "checkout.session");
        assert_eq!(session["amount_total"], 9000);
        assert_eq!(session["currency"], "eur");
        assert_eq!(session["status"], "open");
        assert_eq!(session["payment_status"], "unpaid");
        assert_eq!(session["expires_at"], 1_767_225_600);
        assert_eq!(session["metadata"], json!({ "reference": "ord_1" }));
        assert_eq!(session["payment_intent"], Value::Null);
        assert_eq!(session["url"], format!("{}pay/{id}", fake.base_url()));
        let (status, fetched) = call(&mut conn, "GET", &format!("/v1/checkout/sessions/{id}"), None, "").await;
        assert_eq!((status, &fetched), (200, &session));
    }

    #[tokio::test]
    async fn the_same_idempotency_key_and_body_replay_the_first_session() {
        let fake = FakeStripe::start(FakeStripeConfig::default()).await.expect("starts");
        let mut conn = Conn::open(fake.addr()).await;

        let (first_status, first) = call(&mut conn, "POST", "/v1/checkout/sessions", Some("key-1"), SESSION_FORM).await;
        let (second_status, second) =
            call(&mut conn, "POST", "/v1/checkout/sessions", Some("key-1"), SESSION_FORM).await;

        assert_eq!((first_status, second_status), (200, 200));
        assert_eq!(first, second);
        assert_eq!(fake.sessions().len(), 1);
        assert_eq!(fake.requests().len(), 2);
        assert_eq!(fake.requests()[1].2.as_deref(), Some("key-1"));
    }

    #[tokio::test]
    async fn the_same_idempotency_key_with_another_body_is_refused() {
        let fake = FakeStripe::start(FakeStripeConfig::default()).await.expect("starts");
        let mut conn = Conn::open(fake.addr()).await;
        let (status, _) = call(&mut conn, "POST", "/v1/checkout/sessions", Some("key-1"), SESSION_FORM).await;
        assert_eq!(status, 200);

        let other = SESSION_FORM.replace("unit_amount]=4500", "unit_amount]=4600");
        let (status, body) = call(&mut conn, "POST", "/v1/checkout/sessions", Some("key-1"), &other).await;

        assert_eq!(status, 400);
        assert_eq!(body, json!({ "error": { "type": "idempotency_error", "message": IDEMPOTENCY_MISMATCH } }));
        assert_eq!(fake.sessions().len(), 1, "nothing more was created");
    }

    #[tokio::test]
    async fn a_wrong_key_is_refused_and_still_recorded() {
        let fake = FakeStripe::start(FakeStripeConfig::default()).await.expect("starts");
        let mut conn = Conn::open(fake.addr()).await;

        let raw = request("POST", "/v1/checkout/sessions", "sk_test_wrong", None, SESSION_FORM);
        let (status, body) = conn.roundtrip_body(&raw).await;

        assert_eq!(status, 401);
        let body: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            body,
            json!({ "error": { "type": "invalid_request_error", "message": "Invalid API Key provided" } })
        );
        assert!(fake.sessions().is_empty());
        assert_eq!(fake.requests().len(), 1);
    }

    #[tokio::test]
    async fn refunds_never_exceed_what_was_captured() {
        let fake = FakeStripe::start(FakeStripeConfig::default()).await.expect("starts");
        let mut conn = Conn::open(fake.addr()).await;
        let (_, session) = call(&mut conn, "POST", "/v1/checkout/sessions", None, SESSION_FORM).await;
        let id = session["id"].as_str().expect("id");
        let completed = fake.complete_session(id).expect("an open session completes");
        assert_eq!(completed["type"], "checkout.session.completed");
        assert_eq!(completed["data"]["object"]["payment_status"], "paid");
        let intent =
            fake.session(id).expect("session")["payment_intent"].as_str().expect("a payment intent").to_owned();
        assert_eq!(fake.payment_intents()[0]["metadata"], json!({ "payment_id": "pay_1" }));

        let (status, first) = call(
            &mut conn,
            "POST",
            "/v1/refunds",
            None,
            &format!("payment_intent={intent}&amount=3000&reason=requested_by_customer&metadata[refund_id]=r1"),
        )
        .await;
        assert_eq!(status, 200, "{first}");
        assert_eq!((first["amount"].as_i64(), first["status"].as_str()), (Some(3000), Some("succeeded")));
        assert_eq!(first["metadata"], json!({ "refund_id": "r1" }));

        let (status, too_much) =
            call(&mut conn, "POST", "/v1/refunds", None, &format!("payment_intent={intent}&amount=6001")).await;
        assert_eq!(status, 400);
        assert_eq!(too_much["error"]["code"], "amount_too_large");

        let (status, rest) = call(&mut conn, "POST", "/v1/refunds", None, &format!("payment_intent={intent}")).await;
        assert_eq!(status, 200);
        assert_eq!(rest["amount"], 6000, "the default is what remains");

        let (status, again) =
            call(&mut conn, "POST", "/v1/refunds", None, &format!("payment_intent={intent}&amount=1")).await;
        assert_eq!(status, 400);
        assert_eq!(again["error"]["code"], "charge_already_refunded");

        let (status, unknown) = call(&mut conn, "POST", "/v1/refunds", None, "payment_intent=pi_unknown").await;
        assert_eq!(status, 404);
        assert_eq!(unknown["error"]["code"], "resource_missing");

        let refunded: i64 = fake.refunds().iter().filter_map(|r| r["amount"].as_i64()).sum();
        assert_eq!(refunded, 9000);
    }
}
