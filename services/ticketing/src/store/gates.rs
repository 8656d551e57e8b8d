//! What the gates read and write: check-in lists, where each ticket stands, the scans
//! record, uploads already applied, and devices identity revoked.

use chrono::{DateTime, NaiveDate, Utc};
use festival_platform::events::outbox::Queued;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::checkin::{Direction, Move, Presence, Validity};
use crate::domain::status::{FestivalStatus, TicketStatus, is_revoked};

pub const LIST_NAME_UNIQUE: &str = "checkin_lists_name_key";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListRow {
    pub id: Uuid,
    pub festival_id: Uuid,
    pub name: String,
    pub category_ids: Vec<Uuid>,
    pub zone: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub async fn insert_list(conn: &mut PgConnection, l: &ListRow) -> Result<ListRow, sqlx::Error> {
    sqlx::query_as(
        "insert into checkin_lists (id, festival_id, name, category_ids, zone, created_at)
         values ($1, $2, $3, $4, $5, $6) returning id, festival_id, name, category_ids, zone, created_at",
    )
    .bind(l.id)
    .bind(l.festival_id)
    .bind(&l.name)
    .bind(&l.category_ids)
    .bind(&l.zone)
    .bind(l.created_at)
    .fetch_one(conn)
    .await
}

pub async fn lists(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<ListRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, festival_id, name, category_ids, zone, created_at from checkin_lists
         where festival_id = $1 order by created_at, id",
    )
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

pub async fn find_list(conn: &mut PgConnection, festival_id: Uuid, id: Uuid) -> Result<Option<ListRow>, sqlx::Error> {
    sqlx::query_as(
        "select id, festival_id, name, category_ids, zone, created_at from checkin_lists
         where id = $1 and festival_id = $2",
    )
    .bind(id)
    .bind(festival_id)
    .fetch_optional(conn)
    .await
}

/// The grounds' key in `ticket_presence` (no list).
pub const GROUNDS: Uuid = Uuid::nil();

/// A ticket as one entrance sees it: where it stands there, what its category allows,
/// and its festival's status and time zone (one read for a scan).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GateTicket {
    pub id: Uuid,
    pub category_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: TicketStatus,
    pub entered: bool,
    pub inside: bool,
    /// The first entry through this entrance.
    pub first_at: Option<DateTime<Utc>>,
    pub first_gate: Option<String>,
    /// The device that let it in first, if a device did.
    pub first_device: Option<Uuid>,
    pub valid_days: Vec<NaiveDate>,
    pub zones: Vec<String>,
    pub reentry: bool,
    #[sqlx(try_from = "String")]
    pub festival_status: FestivalStatus,
    pub time_zone: String,
}

impl GateTicket {
    pub fn presence(&self) -> Presence {
        Presence { revoked: is_revoked(self.status), entered: self.entered, inside: self.inside }
    }

    pub fn validity(&self) -> Validity {
        Validity { days: self.valid_days.clone(), zones: self.zones.clone(), reentry: self.reentry }
    }
}

pub async fn ticket(
    conn: &mut PgConnection,
    festival_id: Uuid,
    id: Uuid,
    list_key: Uuid,
) -> Result<Option<GateTicket>, sqlx::Error> {
    sqlx::query_as(
        "select t.id, t.category_id, t.status, p.ticket_id is not null as entered, coalesce(p.inside, false) as inside,
                p.first_at, p.first_gate, p.first_device, c.valid_days, c.zones, c.reentry,
                case when f.deleted then 'CANCELLED' else f.status end as festival_status, f.time_zone
         from tickets t join categories c on c.id = t.category_id join festivals f on f.id = t.festival_id
         left join ticket_presence p on p.ticket_id = t.id and p.list_key = $3
         where t.id = $1 and t.festival_id = $2",
    )
    .bind(id)
    .bind(festival_id)
    .bind(list_key)
    .fetch_optional(conn)
    .await
}

/// Who scans: the person or device recorded with a first entry.
#[derive(Debug, Clone, Copy)]
pub struct Scanner {
    pub actor_id: Uuid,
    pub device_id: Option<Uuid>,
}

