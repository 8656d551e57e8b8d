use std::time::Duration;

use festival_platform::auth::Role;
use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use festival_proto::ticketing::v1::ticketing_service_client::TicketingServiceClient;
pub use festival_testkit::{TestApp, TestIssuer, all_at_once, authed, code, outcome};
use festival_ticketing::Ticketing;
use tonic::transport::Channel;
use uuid::Uuid;

pub type Client = TicketingServiceClient<Channel>;

/// Ticketing under test on a manual clock, with the test kit's token issuer.
pub struct Env {
    pub issuer: TestIssuer,
    pub app: TestApp<Ticketing>,
}

pub async fn spawn() -> Env {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut festival_ticketing::Config)) -> Env {
    let issuer = TestIssuer::start().await;
    let identity_url = issuer.url();
    let app = TestApp::<Ticketing>::spawn_on_manual_clock(|c| {
        c.common.auth.identity_url = identity_url;
        c.holds.sweep_interval_ms = 50;
        adjust(c);
    })
    .await;
    Env { issuer, app }
}

/// A festival as ticketing knows it, and its organizer's token.
pub struct Festival {
    pub id: Uuid,
    pub organizer: String,
}

impl Env {
    pub fn client(&self) -> Client {
        TicketingServiceClient::new(self.app.channel.clone())
    }

    /// A festival in `status`, announced as program does, once ticketing has it.
    pub async fn festival(&self, status: program::FestivalStatus) -> Festival {
        let id = Uuid::now_v7();
        self.announce(id, status, 1).await;
        let (organizer_id, _) = self.issuer.user();
        Festival { id, organizer: self.issuer.member(organizer_id, id, Role::Organizer) }
    }

    /// Publishes a festival's facts (as program's `festival.status_changed`) and waits
    /// until ticketing holds that version.
    pub async fn announce(&self, id: Uuid, status: program::FestivalStatus, version: i64) {
        let facts = program::FestivalFacts {
            name: "Festival".into(),
            time_zone: "Europe/Paris".into(),
            currency: "EUR".into(),
            status: status as i32,
            version,
            ..Default::default()
        };
        let event = program::FestivalStatusChanged {
            festival_id: id.to_string(),
            to: status as i32,
            facts: Some(facts),
            ..Default::default()
        };
        festival_testkit::publish_event(&self.app.naming(), &event).await;
        let pool = self.app.pool.clone();
        let seen = festival_testkit::eventually(Duration::from_secs(15), || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, bool>("select exists(select 1 from festivals where id = $1 and version >= $2)")
                    .bind(id)
                    .bind(version)
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(false)
            }
        })
        .await;
        assert!(seen, "ticketing never applied the festival's facts");
    }

    /// A member's token for `role` at the festival.
    pub fn member(&self, festival: &Festival, role: Role) -> String {
        let (user_id, _) = self.issuer.user();
        self.issuer.member(user_id, festival.id, role)
    }

    /// A category (price in minor units) in its own quota of `size`.
    pub async fn category(&self, festival: &Festival, name: &str, price_minor: i64, size: i64) -> pb::Category {
        let request = pb::CreateCategoryRequest { name: name.into(), price_minor, ..Default::default() };
        self.category_from(festival, request, size).await
    }

    /// The category `request` describes (its festival filled in), in its own quota of
    /// `size` named "<name> capacity".
    pub async fn category_from(
        &self,
        festival: &Festival,
        request: pb::CreateCategoryRequest,
        size: i64,
    ) -> pb::Category {
        let mut c = self.client();
        let request = pb::CreateCategoryRequest { festival_id: festival.id.to_string(), ..request };
        let category = c.create_category(authed(request, &festival.organizer)).await.expect("category").into_inner();
        c.create_quota(authed(
            pb::CreateQuotaRequest {
                festival_id: festival.id.to_string(),
                name: format!("{} capacity", category.name),
                size,
                category_ids: vec![category.id.clone()],
            },
            &festival.organizer,
        ))
        .await
        .expect("quota");
        category
    }

    /// Cancels an order as its festival's organiser.
    pub async fn cancel(&self, festival: &Festival, order_id: &str) {
        let request = pb::CancelOrderRequest {
            order_id: order_id.into(),
            reason: String::new(),
            idempotency_key: format!("cancel-{order_id}"),
        };
        self.client().cancel_order(authed(request, &festival.organizer)).await.expect("cancel");
    }

    /// A new fan who reserved and checked out one free ticket of `category`: (their
    /// token, the order).
    pub async fn free_ticket(&self, festival: &Festival, category: &str) -> (String, pb::Order) {
        let (mut c, (_, fan)) = (self.client(), self.issuer.user());
        let hold = c.create_hold(authed(hold_request(festival, &[(category, 1)]), &fan)).await.expect("hold");
        let order = c.checkout_hold(authed(checkout(&hold.into_inner()), &fan)).await.expect("free order");
        (fan, order.into_inner())
    }

    /// Waits (at most 10 s, the worker sweeping on the test's clock) until the festival's
    /// quotas hold `held` tickets in all; whether they did.
    pub async fn held_becomes(&self, festival: &Festival, held: i64) -> bool {
        let (pool, id) = (self.app.pool.clone(), festival.id);
        festival_testkit::eventually(Duration::from_secs(10), || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("select coalesce(sum(held), 0)::bigint from quotas where festival_id = $1")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(-1)
                    == held
            }
        })
        .await
    }

    /// `token`'s one waiting-list entry.
    pub async fn waiting_entry(&self, token: &str) -> pb::WaitingListEntry {
        let mut entries = self
            .client()
            .list_my_waiting_list(authed(pb::ListMyWaitingListRequest::default(), token))
            .await
            .expect("waiting-list entries")
            .into_inner()
            .entries;
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.remove(0)
    }

    /// Waits (at most 15 s) until the worker has moved `token`'s entry to `status`.
    pub async fn entry_becomes(&self, token: &str, status: pb::WaitingStatus) -> pb::WaitingListEntry {
        let reached = festival_testkit::eventually(Duration::from_secs(15), || async {
            self.waiting_entry(token).await.status == status as i32
        })
        .await;
        let entry = self.waiting_entry(token).await;
        assert!(reached, "never {status:?}: {entry:?}");
        entry
    }

    /// `(size, held, sold)` of the festival's quotas, by name.
    pub async fn quotas(&self, festival: &Festival) -> Vec<(String, i64, i64, i64)> {
        sqlx::query_as("select name, size, held, sold from quotas where festival_id = $1 order by name")
            .bind(festival.id)
            .fetch_all(&self.app.pool)
            .await
            .expect("quotas")
    }
}

