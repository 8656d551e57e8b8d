//! The security audit log (append-only: the database refuses anything but inserts).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::audit::AuditAction;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    #[sqlx(try_from = "String")]
    pub action: AuditAction,
    pub actor_id: Option<Uuid>,
    pub subject_id: Option<Uuid>,
    pub festival_id: Option<Uuid>,
    pub ip_prefix: String,
    pub detail: String,
}

impl AuditRow {
    /// An entry of `action` now, to be filled in.
    pub fn new(action: AuditAction, at: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            at,
            action,
            actor_id: None,
            subject_id: None,
            festival_id: None,
            ip_prefix: String::new(),
            detail: String::new(),
        }
    }
}

pub async fn record(conn: &mut PgConnection, e: &AuditRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into security_audit (id, at, action, actor_id, subject_id, festival_id, ip_prefix, detail)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(e.id)
    .bind(e.at)
    .bind(e.action.as_str())
    .bind(e.actor_id)
    .bind(e.subject_id)
    .bind(e.festival_id)
    .bind(&e.ip_prefix)
    .bind(&e.detail)
    .execute(conn)
    .await?;
    Ok(())
}

/// Entries of one festival (None: all of them), newest first, after the cursor.
pub async fn page(
    conn: &mut PgConnection,
    festival: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    let (at, id) = after.unzip();
    sqlx::query_as(
        "select id, at, action, actor_id, subject_id, festival_id, ip_prefix, detail from security_audit
         where ($1::uuid is null or festival_id = $1)
           and ($2::timestamptz is null or (at, id) < ($2, $3))
         order by at desc, id desc limit $4",
    )
    .bind(festival)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}
