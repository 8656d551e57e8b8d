//! PostgreSQL: one database per service (`festival_<service>`), created when missing
//! outside production, with the platform's own tables (outbox, inbox) migrated under a
//! separate history table so they never collide with a service's migration versions.

use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::config::DatabaseConfig;

/// History table of the platform's migrations (the service's use sqlx's default).
const PLATFORM_MIGRATIONS_TABLE: &str = "_platform_migrations";

fn platform_migrator() -> Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.dangerous_set_table_name(PLATFORM_MIGRATIONS_TABLE);
    m
}

/// A pooled connection idle longer than this is checked before use.
const IDLE_PING_AFTER: Duration = Duration::from_secs(5);

/// Creates the service database if it is missing (when allowed) and opens a pool.
pub async fn connect(config: &DatabaseConfig, create_if_missing: bool) -> anyhow::Result<PgPool> {
    let url = config.url.expose();
    if create_if_missing && !Postgres::database_exists(url).await? {
        // Two replicas may race here: losing the race is fine.
        if let Err(e) = Postgres::create_database(url).await
            && !Postgres::database_exists(url).await?
        {
            return Err(e.into());
        }
    }
    let options: PgConnectOptions = url.parse()?;
    // sqlx pings every connection before handing it out: a round trip on every
    // request's path (it also pings on release, off that path). Only a connection idle
    // for a while is pinged before use; one cut while busy (a database restart) fails
    // one request, which answers "unavailable, retry", and is dropped.
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_PING_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Runs the platform's migrations, then the service's. Safe to run from several
/// replicas at once (sqlx takes an advisory lock).
pub async fn migrate(pool: &PgPool, service: &Migrator) -> anyhow::Result<()> {
    platform_migrator().run(pool).await?;
    service.run(pool).await?;
    Ok(())
}

/// `select 1`: the readiness check.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query_scalar::<_, i32>("select 1").fetch_one(pool).await.is_ok()
}
