//! A cancelled festival's run as organisers and buyers act on it: the credit policy set
//! beforehand, and each order's choice. (The run's settlement keeps its own queries in
//! `crate::cancellation`.)

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// One order's row in its festival's run.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChoiceRow {
    pub festival_id: Uuid,
    pub status: String,
    pub remedy: Option<String>,
    pub refunded_minor: i64,
    pub credit_codes: Vec<String>,
    pub choose_until: Option<DateTime<Utc>>,
    pub next_festival_id: Option<Uuid>,
}

macro_rules! choice {
    () => {
        "select o.festival_id, o.status, o.remedy, o.refunded_minor, o.credit_codes, r.choose_until, p.next_festival_id
           from cancellation_orders o join cancellation_runs r using (festival_id)
           left join cancellation_policies p on p.festival_id = o.festival_id
          where o.order_id = $1"
    };
}

pub async fn choice(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<ChoiceRow>, sqlx::Error> {
    sqlx::query_as(choice!()).bind(order_id).fetch_optional(conn).await
}

/// The order's row, locked: a choice and the settlement serialise here.
pub async fn lock_choice(conn: &mut PgConnection, order_id: Uuid) -> Result<Option<ChoiceRow>, sqlx::Error> {
    sqlx::query_as(concat!(choice!(), " for update of o")).bind(order_id).fetch_optional(conn).await
}

pub async fn set_remedy(conn: &mut PgConnection, order_id: Uuid, remedy: &str) -> Result<(), sqlx::Error> {
    sqlx::query("update cancellation_orders set remedy = $2 where order_id = $1")
        .bind(order_id)
        .bind(remedy)
        .execute(conn)
        .await?;
    Ok(())
}

/// The order's live tickets whose category has no equivalent in the festival's policy.
pub async fn unmapped_tickets(conn: &mut PgConnection, order_id: Uuid, festival_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from tickets t
          where t.order_id = $1 and t.status = 'SOLD' and t.replaced_by is null
            and not exists (select 1 from cancellation_policy_categories m
                             where m.festival_id = $2 and m.category_id = t.category_id)",
    )
    .bind(order_id)
    .bind(festival_id)
    .fetch_one(conn)
    .await
}

/// Whether the festival's cancellation run has started.
pub async fn run_started(conn: &mut PgConnection, festival_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists(select 1 from cancellation_runs where festival_id = $1)")
        .bind(festival_id)
        .fetch_one(conn)
        .await
}

/// A festival's credit policy, replacing an earlier one: `(category, next category)`.
pub struct Policy<'a> {
    pub festival_id: Uuid,
    pub next_festival_id: Uuid,
    pub choice_days: i32,
    pub set_by: Uuid,
    pub set_at: DateTime<Utc>,
    pub categories: &'a [Uuid],
    pub next_categories: &'a [Uuid],
}

pub async fn set_policy(conn: &mut PgConnection, p: &Policy<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into cancellation_policies (festival_id, next_festival_id, choice_days, set_by, set_at)
         values ($1, $2, $3, $4, $5)
         on conflict (festival_id) do update set next_festival_id = excluded.next_festival_id,
             choice_days = excluded.choice_days, set_by = excluded.set_by, set_at = excluded.set_at",
    )
    .bind(p.festival_id)
    .bind(p.next_festival_id)
    .bind(p.choice_days)
    .bind(p.set_by)
    .bind(p.set_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query("delete from cancellation_policy_categories where festival_id = $1")
        .bind(p.festival_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "insert into cancellation_policy_categories (festival_id, category_id, next_category_id)
         select $1, f, t from unnest($2::uuid[], $3::uuid[]) as m(f, t)",
    )
    .bind(p.festival_id)
    .bind(p.categories)
    .bind(p.next_categories)
    .execute(conn)
    .await?;
    Ok(())
}
