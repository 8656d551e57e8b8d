//! Transactions and their entries: written once, never changed (the database refuses).
//! A transaction, its entries, its journal queue row and its event are one statement.

use chrono::{DateTime, NaiveDate, Utc};
use festival_platform::events::outbox::Queued;
use festival_platform::idempotency::Answered;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ledger::{Entry, Posting, TxKind};
use crate::store::festivals::FestivalStatus;
use crate::store::wallets::BandStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TxRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: TxKind,
    pub currency: String,
    pub amount_minor: i64,
    pub wallet_id: Uuid,
    pub wallet_change_minor: i64,
    pub balance_after_minor: i64,
    pub counterpart_id: Option<Uuid>,
    pub counterpart_balance_after_minor: Option<i64>,
    pub actor_id: Uuid,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// PAYMENT only: the terminal's key, the festival day, the day's spending after it
    /// and the cap it was checked against.
    pub idempotency_key: Option<String>,
    pub charge_day: Option<NaiveDate>,
    pub day_spent_after_minor: Option<i64>,
    pub daily_cap_minor: Option<i64>,
    /// Non-refundable credit into (+) or out of (-) the wallet's credit.
    pub credit_change_minor: i64,
}

pub const COLUMNS: &str = "id, festival_id, kind, currency, amount_minor, wallet_id, wallet_change_minor,
    balance_after_minor, counterpart_id, counterpart_balance_after_minor, actor_id, reason, created_at,
    idempotency_key, charge_day, day_spent_after_minor, daily_cap_minor, credit_change_minor";

/// [`COLUMNS`] for the journal, which hashes what `transactions` stores (a credit change
/// is in the entries it hashes).
pub const JOURNAL_COLUMNS: &str = "id, festival_id, kind, currency, amount_minor, wallet_id, wallet_change_minor,
    balance_after_minor, counterpart_id, counterpart_balance_after_minor, actor_id, reason, created_at,
    idempotency_key, charge_day, day_spent_after_minor, daily_cap_minor, 0::bigint as credit_change_minor";

/// [`COLUMNS`] read from `transactions` itself: the credit change is what its entries
/// move on a CREDIT account.
const FROM_TRANSACTIONS: &str = "id, festival_id, kind, currency, amount_minor, wallet_id, wallet_change_minor,
    balance_after_minor, counterpart_id, counterpart_balance_after_minor, actor_id, reason, created_at,
    idempotency_key, charge_day, day_spent_after_minor, daily_cap_minor,
    (select coalesce(-sum(e.amount_minor), 0)::bigint from entries e join accounts a on a.id = e.account_id
     where e.transaction_id = transactions.id and a.kind = 'CREDIT') as credit_change_minor";

/// Who and what a transaction records besides its posting.
#[derive(Debug, Clone)]
pub struct Meta<'a> {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub currency: &'a str,
    pub counterpart_id: Option<Uuid>,
    pub actor_id: Uuid,
    pub reason: &'a str,
    pub at: DateTime<Utc>,
}

/// Writes a posting whose wallet balances were already moved under their locks (the
/// caller's transaction): the transaction, its entries, its journal queue row and event.
pub async fn post(
    conn: &mut PgConnection,
    p: &Posting,
    m: &Meta<'_>,
    balance_after: i64,
    counterpart_balance_after: Option<i64>,
    event: &Queued,
) -> Result<(), sqlx::Error> {
    let accounts: Vec<Uuid> = p.entries.iter().map(|e| e.account).collect();
    let amounts: Vec<i64> = p.entries.iter().map(|e| e.amount).collect();
    sqlx::query(
        "with t as (
             insert into transactions (id, festival_id, kind, currency, amount_minor, wallet_id, wallet_change_minor,
                 balance_after_minor, counterpart_id, counterpart_balance_after_minor, actor_id, reason, created_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) returning id),
         e as (
             insert into entries (transaction_id, account_id, festival_id, currency, amount_minor)
             select t.id, x.account, $2, $4, x.amount from t cross join unnest($14::uuid[], $15::bigint[]) as x(account, amount)),
         q as (insert into journal_queue (transaction_id, festival_id, created_at) select id, $2, $13 from t)
         insert into outbox (id, subject, event_type, payload, headers) select $16, $17, $18, $19, $20 from t",
    )
    .bind(m.id)
    .bind(m.festival_id)
    .bind(p.kind.as_str())
    .bind(m.currency)
    .bind(p.amount)
    .bind(p.wallet)
    .bind(p.wallet_change)
    .bind(balance_after)
    .bind(m.counterpart_id)
    .bind(counterpart_balance_after)
    .bind(m.actor_id)
    .bind(m.reason)
    .bind(m.at)
    .bind(&accounts)
    .bind(&amounts)
    .bind(event.id)
    .bind(event.subject)
    .bind(&event.event_type)
    .bind(&event.payload)
    .bind(&event.headers)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a charge needs to know before it writes: who the band and the terminal are.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChargeContext {
    pub wallet_id: Uuid,
    pub user_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub band_status: BandStatus,
    pub wallet_currency: String,
    pub vendor_id: Option<Uuid>,
    pub vendor_account: Option<Uuid>,
    pub device_revoked: bool,
    pub time_zone: String,
    #[sqlx(try_from = "String")]
    pub festival_status: FestivalStatus,
    pub low_balance_minor: i64,
    pub birth_date: Option<NaiveDate>,
    pub credit_account: Option<Uuid>,
}

