//! A cancelled festival: every order it had paid is cancelled and paid back once, order
//! by order, resuming after failures, with a progress report for its organisers. The
//! worker sweeps on a long interval here; the tests settle by hand.

use std::collections::BTreeMap;
use std::time::Duration;

use festival_proto::program::v1 as program;
use festival_proto::ticketing::v1 as pb;
use festival_ticketing::cancellation;
use uuid::Uuid;

use crate::helpers::*;

async fn spawn_by_hand() -> Env {
    spawn_with(|c| c.holds.sweep_interval_ms = 3_600_000).await
}

/// A box-office order of `quantity` tickets paid by `method`, sold to a new fan.
async fn sold(
    env: &Env,
    f: &Festival,
    category: &str,
    quantity: i32,
    method: pb::PaymentMethod,
) -> (String, pb::Order) {
    let (fan_id, fan) = env.issuer.user();
    let request = pb::CreateOrderRequest {
        buyer_user_id: fan_id.to_string(),
        payment_method: method as i32,
        ..box_office(f, category, quantity)
    };
    let order = env.client().create_order(authed(request, &f.organizer)).await.expect("order").into_inner();
    (fan, order)
}

/// Announces the festival CANCELLED (as program's `festival.status_changed`, version 2)
/// and waits until ticketing opened its run.
async fn cancel_festival(env: &Env, f: &Festival) {
    env.announce(f.id, program::FestivalStatus::Cancelled, 2).await;
    assert!(run_opens(env, f).await, "the cancellation run was never opened");
}

/// Waits (at most 10 s) until ticketing opened the festival's run; whether it did.
async fn run_opens(env: &Env, f: &Festival) -> bool {
    let (pool, id) = (env.app.pool.clone(), f.id);
    festival_testkit::eventually(Duration::from_secs(10), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>("select exists(select 1 from cancellation_runs where festival_id = $1)")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap_or(false)
        }
    })
    .await
}

async fn progress(env: &Env, f: &Festival) -> pb::CancellationProgress {
    let request = pb::GetCancellationProgressRequest { festival_id: f.id.to_string() };
    env.client().get_cancellation_progress(authed(request, &f.organizer)).await.expect("progress").into_inner()
}

async fn settle(env: &Env) -> usize {
    cancellation::settle_due(&env.app.pool, chrono::Utc::now()).await.expect("settle")
}

/// `(payment method, orders, settled, retrying, refunded)` per method.
fn methods(p: &pb::CancellationProgress) -> Vec<(String, i64, i64, i64, i64)> {
    p.by_method.iter().map(|m| (m.payment_method.clone(), m.orders, m.settled, m.retrying, m.refunded_minor)).collect()
}

/// What `order.cancelled` gave back, per order, for the orders of `festival`.
async fn refunds_published(env: &Env, festival: &Festival) -> BTreeMap<String, Vec<i64>> {
    let mut per_order: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in env.app.published::<pb::OrderCancelled>().await {
        if e.festival_id == festival.id.to_string() {
            per_order.entry(e.order_id).or_default().push(e.refundable_minor);
        }
    }
    per_order
}

