//! `scripts/bench identity`: logins per second and latency at concurrency 8 through the
//! real gRPC server (PostgreSQL, argon2id), sign-ins with a second factor (Login, then
//! VerifyMfa with a TOTP code), sign-ins with Google against the test kit's fake
//! provider (start, consent, complete: a code exchange and an RS256 ID token checked),
//! access-token verifications and staff-badge checks (a gate's offline check) per second
//! on one core.
//! Prints a Markdown table. Not a test: no thresholds.

use std::time::{Duration, Instant};

use festival_identity::Identity;
use festival_platform::auth::{IdentityKeySource, Verifier};
use festival_proto::identity::v1 as pb;
use festival_proto::identity::v1::identity_service_client::IdentityServiceClient;
use festival_testkit::TestApp;

const CONCURRENCY: usize = 8;
const LOGIN_DURATION: Duration = Duration::from_secs(15);
const VERIFY_DURATION: Duration = Duration::from_secs(5);
const PASSWORD: &str = "correct horse battery staple";
/// Accounts with a second factor per worker: a TOTP code signs in once, so each account
/// signs in once.
const MFA_ACCOUNTS_PER_WORKER: usize = 60;
const PROVIDER_DURATION: Duration = Duration::from_secs(10);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (app, tokens) = rt.block_on(async {
        let app = TestApp::<Identity>::spawn().await;
        let client = IdentityServiceClient::new(app.channel.clone());
        let mut emails = Vec::new();
        for i in 0..CONCURRENCY {
            let email = format!("bench-{i}-{}@example.org", app.name);
            client
                .clone()
                .register(pb::RegisterRequest { email: email.clone(), password: PASSWORD.into(), ..Default::default() })
                .await?;
            emails.push(email);
        }

        // Warm up: one login per user (pool connections, signer cache).
        for email in &emails {
            client.clone().login(pb::LoginRequest { email: email.clone(), password: PASSWORD.into(), ..Default::default() }).await?;
        }

        let started = Instant::now();
        let workers = emails.into_iter().map(|email| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut tokens = Vec::new();
                while started.elapsed() < LOGIN_DURATION {
                    let t = Instant::now();
                    let pair = client
                        .login(pb::LoginRequest { email: email.clone(), password: PASSWORD.into(), ..Default::default() })
                        .await
                        .expect("login");
                    latencies.push(t.elapsed());
                    tokens.push(pair.into_inner().access_token);
                }
                (latencies, tokens)
            })
        });
        let mut latencies = Vec::new();
        let mut tokens = Vec::new();
        for w in futures::future::join_all(workers).await {
            let (l, t) = w?;
            latencies.extend(l);
            tokens.extend(t);
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let cfg = &app.config.password;
        println!("\n### identity benchmark\n");
        println!(
            "argon2id: m = {} KiB, t = {}, p = {}; {} CPU cores; login = gRPC Login through the real server (PostgreSQL session + refresh token + EdDSA access token)\n",
            cfg.memory_kib,
            cfg.iterations,
            cfg.parallelism,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("| measurement | value |");
        println!("|---|---|");
        println!("| logins/s at concurrency {CONCURRENCY} | {:.1} ({} logins in {:.1} s) |", latencies.len() as f64 / elapsed.as_secs_f64(), latencies.len(), elapsed.as_secs_f64());
        println!("| login p50 | {} |", ms(percentile(&latencies, 0.50)));
        println!("| login p99 | {} |", ms(percentile(&latencies, 0.99)));
        mfa_sign_ins(&client, &app.name).await?;
        anyhow::Ok((app, tokens))
    })?;

    // Verification on one core: a current-thread runtime, keys fetched over gRPC. Each
    // distinct token is checked in full once (Ed25519) and remembered after: "first
    // checks" verifies every token of the login run with a new verifier per pass,
    // "repeated" one token again and again, as a scanner sends it with every scan.
    let addr = app.addr;
    let auth = app.config.common.auth.clone();
    let (first, repeated) = std::thread::spawn(move || -> anyhow::Result<(f64, f64)> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(async {
            let url = format!("http://{addr}");
            let fail = |e: festival_platform::ApiError| anyhow::anyhow!("{e}");
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < VERIFY_DURATION {
                let verifier = Verifier::new(&auth, IdentityKeySource::new(&url)?);
                for token in &tokens {
                    verifier.verify(token).await.map_err(fail)?;
                }
                n += tokens.len() as u64;
            }
            let first = n as f64 / started.elapsed().as_secs_f64();
            let verifier = Verifier::new(&auth, IdentityKeySource::new(&url)?);
            let token = tokens.last().ok_or_else(|| anyhow::anyhow!("no tokens"))?;
            verifier.verify(token).await.map_err(fail)?;
            let started = Instant::now();
            let mut n = 0u64;
            while started.elapsed() < VERIFY_DURATION {
                for _ in 0..100 {
                    verifier.verify(token).await.map_err(fail)?;
                }
                n += 100;
            }
            Ok((first, n as f64 / started.elapsed().as_secs_f64()))
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("verifier thread panicked"))??;
    println!("| access-token verifications/s, one core, first checks (Ed25519) | {first:.0} |");
    println!("| access-token verifications/s, one core, one token repeated (remembered) | {repeated:.0} |");
    let badges =
        std::thread::spawn(badge_checks_per_sec).join().map_err(|_| anyhow::anyhow!("badge thread panicked"))?;
    println!(
        "| staff-badge checks/s, one core (offline: signature with precomputed tables, revocation, end, zone) | {badges:.0} |"
    );
    rt.block_on(app.stop());
    rt.block_on(provider_sign_ins())?;
    Ok(())
}

/// Sign-ins with Google at concurrency 8, each worker its own provider account: the
/// browser's visit to the fake's consent page, then CompleteOAuthLogin (the code
/// exchanged over HTTP with its PKCE verifier, the RS256 ID token checked, a session).
async fn provider_sign_ins() -> anyhow::Result<()> {
    use festival_testkit::fake_oauth::{Account, Client, FakeOAuth};
    const REDIRECT: &str = "https://fest.example/oauth/google";
    let fake = FakeOAuth::start(Client {
        client_id: "bench".into(),
        client_secret: "bench-secret".into(),
        redirect_uri: REDIRECT.into(),
    })
    .await;
    let (base, issuer) = (fake.base_url(), fake.issuer());
    let app = TestApp::<Identity>::spawn_with(|c| {
        let google = &mut c.oauth.google;
        google.client_id = "bench".into();
        google.client_secret = festival_platform::config::Secret::new("bench-secret");
        google.redirect_uri = REDIRECT.into();
        google.authorize_url = format!("{base}/google/authorize");
        google.token_url = format!("{base}/google/token");
        google.jwks_url = format!("{base}/google/jwks");
        google.issuer = issuer;
    })
    .await;
    let client = IdentityServiceClient::new(app.channel.clone());
    let fake = std::sync::Arc::new(fake);
    let mut emails = Vec::new();
    for i in 0..CONCURRENCY {
        let email = format!("bench-google-{i}-{}@example.org", app.name);
        fake.add_account(Account {
            subject: format!("{}", 100_000 + i),
            email: email.clone(),
            email_verified: true,
            name: format!("Bench {i}"),
        });
        // Warm up: the account is made, the provider's keys fetched.
        google_sign_in(client.clone(), &email, &fake).await?;
        emails.push(email);
    }
    let started = Instant::now();
    let workers = emails.into_iter().map(|email| {
        let (client, fake) = (client.clone(), fake.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < PROVIDER_DURATION {
                let t = Instant::now();
                google_sign_in(client.clone(), &email, &fake).await.expect("provider sign-in");
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let rate =
        format!("sign-ins with Google/s at concurrency {CONCURRENCY} (start, consent at the local fake, complete)");
    report(workers, started, &rate, "sign-in with Google").await?;
    app.stop().await;
    Ok(())
}

/// One sign-in with Google: start, the browser's consent as `email`, complete.
async fn google_sign_in(
    mut c: IdentityServiceClient<tonic::transport::Channel>,
    email: &str,
    fake: &festival_testkit::fake_oauth::FakeOAuth,
) -> anyhow::Result<()> {
    let start = pb::StartOAuthLoginRequest { provider: "google".into(), ..Default::default() };
    let flow = c.start_o_auth_login(start).await?.into_inner();
    let back = fake.consent(&flow.authorization_url, email).await.map_err(|s| anyhow::anyhow!("consent: {s}"))?;
    let request = pb::CompleteOAuthLoginRequest {
        provider: "google".into(),
        state: flow.state,
        code: back.code,
        binding: flow.binding,
    };
    let pair = c.complete_o_auth_login(request).await?.into_inner();
    anyhow::ensure!(!pair.access_token.is_empty(), "no tokens");
    Ok(())
}

/// Sign-ins with a second factor at concurrency 8: Login (password, answers a challenge)
/// then VerifyMfa (a TOTP code), each account once.
async fn mfa_sign_ins(client: &IdentityServiceClient<tonic::transport::Channel>, run: &str) -> anyhow::Result<()> {
    use festival_identity::domain::mfa;
    let mut accounts = Vec::new();
    for i in 0..CONCURRENCY * MFA_ACCOUNTS_PER_WORKER {
        let mut c = client.clone();
        let email = format!("bench-mfa-{i}-{run}@example.org");
        c.register(pb::RegisterRequest { email: email.clone(), password: PASSWORD.into(), ..Default::default() })
            .await?;
        let token = c
            .login(pb::LoginRequest { email: email.clone(), password: PASSWORD.into(), ..Default::default() })
            .await?
            .into_inner()
            .access_token;
        let mut enrol = tonic::Request::new(pb::EnrolMfaRequest { password: PASSWORD.into() });
        enrol.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
        let secret = mfa::from_base32(&c.enrol_mfa(enrol).await?.into_inner().secret).expect("base32");
        let code = mfa::format_code(mfa::code_at_step(&secret, mfa::step_at(chrono::Utc::now())));
        let mut confirm = tonic::Request::new(pb::ConfirmMfaRequest { code });
        confirm.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
        c.confirm_mfa(confirm).await?;
        accounts.push((email, secret));
    }
    let started = Instant::now();
    let workers = accounts.chunks(MFA_ACCOUNTS_PER_WORKER).map(|chunk| {
        let mut c = client.clone();
        let chunk = chunk.to_vec();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            for (email, secret) in chunk {
                let t = Instant::now();
                let challenge = c
                    .login(pb::LoginRequest { email, password: PASSWORD.into(), ..Default::default() })
                    .await
                    .expect("login")
                    .into_inner()
                    .mfa_challenge;
                // The next step's code: accepted (one step of drift either side) and
                // never the one enrolment spent.
                let code = mfa::format_code(mfa::code_at_step(&secret, mfa::step_at(chrono::Utc::now()) + 1));
                let pair = c.verify_mfa(pb::VerifyMfaRequest { mfa_challenge: challenge, code }).await.expect("verify");
                assert!(!pair.into_inner().access_token.is_empty());
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let rate = format!("sign-ins with a second factor/s at concurrency {CONCURRENCY} (Login + VerifyMfa)");
    report(workers, started, &rate, "sign-in with a second factor").await
}

/// Joins the workers' latencies and prints the rate row and the p50 and p99 rows.
async fn report(
    workers: impl IntoIterator<Item = tokio::task::JoinHandle<Vec<Duration>>>,
    started: Instant,
    rate: &str,
    one: &str,
) -> anyhow::Result<()> {
    let mut latencies = Vec::new();
    for w in futures::future::join_all(workers).await {
        latencies.extend(w?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let count = latencies.len();
    let secs = elapsed.as_secs_f64();
    println!("| {rate} | {:.1} ({count} in {secs:.1} s) |", count as f64 / secs);
    println!("| {one} p50 | {} |", ms(percentile(&latencies, 0.50)));
    println!("| {one} p99 | {} |", ms(percentile(&latencies, 0.99)));
    Ok(())
}

/// A gate's offline badge check on one core: a security badge with three zones, checked
/// against the festival's keys (precomputed, as a gate keeps them), a revocation list of
/// 1,000 badges, its end and the gate's zone.
fn badge_checks_per_sec() -> f64 {
    use festival_gate::badge::BadgeGate;
    use festival_platform::credential::badge::BadgeClaims;
    let festival = uuid::Uuid::now_v7();
    let issuer =
        festival_platform::credential::Issuer::new(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng));
    let now = chrono::Utc::now().timestamp() as u32;
    let claims = BadgeClaims {
        festival,
        badge: uuid::Uuid::now_v7(),
        issued_at: now,
        valid_until: now + 86_400,
        role: festival_platform::auth::Role::Security,
        zones: vec!["backstage".into(), "north-gate".into(), "camping".into()],
    };
    let badge = issuer.issue_badge(&claims).expect("badge");
    let keys = pb::BadgeKeys {
        keys: vec![pb::BadgeKey {
            kid: festival_platform::credential::kid_text(issuer.key_id()),
            public_key: base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                issuer.verifying_key().to_bytes(),
            ),
            create_time: None,
        }],
    };
    let revoked =
        pb::ListRevokedBadgesResponse { badge_ids: (0..1_000).map(|_| uuid::Uuid::now_v7().to_string()).collect() };
    let gate = BadgeGate::new(festival, "backstage", &keys, &revoked).expect("gate");
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < VERIFY_DURATION {
        for _ in 0..100 {
            gate.check(&badge, now).expect("opens");
        }
        n += 100;
    }
    n as f64 / started.elapsed().as_secs_f64()
}
