//! Wallets and the wristbands bound to them.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

festival_platform::text_enum! {
    WalletStatus { Active = "ACTIVE", Closed = "CLOSED" }
}

festival_platform::text_enum! {
    BandStatus { Active = "ACTIVE", Blocked = "BLOCKED" }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WalletRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub user_id: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub status: WalletStatus,
    pub currency: String,
    pub balance_minor: i64,
    pub spent_day: Option<NaiveDate>,
    pub spent_today_minor: i64,
    pub created_at: DateTime<Utc>,
    /// Loaded online and not taken back (what of the balance it still is:
    /// [`WalletRow::online_held`]).
    pub online_minor: i64,
    /// Non-refundable credit (promotional, staff drinks), outside the balance: spent first
    /// by connected terminals' charges, never paid out.
    pub credit_minor: i64,
    /// Money loaded online that came in from other wallets (never decreases): none of
    /// it goes back to this holder's card.
    pub online_received_minor: i64,
}

impl WalletRow {
    /// What of the balance is money loaded online: it is spent last.
    pub fn online_held(&self) -> i64 {
        self.online_minor.clamp(0, self.balance_minor.max(0))
    }

    /// What of [`WalletRow::online_held`] may go back to the holder's own cards: less all
    /// it ever received from other wallets' cards (it may have been spent; it is still
    /// not this holder's to get back).
    pub fn own_online_held(&self) -> i64 {
        (self.online_held() - self.online_received_minor).max(0)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BandRow {
    pub festival_id: Uuid,
    pub uid: String,
    pub wallet_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: BandStatus,
    pub bound_at: DateTime<Utc>,
    pub bound_by: Uuid,
    pub blocked_at: Option<DateTime<Utc>>,
    pub blocked_by: Option<Uuid>,
    pub block_reason: String,
    /// The wearer's, read from an identity document.
    pub birth_date: Option<NaiveDate>,
}

const WALLET: &str = "select id, festival_id, user_id, status, currency, balance_minor, spent_day, spent_today_minor,
    created_at, online_minor, credit_minor, online_received_minor from wallets";
const BAND: &str =
    "select festival_id, uid, wallet_id, status, bound_at, bound_by, blocked_at, blocked_by, block_reason,
    birth_date from wristbands";

/// Opens a wallet and its ledger account in one statement; a holder's second wallet at
/// a festival is refused by `wallets_holder_idx` (a twin request won: read theirs).
pub async fn open(
    conn: &mut PgConnection,
    festival: Uuid,
    user: Option<Uuid>,
    currency: &str,
    at: DateTime<Utc>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "with a as (
             insert into accounts (id, festival_id, kind, currency, owner_id) values ($1, $2, 'WALLET', $4, $1)
             returning id)
         insert into wallets (id, festival_id, user_id, currency, created_at)
         select id, $2, $3, $4, $5 from a
         returning id",
    )
    .bind(Uuid::now_v7())
    .bind(festival)
    .bind(user)
    .bind(currency)
    .bind(at)
    .fetch_one(conn)
    .await
}

/// The index that keeps one wallet per holder and festival.
pub const HOLDER_UNIQUE: &str = "wallets_holder_idx";

pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<WalletRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{WALLET} where id = $1"))).bind(id).fetch_optional(conn).await
}

/// The wallet, locked until the caller's transaction ends.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<WalletRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{WALLET} where id = $1 for update")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn of_holder(conn: &mut PgConnection, festival: Uuid, user: Uuid) -> Result<Option<WalletRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{WALLET} where festival_id = $1 and user_id = $2")))
        .bind(festival)
        .bind(user)
        .fetch_optional(conn)
        .await
}

/// Moves a locked wallet's balance by `change`; returns the balance after.
pub async fn apply_change(conn: &mut PgConnection, id: Uuid, change: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("update wallets set balance_minor = balance_minor + $2 where id = $1 returning balance_minor")
        .bind(id)
        .bind(change)
        .fetch_one(conn)
        .await
}