/// Makes the move in one statement, with its event, if the ticket still stands where
/// the decision saw it: the ticket must still be live, the presence row's primary key
/// guards a first entry and a condition on `inside` a re-entry or an exit (of two scans
/// deciding on the same state, one writes and the other finds it changed and decides
/// again). `at` and `gate` become the first use on an entry. The event goes to the
/// outbox only if the move was made, in the same statement: a plain entry needs no
/// transaction around it. `false`: the state moved; nothing was written.
#[allow(clippy::too_many_arguments)]
pub async fn apply_move(
    conn: &mut PgConnection,
    festival_id: Uuid,
    id: Uuid,
    list_key: Uuid,
    mv: Move,
    at: DateTime<Utc>,
    gate: &str,
    by: Scanner,
    event: &Queued,
) -> Result<bool, sqlx::Error> {
    // Test-only: widen the window between the decision and the write, and drop the
    // guards, so the race tests' negative control can see one ticket admitted twice.
    let guarded = !cfg!(feature = "race-hooks");
    #[cfg(feature = "race-hooks")]
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    macro_rules! with_event {
        ($moved:literal) => {
            concat!(
                $moved,
                ", event as (insert into outbox (id, subject, event_type, payload, headers)
                             select $8, $9, $10, $11, $12 from moved)
                 select count(*) from moved"
            )
        };
    }
    let sql = match mv {
        Move::Enter if guarded => with_event!(
            "with live as (
                 update tickets set status = 'USED', used_at = coalesce(used_at, $3),
                     used_gate = coalesce(used_gate, $4), updated_at = now()
                 where id = $1 and festival_id = $2 and status in ('SOLD', 'USED') returning id),
             moved as (
                 insert into ticket_presence (ticket_id, list_key, festival_id, inside, first_at, first_gate,
                     first_actor, first_device)
                 select id, $5, $2, true, $3, $4, $6, $7 from live
                 on conflict (ticket_id, list_key) do nothing returning ticket_id)"
        ),
        Move::Enter => with_event!(
            "with live as (
                 update tickets set status = 'USED', used_at = coalesce(used_at, $3),
                     used_gate = coalesce(used_gate, $4), updated_at = now()
                 where id = $1 and festival_id = $2 and status in ('SOLD', 'USED') returning id),
             moved as (
                 insert into ticket_presence (ticket_id, list_key, festival_id, inside, first_at, first_gate,
                     first_actor, first_device)
                 select id, $5, $2, true, $3, $4, $6, $7 from live
                 on conflict (ticket_id, list_key) do update set inside = true returning ticket_id)"
        ),
        Move::Reenter => with_event!(
            "with moved as (
                 update ticket_presence p set inside = true
                 from tickets t
                 where p.ticket_id = $1 and p.list_key = $5 and t.id = p.ticket_id and t.festival_id = $2
                   and t.status in ('SOLD', 'USED') and (not $13 or not p.inside)
                 returning p.ticket_id)"
        ),
        // Whoever is inside may leave, on a revoked ticket too.
        Move::Leave => with_event!(
            "with moved as (
                 update ticket_presence set inside = false
                 where ticket_id = $1 and list_key = $5 and festival_id = $2 and (not $13 or inside)
                 returning ticket_id)"
        ),
    };
    let mut query = sqlx::query_scalar::<_, i64>(sql)
        .bind(id)
        .bind(festival_id)
        .bind(at)
        .bind(gate)
        .bind(list_key)
        .bind(by.actor_id)
        .bind(by.device_id)
        .bind(event.id)
        .bind(event.subject)
        .bind(&event.event_type)
        .bind(&event.payload)
        .bind(&event.headers);
    if matches!(mv, Move::Reenter | Move::Leave) {
        query = query.bind(guarded);
    }
    Ok(query.fetch_one(conn).await? == 1)
}

/// One scan, as recorded.
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    pub festival_id: Uuid,
    pub ticket_id: Option<Uuid>,
    pub category_id: Option<Uuid>,
    pub list_id: Option<Uuid>,
    pub direction: Direction,
    /// `ADMITTED`, `EXITED`, or why it was refused (see `ScanOutcome`).
    pub outcome: &'a str,
    pub gate: &'a str,
    pub device_id: Option<Uuid>,
    pub actor_id: Uuid,
    pub scanned_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub upload_nonce: Option<&'a str>,
    pub flagged: bool,
    pub override_reason: Option<&'a str>,
}

