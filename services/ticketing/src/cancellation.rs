//! Cancelling orders: one order an organiser cancels, or every order of a festival that
//! program cancelled.
//!
//! A festival's cancellation is a run: when ticketing learns the festival is CANCELLED
//! (a terminal status in program), every order it had paid or was still being paid is
//! listed once ([`open`]), and the worker settles them ([`settle_due`]), each in its own
//! transaction: the order is cancelled, its tickets revoked as REFUNDED, and
//! `order.cancelled` carries what it paid and was not refunded yet, which payments sends
//! back to the card (the box office pays cash back). No order is settled twice (its row
//! is claimed under lock), and one that fails is retried at the next round without
//! holding the others back, so the run survives crashes and restarts. [`progress`] is
//! the organisers' report.

use chrono::{DateTime, Utc};
use festival_proto::ticketing::v1 as pb;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::status::{HoldStatus, OrderStatus, TicketStatus};
use crate::store::{self, orders::OrderRow, tickets::Revoked};
use crate::{events, lifecycle, stock};

/// Orders one call of the worker settles at most (each in its own transaction).
const ROUND: i64 = 500;
/// Orders a progress report names among those that keep failing.
const FAILURES_LISTED: i64 = 100;
/// Why a cancelled festival's orders are cancelled (shown to buyers with the order).
pub const FESTIVAL_CANCELLED: &str = "The festival was cancelled";

/// Cancels a locked order that is not cancelled yet: its live tickets are revoked as
/// `ticket_status` with the add-ons bought later for them, the hold of an order still
/// waiting for its payment gives its tickets back (a payment completing later is refused
/// and refunded, see `card_orders`), its pending refund requests are answered, and
/// `order.cancelled` says what is to be paid back. Returns the cancelled order and what
/// was revoked: the caller frees the unused tickets' places with its commit.
/// `pays_back`: false for an order credited to a next edition instead.
pub async fn cancel_locked(
    conn: &mut PgConnection,
    order: &OrderRow,
    by: Uuid,
    reason: &str,
    ticket_status: TicketStatus,
    pays_back: bool,
    now: DateTime<Utc>,
) -> Result<(OrderRow, Vec<Revoked>), sqlx::Error> {
    let mut revoked = store::tickets::revoke_of_order(conn, order.id, ticket_status).await?;
    let parents: Vec<Uuid> = revoked.iter().map(|t| t.id).collect();
    revoked.extend(store::tickets::revoke_children(conn, &parents, ticket_status, false).await?);
    let cancelled = store::orders::cancel(conn, order.id, now, reason).await?;
    if order.status == OrderStatus::AwaitingPayment
        && let Some(hold) = match order.hold_id {
            Some(hold) => store::holds::lock(conn, hold).await?,
            None => None,
        }
        && hold.status == HoldStatus::Active
    {
        lifecycle::end_hold(conn, &hold, HoldStatus::Released).await?;
    }
    // An organiser's reason may be internal: buyers are told only what happened.
    let answer = if reason == FESTIVAL_CANCELLED { reason } else { "The order was cancelled" };
    store::refunds::reject_pending_of_order(conn, order.id, by, answer, now).await?;
    events::publish(
        conn,
        &pb::OrderCancelled {
            order_id: order.id.to_string(),
            festival_id: order.festival_id.to_string(),
            ticket_ids: revoked.iter().map(|t| t.id.to_string()).collect(),
            refundable_minor: if pays_back { refundable(order) } else { 0 },
        },
    )
    .await?;
    Ok((cancelled, revoked))
}

/// What cancelling gives back: what a paid order paid and was not refunded yet; nothing
/// for an order still waiting for (or failed) its payment.
pub fn refundable(order: &OrderRow) -> i64 {
    if order.status == OrderStatus::Paid { order.total_minor - order.refunded_minor } else { 0 }
}