pub async fn bands(conn: &mut PgConnection, wallet: Uuid) -> Result<Vec<BandRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{BAND} where wallet_id = $1 order by bound_at, uid")))
        .bind(wallet)
        .fetch_all(conn)
        .await
}

pub async fn band(conn: &mut PgConnection, festival: Uuid, uid: &str) -> Result<Option<BandRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{BAND} where festival_id = $1 and uid = $2")))
        .bind(festival)
        .bind(uid)
        .fetch_optional(conn)
        .await
}

/// Binds an unused band (false: the festival knows it already).
pub async fn bind(
    conn: &mut PgConnection,
    festival: Uuid,
    uid: &str,
    wallet: Uuid,
    at: DateTime<Utc>,
    by: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into wristbands (festival_id, uid, wallet_id, bound_at, bound_by) values ($1, $2, $3, $4, $5)
         on conflict do nothing",
    )
    .bind(festival)
    .bind(uid)
    .bind(wallet)
    .bind(at)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Blocks a band (a blocked one keeps its first block's time, author and reason).
pub async fn block(
    conn: &mut PgConnection,
    festival: Uuid,
    uid: &str,
    reason: &str,
    at: DateTime<Utc>,
    by: Uuid,
) -> Result<Option<BandRow>, sqlx::Error> {
    sqlx::query_as(
        "update wristbands set status = 'BLOCKED', blocked_at = coalesce(blocked_at, $3),
             blocked_by = coalesce(blocked_by, $5),
             block_reason = case when status = 'BLOCKED' then block_reason else $4 end
         where festival_id = $1 and uid = $2
         returning festival_id, uid, wallet_id, status, bound_at, bound_by, blocked_at, blocked_by, block_reason,
             birth_date",
    )
    .bind(festival)
    .bind(uid)
    .bind(at)
    .bind(reason)
    .bind(by)
    .fetch_optional(conn)
    .await
}

/// Blocks every active band of a wallet (its money left it: a payout, a donation).
pub async fn block_all(
    conn: &mut PgConnection,
    wallet: Uuid,
    reason: &str,
    at: DateTime<Utc>,
    by: Uuid,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "update wristbands set status = 'BLOCKED', blocked_at = $3, blocked_by = $4, block_reason = $2
         where wallet_id = $1 and status = 'ACTIVE'",
    )
    .bind(wallet)
    .bind(reason)
    .bind(at)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Closes a locked wallet: it takes and pays nothing more.
pub async fn close(conn: &mut PgConnection, wallet: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("update wallets set status = 'CLOSED' where id = $1").bind(wallet).execute(conn).await?;
    Ok(())
}

/// A band locked until the caller's transaction ends (a replacement blocks it).
pub async fn lock_band(conn: &mut PgConnection, festival: Uuid, uid: &str) -> Result<Option<BandRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{BAND} where festival_id = $1 and uid = $2 for update")))
        .bind(festival)
        .bind(uid)
        .fetch_optional(conn)
        .await
}

/// Records a band's wearer's date of birth (an identity document was checked by `by`).
pub async fn verify_age(
    conn: &mut PgConnection,
    festival: Uuid,
    uid: &str,
    birth: NaiveDate,
    at: DateTime<Utc>,
    by: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update wristbands set birth_date = $3, age_verified_at = $4, age_verified_by = $5
         where festival_id = $1 and uid = $2",
    )
    .bind(festival)
    .bind(uid)
    .bind(birth)
    .bind(at)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// A replacement band is worn by the same person: it keeps the verified date of birth.
pub async fn copy_age(conn: &mut PgConnection, festival: Uuid, from: &str, to: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update wristbands n set birth_date = o.birth_date, age_verified_at = o.age_verified_at,
             age_verified_by = o.age_verified_by
         from wristbands o where o.festival_id = $1 and o.uid = $2 and n.festival_id = $1 and n.uid = $3",
    )
    .bind(festival)
    .bind(from)
    .bind(to)
    .execute(conn)
    .await?;
    Ok(())
}

