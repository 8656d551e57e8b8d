//! The handler kit against real PostgreSQL: `on_unique`, page tokens as a service uses
//! them, and idempotency keys (retry, other content, concurrency, rollback).

use std::sync::Arc;

use festival_platform::idempotency::{self, Claim};
use festival_platform::{ApiError, ResultExt, codes, page_token};
use festival_proto::testing::v1::ThingHappened;
use festival_testkit::unique_name;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Barrier;

async fn database() -> PgPool {
    let mut common = festival_platform::config::CommonConfig::local_defaults("test", 50999);
    festival_testkit::isolate(&mut common, &unique_name());
    let pool = festival_platform::db::connect(&common.database, true).await.expect("database");
    festival_platform::db::migrate(&pool, &sqlx::migrate::Migrator::with_migrations(vec![])).await.expect("migrate");
    sqlx::query(
        "create table things (id serial primary key, name text not null, constraint things_name_key unique (name))",
    )
    .execute(&pool)
    .await
    .expect("things");
    pool
}

async fn insert(conn: &mut PgConnection, name: &str) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("insert into things (name) values ($1) returning id").bind(name).fetch_one(conn).await
}

#[tokio::test]
async fn on_unique_maps_only_the_named_constraint() {
    let pool = database().await;
    let mut conn = pool.acquire().await.expect("conn");
    let first = insert(&mut conn, "a").await.on_unique("things_name_key", codes::ALREADY_EXISTS).expect("first");
    assert!(first > 0);
    let clash = insert(&mut conn, "a")
        .await
        .on_unique("things_name_key", ApiError::field(codes::ALREADY_EXISTS, "name", "is taken"))
        .unwrap_err();
    assert_eq!(clash.code, codes::ALREADY_EXISTS);
    assert_eq!(clash.violations()[0].field, "name");
    // Another constraint's violation stays internal (never a client's code by accident).
    let other = insert(&mut conn, "a").await.on_unique("some_other_key", codes::ALREADY_EXISTS).unwrap_err();
    assert_eq!(other.code, codes::INTERNAL);
}

#[tokio::test]
async fn keyset_pages_with_tokens_cover_every_row_once() {
    let pool = database().await;
    let mut conn = pool.acquire().await.expect("conn");
    for i in 0..23 {
        insert(&mut conn, &format!("n{i:02}")).await.expect("insert");
    }
    let scope = "test.ListThings";
    let (mut token, mut seen) = (String::new(), Vec::new());
    for _ in 0..10 {
        let after: Option<i32> = page_token::decode(scope, &token).expect("our own token");
        let mut rows: Vec<(i32, String)> =
            sqlx::query_as("select id, name from things where id > coalesce($1, 0) order by id limit $2")
                .bind(after)
                .bind(10 + 1)
                .fetch_all(&mut *conn)
                .await
                .expect("page");
        token = page_token::next_page(&mut rows, 10, scope, |r| r.0);
        seen.extend(rows.into_iter().map(|r| r.1));
        if token.is_empty() {
            break;
        }
    }
    let expected: Vec<String> = (0..23).map(|i| format!("n{i:02}")).collect();
    assert_eq!(seen, expected);
    let forged = page_token::encode("test.ListOtherThings", &5);
    assert_eq!(page_token::decode::<i32>(scope, &forged).unwrap_err().code, codes::INVALID_PAGE_TOKEN);
}

/// A command as a service would write it: claim the key, do the work, store the
/// response, commit. Returns the response and whether this call did the work.
async fn order(pool: &PgPool, key: &str, request: &ThingHappened) -> Result<(ThingHappened, bool), ApiError> {
    let mut tx = pool.begin().await?;
    match idempotency::claim::<ThingHappened>(&mut tx, "test.Order", user(1), key, request).await? {
        Claim::Replay(response) => Ok((response, false)),
        Claim::Fresh(fresh) => {
            let id = insert(&mut tx, &format!("{key}/{}", request.user_id)).await?;
            let response = ThingHappened { user_id: format!("order-{id}") };
            fresh.complete(&mut tx, &response).await?;
            tx.commit().await?;
            Ok((response, true))
        }
    }
}

fn user(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

async fn count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from things").fetch_one(pool).await.expect("count")
}