/// Opens the cancellation run of a festival ticketing now knows as CANCELLED, listing
/// every order that paid or is paying; `false` if it was open already (a redelivered or
/// repeated event lists nothing twice). Nothing is sold once the festival is cancelled,
/// and a payment that completes later is refused and refunded; a sale that read the
/// festival on sale and commits after this is listed by [`settle_due`]'s straggler pass.
pub async fn open(conn: &mut PgConnection, festival_id: Uuid, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    // A credit offer set beforehand opens the buyers' choice.
    let opened = sqlx::query(
        "insert into cancellation_runs (festival_id, started_at, choose_until)
         select $1, $2, $2 + make_interval(days => p.choice_days)
           from (select 1) one left join cancellation_policies p on p.festival_id = $1
         on conflict (festival_id) do nothing",
    )
    .bind(festival_id)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if opened {
        let listed = sqlx::query(
            "insert into cancellation_orders (order_id, festival_id, payment_method)
             select id, festival_id, payment_method from orders
              where festival_id = $1 and status in ('PAID', 'AWAITING_PAYMENT')",
        )
        .bind(festival_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        tracing::warn!(festival = %festival_id, orders = listed, "festival cancelled: its orders will be refunded");
        refund_uncreditable(conn, festival_id).await?;
    }
    Ok(opened)
}

/// With a credit offer, an order that cannot be credited does not wait for a choice:
/// not paid, no buyer account to choose, or a ticket with no equivalent.
async fn refund_uncreditable(conn: &mut PgConnection, festival_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update cancellation_orders c set remedy = 'REFUND'
           from orders o, cancellation_runs r
          where c.festival_id = $1 and r.festival_id = $1 and r.choose_until is not null
            and o.id = c.order_id and c.remedy is null and c.status = 'WAITING'
            and (o.status <> 'PAID' or o.buyer_user_id is null
                 or exists (select 1 from tickets t
                             where t.order_id = o.id and t.status = 'SOLD' and t.replaced_by is null
                               and not exists (select 1 from cancellation_policy_categories m
                                                where m.festival_id = $1 and m.category_id = t.category_id)))",
    )
    .bind(festival_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Settles what waits, up to [`ROUND`] orders a call (the worker calls it every tick, so
/// a large festival never holds back hold expiry and the other sweeps); returns how many
/// it settled. Several workers (replicas) share the work: each claims orders the others
/// have not locked, and skips those. First it lists stragglers: an order a sale
/// committed just after the run was opened (the sale read the festival on sale).
pub async fn settle_due(pool: &PgPool, now: DateTime<Utc>) -> Result<usize, sqlx::Error> {
    list_stragglers(pool, now).await?;
    // Orders whose buyer chose, or may no longer choose (or had no choice).
    let due: Vec<Uuid> = sqlx::query_scalar(
        "select o.order_id from cancellation_orders o join cancellation_runs r using (festival_id)
          where o.status = 'WAITING' and (o.remedy is not null or r.choose_until is null or r.choose_until <= $2)
          order by o.festival_id, o.order_id limit $1",
    )
    .bind(ROUND)
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut settled = 0;
    for order_id in due {
        match settle_one(pool, order_id, now).await {
            Ok(true) => settled += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(order = %order_id, error = %e, "could not cancel an order of a cancelled festival; retrying at the next round");
                record_failure(pool, order_id, &e).await;
            }
        }
    }
    let finished = sqlx::query(
        "update cancellation_runs r set finished_at = $1
          where finished_at is null
            and not exists (select 1 from cancellation_orders o where o.festival_id = r.festival_id and o.status = 'WAITING')",
    )
    .bind(now)
    .execute(pool)
    .await?;
    if finished.rows_affected() > 0 {
        tracing::info!(runs = finished.rows_affected(), "festival cancellations finished");
    }
    Ok(settled)
}

/// Lists orders of runs opened in the last hour that are paid or paying but not listed
/// (a sale in flight when the run opened commits within seconds), reopening their run.
async fn list_stragglers(pool: &PgPool, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let listed: Vec<Uuid> = sqlx::query_scalar(
        "insert into cancellation_orders (order_id, festival_id, payment_method)
         select o.id, o.festival_id, o.payment_method
           from cancellation_runs r join orders o on o.festival_id = r.festival_id
          where r.started_at > $1 - interval '1 hour' and o.status in ('PAID', 'AWAITING_PAYMENT')
         on conflict (order_id) do nothing
         returning festival_id",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    if !listed.is_empty() {
        tracing::warn!(orders = listed.len(), "orders sold as their festival was cancelled: listed for refund");
        sqlx::query("update cancellation_runs set finished_at = null where festival_id = any($1)")
            .bind(&listed)
            .execute(pool)
            .await?;
        let mut festivals = listed.clone();
        festivals.sort_unstable();
        festivals.dedup();
        for festival in festivals {
            refund_uncreditable(&mut *pool.acquire().await?, festival).await?;
        }
    }
    Ok(())
}

/// Settles one listed order in one transaction; `false` when another worker holds or
/// settled it. The order's row is locked before anything it owns, as a cancellation or
/// a refund decision takes them.
async fn settle_one(pool: &PgPool, order_id: Uuid, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let claimed: Option<Option<String>> = sqlx::query_scalar(
        "select remedy from cancellation_orders where order_id = $1 and status = 'WAITING' for update skip locked",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    // The guard: the listed row claimed, the order read under its lock. The test-only
    // race-hooks build drops both, so its negative control sees an order cancelled twice.
    let guarded = !cfg!(feature = "race-hooks");
    if claimed.is_none() && guarded {
        return Ok(false);
    }
    let order = if guarded {
        store::orders::lock(&mut tx, order_id).await?
    } else {
        store::orders::find(&mut tx, order_id).await?
    };
    let Some(order) = order else { return Ok(false) };
    let live = matches!(order.status, OrderStatus::Paid | OrderStatus::AwaitingPayment) || !guarded;
    // The credit, planned before anything is revoked: the order's live tickets by their
    // next edition's category (none if one of them does not map: refunded instead).
    let credit = match claimed.flatten().as_deref() {
        Some("CREDIT") if live && order.status == OrderStatus::Paid => credit_plan(&mut tx, &order).await?,
        _ => None,
    };
    let (refunded, revoked) = if live {
        let credited = credit.is_some();
        let (_, revoked) =
            cancel_locked(&mut tx, &order, Uuid::nil(), FESTIVAL_CANCELLED, TicketStatus::Refunded, !credited, now)
                .await?;
        (if credited { 0 } else { refundable(&order) }, revoked)
    } else {
        (0, Vec::new()) // cancelled (or failed) since it was listed: nothing left to give back
    };
    let codes = match credit {
        Some((next_festival, plan)) => issue_credit(&mut tx, next_festival, &plan, now).await?,
        None => Vec::new(),
    };
    sqlx::query(
        "update cancellation_orders set status = 'SETTLED', refunded_minor = $2, settled_at = $3, last_error = null,
                remedy = case when cardinality($4::text[]) > 0 then 'CREDIT' else 'REFUND' end, credit_codes = $4
          where order_id = $1",
    )
    .bind(order_id)
    .bind(refunded)
    .bind(now)
    .bind(&codes)
    .execute(&mut *tx)
    .await?;
    let freed: Vec<(&[Uuid], i64)> =
        revoked.iter().filter(|t| t.was_unused).map(|t| (t.quota_ids.as_slice(), 1)).collect();
    stock::shift_and_commit(tx, &freed, (0, -1)).await?;
    Ok(true)
}

/// What a credited order becomes at the next edition: `(next festival, [(next category,
/// tickets)])` for its live tickets; `None` (refund instead) if the festival has no policy
/// or one of the tickets' categories does not map.
async fn credit_plan(
    conn: &mut PgConnection,
    order: &OrderRow,
) -> Result<Option<(Uuid, Vec<(Uuid, i64)>)>, sqlx::Error> {
    // The next edition must still sell: a credit at a festival cancelled (or deleted)
    // since is worth nothing, so the order is refunded instead.
    let rows: Vec<(Uuid, Option<Uuid>, Option<Uuid>, i64)> = sqlx::query_as(
        "select t.category_id, f.id, m.next_category_id, count(*)
           from tickets t
           left join cancellation_policies p on p.festival_id = $2
           left join festivals f on f.id = p.next_festival_id and not f.deleted and f.status in ('PUBLISHED', 'ONGOING')
           left join cancellation_policy_categories m on m.festival_id = $2 and m.category_id = t.category_id
          where t.order_id = $1 and t.status = 'SOLD' and t.replaced_by is null
          group by t.category_id, f.id, m.next_category_id",
    )
    .bind(order.id)
    .bind(order.festival_id)
    .fetch_all(conn)
    .await?;
    let mut next_festival = None;
    let mut plan = Vec::with_capacity(rows.len());
    for (category, festival, next_category, tickets) in rows {
        let (Some(festival), Some(next_category)) = (festival, next_category) else {
            tracing::warn!(order = %order.id, %category, "a credited order's category has no next edition: refunded instead");
            return Ok(None);
        };
        next_festival = Some(festival);
        plan.push((next_category, tickets));
    }
    Ok(next_festival.map(|f| (f, plan)))
}

/// The credit's codes at the next edition: one per category, 100 % off, for as many
/// tickets as the order had of it, stackable (one basket can use them all), usable by
/// anyone the buyer gives them to.
async fn issue_credit(
    conn: &mut PgConnection,
    next_festival: Uuid,
    plan: &[(Uuid, i64)],
    now: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<store::promos::PromoRow> = plan
        .iter()
        .map(|(category, tickets)| store::promos::PromoRow {
            id: Uuid::now_v7(),
            festival_id: next_festival,
            code: crate::domain::promo::random_code("CREDIT"),
            kind: "PERCENT".into(),
            value: 100,
            category_ids: vec![*category],
            min_basket_minor: 0,
            max_uses: *tickets,
            max_uses_per_account: 0,
            used: 0,
            stackable: true,
            valid_from: None,
            valid_until: None,
            created_at: now,
        })
        .collect();
    store::promos::insert_many(conn, &rows).await?;
    Ok(rows.into_iter().map(|r| r.code).collect())
}

/// Notes a failed attempt on the order's row (outside the failed transaction), in
/// words an organiser may read (the details are in the log); a failure to note it is
/// only logged: the order still waits and is retried.
async fn record_failure(pool: &PgPool, order_id: Uuid, error: &sqlx::Error) {
    let said = match error {
        sqlx::Error::Database(e) => {
            format!("the database refused the change (SQLSTATE {})", e.code().as_deref().unwrap_or("unknown"))
        }
        _ => "the database could not be reached".to_owned(),
    };
    let noted =
        sqlx::query("update cancellation_orders set attempts = attempts + 1, last_error = $2 where order_id = $1")
            .bind(order_id)
            .bind(said)
            .execute(pool)
            .await;
    if let Err(e) = noted {
        tracing::warn!(order = %order_id, error = %e, "could not note a failed cancellation attempt");
    }
}

/// Payments refunded a card order of a cancelled festival: once the order's own payment
/// is refunded in full, the report counts it as paid back. `true` if it was.
pub async fn confirm_refund(
    conn: &mut PgConnection,
    order_id: Uuid,
    payment_id: Uuid,
    refunded_minor: i64,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let confirmed = sqlx::query(
        "update cancellation_orders c set confirmed_at = coalesce(c.confirmed_at, $4)
           from orders o
          where c.order_id = $1 and c.status = 'SETTLED' and c.remedy is distinct from 'CREDIT'
            and o.id = c.order_id and o.payment_id = $2 and $3 >= o.total_minor",
    )
    .bind(order_id)
    .bind(payment_id)
    .bind(refunded_minor)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(confirmed.rows_affected() == 1)
}

/// The payment of an order credited to a next edition was refunded at the provider after
/// all (a dashboard refund, a chargeback): its credit codes stop working (tickets bought
/// with them stay, and are logged for the organisers). `true` if it was credited.
pub async fn void_credit(conn: &mut PgConnection, order_id: Uuid, at: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let codes: Option<Vec<String>> = sqlx::query_scalar(
        "select credit_codes from cancellation_orders where order_id = $1 and status = 'SETTLED' and remedy = 'CREDIT'",
    )
    .bind(order_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(codes) = codes.filter(|c| !c.is_empty()) else { return Ok(false) };
    let used: i64 = sqlx::query_scalar(
        "with voided as (
             update promo_codes set valid_until = least(coalesce(valid_until, $2), $2), updated_at = now()
              where code = any($1) and festival_id = (select p.next_festival_id from cancellation_policies p
                                                        join orders o on o.festival_id = p.festival_id where o.id = $3)
             returning used)
         select coalesce(sum(used), 0)::bigint from voided",
    )
    .bind(&codes)
    .bind(at)
    .bind(order_id)
    .fetch_one(conn)
    .await?;
    tracing::error!(order = %order_id, tickets_taken = used,
        "a credited order's payment was refunded at the provider: its credit codes are voided; tickets bought with them need an organiser");
    Ok(true)
}

/// A run's progress, per payment method; `None` if the festival has no run.
pub async fn progress(
    conn: &mut PgConnection,
    festival_id: Uuid,
) -> Result<Option<pb::CancellationProgress>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Run {
        started_at: DateTime<Utc>,
        finished_at: Option<DateTime<Utc>>,
        choose_until: Option<DateTime<Utc>>,
        awaiting_choice: i64,
    }
    let run: Option<Run> = sqlx::query_as(
        "select started_at, finished_at, choose_until,
                (select count(*) from cancellation_orders o
                  where o.festival_id = r.festival_id and o.status = 'WAITING' and o.remedy is null
                    and r.choose_until is not null) as awaiting_choice
           from cancellation_runs r where festival_id = $1",
    )
    .bind(festival_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(Run { started_at, finished_at, choose_until, awaiting_choice }) = run else { return Ok(None) };
    let methods: Vec<(String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "select payment_method, count(*), count(*) filter (where status = 'SETTLED'),
                count(*) filter (where status = 'WAITING' and attempts > 0),
                coalesce(sum(refunded_minor), 0)::bigint, count(confirmed_at),
                count(*) filter (where status = 'SETTLED' and remedy = 'CREDIT')
           from cancellation_orders where festival_id = $1 group by payment_method order by payment_method",
    )
    .bind(festival_id)
    .fetch_all(&mut *conn)
    .await?;
    let failures: Vec<(Uuid, i32, Option<String>)> = sqlx::query_as(
        "select order_id, attempts, last_error from cancellation_orders
          where festival_id = $1 and status = 'WAITING' and attempts > 0 order by attempts desc, order_id limit $2",
    )
    .bind(festival_id)
    .bind(FAILURES_LISTED)
    .fetch_all(&mut *conn)
    .await?;
    // Also of a festival deleted since (its row stays, marked).
    let currency: String = sqlx::query_scalar("select currency from festivals where id = $1")
        .bind(festival_id)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or_default();
    let by_method: Vec<pb::CancellationByMethod> = methods
        .into_iter()
        .map(|(method, orders, settled, retrying, refunded, confirmed, credited)| pb::CancellationByMethod {
            payment_method: method,
            orders,
            settled,
            retrying,
            refunded_minor: refunded,
            confirmed,
            credited,
        })
        .collect();
    Ok(Some(pb::CancellationProgress {
        festival_id: festival_id.to_string(),
        start_time: Some(festival_platform::convert::timestamp(started_at)),
        finish_time: finished_at.map(festival_platform::convert::timestamp),
        currency,
        orders: by_method.iter().map(|m| m.orders).sum(),
        settled: by_method.iter().map(|m| m.settled).sum(),
        refunded_minor: by_method.iter().map(|m| m.refunded_minor).sum(),
        by_method,
        failures: failures
            .into_iter()
            .map(|(order_id, attempts, error)| pb::CancellationFailure {
                order_id: order_id.to_string(),
                attempts,
                last_error: error.unwrap_or_default(),
            })
            .collect(),
        choose_until: choose_until.map(festival_platform::convert::timestamp),
        awaiting_choice,
    }))
}