/// Opens an anonymous wallet (box office) with the hash of its claim code.
pub async fn open_anonymous(
    conn: &mut PgConnection,
    festival: Uuid,
    currency: &str,
    at: DateTime<Utc>,
    claim_hash: &[u8],
) -> Result<Uuid, sqlx::Error> {
    let id = open(conn, festival, None, currency, at).await?;
    sqlx::query("update wallets set claim_hash = $2 where id = $1").bind(id).bind(claim_hash).execute(conn).await?;
    Ok(id)
}

/// The hash of an anonymous wallet's claim code (None: not claimable).
pub async fn claim_hash(conn: &mut PgConnection, wallet: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar("select claim_hash from wallets where id = $1").bind(wallet).fetch_one(conn).await
}

/// Makes a locked anonymous wallet `user`'s (false: another wallet of theirs appeared).
pub async fn claim(conn: &mut PgConnection, wallet: Uuid, user: Uuid, at: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "update wallets set user_id = $2, claim_hash = null, claimed_by = $2, claimed_at = $3
         where id = $1 and user_id is null and claim_hash is not null",
    )
    .bind(wallet)
    .bind(user)
    .bind(at)
    .execute(conn)
    .await;
    match done {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(sqlx::Error::Database(e)) if e.constraint() == Some(HOLDER_UNIQUE) => Ok(false),
        Err(e) => Err(e),
    }
}

/// An anonymous wallet claimed into `user`'s own: its bands move there, it closes.
pub async fn merge_claimed(
    conn: &mut PgConnection,
    anonymous: Uuid,
    into: Uuid,
    user: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("update wristbands set wallet_id = $2 where wallet_id = $1")
        .bind(anonymous)
        .bind(into)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "update wallets set status = 'CLOSED', claim_hash = null, claimed_by = $2, claimed_at = $3 where id = $1",
    )
    .bind(anonymous)
    .bind(user)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Credit granted to (or, negative, taken back from) a locked wallet; the new credit.
pub async fn add_credit(conn: &mut PgConnection, wallet: Uuid, change: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("update wallets set credit_minor = credit_minor + $2 where id = $1 returning credit_minor")
        .bind(wallet)
        .bind(change)
        .fetch_one(conn)
        .await
}

/// Money loaded online added to (or, negative, taken back from) a locked wallet.
pub async fn add_online(conn: &mut PgConnection, wallet: Uuid, change: i64) -> Result<(), sqlx::Error> {
    sqlx::query("update wallets set online_minor = greatest(online_minor + $2, 0) where id = $1")
        .bind(wallet)
        .bind(change)
        .execute(conn)
        .await?;
    Ok(())
}

/// A transfer of `amount` between two locked wallets carries the sender's money loaded
/// online first (so it cannot be laundered into a bank payout through another wallet).
pub async fn move_online(conn: &mut PgConnection, from: &WalletRow, to: Uuid, amount: i64) -> Result<(), sqlx::Error> {
    let moved = amount.min(from.online_held());
    if moved > 0 {
        add_online(&mut *conn, from.id, -moved).await?;
        add_online(&mut *conn, to, moved).await?;
        // Another card's money: the close-out pays none of this wallet's back to a card.
        sqlx::query("update wallets set online_received_minor = online_received_minor + $2 where id = $1")
            .bind(to)
            .bind(moved)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Replaces an anonymous wallet's claim code (the old one stops working).
pub async fn set_claim_hash(conn: &mut PgConnection, wallet: Uuid, hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query("update wallets set claim_hash = $2 where id = $1 and claim_hash is not null")
        .bind(wallet)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether `user` loaded money onto the wallet at a desk.
pub async fn topped_up_by(conn: &mut PgConnection, wallet: Uuid, user: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "select exists (select 1 from transactions where wallet_id = $1 and kind = 'TOPUP' and actor_id = $2)",
    )
    .bind(wallet)
    .bind(user)
    .fetch_one(conn)
    .await
}

/// Reopens a locked wallet closed by its payout (the bank returned the transfer).
pub async fn reopen(conn: &mut PgConnection, wallet: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("update wallets set status = 'ACTIVE' where id = $1").bind(wallet).execute(conn).await?;
    Ok(())
}
