//! VerifyLedger's work: recompute the festival's ledger from its entries and walk its
//! journal. Every rule is a query that lists what breaks it, so a report names the
//! wallet, transaction or link at fault rather than saying "does not add up".

use ed25519_dalek::VerifyingKey;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::journal::Verifier;
use crate::store;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub transactions: i64,
    pub wallets: i64,
    pub chained: i64,
    pub closures: i64,
    pub problems: Vec<String>,
}

/// Each rule: a query returning one line per breach.
const RULES: &[(&str, &str)] = &[
    (
        "debits equal credits per currency",
        "select format('entries in %s sum to %s, not 0', currency, sum(amount_minor))
         from entries where festival_id = $1 group by currency having sum(amount_minor) <> 0",
    ),
    (
        "every transaction balances",
        "select format('transaction %s does not balance (sum %s)', transaction_id, sum(amount_minor))
         from entries where festival_id = $1 group by transaction_id having sum(amount_minor) <> 0 or count(*) < 2
         limit 100",
    ),
    (
        "every wallet holds the sum of its entries",
        "select format('wallet %s holds %s but its entries make %s', w.id, w.balance_minor, -coalesce(sum(e.amount_minor), 0))
         from wallets w left join entries e on e.account_id = w.id
         where w.festival_id = $1 group by w.id having w.balance_minor <> -coalesce(sum(e.amount_minor), 0)
         limit 100",
    ),
    (
        "every wallet's credit is the sum of its credit account's entries",
        "select format('wallet %s holds %s of credit but its credit account makes %s', w.id, w.credit_minor,
                 -coalesce(sum(e.amount_minor), 0))
         from wallets w
         left join accounts a on a.festival_id = w.festival_id and a.kind = 'CREDIT' and a.owner_id = w.id
         left join entries e on e.account_id = a.id
         where w.festival_id = $1 group by w.id having w.credit_minor <> -coalesce(sum(e.amount_minor), 0)
         limit 100",
    ),
    (
        "no wallet below zero",
        "select format('wallet %s is overdrawn: its entries make %s', e.account_id, -sum(e.amount_minor))
         from entries e join accounts a on a.id = e.account_id and a.kind in ('WALLET', 'CREDIT')
         where e.festival_id = $1 group by e.account_id having sum(e.amount_minor) > 0
         limit 100",
    ),
    (
        "every entry's account is the festival's",
        "select format('entry of transaction %s names account %s, not one of this festival''s', e.transaction_id, e.account_id)
         from entries e left join accounts a on a.id = e.account_id
         where e.festival_id = $1 and (a.id is null or a.festival_id <> e.festival_id or a.currency <> e.currency)
         limit 100",
    ),
    (
        "no charge took a wallet above the daily cap it was checked against",
        "select format('charge %s took wallet %s to %s spent on %s, above the cap of %s', id, wallet_id,
                 day_spent_after_minor, charge_day, daily_cap_minor)
         from transactions
         where festival_id = $1 and kind = 'PAYMENT' and daily_cap_minor > 0 and day_spent_after_minor > daily_cap_minor
         limit 100",
    ),
    (
        "a wallet's day counter is the sum of that day's charges",
        "select format('wallet %s''s charges on %s make %s, its day counter %s', wallet_id, charge_day,
                 sum(amount_minor), max(day_spent_after_minor))
         from transactions where festival_id = $1 and kind = 'PAYMENT'
         group by wallet_id, charge_day having sum(amount_minor) <> max(day_spent_after_minor)
         limit 100",
    ),
    (
        "each transaction moves its wallet as it says",
        "select format('transaction %s says its wallet moved by %s, its entries by %s', t.id, t.wallet_change_minor,
                 -coalesce(e.amount_minor, 0))
         from transactions t left join entries e on e.transaction_id = t.id and e.account_id = t.wallet_id
         where t.festival_id = $1 and t.wallet_change_minor <> -coalesce(e.amount_minor, 0)
         limit 100",
    ),
    (
        "every transaction is chained or queued",
        "select format('transaction %s is neither in the journal nor waiting for it', t.id)
         from transactions t
         where t.festival_id = $1
           and not exists (select 1 from journal j where j.transaction_id = t.id)
           and not exists (select 1 from journal_queue q where q.transaction_id = t.id)
         limit 100",
    ),
];

pub async fn verify(
    conn: &mut PgConnection,
    festival: Uuid,
    journal_key: Option<VerifyingKey>,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    for (_, sql) in RULES {
        let found: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(*sql)).bind(festival).fetch_all(&mut *conn).await?;
        report.problems.extend(found);
    }
    let (transactions, wallets): (i64, i64) = sqlx::query_as(
        "select (select count(*) from transactions where festival_id = $1),
                (select count(*) from wallets where festival_id = $1)",
    )
    .bind(festival)
    .fetch_one(&mut *conn)
    .await?;
    report.transactions = transactions;
    report.wallets = wallets;

    let mut verifier = Verifier::new(festival);
    store::journal::walk(conn, festival, |link, record| verifier.link(link, record)).await?;
    let closures = store::journal::closures(conn, festival).await?;
    report.closures = closures.len() as i64;
    if !closures.is_empty() {
        match journal_key {
            Some(key) => closures.iter().for_each(|c| verifier.closure(c, &key)),
            None => verifier.problems.push("closures exist but the festival has no journal key".into()),
        }
    }
    report.chained = verifier.chained();
    report.problems.extend(verifier.problems);
    Ok(report)
}