#[tokio::test]
async fn a_cancelled_festival_cancels_and_pays_back_every_paid_order_once() {
    let env = spawn_by_hand().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let weekend = env.category(&f, "Weekend", 5_000, 20).await;
    let free = env.category(&f, "Kids", 0, 20).await;
    let (cash_fan, cash) = sold(&env, &f, &weekend.id, 2, pb::PaymentMethod::Cash).await;
    let (_, partner) = sold(&env, &f, &weekend.id, 1, pb::PaymentMethod::External).await;
    let (_, kids) = env.free_ticket(&f, &free.id).await;
    // Part of this one was refunded before: only the rest goes back.
    let (fan, partly) = sold(&env, &f, &weekend.id, 3, pb::PaymentMethod::Cash).await;
    let asked = c
        .request_refund(authed(
            pb::RequestRefundRequest {
                order_id: partly.id.clone(),
                ticket_ids: vec![partly.tickets[0].id.clone()],
                reason: "One of us cannot come".into(),
                idempotency_key: "refund-1".into(),
            },
            &fan,
        ))
        .await
        .expect("request")
        .into_inner();
    c.decide_refund_request(authed(
        pb::DecideRefundRequestRequest {
            request_id: asked.id,
            approve: true,
            note: String::new(),
            idempotency_key: "decide-1".into(),
        },
        &f.organizer,
    ))
    .await
    .expect("approved");
    // A refund still asked for is answered by the cancellation.
    let pending = c
        .request_refund(authed(
            pb::RequestRefundRequest {
                order_id: cash.id.clone(),
                ticket_ids: Vec::new(),
                reason: "Changed plans".into(),
                idempotency_key: "refund-2".into(),
            },
            &cash_fan,
        ))
        .await;
    let (_, gone) = sold(&env, &f, &weekend.id, 1, pb::PaymentMethod::Cash).await;
    env.cancel(&f, &gone.id).await;
    // Another festival's order is not touched.
    let other = env.festival(program::FestivalStatus::Published).await;
    let elsewhere = env.category(&other, "Day", 2_000, 5).await;
    let (_, untouched) = sold(&env, &other, &elsewhere.id, 1, pb::PaymentMethod::Cash).await;
    let refunds_before = refunds_published(&env, &f).await;

    // Nothing to report before the festival is cancelled.
    let request = pb::GetCancellationProgressRequest { festival_id: f.id.to_string() };
    assert_eq!(outcome(c.get_cancellation_progress(authed(request.clone(), &f.organizer)).await), "ERR_4000");

    cancel_festival(&env, &f).await;
    let before = progress(&env, &f).await;
    assert_eq!((before.orders, before.settled, before.refunded_minor), (4, 0, 0));
    assert!(before.finish_time.is_none());
    assert_eq!(before.currency, "EUR");
    // Only the festival's organisers read it.
    assert_eq!(outcome(c.get_cancellation_progress(authed(request.clone(), &other.organizer)).await), "ERR_3002");
    assert_eq!(outcome(c.get_cancellation_progress(authed(request, &fan)).await), "ERR_3002");

    assert_eq!(settle(&env).await, 4);
    assert_eq!(settle(&env).await, 0, "a second round settles nothing again");
    let after = progress(&env, &f).await;
    assert_eq!((after.orders, after.settled, after.refunded_minor), (4, 4, 10_000 + 5_000 + 10_000));
    assert_eq!(
        methods(&after),
        vec![("CASH".into(), 2, 2, 0, 20_000), ("EXTERNAL".into(), 1, 1, 0, 5_000), ("FREE".into(), 1, 1, 0, 0)]
    );
    assert!(after.finish_time.is_some() && after.failures.is_empty());

    // Each order cancelled, its tickets refunded, its places free; one event each.
    for order in [&cash, &partner, &kids, &partly] {
        let now = c
            .get_order(authed(pb::GetOrderRequest { order_id: order.id.clone() }, &f.organizer))
            .await
            .expect("order")
            .into_inner();
        assert_eq!(now.status, pb::OrderStatus::Cancelled as i32, "{}", order.id);
        assert!(!now.tickets.is_empty());
        assert!(now.tickets.iter().all(|t| t.status == pb::TicketStatus::Refunded as i32), "{:?}", now.tickets);
    }
    let mut published = refunds_published(&env, &f).await;
    for (order, amounts) in &refunds_before {
        assert_eq!(published.remove(order).as_ref(), Some(amounts), "earlier events stay as they were");
    }
    let expected: BTreeMap<String, Vec<i64>> = [
        (cash.id.clone(), vec![10_000]),
        (partner.id.clone(), vec![5_000]),
        (kids.id.clone(), vec![0]),
        (partly.id.clone(), vec![10_000]),
    ]
    .into_iter()
    .collect();
    assert_eq!(published, expected);
    assert_eq!(env.quotas(&f).await, vec![("Kids capacity".into(), 20, 0, 0), ("Weekend capacity".into(), 20, 0, 0)]);
    // The request still pending was answered.
    let request = pending.expect("a pending request").into_inner();
    let requests = c
        .list_refund_requests(authed(
            pb::ListRefundRequestsRequest { festival_id: f.id.to_string(), status: 0 },
            &f.organizer,
        ))
        .await
        .expect("requests")
        .into_inner()
        .requests;
    let answered = requests.iter().find(|r| r.id == request.id).expect("the request");
    assert_eq!(
        (answered.status, answered.decision_note.as_str()),
        (pb::RefundRequestStatus::Rejected as i32, cancellation::FESTIVAL_CANCELLED)
    );
    let still = c
        .get_order(authed(pb::GetOrderRequest { order_id: untouched.id.clone() }, &other.organizer))
        .await
        .expect("order")
        .into_inner();
    assert_eq!(still.status, pb::OrderStatus::Paid as i32);

    // The event again (redelivered, or a later version): nothing is listed twice.
    env.announce(f.id, program::FestivalStatus::Cancelled, 3).await;
    assert_eq!(settle(&env).await, 0);
    assert_eq!(progress(&env, &f).await.orders, 4);
    env.app.stop().await;
}