/// None: the festival has no such band (or cashless has not heard of the festival).
pub async fn charge_context(
    conn: &mut PgConnection,
    festival: Uuid,
    uid: &str,
    device: Uuid,
) -> Result<Option<ChargeContext>, sqlx::Error> {
    sqlx::query_as(
        "select b.wallet_id, w.user_id, b.status as band_status, w.currency as wallet_currency, t.vendor_id,
             a.id as vendor_account, exists (select 1 from revoked_devices r where r.device_id = $3) as device_revoked,
             f.time_zone, f.status as festival_status, s.low_balance_minor, b.birth_date, c.id as credit_account
         from wristbands b
         join wallets w on w.id = b.wallet_id
         join festivals f on f.id = b.festival_id and not f.deleted
         join settings s on s.festival_id = b.festival_id
         left join terminals t on t.device_id = $3 and t.festival_id = b.festival_id
         left join accounts a on a.festival_id = b.festival_id and a.kind = 'VENDOR_REVENUE' and a.owner_id = t.vendor_id
         left join accounts c on c.festival_id = b.festival_id and c.kind = 'CREDIT' and c.owner_id = b.wallet_id
         where b.festival_id = $1 and b.uid = $2",
    )
    .bind(festival)
    .bind(uid)
    .bind(device)
    .fetch_optional(conn)
    .await
}

/// A charge, whole: guarded by the wallet's row (balance, status, currency, the
/// festival's per-charge limit and daily cap), the band still active and the terminal
/// still the vendor's and not revoked.
pub struct ChargeWrite<'a> {
    pub posting: &'a Posting,
    pub meta: Meta<'a>,
    pub uid: &'a str,
    pub vendor_id: Uuid,
    pub day: NaiveDate,
    pub recorded: &'a Queued,
    /// Published only when this charge takes the wallet below the threshold.
    pub low: &'a Queued,
    pub answer: &'a Answered,
    /// race-hooks only: the balance read before a pause, written back blind.
    pub stale_balance: Option<i64>,
    /// The wallet's CREDIT account, if it has one: its credit is spent first.
    pub credit_account: Option<Uuid>,
}

/// What a booked charge's statement reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Booked {
    pub balance_minor: i64,
    pub spent_today_minor: i64,
    pub daily_cap_minor: i64,
    /// What of the charge the wallet's credit paid.
    pub credit_spent: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charged {
    Done(Booked),
    /// A guard refused it: nothing written (the caller reads why).
    Refused,
    /// Another request with this idempotency key was written first.
    KeyTaken,
}

