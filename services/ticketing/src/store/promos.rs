use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

pub const CODE_UNIQUE: &str = "promo_codes_code_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PromoRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub code: String,
    pub kind: String,
    pub value: i64,
    pub category_ids: Vec<Uuid>,
    pub min_basket_minor: i64,
    pub max_uses: i64,
    pub max_uses_per_account: i32,
    pub used: i64,
    pub stackable: bool,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

macro_rules! columns {
    () => {
        "id, festival_id, code, kind, value, category_ids, min_basket_minor, max_uses, max_uses_per_account, used, \
         stackable, valid_from, valid_until, created_at"
    };
}

pub async fn insert_many(conn: &mut PgConnection, rows: &[PromoRow]) -> Result<(), sqlx::Error> {
    for p in rows {
        sqlx::query(
            "insert into promo_codes (id, festival_id, code, kind, value, category_ids, min_basket_minor, max_uses,
                 max_uses_per_account, stackable, valid_from, valid_until, created_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(p.id)
        .bind(p.festival_id)
        .bind(&p.code)
        .bind(&p.kind)
        .bind(p.value)
        .bind(&p.category_ids)
        .bind(p.min_basket_minor)
        .bind(p.max_uses)
        .bind(p.max_uses_per_account)
        .bind(p.stackable)
        .bind(p.valid_from)
        .bind(p.valid_until)
        .bind(p.created_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn count(conn: &mut PgConnection, festival_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from promo_codes where festival_id = $1")
        .bind(festival_id)
        .fetch_one(conn)
        .await
}

pub async fn of_festival(conn: &mut PgConnection, festival_id: Uuid, limit: i64) -> Result<Vec<PromoRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select ",
        columns!(),
        " from promo_codes where festival_id = $1 order by created_at, id limit $2"
    ))
    .bind(festival_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The festival's codes among `codes` (upper-case).
pub async fn find_codes(
    conn: &mut PgConnection,
    festival_id: Uuid,
    codes: &[String],
) -> Result<Vec<PromoRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from promo_codes where festival_id = $1 and code = any($2)"))
        .bind(festival_id)
        .bind(codes)
        .fetch_all(conn)
        .await
}

/// Tickets an account has discounted with a code, in holds that are active or sold.
pub async fn used_by_account(conn: &mut PgConnection, promo_id: Uuid, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select coalesce(sum(r.tickets), 0)::bigint from promo_redemptions r join holds h on h.id = r.hold_id
         where r.promo_code_id = $1 and r.user_id = $2 and h.status in ('ACTIVE', 'CHECKED_OUT')",
    )
    .bind(promo_id)
    .bind(user_id)
    .fetch_one(conn)
    .await
}

/// Serialises one account's uses of one code (its per-account limit).
pub async fn lock_account_uses(conn: &mut PgConnection, promo_id: Uuid, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended('promo/' || $1::text || '/' || $2::text, 0))")
        .bind(promo_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes `tickets` uses of a code if it has them left: the check and the write are one
/// statement under its row lock. Returns whether it did.
pub async fn take_uses(conn: &mut PgConnection, id: Uuid, tickets: i64) -> Result<bool, sqlx::Error> {
    if cfg!(feature = "race-hooks") {
        // Test-only: read, pause, write without the condition, so the race test's negative
        // control can see the last use taken twice.
        let (used, max): (i64, i64) = sqlx::query_as("select used, max_uses from promo_codes where id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        if max > 0 && used + tickets > max {
            return Ok(false);
        }
        #[cfg(feature = "race-hooks")]
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        sqlx::query("update promo_codes set used = used + $2 where id = $1")
            .bind(id)
            .bind(tickets)
            .execute(conn)
            .await?;
        return Ok(true);
    }
    let done = sqlx::query(
        "update promo_codes set used = used + $2, updated_at = now()
         where id = $1 and (max_uses = 0 or used + $2 <= max_uses)",
    )
    .bind(id)
    .bind(tickets)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn record_redemption(
    conn: &mut PgConnection,
    hold_id: Uuid,
    promo_id: Uuid,
    user_id: Uuid,
    tickets: i32,
    discount_minor: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into promo_redemptions (hold_id, promo_code_id, user_id, tickets, discount_minor) values ($1, $2, $3, $4, $5)",
    )
    .bind(hold_id)
    .bind(promo_id)
    .bind(user_id)
    .bind(tickets)
    .bind(discount_minor)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives a hold's code uses back (it ended unsold): the codes locked in id order first,
/// as a new hold takes them, so the two never wait on each other in a cycle. `FOR NO KEY
/// UPDATE` is enough to change `used`, and does not conflict with the key-share locks a
/// new hold's redemption rows take on the codes they name.
pub async fn give_back(conn: &mut PgConnection, hold_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "select id from promo_codes where id in (select promo_code_id from promo_redemptions where hold_id = $1)
         order by id for no key update",
    )
    .bind(hold_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "update promo_codes p set used = p.used - r.tickets, updated_at = now()
         from promo_redemptions r where r.hold_id = $1 and p.id = r.promo_code_id",
    )
    .bind(hold_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The codes a hold used.
pub async fn codes_of_hold(conn: &mut PgConnection, hold_id: Uuid) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select p.code from promo_redemptions r join promo_codes p on p.id = r.promo_code_id where r.hold_id = $1 order by p.code",
    )
    .bind(hold_id)
    .fetch_all(conn)
    .await
}