#[tokio::test]
async fn an_order_that_fails_is_retried_while_the_others_settle() {
    let env = spawn_by_hand().await;
    let f = env.festival(program::FestivalStatus::Published).await;
    let weekend = env.category(&f, "Weekend", 5_000, 20).await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(sold(&env, &f, &weekend.id, 1, pb::PaymentMethod::Cash).await.1);
    }
    let stuck = Uuid::parse_str(&orders[1].id).expect("id");
    // The database refuses to cancel one order, as a failing disk or a bad row would.
    sqlx::raw_sql(
        "create table refused_orders (id uuid primary key);
         create function refuse_cancel() returns trigger language plpgsql as $$
         begin
             if new.status = 'CANCELLED' and exists (select 1 from refused_orders where id = new.id) then
                 raise exception 'disk on fire';
             end if;
             return new;
         end $$;
         create trigger refuse_cancel before update on orders for each row execute function refuse_cancel();",
    )
    .execute(&env.app.pool)
    .await
    .expect("trigger");
    sqlx::query("insert into refused_orders (id) values ($1)")
        .bind(stuck)
        .execute(&env.app.pool)
        .await
        .expect("refuse");
    cancel_festival(&env, &f).await;

    assert_eq!(settle(&env).await, 2, "the others settle");
    let halfway = progress(&env, &f).await;
    assert_eq!((halfway.orders, halfway.settled), (3, 2));
    assert_eq!(methods(&halfway), vec![("CASH".into(), 3, 2, 1, 10_000)]);
    assert!(halfway.finish_time.is_none());
    assert_eq!(halfway.failures.len(), 1);
    let failure = &halfway.failures[0];
    assert_eq!((failure.order_id.as_str(), failure.attempts), (orders[1].id.as_str(), 1));
    // In words an organiser may read; the database's own message goes to the log.
    assert_eq!(failure.last_error, "the database refused the change (SQLSTATE P0001)");
    assert_eq!(settle(&env).await, 0, "still failing");
    assert_eq!(progress(&env, &f).await.failures[0].attempts, 2);

    sqlx::raw_sql("drop trigger refuse_cancel on orders").execute(&env.app.pool).await.expect("drop");
    assert_eq!(settle(&env).await, 1, "the next round resumes it");
    let done = progress(&env, &f).await;
    assert_eq!(methods(&done), vec![("CASH".into(), 3, 3, 0, 15_000)]);
    assert!(done.finish_time.is_some() && done.failures.is_empty());
    let published = refunds_published(&env, &f).await;
    assert_eq!(published.len(), 3);
    assert!(published.values().all(|amounts| amounts == &vec![5_000]), "{published:?}");
    env.app.stop().await;
}

