//! Idempotency keys for commands that move money or inventory.
//!
//! Inside the command's own transaction, [`claim`] records (scope, key, hash of the
//! request). The first request with a key gets [`Claim::Fresh`], does its work and stores
//! its response with [`Fresh::complete`] before committing, so the key, the effect and the
//! response commit or roll back together. A retry with the same key and the same request
//! gets [`Claim::Replay`] with the first response; with a different request, `ERR_1006`.
//! Two concurrent requests with one key serialise on the key's primary key: the second
//! waits for the first transaction and then replays it (or, if it rolled back, goes ahead).
//!
//! A key belongs to one command of one caller (`ticketing.CreateOrder` for user X): one
//! caller's key never collides with, or replays to, another's. The claim relies on
//! PostgreSQL's default READ COMMITTED isolation (under REPEATABLE READ the waiting
//! request would fail with a serialization error instead of replaying). A transaction
//! that claims a key and commits without [`Fresh::complete`] is refused by the database
//! (a deferred check), so a forgotten `complete` cannot leave a key that answers nothing.

use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::codes;
use crate::error::{ApiError, ApiResult};

/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 128;

/// A client's idempotency key: 1 to 128 characters of `A-Z a-z 0-9 - _ . :` (UUIDs fit).
pub fn key<'a>(field: &str, raw: &'a str) -> ApiResult<&'a str> {
    if raw.is_empty() {
        return Err(ApiError::field(codes::REQUIRED_FIELD, field, "is required"));
    }
    if raw.len() > MAX_KEY_LEN {
        return Err(ApiError::field(codes::FIELD_TOO_LONG, field, format!("must be at most {MAX_KEY_LEN} characters")));
    }
    if !raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) {
        return Err(ApiError::field(
            codes::VALIDATION_FAILED,
            field,
            "may only contain A-Z, a-z, 0-9, '-', '_', '.', ':'",
        ));
    }
    Ok(raw)
}

/// The outcome of claiming a key.
#[derive(Debug)]
pub enum Claim<R> {
    /// First use: do the work, then [`Fresh::complete`] in the same transaction.
    Fresh(Fresh),
    /// Seen before with the same request: answer this, do nothing.
    Replay(R),
}

/// A claimed key awaiting its response.
#[derive(Debug)]
#[must_use = "store the response with `complete` before committing"]
pub struct Fresh {
    scope: String,
    key: String,
}

fn hash(request: &impl Message) -> Vec<u8> {
    Sha256::digest(request.encode_to_vec()).to_vec()
}

/// Claims `key` for `request` to `command` (`ticketing.CreateOrder`) by `caller`, inside
/// the command's transaction.
pub async fn claim<R: Message + Default>(
    conn: &mut PgConnection,
    command: &str,
    caller: Uuid,
    key: &str,
    request: &impl Message,
) -> ApiResult<Claim<R>> {
    let scope = format!("{command}:{caller}");
    let scope = scope.as_str();
    let request_hash = hash(request);
    let inserted = sqlx::query(
        "insert into idempotency_keys (scope, key, request_hash) values ($1, $2, $3) on conflict do nothing",
    )
    .bind(scope)
    .bind(key)
    .bind(&request_hash)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Fresh(Fresh { scope: scope.to_owned(), key: key.to_owned() }));
    }
    // The row exists: it was there before, or it is a concurrent claim's, which the insert
    // waited for.
    let stored = stored_answer(conn, scope, key, &request_hash).await?;
    stored.ok_or(ApiError::new(codes::CONCURRENT_UPDATE)).map(Claim::Replay)
}

async fn stored_answer<R: Message + Default>(
    conn: &mut PgConnection,
    scope: &str,
    key: &str,
    request_hash: &[u8],
) -> ApiResult<Option<R>> {
    let stored: Option<(Vec<u8>, Option<Vec<u8>>)> =
        sqlx::query_as("select request_hash, response from idempotency_keys where scope = $1 and key = $2")
            .bind(scope)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((stored_hash, response)) = stored else { return Ok(None) };
    if stored_hash != request_hash {
        return Err(ApiError::field(codes::IDEMPOTENCY_KEY_REUSED, "idempotency_key", "was used for another request"));
    }
    // Written in the same transaction as the claim, so a committed row always has one;
    // a row without is a command that failed to complete and must be retried.
    let response = response.ok_or(ApiError::new(codes::CONCURRENT_UPDATE))?;
    R::decode(response.as_slice()).map(Some).map_err(ApiError::internal)
}

/// A key claimed and answered at once, for a hot path that writes its whole effect in one
/// statement (`insert into idempotency_keys (scope, key, request_hash, response) select
/// $scope, $key, $request_hash, $response from <the effect's rows>`) instead of a
/// transaction with [`claim`] and [`Fresh::complete`]: one round trip instead of four.
/// The key's primary key still serialises two requests with one key: the second's
/// statement fails with [`taken`]. A command answers that, and any failure before its
/// write, by a [`claim`] in a transaction it then rolls back: the claim waits for a
/// twin still being written and replays what a retried command did, though the facts it
/// checks have changed since (a till retrying a lost answer after the sell-out gets its
/// order); a [`Claim::Fresh`] means the failure stands.
#[derive(Debug)]
pub struct Answered {
    pub scope: String,
    pub key: String,
    pub request_hash: Vec<u8>,
    pub response: Vec<u8>,
}

impl Answered {
    pub fn new(command: &str, caller: Uuid, key: &str, request: &impl Message, response: &impl Message) -> Self {
        Self {
            scope: format!("{command}:{caller}"),
            key: key.to_owned(),
            request_hash: hash(request),
            response: response.encode_to_vec(),
        }
    }
}

/// Whether a statement writing an [`Answered`] key failed because the key was taken.
pub fn taken(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.constraint() == Some("idempotency_keys_pkey"))
}

impl Fresh {
    /// Stores the response a retry will get. Call it in the claim's transaction.
    pub async fn complete(self, conn: &mut PgConnection, response: &impl Message) -> ApiResult<()> {
        sqlx::query("update idempotency_keys set response = $3, updated_at = now() where scope = $1 and key = $2")
            .bind(&self.scope)
            .bind(&self.key)
            .bind(response.encode_to_vec())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// Forgets keys older than `age` (a retention job's work); returns how many went.
pub async fn purge_older_than(conn: &mut PgConnection, age: chrono::TimeDelta) -> Result<u64, sqlx::Error> {
    let cutoff = chrono::Utc::now() - age;
    Ok(sqlx::query("delete from idempotency_keys where created_at < $1")
        .bind(cutoff)
        .execute(conn)
        .await?
        .rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_short_plain_tokens() {
        assert_eq!(
            key("k", "0192f7a0-5b1e-7c3d-9e2f-1a2b3c4d5e6f").expect("uuid"),
            "0192f7a0-5b1e-7c3d-9e2f-1a2b3c4d5e6f"
        );
        assert_eq!(key("k", "").unwrap_err().code, codes::REQUIRED_FIELD);
        assert_eq!(key("k", &"a".repeat(MAX_KEY_LEN + 1)).unwrap_err().code, codes::FIELD_TOO_LONG);
        assert_eq!(key("k", "a b").unwrap_err().code, codes::VALIDATION_FAILED);
        assert_eq!(key("k", "a\u{0}").unwrap_err().code, codes::VALIDATION_FAILED);
    }
}
