//! Offline uploads: what each terminal uploaded (applied once by its sequence number),
//! the bands and wallets they name, the exceptions, and the set-based write of a whole
//! upload (an upload of 10,000 charges is a handful of statements, not 10,000).

use chrono::{DateTime, Utc};
use festival_platform::events::outbox::Queued;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ledger::Posting;

/// One charge of an upload, as recorded.
pub struct Upload<'a> {
    pub seq: i64,
    pub uid: &'a str,
    pub amount: i64,
    pub at: DateTime<Utc>,
}

/// Records the upload's charges; returns the sequence numbers not seen before (a
/// concurrent upload of the same charges waits for the first, then finds them seen).
pub async fn record(
    conn: &mut PgConnection,
    device: Uuid,
    festival: Uuid,
    charges: &[Upload<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<i64>, sqlx::Error> {
    let seqs: Vec<i64> = charges.iter().map(|c| c.seq).collect();
    let uids: Vec<&str> = charges.iter().map(|c| c.uid).collect();
    let amounts: Vec<i64> = charges.iter().map(|c| c.amount).collect();
    let times: Vec<DateTime<Utc>> = charges.iter().map(|c| c.at).collect();
    sqlx::query_scalar(
        "insert into offline_uploads (device_id, seq, festival_id, uid, amount_minor, charged_at, uploaded_at)
         select $1, x.seq, $2, x.uid, x.amount, x.at, $7
         from unnest($3::bigint[], $4::text[], $5::bigint[], $6::timestamptz[]) as x(seq, uid, amount, at)
         order by x.seq
         on conflict do nothing returning seq",
    )
    .bind(device)
    .bind(festival)
    .bind(&seqs)
    .bind(&uids)
    .bind(&amounts)
    .bind(&times)
    .bind(now)
    .fetch_all(conn)
    .await
}

/// What a terminal uploaded before under these sequence numbers: (seq, uid, amount, time).
pub async fn stored(
    conn: &mut PgConnection,
    device: Uuid,
    seqs: &[i64],
) -> Result<Vec<(i64, String, i64, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "select seq, uid, amount_minor, charged_at from offline_uploads where device_id = $1 and seq = any($2)",
    )
    .bind(device)
    .bind(seqs)
    .fetch_all(conn)
    .await
}

/// What the offline-loss account paid so far for each of these bands.
pub async fn losses(conn: &mut PgConnection, festival: Uuid, uids: &[&str]) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select uid, sum(loss_minor)::bigint from offline_uploads where festival_id = $1 and uid = any($2) group by uid",
    )
    .bind(festival)
    .bind(uids)
    .fetch_all(conn)
    .await
}

/// A band an upload names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BandWallet {
    pub uid: String,
    pub wallet_id: Uuid,
    pub user_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub status: crate::store::wallets::BandStatus,
    pub blocked_at: Option<DateTime<Utc>>,
    /// The wearer's verified date of birth, if any.
    pub birth_date: Option<chrono::NaiveDate>,
}

pub async fn bands(conn: &mut PgConnection, festival: Uuid, uids: &[&str]) -> Result<Vec<BandWallet>, sqlx::Error> {
    sqlx::query_as(
        "select b.uid, b.wallet_id, w.user_id, b.status, b.blocked_at, b.birth_date
         from wristbands b join wallets w on w.id = b.wallet_id
         where b.festival_id = $1 and b.uid = any($2)",
    )
    .bind(festival)
    .bind(uids)
    .fetch_all(conn)
    .await
}

/// Other terminals' offline charges of these bands between `from` and `to`.
pub async fn elsewhere(
    conn: &mut PgConnection,
    festival: Uuid,
    device: Uuid,
    uids: &[&str],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(String, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "select uid, charged_at from offline_uploads
         where festival_id = $1 and uid = any($3) and device_id <> $2 and charged_at between $4 and $5
           and transaction_id is not null
         order by charged_at",
    )
    .bind(festival)
    .bind(device)
    .bind(uids)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

/// The wallets' balances, locked (in id order) until the caller's transaction ends.
pub async fn lock_wallets(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as("select id, balance_minor from wallets where id = any($1) order by id for update")
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// One booked offline charge.
pub struct Booking<'a> {
    pub id: Uuid,
    pub seq: i64,
    pub posting: &'a Posting,
    pub balance_after: i64,
    /// What the offline-loss account paid of it.
    pub loss: i64,
    pub event: &'a Queued,
}

/// An exception to record.
pub struct Exception<'a> {
    pub seq: i64,
    pub uid: &'a str,
    pub wallet: Option<Uuid>,
    pub amount: i64,
    pub shortfall: i64,
    pub kind: &'static str,
    pub transaction: Option<Uuid>,
    pub at: DateTime<Utc>,
}

