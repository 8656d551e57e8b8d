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
    // The chain finds it; so does the wallet's day counter, which was left as it was.
    assert_eq!(r.problems.len(), 2, "{r:?}");
    assert!(r.problems.contains(&format!("transaction {victim} (journal link 3) was altered")), "{r:?}");
    assert!(r.problems[0].ends_with("make 1830, its day counter 2030"), "{r:?}");
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
        "update transactions set amount_minor = amount_minor - 100, wallet_change_minor = wallet_change_minor + 100,
             day_spent_after_minor = day_spent_after_minor - 100 where id = $1",
        "update entries set amount_minor = case when amount_minor > 0 then amount_minor - 100 else amount_minor + 100 end where transaction_id = $1",
        "update wallets set balance_minor = balance_minor + 100 where id = (select wallet_id from transactions where id = $1)",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(last).execute(pool).await.expect(sql);
    }
    let mut record: journal::Record = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {} from transactions where id = $1",
        festival_cashless::store::ledger::JOURNAL_COLUMNS
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

#[tokio::test]
async fn a_closure_of_an_empty_journal_verifies() {
    let env = spawn().await;
    let f = env.festival().await;
    let closure = env
        .client()
        .close_journal(authed(pb::CloseJournalRequest { festival_id: f.id.to_string() }, &f.organizer))
        .await
        .expect("close")
        .into_inner();
    assert_eq!(closure.sequence, 0);
    let r = report(&env, &f).await;
    assert!(r.ok, "{r:?}");
    assert_eq!((r.closures, r.chained, r.transactions), (1, 0, 0));
    env.app.stop().await;
}

/// Each rule of VerifyLedger, broken on purpose behind the service's back, names what
/// breaks it.
#[tokio::test]
async fn every_ledger_rule_names_what_breaks_it() {
    let env = spawn().await;
    let (f, band) = busy(&env).await;
    env.settings(&f, |s| s.daily_cap_minor = 10_000).await;
    let pool = &env.app.pool;
    let ids = payments(pool, &f).await;
    unlock(pool).await;
    let exec = |sql: &'static str, id: Uuid| async move {
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).execute(pool).await.expect(sql);
    };
    // The wallet's stored balance drifts from its entries.
    exec("update wallets set balance_minor = balance_minor + 1 where id = $1", band.wallet_id).await;
    // A charge's wallet leg grows by 5: its transaction no longer balances, nor do the books.
    exec("update entries set amount_minor = amount_minor + 5 where transaction_id = $1 and amount_minor > 0", ids[0])
        .await;
    // A charge claims to have stayed under a cap it broke, and a counter that lies.
    exec("update transactions set daily_cap_minor = 1000, day_spent_after_minor = 20000 where id = $1", ids[1]).await;
    // A transaction whose own fields disagree with its entries.
    exec("update transactions set wallet_change_minor = -1 where id = $1", ids[2]).await;
    // A debit booked behind the service's back and never queued for the journal: it
    // overdraws an empty wallet.
    let empty = env.band(&f, 0).await;
    let ghost = Uuid::now_v7();
    sqlx::query(
        "insert into transactions (id, festival_id, kind, currency, amount_minor, wallet_id, wallet_change_minor,
             balance_after_minor, actor_id, created_at)
         values ($1, $2, 'CORRECTION', 'EUR', 100, $3, -100, 0, $3, now())",
    )
    .bind(ghost)
    .bind(f.id)
    .bind(empty.wallet_id)
    .execute(pool)
    .await
    .expect("ghost");
    let corrections: Uuid = sqlx::query_scalar(
        "insert into accounts (id, festival_id, kind, currency) values ($1, $2, 'CORRECTIONS', 'EUR')
         on conflict (festival_id, kind, owner_id) do update set currency = excluded.currency returning id",
    )
    .bind(Uuid::now_v7())
    .bind(f.id)
    .fetch_one(pool)
    .await
    .expect("corrections");
    sqlx::query(
        "insert into entries (transaction_id, account_id, festival_id, currency, amount_minor)
         values ($1, $2, $4, 'EUR', 100), ($1, $3, $4, 'EUR', -100)",
    )
    .bind(ghost)
    .bind(empty.wallet_id)
    .bind(corrections)
    .bind(f.id)
    .execute(pool)
    .await
    .expect("ghost entries");

    let r = report(&env, &f).await;
    assert!(!r.ok);
    let expect = [
        "entries in EUR sum to 5, not 0".to_owned(),
        format!("transaction {} does not balance (sum 5)", ids[0]),
        format!("wallet {} holds", band.wallet_id),
        format!("wallet {} holds 0 but its entries make -100", empty.wallet_id),
        format!("wallet {} is overdrawn: its entries make -100", empty.wallet_id),
        format!("charge {} took wallet {} to 20000 spent on", ids[1], band.wallet_id),
        format!("transaction {} says its wallet moved by -1", ids[2]),
        format!("transaction {ghost} is neither in the journal nor waiting for it"),
        format!("transaction {} (journal link 2) was altered", ids[0]),
        format!("transaction {} (journal link 3) was altered", ids[1]),
        format!("transaction {} (journal link 4) was altered", ids[2]),
    ];
    for line in &expect {
        assert!(r.problems.iter().any(|p| p.starts_with(line.as_str())), "missing {line:?} in {:#?}", r.problems);
    }
    assert!(
        r.problems.iter().any(|p| p.contains("charges on") && p.contains("its day counter 20000")),
        "the day counter's lie: {:#?}",
        r.problems
    );
    env.app.stop().await;
}

#[tokio::test]
async fn each_festival_day_is_closed_when_it_turns() {
    let env = spawn().await;
    let (f, _) = busy(&env).await;
    assert_eq!(report(&env, &f).await.closures, 0, "the day has not turned yet");
    env.app.clock.advance(std::time::Duration::from_secs(25 * 3600));
    let closed =
        eventually(std::time::Duration::from_secs(10), || async { report(&env, &f).await.closures == 1 }).await;
    assert!(closed, "the worker never closed the day");
    let r = report(&env, &f).await;
    assert!(r.ok, "{r:?}");
    assert_eq!(r.chained, 4);
    // Closed once: a round now finds no day left to close, for this festival or any.
    let sealer = festival_platform::sealing::Sealer::from_config(&env.app.config.keys.sealing_key).expect("sealer");
    let keys = festival_cashless::keys::FestivalKeys::new(sealer);
    let again = festival_cashless::journal::close_days(&env.app.pool, &keys, env.app.clock.now()).await.expect("round");
    assert_eq!(again, 0);
    assert_eq!(report(&env, &f).await.closures, 1);
    env.app.stop().await;
}