#[tokio::test]
async fn a_deletion_handled_before_the_cancellation_still_refunds_the_orders() {
    let env = spawn_by_hand().await;
    let f = env.festival(program::FestivalStatus::Published).await;
    let weekend = env.category(&f, "Weekend", 5_000, 20).await;
    let (_, order) = sold(&env, &f, &weekend.id, 2, pb::PaymentMethod::Cash).await;
    // Program deletes only cancelled festivals, and its two events may be handled in
    // either order: the deletion first.
    let deleted = program::FestivalDeleted { festival_id: f.id.to_string() };
    festival_testkit::publish_event(&env.app.naming(), &deleted).await;
    assert!(run_opens(&env, &f).await, "the deletion opened the run");
    assert_eq!(settle(&env).await, 1);
    let report = progress(&env, &f).await;
    assert_eq!(methods(&report), vec![("CASH".into(), 1, 1, 0, 10_000)]);
    assert_eq!(report.currency, "EUR", "the deleted festival's currency");
    assert_eq!(refunds_published(&env, &f).await.get(&order.id), Some(&vec![10_000]));
    env.app.stop().await;
}

#[tokio::test]
async fn a_sale_that_commits_as_the_festival_is_cancelled_is_refunded_too() {
    let env = spawn_by_hand().await;
    let f = env.festival(program::FestivalStatus::Published).await;
    let weekend = env.category(&f, "Weekend", 5_000, 20).await;
    let (_, early) = sold(&env, &f, &weekend.id, 1, pb::PaymentMethod::Cash).await;
    // The run opens while a sale that read the festival on sale is still in flight: it
    // commits after the listing.
    let mut conn = env.app.pool.acquire().await.expect("conn");
    assert!(cancellation::open(&mut conn, f.id, chrono::Utc::now()).await.expect("open"));
    drop(conn);
    let (_, straggler) = sold(&env, &f, &weekend.id, 2, pb::PaymentMethod::Cash).await;
    assert_eq!(progress(&env, &f).await.orders, 1);
    assert_eq!(settle(&env).await, 2, "the straggler is listed and settled with the rest");
    let report = progress(&env, &f).await;
    assert_eq!(methods(&report), vec![("CASH".into(), 2, 2, 0, 15_000)]);
    assert!(report.finish_time.is_some());
    let published = refunds_published(&env, &f).await;
    assert_eq!((published.get(&early.id), published.get(&straggler.id)), (Some(&vec![5_000]), Some(&vec![10_000])));
    env.app.stop().await;
}

