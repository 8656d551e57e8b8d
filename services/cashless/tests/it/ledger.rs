//! The ledger is append-only for the service's own role, and the journal finds whatever
//! someone with more power changes behind its back: an altered, deleted or reordered
//! transaction, and a chain rewritten after a signed closure.

use festival_proto::cashless::v1 as pb;
use sqlx::PgPool;
use uuid::Uuid;

use festival_cashless::domain::journal;

use crate::helpers::*;

/// A festival with a few movements, all chained.
async fn busy(env: &Env) -> (Festival, Band) {
    let f = env.festival().await;
    let bar = env.terminal(&f).await;
    let band = env.band(&f, 10_000).await;
    for amount in [450, 1_200, 380] {
        let req = charge(&f, &bar, &band.soft, amount, &Uuid::now_v7().to_string());
        assert_eq!(charge_code(env, &bar, req).await, "OK");
    }
    env.assert_ledger(&f).await;
    (f, band)
}

/// What an attacker with the tables' ownership does first: take the privileges back
/// and switch the append-only triggers off.
async fn unlock(pool: &PgPool) {
    for sql in [
        "grant update, delete on transactions, entries, journal to current_user",
        "alter table transactions disable trigger user",
        "alter table entries disable trigger user",
        "alter table journal disable trigger user",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await.expect(sql);
    }
}

async fn report(env: &Env, f: &Festival) -> pb::LedgerReport {
    env.client()
        .verify_ledger(authed(pb::VerifyLedgerRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("verify")
        .into_inner()
}

async fn payments(pool: &PgPool, f: &Festival) -> Vec<Uuid> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "select id from transactions where festival_id = $1 and kind = 'PAYMENT' order by created_at, id",
    )
    .bind(f.id)
    .fetch_all(pool)
    .await
    .expect("payments");
    assert_eq!(ids.len(), 3);
    ids
}

#[tokio::test]
async fn the_services_role_can_neither_update_nor_delete_the_ledger() {
    let env = spawn().await;
    let (f, _) = busy(&env).await;
    for sql in [
        "update entries set amount_minor = amount_minor * 2",
        "delete from entries",
        "update transactions set amount_minor = 1",
        "delete from transactions",
        "truncate entries cascade",
        "update journal set hash = prev_hash",
        "delete from journal",
        "delete from journal_closures",
    ] {
        let refused = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&env.app.pool).await.expect_err(sql);
        let sqlx::Error::Database(e) = refused else { panic!("{sql}: {refused}") };
        assert_eq!(e.code().as_deref(), Some("42501"), "{sql}: {e}");
    }
    env.assert_ledger(&f).await;
    env.app.stop().await;
}

#[tokio::test]
async fn an_altered_transaction_is_found_even_when_the_books_still_balance() {
    let env = spawn().await;
    let (f, band) = busy(&env).await;
    let pool = &env.app.pool;
    let victim = payments(pool, &f).await[1];
    unlock(pool).await;
    // The whole story rewritten consistently: amount, both entries and the balance.
    for sql in [
        "update transactions set amount_minor = amount_minor - 200, wallet_change_minor = wallet_change_minor + 200 where id = $1",
        "update entries set amount_minor = case when amount_minor > 0 then amount_minor - 200 else amount_minor + 200 end where transaction_id = $1",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(victim).execute(pool).await.expect(sql);
    }
    sqlx::query("update wallets set balance_minor = balance_minor + 200 where id = $1")
        .bind(band.wallet_id)
        .execute(pool)
        .await
        .expect("wallet");
    let r = report(&env, &f).await;
    assert!(!r.ok);
    assert_eq!(r.problems, vec![format!("transaction {victim} (journal link 3) was altered")], "{r:?}");
    env.app.stop().await;
}

#[tokio::test]
async fn a_deleted_transaction_is_found() {
    let env = spawn().await;
    let (f, _) = busy(&env).await;
    let pool = &env.app.pool;
    let victim = payments(pool, &f).await[0];
    unlock(pool).await;
    for sql in [
        "delete from journal where transaction_id = $1",
        "delete from entries where transaction_id = $1",
        "delete from transactions where id = $1",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(victim).execute(pool).await.expect(sql);
    }
    let r = report(&env, &f).await;
    assert!(!r.ok);
    assert!(r.problems.iter().any(|p| p.contains("where 2 was expected")), "{r:?}");
    env.app.stop().await;
}

#[tokio::test]
async fn reordered_transactions_are_found() {
    let env = spawn().await;
    let (f, _) = busy(&env).await;
    let pool = &env.app.pool;
    unlock(pool).await;
    // Links 2 and 3 swap places.
    for sql in [
        "update journal set seq = 1000000 where festival_id = $1 and seq = 2",
        "update journal set seq = 2 where festival_id = $1 and seq = 3",
        "update journal set seq = 3 where festival_id = $1 and seq = 1000000",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(f.id).execute(pool).await.expect(sql);
    }
    let r = report(&env, &f).await;
    assert!(!r.ok);
    assert!(r.problems.iter().any(|p| p.contains("does not follow")), "{r:?}");
    env.app.stop().await;
}

#[tokio::test]
async fn a_closure_finds_a_chain_rewritten_after_it_was_signed() {
    let env = spawn().await;
    let (f, _) = busy(&env).await;
    let mut client = env.client();
    let closure = client
        .close_journal(authed(pb::CloseJournalRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("close")
        .into_inner();
    assert_eq!(closure.sequence, 4, "a top-up and three charges");
    assert_eq!(closure.head_hash.len(), 64);
    assert_eq!(report(&env, &f).await.closures, 1);
    assert!(report(&env, &f).await.ok);

    // Someone who knows the algorithm alters the last charge and rehashes its link: the
    // chain verifies link by link, the signed closure does not.
    let pool = &env.app.pool;
    unlock(pool).await;
    let (last, prev): (Uuid, Vec<u8>) =
        sqlx::query_as("select transaction_id, prev_hash from journal where festival_id = $1 and seq = 4")
            .bind(f.id)
            .fetch_one(pool)
            .await
            .expect("last");
    for sql in [
        "update transactions set amount_minor = amount_minor - 100, wallet_change_minor = wallet_change_minor + 100 where id = $1",
        "update entries set amount_minor = case when amount_minor > 0 then amount_minor - 100 else amount_minor + 100 end where transaction_id = $1",
        "update wallets set balance_minor = balance_minor + 100 where id = (select wallet_id from transactions where id = $1)",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(last).execute(pool).await.expect(sql);
    }
    let mut record: journal::Record = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {} from transactions where id = $1",
        festival_cashless::store::ledger::COLUMNS
    )))
    .bind(last)
    .fetch_one(pool)
    .await
    .expect("record");
    record.entries =
        sqlx::query_as("select account_id, amount_minor from entries where transaction_id = $1 order by account_id")
            .bind(last)
            .fetch_all(pool)
            .await
            .expect("entries");
    let rehashed = journal::link(&prev.as_slice().try_into().expect("hash"), &record);
    sqlx::query("update journal set hash = $2 where transaction_id = $1")
        .bind(last)
        .bind(rehashed.as_slice())
        .execute(pool)
        .await
        .expect("rehash");
    let r = report(&env, &f).await;
    assert!(!r.ok);
    assert_eq!(r.problems, vec!["the chain up to link 4 changed after it was closed".to_owned()], "{r:?}");
    env.app.stop().await;
}