pub async fn charge(conn: &mut PgConnection, c: &ChargeWrite<'_>) -> Result<Charged, sqlx::Error> {
    // Credit first: `$31` is the wallet's CREDIT account (nil: it has none, and no credit
    // is spent); each SET reads the row as it was, so `credit_spent_minor` is this
    // charge's credit share.
    macro_rules! charge_sql {
        ($balance:literal, $credit:literal, $spent:literal, $guard:literal) => {
            concat!(
                "with w as (
                     update wallets set balance_minor = ",
                $balance,
                ", credit_minor = ",
                $credit,
                ", credit_spent_minor = ",
                $spent,
                ",
                         spent_today_minor = case when spent_day = $14 then spent_today_minor + $5 else $5 end,
                         spent_day = $14
                     from settings s
                     where wallets.id = $6 and s.festival_id = $2 and wallets.festival_id = $2
                       and wallets.status = 'ACTIVE' and wallets.currency = $4 and $5 <= s.max_charge_minor
                       -- A charge whose day is behind the wallet's (a replica's clock a
                       -- little late at midnight) is refused and tapped again, never
                       -- counted in a day already closed.
                       and (wallets.spent_day is null or wallets.spent_day <= $14)
                       and exists (select 1 from festivals f where f.id = $2 and not f.deleted
                                   and f.status not in ('CANCELLED', 'DRAFT'))",
                $guard,
                "
                       and (s.daily_cap_minor = 0
                            or (case when wallets.spent_day = $14 then wallets.spent_today_minor else 0 end) + $5
                               <= s.daily_cap_minor)
                       and exists (select 1 from wristbands b
                                   where b.festival_id = $2 and b.uid = $13 and b.wallet_id = $6 and b.status = 'ACTIVE')
                       and exists (select 1 from terminals t
                                   where t.device_id = $11 and t.festival_id = $2 and t.vendor_id = $9)
                       and not exists (select 1 from revoked_devices r where r.device_id = $11)
                     returning wallets.balance_minor, wallets.spent_today_minor, s.daily_cap_minor, s.low_balance_minor,
                         wallets.credit_spent_minor as credit_spent),
                 t as (
                     insert into transactions (id, festival_id, kind, currency, amount_minor, wallet_id,
                         wallet_change_minor, balance_after_minor, counterpart_id, counterpart_balance_after_minor,
                         actor_id, reason, created_at, idempotency_key, charge_day, day_spent_after_minor,
                         daily_cap_minor)
                     select $1, $2, $3, $4, $5, $6, $7 + w.credit_spent, w.balance_minor, $9, $8, $11, $12, $10, $28, $14,
                         w.spent_today_minor, w.daily_cap_minor
                     from w returning id),
                 e as (
                     insert into entries (transaction_id, account_id, festival_id, currency, amount_minor)
                     select t.id, x.account, $2, $4, x.amount
                     from t cross join w cross join lateral (
                         select u.account, u.amount from unnest($15::uuid[], $16::bigint[]) as u(account, amount)
                         where u.account <> $6
                         union all select $6::uuid, $5 - w.credit_spent
                         union all select $31::uuid, w.credit_spent) as x(account, amount)
                     where x.amount <> 0),
                 q as (insert into journal_queue (transaction_id, festival_id, created_at) select id, $2, $10 from t),
                 o as (
                     insert into outbox (id, subject, event_type, payload, headers)
                     select $17, $18, $19, $20, $21 from t),
                 l as (
                     insert into outbox (id, subject, event_type, payload, headers)
                     select $22, $23, $24, $25, $26 from w
                     where w.low_balance_minor > 0 and w.balance_minor < w.low_balance_minor
                       and w.balance_minor + $5 - w.credit_spent >= w.low_balance_minor),
                 k as (
                     insert into idempotency_keys (scope, key, request_hash, response)
                     select $27, $28, $29, $30 from t)
                 select balance_minor, spent_today_minor, daily_cap_minor, credit_spent from w"
            )
        };
    }
    let sql = match c.stale_balance {
        None => charge_sql!(
            "balance_minor - $5 + (case when $31::uuid = '00000000-0000-0000-0000-000000000000' then 0
                                   else least(credit_minor, $5) end)",
            "credit_minor - (case when $31::uuid = '00000000-0000-0000-0000-000000000000' then 0
                              else least(credit_minor, $5) end)",
            "(case when $31::uuid = '00000000-0000-0000-0000-000000000000' then 0 else least(credit_minor, $5) end)",
            " and wallets.balance_minor + (case when $31::uuid = '00000000-0000-0000-0000-000000000000' then 0
                                             else wallets.credit_minor end) >= $5"
        ),
        // race-hooks: the balance read before the pause, no guard on it, no credit spent.
        Some(_) => charge_sql!("$32 - $5", "credit_minor", "0", ""),
    };
    let p = c.posting;
    let m = &c.meta;
    let accounts: Vec<Uuid> = p.entries.iter().map(|e| e.account).collect();
    let amounts: Vec<i64> = p.entries.iter().map(|e| e.amount).collect();
    let mut query = sqlx::query_as::<_, Booked>(sql)
        .bind(m.id)
        .bind(m.festival_id)
        .bind(p.kind.as_str())
        .bind(m.currency)
        .bind(p.amount)
        .bind(p.wallet)
        .bind(p.wallet_change)
        .bind(None::<i64>) // a payment has no receiving wallet
        .bind(c.vendor_id)
        .bind(m.at)
        .bind(m.actor_id)
        .bind(m.reason)
        .bind(c.uid)
        .bind(c.day)
        .bind(&accounts)
        .bind(&amounts)
        .bind(c.recorded.id)
        .bind(c.recorded.subject)
        .bind(&c.recorded.event_type)
        .bind(&c.recorded.payload)
        .bind(&c.recorded.headers)
        .bind(c.low.id)
        .bind(c.low.subject)
        .bind(&c.low.event_type)
        .bind(&c.low.payload)
        .bind(&c.low.headers)
        .bind(&c.answer.scope)
        .bind(&c.answer.key)
        .bind(&c.answer.request_hash)
        .bind(&c.answer.response)
        .bind(c.credit_account.unwrap_or_else(Uuid::nil));
    if let Some(stale) = c.stale_balance {
        query = query.bind(stale);
    }
    match query.fetch_optional(conn).await {
        Ok(Some(booked)) => Ok(Charged::Done(booked)),
        Ok(None) => Ok(Charged::Refused),
        Err(e) if festival_platform::idempotency::taken(&e) => Ok(Charged::KeyTaken),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some(CHARGE_KEY_UNIQUE) => Ok(Charged::KeyTaken),
        Err(e) => Err(e),
    }
}

