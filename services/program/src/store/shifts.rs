use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::shifts::{PlaceKind, ShiftRole};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShiftRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    #[sqlx(try_from = "String")]
    pub place_kind: PlaceKind,
    pub place: String,
    #[sqlx(try_from = "String")]
    pub role: ShiftRole,
    pub head_count: i32,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub notes: String,
    /// Assigned user ids, in the order they were assigned.
    #[sqlx(default)]
    pub assignees: Vec<Uuid>,
}

macro_rules! with_assignees {
    ($where:literal) => {
        concat!(
            "select s.id, s.festival_id, s.place_kind, s.place, s.role, s.head_count, s.start_time, s.end_time, s.notes,
                    coalesce(array_agg(a.user_id order by a.created_at, a.user_id) filter (where a.user_id is not null), '{}')
                      as assignees
             from shifts s left join shift_assignments a on a.shift_id = s.id
             where ",
            $where,
            " group by s.id order by s.start_time, s.id"
        )
    };
}

pub async fn insert(conn: &mut PgConnection, s: &ShiftRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into shifts (id, festival_id, place_kind, place, role, head_count, start_time, end_time, notes)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(s.id)
    .bind(s.festival_id)
    .bind(s.place_kind.as_str())
    .bind(&s.place)
    .bind(s.role.as_str())
    .bind(s.head_count)
    .bind(s.start_time)
    .bind(s.end_time)
    .bind(&s.notes)
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks a shift row: assignments to one shift are serialized, so the head count holds.
pub async fn lock(conn: &mut PgConnection, festival_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    // The test-only `race-hooks` build reads without the lock: the race tests' negative
    // control must then see shifts overfilled.
    let sql = if cfg!(feature = "race-hooks") {
        "select id from shifts where festival_id = $1 and id = $2"
    } else {
        "select id from shifts where festival_id = $1 and id = $2 for update"
    };
    let found: Option<Uuid> = sqlx::query_scalar(sql).bind(festival_id).bind(id).fetch_optional(conn).await?;
    Ok(found.is_some())
}

pub async fn find(conn: &mut PgConnection, festival_id: Uuid, id: Uuid) -> Result<Option<ShiftRow>, sqlx::Error> {
    sqlx::query_as(with_assignees!("s.festival_id = $1 and s.id = $2"))
        .bind(festival_id)
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn of_festival(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<ShiftRow>, sqlx::Error> {
    sqlx::query_as(with_assignees!("s.festival_id = $1")).bind(festival_id).fetch_all(conn).await
}

/// Serializes every assignment of one person (across festivals) for the rest of the
/// transaction, so two concurrent assignments cannot both pass the overlap check.
pub async fn lock_person(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    if cfg!(feature = "race-hooks") {
        return Ok(()); // test-only: no guard, so the negative control sees double bookings
    }
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1::text, 8008))").bind(user_id).execute(conn).await?;
    Ok(())
}

/// A shift of this person overlapping [start, end), at any festival.
pub async fn overlapping(
    conn: &mut PgConnection,
    user_id: Uuid,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as(
        "select shift_id, festival_id from shift_assignments where user_id = $1 and start_time < $3 and end_time > $2
         order by start_time limit 1",
    )
    .bind(user_id)
    .bind(start)
    .bind(end)
    .fetch_optional(conn)
    .await
}

pub async fn assign(conn: &mut PgConnection, shift: &ShiftRow, user_id: Uuid, by: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into shift_assignments (shift_id, user_id, festival_id, start_time, end_time, assigned_by)
         values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
    )
    .bind(shift.id)
    .bind(user_id)
    .bind(shift.festival_id)
    .bind(shift.start_time)
    .bind(shift.end_time)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn unassign(conn: &mut PgConnection, shift_id: Uuid, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("delete from shift_assignments where shift_id = $1 and user_id = $2")
        .bind(shift_id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Every assignment at a festival: (user, start, end).
pub async fn assignments(
    conn: &mut PgConnection,
    festival_id: Uuid,
) -> Result<Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as("select user_id, start_time, end_time from shift_assignments where festival_id = $1")
        .bind(festival_id)
        .fetch_all(conn)
        .await
}

/// Deletes a shift and its assignments.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    for sql in ["delete from shift_assignments where shift_id = $1", "delete from shifts where id = $1"] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}
