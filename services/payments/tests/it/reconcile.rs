//! The reconciliation report: our payments against the fake Stripe's lists, read through
//! the real client; agreeing records report nothing, and each kind of disagreement is
//! named with both sides.

use festival_platform::convert::timestamp;
use festival_proto::payments::v1 as pb;
use uuid::Uuid;

use crate::helpers::*;

fn report_request(festival: &Festival) -> pb::GetReconciliationReportRequest {
    pb::GetReconciliationReportRequest {
        festival_id: festival.id.to_string(),
        start_time: Some(timestamp(chrono::Utc::now() - chrono::Duration::hours(1))),
        end_time: None,
    }
}

async fn report(env: &Env, festival: &Festival) -> pb::ReconciliationReport {
    env.client()
        .get_reconciliation_report(authed(report_request(festival), &festival.organizer))
        .await
        .expect("report")
        .into_inner()
}

/// `(kind, payment id, ours, provider)` of each difference.
fn differences(report: &pb::ReconciliationReport) -> Vec<(pb::DifferenceKind, String, String, String)> {
    report
        .differences
        .iter()
        .map(|d| {
            let kind = pb::DifferenceKind::try_from(d.kind).expect("a known kind");
            (kind, d.payment_id.clone(), d.ours.clone(), d.provider.clone())
        })
        .collect()
}

#[tokio::test]
async fn agreeing_records_report_nothing_and_each_disagreement_is_listed_with_both_sides() {
    let env = spawn().await;
    let f = env.festival();
    let kept = env.paid(&f, 5_000).await;
    let refunded = env.paid(&f, 7_000).await;
    let buyer = env.buyer();
    let open = env.checkout(&f, &buyer, "still-open", 3_000).await.expect("checkout");
    env.client()
        .refund_payment(authed(
            pb::RefundPaymentRequest {
                payment_id: refunded.id.clone(),
                amount_minor: 2_000,
                reason: "A ticket less".into(),
                idempotency_key: "refund-1".into(),
            },
            &f.organizer,
        ))
        .await
        .expect("refund");
    env.sweep().await;
    // Another festival's payment is not this report's.
    let other = env.festival();
    env.paid(&other, 9_999).await;

    let clean = report(&env, &f).await;
    assert_eq!(differences(&clean), Vec::new());
    assert_eq!((clean.payments, clean.provider_sessions), (3, 3));
    assert_eq!((clean.captured_minor, clean.provider_captured_minor), (12_000, 12_000));
    assert_eq!((clean.refunded_minor, clean.provider_refunded_minor), (2_000, 2_000));

    // Paid at Stripe, its webhook not applied (yet, or ever).
    let charged = env.checkout(&f, &buyer, "charged", 4_000).await.expect("checkout");
    env.stripe.complete_session(&env.session_id(&charged).await).expect("paid at Stripe");
    // Refunded in the dashboard, the webhook not applied.
    env.stripe.dashboard_refund(&env.intent_of(&kept).await, 1_000).await;
    // A session made for us whose payment we lost.
    let lost = env.checkout(&f, &buyer, "lost", 6_000).await.expect("checkout");
    let lost_id = Uuid::parse_str(&lost.id).expect("id");
    sqlx::query("delete from payments where id = $1").bind(lost_id).execute(&env.app.pool).await.expect("delete");
    // A record that names a session Stripe never made, and one with the wrong amount.
    let forged = env.checkout(&f, &buyer, "forged", 1_500).await.expect("checkout");
    let wrong = env.checkout(&f, &buyer, "wrong", 2_500).await.expect("checkout");
    sqlx::query("update payments set provider_session_id = 'cs_test_never_made' where id = $1")
        .bind(Uuid::parse_str(&forged.id).expect("id"))
        .execute(&env.app.pool)
        .await
        .expect("forge");
    sqlx::query("update payments set amount_minor = 2400 where id = $1")
        .bind(Uuid::parse_str(&wrong.id).expect("id"))
        .execute(&env.app.pool)
        .await
        .expect("amount");

    let found = report(&env, &f).await;
    assert_eq!(
        differences(&found),
        vec![
            (pb::DifferenceKind::MissingAtProvider, forged.id.clone(), "PENDING".into(), "no session".into()),
            (pb::DifferenceKind::UnknownHere, lost.id.clone(), "no payment".into(), "open 6000 eur".into()),
            (pb::DifferenceKind::Status, charged.id.clone(), "PENDING".into(), "paid".into()),
            (pb::DifferenceKind::Amount, wrong.id.clone(), "2400".into(), "2500".into()),
            (pb::DifferenceKind::Refunded, kept.id.clone(), "0".into(), "1000".into()),
        ]
    );
    assert_eq!(found.payments, 6, "kept, refunded, open, charged, forged, wrong");
    assert_eq!(found.provider_sessions, 6, "all but the forged one's, and the lost one");
    assert_eq!((found.refunded_minor, found.provider_refunded_minor), (2_000, 3_000));
    assert!(found.differences.iter().all(|d| d.payment_id != open.id), "the open checkout agrees");

    // Only the festival's organisers read it; the window is bounded.
    let mut c = env.client();
    let stranger = c.get_reconciliation_report(authed(report_request(&f), &other.organizer)).await;
    assert_eq!(code(stranger), "ERR_3002");
    let long = pb::GetReconciliationReportRequest {
        end_time: Some(timestamp(chrono::Utc::now() + chrono::Duration::days(31))),
        ..report_request(&f)
    };
    assert_eq!(code(c.get_reconciliation_report(authed(long, &f.organizer)).await), "ERR_1000");
    let backwards = pb::GetReconciliationReportRequest {
        end_time: Some(timestamp(chrono::Utc::now() - chrono::Duration::hours(2))),
        ..report_request(&f)
    };
    assert_eq!(code(c.get_reconciliation_report(authed(backwards, &f.organizer)).await), "ERR_1000");
    let unbounded = pb::GetReconciliationReportRequest { start_time: None, ..report_request(&f) };
    assert_eq!(code(c.get_reconciliation_report(authed(unbounded, &f.organizer)).await), "ERR_1001");

    // Stripe down: a catalogued answer, not a report that would say "all is well".
    env.stripe.set_mode(Mode::Fail500);
    assert_eq!(code(c.get_reconciliation_report(authed(report_request(&f), &f.organizer)).await), "ERR_5002");
    env.stripe.set_mode(Mode::Normal);
    env.app.stop().await;
}

#[tokio::test]
async fn the_report_reads_every_page_of_the_provider_s_lists() {
    let env = spawn().await;
    let f = env.festival();
    let buyer = env.buyer();
    for n in 0..130 {
        env.checkout(&f, &buyer, &format!("page-{n}"), 1_000 + n).await.expect("checkout");
    }
    let report = report(&env, &f).await;
    assert_eq!((report.payments, report.provider_sessions), (130, 130), "two pages of sessions read");
    assert_eq!(differences(&report), Vec::new());
    let listed = env.stripe.requests().iter().filter(|r| r.0 == "GET" && r.1 == "/v1/checkout/sessions").count();
    assert_eq!(listed, 2, "100 and 30");
    env.app.stop().await;
}