#[tokio::test]
async fn a_retry_gets_the_first_response_and_other_content_is_refused() {
    let pool = database().await;
    let request = ThingHappened { user_id: "two tickets".into() };
    let (first, did_work) = order(&pool, "key-1", &request).await.expect("first");
    assert!(did_work);
    let (again, did_work) = order(&pool, "key-1", &request).await.expect("retry");
    assert_eq!((again, did_work), (first.clone(), false), "the retry replays, nothing is written");
    assert_eq!(count(&pool).await, 1);

    let other = ThingHappened { user_id: "ten tickets".into() };
    let refused = order(&pool, "key-1", &other).await.unwrap_err();
    assert_eq!(refused.code, codes::IDEMPOTENCY_KEY_REUSED);
    assert_eq!(refused.violations()[0].field, "idempotency_key");
    assert_eq!(count(&pool).await, 1, "a refused request writes nothing");

    // Another caller with the same key has a command of their own (and never gets this
    // caller's response).
    let mut tx = pool.begin().await.expect("tx");
    let claim =
        idempotency::claim::<ThingHappened>(&mut tx, "test.Order", user(2), "key-1", &other).await.expect("claim");
    assert!(matches!(claim, Claim::Fresh(_)));
}

#[tokio::test]
async fn a_rolled_back_command_leaves_its_key_free() {
    let pool = database().await;
    let request = ThingHappened { user_id: "x".into() };
    {
        let mut tx = pool.begin().await.expect("tx");
        let claim =
            idempotency::claim::<ThingHappened>(&mut tx, "test.Order", user(1), "k", &request).await.expect("claim");
        assert!(matches!(claim, Claim::Fresh(_)));
        tx.rollback().await.expect("rollback");
    }
    let (_, did_work) = order(&pool, "k", &request).await.expect("after the rollback");
    assert!(did_work, "the key was not kept by the failed attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_key_do_the_work_once() {
    let pool = database().await;
    for round in 0..20 {
        let key = format!("race-{round}");
        let request = ThingHappened { user_id: format!("round {round}") };
        let barrier = Arc::new(Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (pool, key, request, barrier) = (pool.clone(), key.clone(), request.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    order(&pool, &key, &request).await
                })
            })
            .collect();
        let mut responses = Vec::new();
        for task in tasks {
            responses.push(task.await.expect("task").expect("every caller gets an answer"));
        }
        assert_eq!(responses.len(), 8);
        assert_eq!(responses.iter().filter(|(_, did_work)| *did_work).count(), 1, "round {round}: one did the work");
        assert!(responses.iter().all(|(r, _)| *r == responses[0].0), "round {round}: all got the same response");
    }
    assert_eq!(count(&pool).await, 20);
}

#[tokio::test]
async fn a_command_that_forgets_to_store_its_response_cannot_commit() {
    let pool = database().await;
    let request = ThingHappened { user_id: "x".into() };
    let mut tx = pool.begin().await.expect("tx");
    let claim = idempotency::claim::<ThingHappened>(&mut tx, "test.Order", user(1), "forgot", &request).await;
    assert!(matches!(claim, Ok(Claim::Fresh(_))));
    insert(&mut tx, "the effect").await.expect("the work");
    let refused = tx.commit().await.expect_err("no response stored: the commit is refused");
    assert!(refused.to_string().contains("claimed without a response"), "{refused}");
    assert_eq!(count(&pool).await, 0, "and the effect rolled back with it");
    let (_, did_work) = order(&pool, "forgot", &request).await.expect("the key is still free");
    assert!(did_work);
}

#[tokio::test]
async fn a_retry_whose_map_fields_arrive_in_another_order_is_the_same_request() {
    use festival_proto::testing::v1::EchoResponse;
    let pool = database().await;
    let request = |pairs: &[(&str, &str)]| EchoResponse {
        echo: None,
        metadata: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    let first = request(&[("en", "Three days by the lake"), ("fr", "Trois jours"), ("de", "Drei Tage")]);
    let retry = request(&[("de", "Drei Tage"), ("fr", "Trois jours"), ("en", "Three days by the lake")]);
    let mut tx = pool.begin().await.expect("tx");
    let Claim::Fresh(fresh) =
        idempotency::claim::<ThingHappened>(&mut tx, "test.Describe", user(1), "k", &first).await.expect("claim")
    else {
        panic!("first use");
    };
    fresh.complete(&mut tx, &ThingHappened { user_id: "done".into() }).await.expect("complete");
    tx.commit().await.expect("commit");
    let mut tx = pool.begin().await.expect("tx");
    let replay = idempotency::claim::<ThingHappened>(&mut tx, "test.Describe", user(1), "k", &retry).await;
    assert!(matches!(replay, Ok(Claim::Replay(ref r)) if r.user_id == "done"), "{replay:?}");
}

#[tokio::test]
async fn a_nul_that_reaches_postgresql_is_the_client_s_mistake_not_a_server_error() {
    let pool = database().await;
    let mut conn = pool.acquire().await.expect("conn");
    let refused = insert(&mut conn, "a\0b").await.expect_err("PostgreSQL stores no NUL in text");
    let error = ApiError::from(refused);
    assert_eq!(error.code, codes::VALIDATION_FAILED);
    assert_eq!(count(&pool).await, 0);
}