#[tokio::test]
async fn buyers_choose_the_next_edition_or_their_money_and_silence_means_money() {
    let env = spawn_by_hand().await;
    let mut c = env.client();
    let f = env.festival(program::FestivalStatus::Published).await;
    let weekend = env.category(&f, "Weekend", 5_000, 20).await;
    let parking = env.category(&f, "Parking", 1_000, 20).await;
    // Next year's edition, organised by the same people.
    let next = env.festival(program::FestivalStatus::Published).await;
    let next_weekend = env.category(&next, "Weekend 2028", 6_000, 20).await;
    let (organizer_id, _) = env.issuer.user();
    let both = env.issuer.token(&festival_testkit::tokens::Grant {
        user_id: organizer_id,
        role: festival_platform::auth::Role::User,
        memberships: vec![
            (f.id, festival_platform::auth::Role::Organizer),
            (next.id, festival_platform::auth::Role::Organizer),
        ],
    });
    let policy = pb::SetCancellationPolicyRequest {
        festival_id: f.id.to_string(),
        next_festival_id: next.id.to_string(),
        categories: vec![pb::CategoryRebooking {
            category_id: weekend.id.clone(),
            next_category_id: next_weekend.id.clone(),
        }],
        choice_days: 14,
    };
    // Organisers of both festivals only; the categories must be each festival's.
    assert_eq!(outcome(c.set_cancellation_policy(authed(policy.clone(), &f.organizer)).await), "ERR_3002");
    let swapped = pb::SetCancellationPolicyRequest {
        categories: vec![pb::CategoryRebooking {
            category_id: next_weekend.id.clone(),
            next_category_id: weekend.id.clone(),
        }],
        ..policy.clone()
    };
    assert_eq!(outcome(c.set_cancellation_policy(authed(swapped, &both)).await), "ERR_4000");
    c.set_cancellation_policy(authed(policy.clone(), &both)).await.expect("policy");

    let (credit_fan, credited) = sold(&env, &f, &weekend.id, 2, pb::PaymentMethod::Cash).await;
    let (money_fan, refunded) = sold(&env, &f, &weekend.id, 1, pb::PaymentMethod::Cash).await;
    let (_, silent) = sold(&env, &f, &weekend.id, 1, pb::PaymentMethod::Cash).await;
    let (parking_fan, parked) = sold(&env, &f, &parking.id, 1, pb::PaymentMethod::Cash).await;
    cancel_festival(&env, &f).await;
    // Once cancelled, the policy stands.
    assert_eq!(outcome(c.set_cancellation_policy(authed(policy, &both)).await), "ERR_7001");

    let choose = |order: &pb::Order, remedy: pb::CancellationRemedy| pb::ChooseCancellationRemedyRequest {
        order_id: order.id.clone(),
        remedy: remedy as i32,
    };
    let chosen =
        c.choose_cancellation_remedy(authed(choose(&credited, pb::CancellationRemedy::Credit), &credit_fan)).await;
    let chosen = chosen.expect("credit chosen").into_inner();
    assert_eq!((chosen.remedy, chosen.settled), (pb::CancellationRemedy::Credit as i32, false));
    assert!(chosen.choose_until.is_some());
    c.choose_cancellation_remedy(authed(choose(&refunded, pb::CancellationRemedy::Refund), &money_fan))
        .await
        .expect("refund chosen");
    // Only the buyer chooses; a category without an equivalent cannot be credited.
    let stranger =
        c.choose_cancellation_remedy(authed(choose(&silent, pb::CancellationRemedy::Credit), &money_fan)).await;
    assert_eq!(outcome(stranger), "ERR_4000");
    let unmapped =
        c.choose_cancellation_remedy(authed(choose(&parked, pb::CancellationRemedy::Credit), &parking_fan)).await;
    assert_eq!(outcome(unmapped), "ERR_1000");

    // Before the choice closes, only the orders whose buyer chose are settled, and those
    // that cannot be credited (the parking pass has no equivalent): they do not wait.
    assert_eq!(settle(&env).await, 3);
    let waiting = progress(&env, &f).await;
    assert_eq!((waiting.orders, waiting.settled, waiting.awaiting_choice), (4, 3, 1));
    assert!(waiting.finish_time.is_none() && waiting.choose_until.is_some());
    let done = c
        .get_cancellation_choice(authed(
            pb::GetCancellationChoiceRequest { order_id: credited.id.clone() },
            &credit_fan,
        ))
        .await
        .expect("choice")
        .into_inner();
    assert_eq!(
        (done.settled, done.refunded_minor, done.next_festival_id.as_str()),
        (true, 0, next.id.to_string().as_str())
    );
    assert_eq!(done.credit_codes.len(), 1);
    // The credit's code buys the same number of tickets at the next edition, for nothing.
    let mut hold = hold_request(&next, &[(&next_weekend.id, 2)]);
    hold.promo_codes = done.credit_codes.clone();
    let held = c.create_hold(authed(hold, &credit_fan)).await.expect("hold with the credit").into_inner();
    assert_eq!(held.total_minor, 0);
    let rebooked = c.checkout_hold(authed(checkout(&held), &credit_fan)).await.expect("free order").into_inner();
    assert_eq!((rebooked.status, rebooked.tickets.len()), (pb::OrderStatus::Paid as i32, 2));
    let mut again = hold_request(&next, &[(&next_weekend.id, 1)]);
    again.promo_codes = done.credit_codes.clone();
    assert_eq!(outcome(c.create_hold(authed(again, &credit_fan)).await), "ERR_13003", "used up");
    // The codes are the buyer's: an organiser reads the choice without them.
    let seen = c
        .get_cancellation_choice(authed(
            pb::GetCancellationChoiceRequest { order_id: credited.id.clone() },
            &f.organizer,
        ))
        .await
        .expect("organiser reads")
        .into_inner();
    assert_eq!((seen.settled, seen.credit_codes.len()), (true, 0));
    // Nothing of the credited order goes back as money; the chosen refund does.
    let published = refunds_published(&env, &f).await;
    assert_eq!((published.get(&credited.id), published.get(&refunded.id)), (Some(&vec![0]), Some(&vec![5_000])));
    // Too late to choose; silence means money.
    env.app.clock.advance(Duration::from_secs(15 * 24 * 3_600));
    let late =
        c.choose_cancellation_remedy(authed(choose(&parked, pb::CancellationRemedy::Refund), &parking_fan)).await;
    assert_eq!(outcome(late), "ERR_6016");
    assert_eq!(cancellation::settle_due(&env.app.pool, env.app.clock.now()).await.expect("settle"), 1);
    let after = progress(&env, &f).await;
    assert_eq!(methods(&after), vec![("CASH".into(), 4, 4, 0, 5_000 + 5_000 + 1_000)]);
    assert_eq!(after.by_method[0].credited, 1);
    assert_eq!(after.awaiting_choice, 0);
    assert!(after.finish_time.is_some());
    env.app.stop().await;
}