pub async fn record(conn: &mut PgConnection, s: &Scan<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into scans (id, festival_id, ticket_id, category_id, list_id, direction, outcome, gate, device_id,
             actor_id, scanned_at, recorded_at, upload_nonce, flagged, override_reason)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(Uuid::now_v7())
    .bind(s.festival_id)
    .bind(s.ticket_id)
    .bind(s.category_id)
    .bind(s.list_id)
    .bind(match s.direction {
        Direction::Entry => "ENTRY",
        Direction::Exit => "EXIT",
    })
    .bind(s.outcome)
    .bind(s.gate)
    .bind(s.device_id)
    .bind(s.actor_id)
    .bind(s.scanned_at)
    .bind(s.recorded_at)
    .bind(s.upload_nonce)
    .bind(s.flagged)
    .bind(s.override_reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims an upload's nonce for this device. `false`: it was applied before (the caller
/// answers the stored result). A concurrent upload of the same nonce waits here for the
/// first to commit.
pub async fn claim_upload(
    conn: &mut PgConnection,
    device_id: Uuid,
    nonce: &str,
    festival_id: Uuid,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "insert into scan_uploads (device_id, nonce, festival_id, received_at) values ($1, $2, $3, $4)
         on conflict do nothing",
    )
    .bind(device_id)
    .bind(nonce)
    .bind(festival_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn upload_result(
    conn: &mut PgConnection,
    device_id: Uuid,
    nonce: &str,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar::<_, Option<Vec<u8>>>("select result from scan_uploads where device_id = $1 and nonce = $2")
        .bind(device_id)
        .bind(nonce)
        .fetch_optional(conn)
        .await
        .map(Option::flatten)
}

pub async fn save_upload_result(
    conn: &mut PgConnection,
    device_id: Uuid,
    nonce: &str,
    result: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query("update scan_uploads set result = $3 where device_id = $1 and nonce = $2")
        .bind(device_id)
        .bind(nonce)
        .bind(result)
        .execute(conn)
        .await?;
    Ok(())
}

/// Remembers a device identity revoked (from `device.revoked`, once).
pub async fn revoke_device(
    conn: &mut PgConnection,
    device_id: Uuid,
    festival_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into revoked_devices (device_id, festival_id, revoked_at) values ($1, $2, $3) on conflict do nothing",
    )
    .bind(device_id)
    .bind(festival_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn device_revoked(conn: &mut PgConnection, device_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select 1 from revoked_devices where device_id = $1)")
        .bind(device_id)
        .fetch_one(conn)
        .await
}

/// A ticket as an offline scanner of one entrance keeps it.
#[derive(Debug, sqlx::FromRow)]
pub struct SnapshotTicket {
    pub id: Uuid,
    pub category_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: TicketStatus,
    pub entered: bool,
    pub inside: bool,
}

/// Up to `limit` live tickets of the festival (revoked ones are in the revocation list,
/// except those still inside here, who may leave), in id order, with where they stand at
/// the entrance `list_key`.
pub async fn snapshot_tickets(
    conn: &mut PgConnection,
    festival_id: Uuid,
    list_key: Uuid,
    limit: i64,
) -> Result<Vec<SnapshotTicket>, sqlx::Error> {
    sqlx::query_as(
        "select t.id, t.category_id, t.status, p.ticket_id is not null as entered, coalesce(p.inside, false) as inside
         from tickets t left join ticket_presence p on p.ticket_id = t.id and p.list_key = $2
         where t.festival_id = $1 and (t.status in ('SOLD', 'USED') or p.inside)
         order by t.id limit $3",
    )
    .bind(festival_id)
    .bind(list_key)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Tickets admitted at least once, per entrance (list id, or [`GROUNDS`]).
pub async fn checked_in_per_list(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select list_key, count(*) from ticket_presence where festival_id = $1 group by list_key order by list_key",
    )
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

/// (category, issued and live, admitted at least once) per category.
pub async fn per_category(conn: &mut PgConnection, festival_id: Uuid) -> Result<Vec<(Uuid, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "select category_id, count(*) filter (where status in ('SOLD', 'USED')), count(*) filter (where status = 'USED')
         from tickets where festival_id = $1 group by category_id order by category_id",
    )
    .bind(festival_id)
    .fetch_all(conn)
    .await
}

/// Tickets inside now, each once however many entrances it is inside of.
pub async fn on_site(conn: &mut PgConnection, festival_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("select count(distinct ticket_id) from ticket_presence where festival_id = $1 and inside")
        .bind(festival_id)
        .fetch_one(conn)
        .await
}
