//! Sign-in throttling in identity itself, over direct gRPC (no gateway in front).

use std::time::Duration;

use festival_platform::throttle::Policy;
use festival_proto::identity::v1 as pb;
use tonic_types::StatusExt;

use crate::helpers::*;

const STRICT: Policy = Policy { free_attempts: 3, first_lock_secs: 2, max_lock_secs: 60, window_secs: 3600 };
const LENIENT: Policy = Policy { free_attempts: 1000, first_lock_secs: 2, max_lock_secs: 60, window_secs: 3600 };

/// Identity on a manual clock, trusting one proxy hop so each test picks its addresses.
async fn spawn_throttled(account: Policy, address: Policy) -> App {
    App::spawn_on_manual_clock(|c| {
        c.login_throttle.account = account;
        c.login_throttle.address = address;
        c.login_throttle.known_address = STRICT;
        c.common.grpc.trusted_proxy_hops = 1;
    })
    .await
}

async fn attempt(c: &mut Client, email: &str, password: &str, from: &str) -> Result<pb::TokenPair, tonic::Status> {
    let mut request =
        tonic::Request::new(pb::LoginRequest { email: email.into(), password: password.into(), ..Default::default() });
    request.metadata_mut().insert("x-forwarded-for", from.parse().expect("address"));
    c.login(request).await.map(tonic::Response::into_inner)
}

/// The error code and, for a lock, the seconds to wait.
fn outcome(result: Result<pb::TokenPair, tonic::Status>) -> (String, Option<u64>) {
    match result {
        Ok(_) => ("ok".into(), None),
        Err(status) => {
            let info = status.get_error_details().error_info().cloned().expect("catalogued refusal");
            (info.reason, info.metadata.get("retry_after_secs").map(|s| s.parse().expect("seconds")))
        }
    }
}

const WRONG: &str = "not the password at all";
const ATTACKER: &str = "203.0.113.66";

#[tokio::test]
async fn failed_sign_ins_lock_the_account_for_a_growing_time_that_passes() {
    let app = spawn_throttled(STRICT, LENIENT).await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;

    for _ in 0..3 {
        assert_eq!(outcome(attempt(&mut c, &email, WRONG, ATTACKER).await), ("ERR_2001".into(), None));
    }
    // The fourth failure is still checked (and refused), and earns a 2 s lock.
    assert_eq!(outcome(attempt(&mut c, &email, WRONG, ATTACKER).await), ("ERR_2001".into(), None));
    // Locked: even the right password is refused, without being checked.
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, ATTACKER).await), ("ERR_2008".into(), Some(2)));

    app.clock.advance(Duration::from_secs(2));
    // The next failure doubles the lock.
    assert_eq!(outcome(attempt(&mut c, &email, WRONG, ATTACKER).await), ("ERR_2001".into(), None));
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, ATTACKER).await), ("ERR_2008".into(), Some(4)));

    app.clock.advance(Duration::from_secs(4));
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, ATTACKER).await).0, "ok", "the lock passes by itself");
    // A success forgets the account's failures: three free ones again, then the first lock.
    for _ in 0..4 {
        assert_eq!(outcome(attempt(&mut c, &email, WRONG, "198.51.100.20").await).0, "ERR_2001");
    }
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, "198.51.100.20").await), ("ERR_2008".into(), Some(2)));
    app.stop().await;
}

#[tokio::test]
async fn attempts_while_locked_are_not_counted_and_do_not_stretch_the_lock() {
    let app = spawn_throttled(STRICT, LENIENT).await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;
    for _ in 0..4 {
        attempt(&mut c, &email, WRONG, ATTACKER).await.expect_err("wrong password");
    }
    for _ in 0..20 {
        assert_eq!(outcome(attempt(&mut c, &email, WRONG, ATTACKER).await), ("ERR_2008".into(), Some(2)));
    }
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, ATTACKER).await).0, "ok");
    app.stop().await;
}

#[tokio::test]
async fn a_guesser_elsewhere_cannot_lock_the_owner_out_of_an_address_they_used() {
    let app = spawn_throttled(STRICT, LENIENT).await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;
    let home = "198.51.100.7";
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, home).await).0, "ok");

    for _ in 0..10 {
        let _ = attempt(&mut c, &email, WRONG, ATTACKER).await;
    }
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, ATTACKER).await).0, "ERR_2008", "the guesser is locked");
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, "192.0.2.44").await).0, "ERR_2008", "so is any new address");
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, home).await).0, "ok", "the owner's address is not");
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, ATTACKER).await).0, "ERR_2008", "and that lifts no lock");

    // From the owner's address, guessing is throttled by the pair's own lock.
    for _ in 0..4 {
        assert_eq!(outcome(attempt(&mut c, &email, WRONG, home).await).0, "ERR_2001");
    }
    assert_eq!(outcome(attempt(&mut c, &email, PASSWORD, home).await), ("ERR_2008".into(), Some(2)));
    app.stop().await;
}

#[tokio::test]
async fn one_address_guessing_across_many_accounts_is_locked_and_others_are_not() {
    let app = spawn_throttled(LENIENT, STRICT).await;
    let mut c = client(&app);
    let victim = new_email();
    register(&mut c, &victim).await;
    for _ in 0..4 {
        assert_eq!(outcome(attempt(&mut c, &new_email(), WRONG, ATTACKER).await).0, "ERR_2001");
    }
    assert_eq!(outcome(attempt(&mut c, &victim, PASSWORD, ATTACKER).await).0, "ERR_2008");
    assert_eq!(
        outcome(attempt(&mut c, &victim, PASSWORD, "192.0.2.45").await).0,
        "ok",
        "another address is not locked"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_forged_forwarded_address_does_not_escape_the_lock_when_no_proxy_is_trusted() {
    let app = App::spawn_on_manual_clock(|c| {
        c.login_throttle.address = STRICT;
        c.login_throttle.account = LENIENT;
    })
    .await;
    let mut c = client(&app);
    let victim = new_email();
    register(&mut c, &victim).await;
    for i in 0..4 {
        let forged = format!("192.0.2.{i}");
        assert_eq!(outcome(attempt(&mut c, &new_email(), WRONG, &forged).await).0, "ERR_2001");
    }
    assert_eq!(
        outcome(attempt(&mut c, &victim, PASSWORD, "192.0.2.200").await).0,
        "ERR_2008",
        "the peer is the client"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guesses_sent_together_are_counted_before_any_is_checked() {
    let app = spawn_throttled(STRICT, LENIENT).await;
    let mut c = client(&app);
    let email = new_email();
    register(&mut c, &email).await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let (mut c, email) = (c.clone(), email.clone());
            async move { outcome(attempt(&mut c, &email, WRONG, ATTACKER).await).0 }
        })
        .collect();
    let answers = festival_testkit::all_at_once(calls).await;
    let checked = answers.iter().filter(|a| *a == "ERR_2001").count();
    let locked = answers.iter().filter(|a| *a == "ERR_2008").count();
    assert_eq!((checked, locked), (4, 16), "3 free attempts and the one that took the lock: {answers:?}");
    app.stop().await;
}