/// Writes the bookings (wallet balances, transactions, entries, journal queue, events),
/// links the uploads to their transactions, records the exceptions and blocks `block`.
#[allow(clippy::too_many_arguments)]
pub async fn write(
    conn: &mut PgConnection,
    festival: Uuid,
    device: Uuid,
    vendor: Uuid,
    currency: &str,
    now: DateTime<Utc>,
    bookings: &[Booking<'_>],
    charged_at: &[DateTime<Utc>],
    balances: &[(Uuid, i64)],
    exceptions: &[Exception<'_>],
    block: &[&str],
) -> Result<(), sqlx::Error> {
    let (wallet_ids, new_balances): (Vec<Uuid>, Vec<i64>) = balances.iter().copied().unzip();
    sqlx::query(
        "update wallets w set balance_minor = x.balance from unnest($1::uuid[], $2::bigint[]) as x(id, balance)
         where w.id = x.id",
    )
    .bind(&wallet_ids)
    .bind(&new_balances)
    .execute(&mut *conn)
    .await?;

    let ids: Vec<Uuid> = bookings.iter().map(|b| b.id).collect();
    let seqs: Vec<i64> = bookings.iter().map(|b| b.seq).collect();
    let amounts: Vec<i64> = bookings.iter().map(|b| b.posting.amount).collect();
    let wallets: Vec<Uuid> = bookings.iter().map(|b| b.posting.wallet).collect();
    let changes: Vec<i64> = bookings.iter().map(|b| b.posting.wallet_change).collect();
    let afters: Vec<i64> = bookings.iter().map(|b| b.balance_after).collect();
    let (mut e_tx, mut e_account, mut e_amount) = (Vec::new(), Vec::new(), Vec::new());
    for b in bookings {
        for e in &b.posting.entries {
            e_tx.push(b.id);
            e_account.push(e.account);
            e_amount.push(e.amount);
        }
    }
    let (o_id, o_subject, o_type, o_payload, o_headers) = (
        bookings.iter().map(|b| b.event.id).collect::<Vec<_>>(),
        bookings.iter().map(|b| b.event.subject).collect::<Vec<_>>(),
        bookings.iter().map(|b| b.event.event_type.as_str()).collect::<Vec<_>>(),
        bookings.iter().map(|b| b.event.payload.as_slice()).collect::<Vec<_>>(),
        bookings.iter().map(|b| &b.event.headers).collect::<Vec<_>>(),
    );
    sqlx::query(
        "with t as (
             insert into transactions (id, festival_id, kind, currency, amount_minor, wallet_id, wallet_change_minor,
                 balance_after_minor, counterpart_id, actor_id, reason, created_at, idempotency_key)
             select x.id, $1, 'PAYMENT', $4, x.amount, x.wallet, x.change, x.after, $3, $2, '', x.at,
                 'offline:' || x.seq
             from unnest($6::uuid[], $7::bigint[], $8::bigint[], $9::uuid[], $10::bigint[], $11::bigint[],
                 $12::timestamptz[]) as x(id, seq, amount, wallet, change, after, at)
             returning id),
         e as (
             insert into entries (transaction_id, account_id, festival_id, currency, amount_minor)
             select x.tx, x.account, $1, $4, x.amount
             from unnest($13::uuid[], $14::uuid[], $15::bigint[]) as x(tx, account, amount)),
         q as (
             insert into journal_queue (transaction_id, festival_id, created_at)
             select x.id, $1, x.at from unnest($6::uuid[], $12::timestamptz[]) as x(id, at)),
         u as (
             update offline_uploads o set transaction_id = x.id, loss_minor = x.loss
             from unnest($6::uuid[], $7::bigint[], $21::bigint[]) as x(id, seq, loss)
             where o.device_id = $2 and o.seq = x.seq)
         insert into outbox (id, subject, event_type, payload, headers)
         select * from unnest($16::uuid[], $17::text[], $18::text[], $19::bytea[], $20::jsonb[])",
    )
    .bind(festival)
    .bind(device)
    .bind(vendor)
    .bind(currency)
    .bind(now)
    .bind(&ids)
    .bind(&seqs)
    .bind(&amounts)
    .bind(&wallets)
    .bind(&changes)
    .bind(&afters)
    .bind(charged_at)
    .bind(&e_tx)
    .bind(&e_account)
    .bind(&e_amount)
    .bind(&o_id)
    .bind(&o_subject)
    .bind(&o_type)
    .bind(&o_payload)
    .bind(&o_headers)
    .bind(bookings.iter().map(|b| b.loss).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;

    if !exceptions.is_empty() {
        let x_ids: Vec<Uuid> = exceptions.iter().map(|_| Uuid::now_v7()).collect();
        sqlx::query(
            "insert into offline_exceptions (id, festival_id, device_id, seq, uid, wallet_id, amount_minor,
                 shortfall_minor, kind, transaction_id, charged_at, recorded_at)
             select x.id, $1, $2, x.seq, x.uid, x.wallet, x.amount, x.shortfall, x.kind, x.tx, x.at, $3
             from unnest($4::uuid[], $5::bigint[], $6::text[], $7::uuid[], $8::bigint[], $9::bigint[], $10::text[],
                 $11::uuid[], $12::timestamptz[]) as x(id, seq, uid, wallet, amount, shortfall, kind, tx, at)",
        )
        .bind(festival)
        .bind(device)
        .bind(now)
        .bind(&x_ids)
        .bind(exceptions.iter().map(|x| x.seq).collect::<Vec<_>>())
        .bind(exceptions.iter().map(|x| x.uid).collect::<Vec<_>>())
        .bind(exceptions.iter().map(|x| x.wallet).collect::<Vec<_>>())
        .bind(exceptions.iter().map(|x| x.amount).collect::<Vec<_>>())
        .bind(exceptions.iter().map(|x| x.shortfall).collect::<Vec<_>>())
        .bind(exceptions.iter().map(|x| x.kind).collect::<Vec<_>>())
        .bind(exceptions.iter().map(|x| x.transaction).collect::<Vec<_>>())
        .bind(exceptions.iter().map(|x| x.at).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    if !block.is_empty() {
        sqlx::query(
            "update wristbands set status = 'BLOCKED', blocked_at = coalesce(blocked_at, $3), blocked_by = coalesce(blocked_by, $4),
                 block_reason = case when status = 'BLOCKED' then block_reason else 'offline exception' end
             where festival_id = $1 and uid = any($2)",
        )
        .bind(festival)
        .bind(block)
        .bind(now)
        .bind(device)
        .execute(conn)
        .await?;
    }
    Ok(())
}

/// The first 100 runs of sequence numbers a terminal never uploaded, below the highest
/// it did (both ends included).
pub async fn gaps(conn: &mut PgConnection, device: Uuid) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select prev + 1, seq - 1 from (
             select seq, coalesce(lag(seq) over (order by seq), 0) as prev from offline_uploads where device_id = $1) x
         where seq > prev + 1 order by seq limit 100",
    )
    .bind(device)
    .fetch_all(conn)
    .await
}

pub async fn next_sequence(conn: &mut PgConnection, device: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select coalesce(max(seq), 0) + 1 from offline_uploads where device_id = $1")
        .bind(device)
        .fetch_one(conn)
        .await
}

pub async fn blocked_uids(conn: &mut PgConnection, festival: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("select uid from wristbands where festival_id = $1 and status = 'BLOCKED' order by uid")
        .bind(festival)
        .fetch_all(conn)
        .await
}

/// The festival's active bands whose wearer's date of birth was verified.
pub async fn birth_dates(
    conn: &mut PgConnection,
    festival: Uuid,
) -> Result<Vec<(String, chrono::NaiveDate)>, sqlx::Error> {
    sqlx::query_as(
        "select uid, birth_date from wristbands
         where festival_id = $1 and status = 'ACTIVE' and birth_date is not null order by uid",
    )
    .bind(festival)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExceptionRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub device_id: Uuid,
    pub seq: i64,
    pub uid: String,
    pub wallet_id: Option<Uuid>,
    pub amount_minor: i64,
    pub shortfall_minor: i64,
    pub kind: String,
    pub transaction_id: Option<Uuid>,
    pub charged_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

pub async fn exceptions(
    conn: &mut PgConnection,
    festival: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<ExceptionRow>, sqlx::Error> {
    let (at, id) = after.unzip();
    sqlx::query_as(
        "select id, festival_id, device_id, seq, uid, wallet_id, amount_minor, shortfall_minor, kind, transaction_id,
             charged_at, recorded_at
         from offline_exceptions
         where festival_id = $1 and ($2::timestamptz is null or (recorded_at, id) < ($2, $3))
         order by recorded_at desc, id desc limit $4",
    )
    .bind(festival)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
