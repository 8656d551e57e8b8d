use std::time::Duration;

use festival_cashless::Cashless;
use festival_platform::auth::{DeviceLevel, Role};
use festival_platform::nfc::{self, BandKey, SoftBand, Uid};
use festival_proto::cashless::v1 as pb;
use festival_proto::cashless::v1::cashless_service_client::CashlessServiceClient;
use festival_proto::program::v1 as program;
pub use festival_testkit::{TestApp, TestIssuer, all_at_once, authed, code, eventually};
use tonic::transport::Channel;
use uuid::Uuid;

pub type Client = CashlessServiceClient<Channel>;

/// Cashless under test on a manual clock, with the test kit's token issuer.
pub struct Env {
    pub issuer: TestIssuer,
    pub app: TestApp<Cashless>,
}

pub async fn spawn() -> Env {
    festival_testkit::init_tracing();
    let issuer = TestIssuer::start().await;
    let identity_url = issuer.url();
    let app = TestApp::<Cashless>::spawn_on_manual_clock(|c| {
        c.common.auth.identity_url = identity_url;
        c.journal.chain_interval_ms = 50;
        c.live.watch_interval_ms = 100;
    })
    .await;
    Env { issuer, app }
}

/// A festival cashless knows, with an organiser and a cashier.
pub struct Festival {
    pub id: Uuid,
    pub organizer: String,
    pub cashier: String,
    pub cashier_id: Uuid,
}

/// A terminal of one vendor: a paired device's token.
pub struct Terminal {
    pub device_id: Uuid,
    pub vendor_id: Uuid,
    pub token: String,
}

/// A wristband bound to its holder's wallet.
pub struct Band {
    pub soft: SoftBand,
    pub wallet_id: Uuid,
    pub holder: String,
    pub holder_id: Uuid,
}

impl Band {
    pub fn uid(&self) -> String {
        self.soft.uid.to_hex()
    }
}

impl Env {
    pub fn client(&self) -> Client {
        CashlessServiceClient::new(self.app.channel.clone())
    }

    /// A PUBLISHED festival (EUR, Europe/Paris), once cashless holds its facts.
    pub async fn festival(&self) -> Festival {
        let id = Uuid::now_v7();
        festival_testkit::announce_festival(&self.app.naming(), id, "Festival", program::FestivalStatus::Published)
            .await;
        let (organizer_id, _) = self.issuer.user();
        let organizer = self.issuer.member(organizer_id, id, Role::Organizer);
        let (cashier_id, _) = self.issuer.user();
        let cashier = self.issuer.member(cashier_id, id, Role::Cashier);
        let client = self.client();
        let known = eventually(Duration::from_secs(10), || {
            let mut client = client.clone();
            let organizer = organizer.clone();
            async move {
                client
                    .get_settings(authed(pb::GetSettingsRequest { festival_id: id.to_string() }, &organizer))
                    .await
                    .is_ok()
            }
        })
        .await;
        assert!(known, "cashless never heard of the festival");
        // The cashier's desk is open: cash top-ups need a shift.
        let shift = pb::OpenShiftRequest {
            festival_id: id.to_string(),
            float: Vec::new(),
            idempotency_key: Uuid::now_v7().to_string(),
        };
        self.client().open_shift(authed(shift, &cashier)).await.expect("open the cashier's shift");
        Festival { id, organizer, cashier, cashier_id }
    }

    /// Program says the festival is over (COMPLETED); waits until cashless knows.
    pub async fn complete(&self, f: &Festival) {
        festival_testkit::announce_festival_version(
            &self.app.naming(),
            f.id,
            "Festival",
            program::FestivalStatus::Completed,
            2,
        )
        .await;
        let known = eventually(Duration::from_secs(10), || async {
            sqlx::query_scalar::<_, String>("select status from festivals where id = $1")
                .bind(f.id)
                .fetch_one(&self.app.pool)
                .await
                .is_ok_and(|s| s == "COMPLETED")
        })
        .await;
        assert!(known, "cashless never heard the festival was over");
    }

    pub async fn settings(&self, f: &Festival, change: impl FnOnce(&mut pb::Settings)) -> pb::Settings {
        let mut client = self.client();
        let mut s = client
            .get_settings(authed(pb::GetSettingsRequest { festival_id: f.id.to_string() }, &f.organizer))
            .await
            .expect("settings")
            .into_inner();
        change(&mut s);
        client
            .update_settings(authed(
                pb::UpdateSettingsRequest { festival_id: f.id.to_string(), settings: Some(s) },
                &f.organizer,
            ))
            .await
            .expect("update settings")
            .into_inner()
    }

    /// A device as identity pairs one, registered as a terminal of a new vendor.
    pub async fn terminal(&self, f: &Festival) -> Terminal {
        self.device(f, Uuid::now_v7(), DeviceLevel::Steward).await
    }

    /// A device at `level`, registered as a terminal of `vendor_id`.
    pub async fn device(&self, f: &Festival, vendor_id: Uuid, level: DeviceLevel) -> Terminal {
        let device_id = Uuid::now_v7();
        let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
        let token = self.issuer.device(device_id, f.id, "bar", level, &key);
        self.client()
            .register_terminal(authed(
                pb::RegisterTerminalRequest {
                    festival_id: f.id.to_string(),
                    device_id: device_id.to_string(),
                    vendor_id: vendor_id.to_string(),
                    label: "Main bar".into(),
                },
                &f.organizer,
            ))
            .await
            .expect("register terminal");
        Terminal { device_id, vendor_id, token }
    }