pub fn hold_request(festival: &Festival, items: &[(&str, i32)]) -> pb::CreateHoldRequest {
    pb::CreateHoldRequest {
        festival_id: festival.id.to_string(),
        items: items
            .iter()
            .map(|(category, quantity)| pb::HoldItem {
                category_id: (*category).to_owned(),
                quantity: *quantity,
                ..Default::default()
            })
            .collect(),
        idempotency_key: format!("hold-{}", Uuid::now_v7()),
        promo_codes: Vec::new(),
        for_ticket_id: String::new(),
        access_code: String::new(),
        voucher_code: String::new(),
    }
}

pub fn checkout(hold: &pb::Hold) -> pb::CheckoutHoldRequest {
    pb::CheckoutHoldRequest { hold_id: hold.id.clone(), idempotency_key: format!("checkout-{}", Uuid::now_v7()) }
}

pub fn box_office(festival: &Festival, category: &str, quantity: i32) -> pb::CreateOrderRequest {
    pb::CreateOrderRequest {
        festival_id: festival.id.to_string(),
        category_id: category.into(),
        quantity,
        payment_method: pb::PaymentMethod::Cash as i32,
        idempotency_key: format!("order-{}", Uuid::now_v7()),
        ..Default::default()
    }
}

/// `outcome`, except that the negative control, whose unordered, unguarded writes can wait
/// on each other past the call's deadline, tallies a status without a code by its gRPC
/// code instead of stopping (the normal build still requires only holds and sold-outs).
pub fn tally<T>(result: Result<T, tonic::Status>) -> String {
    match result {
        Err(status) if cfg!(feature = "race-hooks") && festival_platform::error::reason(&status).is_none() => {
            format!("{:?}", status.code())
        }
        other => outcome(other),
    }
}

/// A paired scanner as a test drives it: its own key, and the device token identity
/// would issue it.
pub struct Scanner {
    pub id: Uuid,
    pub key: ed25519_dalek::SigningKey,
    pub token: String,
}

impl Env {
    /// A device paired to `festival` at `gate`.
    pub fn scanner(&self, festival: &Festival, gate: &str, level: festival_platform::auth::DeviceLevel) -> Scanner {
        let id = Uuid::now_v7();
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let token = self.issuer.device(id, festival.id, gate, level, &key);
        Scanner { id, key, token }
    }
}

impl Scanner {
    /// An upload of `scans` under `nonce`, signed with the device's key.
    pub fn upload(&self, festival: &Festival, nonce: &str, scans: Vec<pb::OfflineScan>) -> pb::UploadScansRequest {
        use ed25519_dalek::Signer as _;
        use prost::Message as _;
        let batch = pb::ScanBatch {
            festival_id: festival.id.to_string(),
            device_id: self.id.to_string(),
            nonce: nonce.into(),
            scans,
        }
        .encode_to_vec();
        let signature = self.key.sign(&batch).to_bytes();
        pb::UploadScansRequest {
            festival_id: festival.id.to_string(),
            signature: base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature),
            batch,
        }
    }
}

/// An entry scanned offline at `at`, which the scanner accepted.
pub fn offline_entry(credential: &str, at: chrono::DateTime<chrono::Utc>) -> pb::OfflineScan {
    pb::OfflineScan {
        credential: credential.into(),
        list_id: String::new(),
        direction: pb::ScanDirection::Entry as i32,
        scan_time: Some(festival_platform::convert::timestamp(at)),
        accepted: true,
    }
}