/// Four workers (replicas) settle one festival's orders at once, over several rounds:
/// each order is cancelled, and paid back, exactly once. The negative control (no claim,
/// no order lock) must see an order cancelled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_settlers_cancel_each_order_once() {
    let env = spawn_with(|c| {
        c.holds.sweep_interval_ms = 3_600_000;
        c.common.database.max_connections = 20;
    })
    .await;
    let mut doubled_rounds = 0;
    for round in 0..3 {
        let f = env.festival(program::FestivalStatus::Published).await;
        let weekend = env.category(&f, "Weekend", 5_000, 100).await;
        for _ in 0..30 {
            sold(&env, &f, &weekend.id, 1, pb::PaymentMethod::Cash).await;
        }
        cancel_festival(&env, &f).await;
        let pool = env.app.pool.clone();
        let settled: usize = all_at_once(
            (0..4)
                .map(|_| {
                    let pool = pool.clone();
                    async move { cancellation::settle_due(&pool, chrono::Utc::now()).await.expect("settle") }
                })
                .collect(),
        )
        .await
        .into_iter()
        .sum();
        let published = refunds_published(&env, &f).await;
        let events: usize = published.values().map(Vec::len).sum();
        let refunded: i64 = published.values().flatten().sum();
        if cfg!(feature = "race-hooks") {
            if events > 30 {
                doubled_rounds += 1;
            }
        } else {
            assert_eq!((settled, published.len(), events), (30, 30, 30), "round {round}: each order once");
            assert_eq!(refunded, 30 * 5_000, "round {round}: what was paid, once");
            let report = progress(&env, &f).await;
            assert_eq!(methods(&report), vec![("CASH".into(), 30, 30, 0, 150_000)], "round {round}");
            assert_eq!(env.quotas(&f).await, vec![("Weekend capacity".into(), 100, 0, 0)], "round {round}");
        }
    }
    if cfg!(feature = "race-hooks") {
        assert!(doubled_rounds > 0, "negative control: without the guard an order is cancelled twice");
    }
}
