//! Provider events seen, and the effects applied.

use sqlx::PgConnection;

/// What became of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// About a payment intent not known yet; applied when it is.
    Parked,
    /// Nothing to do (a type we do not act on, a move the status table refuses, or the
    /// same change under another id).
    Ignored,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "APPLIED",
            Outcome::Parked => "PARKED",
            Outcome::Ignored => "IGNORED",
        }
    }
}

/// Records the event; `false` when it was seen before (a redelivery: do nothing). Two
/// deliveries at once: the second waits for the first's commit, then finds it. The body
/// is kept only while parked (it may name the payer).
pub async fn record(
    conn: &mut PgConnection,
    event_id: &str,
    kind: &str,
    intent_id: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "insert into webhook_events (event_id, event_type, intent_id, payload, outcome) \
         values ($1, $2, $3, '{}', 'APPLIED') on conflict (event_id) do nothing",
    )
    .bind(event_id)
    .bind(kind)
    .bind(intent_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

pub async fn set_outcome(conn: &mut PgConnection, event_id: &str, outcome: Outcome) -> Result<(), sqlx::Error> {
    sqlx::query("update webhook_events set outcome = $2 where event_id = $1")
        .bind(event_id)
        .bind(outcome.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Parks an event until its payment intent is known, keeping its body to apply then.
pub async fn park(conn: &mut PgConnection, event_id: &str, payload: &serde_json::Value) -> Result<(), sqlx::Error> {
    sqlx::query("update webhook_events set outcome = 'PARKED', payload = $2 where event_id = $1")
        .bind(event_id)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims an effect; `false` when it was applied before under another event id.
pub async fn claim_effect(conn: &mut PgConnection, effect_key: &str, event_id: &str) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "insert into webhook_effects (effect_key, event_id) values ($1, $2) on conflict (effect_key) do nothing",
    )
    .bind(effect_key)
    .bind(event_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// The parked events about `intent_id`, oldest first, as their raw bodies.
pub async fn parked(conn: &mut PgConnection, intent_id: &str) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    let rows: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "select event_id, payload from webhook_events where intent_id = $1 and outcome = 'PARKED' \
         order by received_at, event_id for update",
    )
    .bind(intent_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id, payload)| (id, serde_json::to_vec(&payload).unwrap_or_default())).collect())
}

/// A parked event was applied: its body goes.
pub async fn unpark(conn: &mut PgConnection, event_id: &str, outcome: Outcome) -> Result<(), sqlx::Error> {
    sqlx::query("update webhook_events set outcome = $2, payload = '{}' where event_id = $1")
        .bind(event_id)
        .bind(outcome.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// Parked events whose payment intent is known now (the sweep applies them), oldest first.
pub async fn parked_known(conn: &mut PgConnection, limit: i64) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "select w.event_id from webhook_events w join payments p on p.provider_intent_id = w.intent_id \
         where w.outcome = 'PARKED' order by w.received_at limit $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A parked event's body, locked (another sweep skips it); `None` when it is no longer
/// parked or another holds it.
pub async fn lock_parked(conn: &mut PgConnection, event_id: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let payload: Option<serde_json::Value> = sqlx::query_scalar(
        "select payload from webhook_events where event_id = $1 and outcome = 'PARKED' for update skip locked",
    )
    .bind(event_id)
    .fetch_optional(conn)
    .await?;
    Ok(payload.map(|p| serde_json::to_vec(&p).unwrap_or_default()))
}
