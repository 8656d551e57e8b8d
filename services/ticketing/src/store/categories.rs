use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::checkin::Validity;
use crate::domain::inventory::Counters;
use crate::domain::status::{FestivalStatus, Visibility};

pub const NAME_UNIQUE: &str = "categories_name_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CategoryRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub name: String,
    pub price_minor: i64,
    pub sale_start: Option<DateTime<Utc>>,
    pub sale_end: Option<DateTime<Utc>>,
    pub min_per_order: i32,
    pub max_per_order: i32,
    pub max_per_account: i32,
    #[sqlx(try_from = "String")]
    pub visibility: Visibility,
    pub created_at: DateTime<Utc>,
    /// Festival-local days it is valid on (empty: every day).
    pub valid_days: Vec<NaiveDate>,
    /// Zones it opens (empty: every zone).
    pub zones: Vec<String>,
    pub reentry: bool,
    pub transferable: bool,
    pub transfer_cutoff: Option<DateTime<Utc>>,
    /// Its tickets each belong to an admission ticket.
    pub addon: bool,
    /// A hidden category's access code, hashed (`domain::sale::access_code_hash`).
    pub access_code_hash: Option<Vec<u8>>,
}

impl CategoryRow {
    /// Whether a caller sees and buys it: public, or an organiser, or hidden behind the
    /// access code whose hash is `code`.
    pub fn open_to(&self, organizer: bool, code: Option<&[u8]>) -> bool {
        organizer
            || self.visibility == Visibility::Public
            || (code.is_some() && self.access_code_hash.as_deref() == code)
    }

    pub fn validity(&self) -> Validity {
        Validity { days: self.valid_days.clone(), zones: self.zones.clone(), reentry: self.reentry }
    }
}

macro_rules! columns {
    () => {
        "id, festival_id, name, price_minor, sale_start, sale_end, min_per_order, max_per_order, max_per_account, visibility, created_at, valid_days, zones, reentry, transferable, transfer_cutoff, addon, access_code_hash"
    };
}

pub async fn insert(conn: &mut PgConnection, c: &CategoryRow) -> Result<CategoryRow, sqlx::Error> {
    sqlx::query_as(concat!(
        "insert into categories (id, festival_id, name, price_minor, sale_start, sale_end, min_per_order,
             max_per_order, max_per_account, visibility, created_at, valid_days, zones, reentry, transferable,
             transfer_cutoff, addon, access_code_hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) returning ",
        columns!()
    ))
    .bind(c.id)
    .bind(c.festival_id)
    .bind(&c.name)
    .bind(c.price_minor)
    .bind(c.sale_start)
    .bind(c.sale_end)
    .bind(c.min_per_order)
    .bind(c.max_per_order)
    .bind(c.max_per_account)
    .bind(c.visibility.as_str())
    .bind(c.created_at)
    .bind(&c.valid_days)
    .bind(&c.zones)
    .bind(c.reentry)
    .bind(c.transferable)
    .bind(c.transfer_cutoff)
    .bind(c.addon)
    .bind(&c.access_code_hash)
    .fetch_one(conn)
    .await
}

pub async fn of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<CategoryRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from categories where festival_id = $1 order by created_at, id"))
        .bind(festival_id)
        .fetch_all(conn)
        .await
}

/// The festival's categories among `ids` (others are not found).
pub async fn find_many(
    conn: &mut PgConnection,
    festival_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<CategoryRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from categories where festival_id = $1 and id = any($2)"))
        .bind(festival_id)
        .bind(ids)
        .fetch_all(conn)
        .await
}

pub async fn count(conn: &mut PgConnection, festival_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(*) from categories where festival_id = $1").bind(festival_id).fetch_one(conn).await
}

/// Whether an account may take `wanted` more tickets of the category within its
/// per-account limit (0: none). Holds the account's purchase lock for the category until
/// the transaction ends, so two of its commands never both pass the limit.
pub async fn account_may_take(
    conn: &mut PgConnection,
    category: &CategoryRow,
    user_id: Uuid,
    wanted: i32,
) -> Result<bool, sqlx::Error> {
    if category.max_per_account <= 0 {
        return Ok(true);
    }
    lock_account_purchases(conn, category.id, user_id).await?;
    let already = taken_by_account(conn, category.id, user_id).await?;
    Ok(crate::domain::sale::within_account_limit(already, wanted, category.max_per_account))
}

/// Tickets of a category an account holds in active holds or owns (sold or used).
async fn taken_by_account(conn: &mut PgConnection, category_id: Uuid, user_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select (select coalesce(sum(i.quantity), 0) from hold_items i join holds h on h.id = i.hold_id
                 where i.category_id = $1 and h.user_id = $2 and h.status = 'ACTIVE')
              + (select count(*) from tickets t
                 where t.category_id = $1 and t.holder_user_id = $2 and t.status in ('SOLD', 'USED'))",
    )
    .bind(category_id)
    .bind(user_id)
    .fetch_one(conn)
    .await
}

/// Serialises one account's purchases of one category (its per-account limit).
async fn lock_account_purchases(conn: &mut PgConnection, category_id: Uuid, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2::text, 0))")
        .bind(category_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A category by id alone (the waiting list's worker, which has no festival in hand).
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<CategoryRow>, sqlx::Error> {
    sqlx::query_as(concat!("select ", columns!(), " from categories where id = $1")).bind(id).fetch_optional(conn).await
}

/// What selling a category in one call needs, read in one round trip: the category, its
/// festival's status and currency, and the counters of its quotas.
#[derive(Debug, sqlx::FromRow)]
pub struct SaleFacts {
    #[sqlx(flatten)]
    pub category: CategoryRow,
    #[sqlx(try_from = "String")]
    pub festival_status: FestivalStatus,
    pub currency: String,
    quota_ids: Vec<Uuid>,
    sizes: Vec<i64>,
    helds: Vec<i64>,
    solds: Vec<i64>,
}

impl SaleFacts {
    /// `(category, quota, counters)` of each of its quotas, as `stock::Plan` takes them.
    pub fn counters(&self) -> Vec<(Uuid, Uuid, Counters)> {
        let counters = self.sizes.iter().zip(&self.helds).zip(&self.solds);
        self.quota_ids
            .iter()
            .zip(counters)
            .map(|(quota, ((size, held), sold))| {
                (self.category.id, *quota, Counters { size: *size, held: *held, sold: *sold })
            })
            .collect()
    }
}

/// [`SaleFacts`] of the festival's category `id`; `None` if either is unknown.
pub async fn sale_facts(
    conn: &mut PgConnection,
    festival_id: Uuid,
    id: Uuid,
) -> Result<Option<SaleFacts>, sqlx::Error> {
    sqlx::query_as(concat!(
        "select c.*, f.status as festival_status, f.currency,
             coalesce(q.ids, '{}') as quota_ids, coalesce(q.sizes, '{}') as sizes,
             coalesce(q.helds, '{}') as helds, coalesce(q.solds, '{}') as solds
         from (select ",
        columns!(),
        " from categories where festival_id = $1 and id = $2) c
         join festivals f on f.id = c.festival_id
         cross join lateral (
             select array_agg(q.id order by q.id) as ids, array_agg(q.size order by q.id) as sizes,
                    array_agg(q.held order by q.id) as helds, array_agg(q.sold order by q.id) as solds
             from quota_categories qc join quotas q on q.id = qc.quota_id where qc.category_id = c.id) q"
    ))
    .bind(festival_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}