    /// A new band, personalised with the key the service gives an encoder.
    pub async fn new_band(&self, f: &Festival) -> SoftBand {
        let uid = Uid::random();
        let key = self
            .client()
            .provision_wristband(authed(
                pb::ProvisionWristbandRequest { festival_id: f.id.to_string(), uid: uid.to_hex() },
                &f.organizer,
            ))
            .await
            .expect("provision")
            .into_inner();
        let bytes: Vec<u8> =
            (0..16).map(|i| u8::from_str_radix(&key.key_hex[2 * i..2 * i + 2], 16).expect("hex")).collect();
        SoftBand::personalised(uid, BandKey::from_bytes(&bytes).expect("key"))
    }

    /// A holder's wallet with a band bound, topped up with `balance` at the cashier's.
    pub async fn band(&self, f: &Festival, balance: i64) -> Band {
        let (holder_id, holder) = self.issuer.user();
        let mut client = self.client();
        let wallet = client
            .open_wallet(authed(pb::OpenWalletRequest { festival_id: f.id.to_string() }, &holder))
            .await
            .expect("open wallet")
            .into_inner();
        let soft = self.new_band(f).await;
        client.bind_wristband(authed(bind(f, &wallet.id, &soft), &holder)).await.expect("bind");
        let band = Band { soft, wallet_id: Uuid::parse_str(&wallet.id).expect("id"), holder, holder_id };
        if balance > 0 {
            self.top_up(f, &band, balance).await.expect("top up");
        }
        band
    }

    pub async fn top_up(&self, f: &Festival, band: &Band, amount: i64) -> Result<pb::Transaction, tonic::Status> {
        self.client()
            .top_up(authed(
                pb::TopUpRequest {
                    festival_id: f.id.to_string(),
                    uid: band.uid(),
                    amount_minor: amount,
                    currency: "EUR".into(),
                    method: pb::TopUpMethod::Cash as i32,
                    idempotency_key: Uuid::now_v7().to_string(),
                    card_reference: String::new(),
                },
                &f.cashier,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn wallet(&self, band: &Band) -> pb::Wallet {
        self.client()
            .get_wallet(authed(pb::GetWalletRequest { wallet_id: band.wallet_id.to_string() }, &band.holder))
            .await
            .expect("wallet")
            .into_inner()
    }

    /// Fails the test unless the festival's ledger and journal verify, and returns the
    /// report once every transaction is chained.
    pub async fn assert_ledger(&self, f: &Festival) -> pb::LedgerReport {
        // The journal worker chains within its interval; wait for it (at most 10 s).
        let mut last = None;
        for _ in 0..200 {
            let report = self
                .client()
                .verify_ledger(authed(pb::VerifyLedgerRequest { festival_id: f.id.to_string() }, &f.organizer))
                .await
                .expect("verify")
                .into_inner();
            let settled = report.chained == report.transactions;
            last = Some(report);
            if settled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let settled = last.as_ref().is_some_and(|r| r.chained == r.transactions);
        let report = last.expect("a report");
        assert!(settled, "the journal never caught up: {report:?}");
        assert!(report.ok, "the ledger does not verify: {:?}", report.problems);
        report
    }
}

/// Binding `band` to `wallet_id`, tapped to prove it is in hand.
pub fn bind(f: &Festival, wallet_id: &str, band: &SoftBand) -> pb::BindWristbandRequest {
    let wallet = Uuid::parse_str(wallet_id).expect("wallet id");
    let challenge = nfc::bind_challenge(f.id.as_bytes(), wallet.as_bytes());
    pb::BindWristbandRequest {
        wallet_id: wallet_id.to_owned(),
        uid: band.uid.to_hex(),
        tap_proof: band.tap(&challenge).iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// A charge of `amount` by `terminal`, with the band's proof over exactly this charge.
pub fn charge(f: &Festival, terminal: &Terminal, band: &SoftBand, amount: i64, key: &str) -> pb::ChargeRequest {
    let challenge = nfc::challenge(f.id.as_bytes(), terminal.device_id.as_bytes(), key, amount, "EUR");
    pb::ChargeRequest {
        festival_id: f.id.to_string(),
        uid: band.uid.to_hex(),
        amount_minor: amount,
        currency: "EUR".into(),
        idempotency_key: key.into(),
        tap_proof: band.tap(&challenge).iter().map(|b| format!("{b:02x}")).collect(),
        min_age: 0,
    }
}

/// Charges and returns the outcome's code ("OK" on success).
pub async fn charge_code(env: &Env, terminal: &Terminal, req: pb::ChargeRequest) -> String {
    festival_testkit::outcome(env.client().charge(authed(req, &terminal.token)).await)
}

/// A replacement of `old` by `new` on `wallet_id`, the new band tapped.
pub fn replace(
    f: &Festival,
    old: &SoftBand,
    wallet_id: Uuid,
    new: &SoftBand,
    key: &str,
) -> pb::ReplaceWristbandRequest {
    let tapped = bind(f, &wallet_id.to_string(), new);
    pb::ReplaceWristbandRequest {
        festival_id: f.id.to_string(),
        old_uid: old.uid.to_hex(),
        new_uid: new.uid.to_hex(),
        new_tap_proof: tapped.tap_proof,
        idempotency_key: key.into(),
    }
}