/// The index that books a terminal's charge once per key, whatever the kit's key table
/// still remembers.
pub const CHARGE_KEY_UNIQUE: &str = "transactions_charge_key_idx";

/// The charge a terminal booked under `key`.
pub async fn find_charge(conn: &mut PgConnection, terminal: Uuid, key: &str) -> Result<Option<TxRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {FROM_TRANSACTIONS} from transactions where actor_id = $1 and idempotency_key = $2 and kind = 'PAYMENT'"
    )))
    .bind(terminal)
    .bind(key)
    .fetch_optional(conn)
    .await
}

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<TxRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("select {FROM_TRANSACTIONS} from transactions where id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// A wallet's transactions (paid from it, or transferred to it), newest first, after
/// the cursor (created_at, id).
pub async fn page(
    conn: &mut PgConnection,
    wallet: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<TxRow>, sqlx::Error> {
    let (at, id) = after.unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from (
             (select {FROM_TRANSACTIONS} from transactions where wallet_id = $1
                  and ($2::timestamptz is null or (created_at, id) < ($2, $3))
                  order by created_at desc, id desc limit $4)
             union all
             (select {FROM_TRANSACTIONS} from transactions where counterpart_id = $1 and kind = 'TRANSFER'
                  and ($2::timestamptz is null or (created_at, id) < ($2, $3))
                  order by created_at desc, id desc limit $4)) x
         order by created_at desc, id desc limit $4"
    )))
    .bind(wallet)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A transaction's entries, as booked.
pub async fn entries(conn: &mut PgConnection, transaction: Uuid) -> Result<Vec<Entry>, sqlx::Error> {
    let rows: Vec<(Uuid, i64)> =
        sqlx::query_as("select account_id, amount_minor from entries where transaction_id = $1 order by account_id")
            .bind(transaction)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|(account, amount)| Entry { account, amount }).collect())
}

/// The void of a charge, if it was voided.
pub async fn void_of(conn: &mut PgConnection, charge: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("select void_id from voids where charge_id = $1").bind(charge).fetch_optional(conn).await
}

/// Records `void` as the one void of `charge` (false: it was voided already).
pub async fn record_void(
    conn: &mut PgConnection,
    charge: Uuid,
    void: Uuid,
    festival: Uuid,
    reason: &str,
    by: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into voids (charge_id, void_id, festival_id, reason, voided_by, voided_at)
         values ($1, $2, $3, $4, $5, $6) on conflict (charge_id) do nothing",
    )
    .bind(charge)
    .bind(void)
    .bind(festival)
    .bind(reason)
    .bind(by)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
