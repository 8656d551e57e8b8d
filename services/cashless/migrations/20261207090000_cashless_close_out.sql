-- Voids, wristband replacement, age levels, anonymous wallets, cash shifts and the end of the festival: refund policy,
-- payouts to bank accounts (SEPA files) or donations, and unclaimed balances settled; an
-- index for the organisers' reports.

alter table settings
    add column void_window_seconds bigint not null default 900 check (void_window_seconds between 0 and 86400),
    add column replacement_fee_minor bigint not null default 0 check (replacement_fee_minor >= 0);

-- Unclaimed balances the festival keeps after the payout deadline.
alter table accounts drop constraint accounts_kind_check;
alter table accounts add constraint accounts_kind_check check (kind in ('WALLET', 'VENDOR_REVENUE', 'CASH_DRAWER',
    'CARD_CLEARING', 'CORRECTIONS', 'FLOAT', 'PLATFORM_FEES', 'REFUNDS_PAYABLE', 'SAFE', 'CASH_IMBALANCE', 'DONATIONS',
    'PROMO', 'OFFLINE_LOSS', 'ONLINE_CLEARING', 'CHARGEBACKS', 'UNCLAIMED', 'BANK'));

-- A sale is voided once: the primary key is the guard, the void its own transaction.
create table voids (
    charge_id uuid primary key references transactions (id),
    void_id uuid not null unique references transactions (id),
    festival_id uuid not null,
    reason text not null,
    voided_by uuid not null,
    voided_at timestamptz not null
);
create trigger voids_append_only before update or delete on voids
    for each row execute function cashless_append_only();
revoke update, delete, truncate on voids from current_user;
-- A check of a foreign key to transactions locks the referencing rows (FOR KEY SHARE),
-- which needs UPDATE on one column; the trigger above keeps it from ever changing.
grant update (charge_id) on voids to current_user;

create table payout_policies (
    festival_id uuid primary key,
    fee_minor bigint not null default 0 check (fee_minor >= 0),
    min_payout_minor bigint not null default 0 check (min_payout_minor >= 0),
    deadline timestamptz,
    unclaimed text not null default 'KEEP' check (unclaimed in ('KEEP', 'DONATE')),
    debtor_name text not null default '',
    debtor_iban text not null default '',
    debtor_bic text not null default '',
    batch_max integer not null default 1000 check (batch_max between 1 and 10000),
    updated_at timestamptz not null default now()
);

-- SEPA files, kept as handed out (the same bytes when fetched again).
create table payout_batches (
    id uuid primary key,
    festival_id uuid not null,
    payouts integer not null,
    total_minor bigint not null,
    currency text not null,
    xml text not null,
    created_at timestamptz not null,
    created_by uuid not null,
    -- When the organiser confirmed the bank executed it (refunds payable booked out).
    confirmed_at timestamptz
);
create index payout_batches_festival_idx on payout_batches (festival_id, created_at);

-- What a holder asked for: to a bank account, waiting for a file, exported in one, paid
-- (the file confirmed) or returned by the bank (the money back in the wallet); or
-- donated. Money loaded online is not paid to a bank account (it goes back to its card),
-- so a wallet holding some stays open after its bank payout.
create table payouts (
    id uuid primary key,
    festival_id uuid not null,
    wallet_id uuid not null references wallets (id),
    transaction_id uuid not null unique references transactions (id),
    status text not null check (status in ('PENDING', 'EXPORTED', 'PAID', 'RETURNED', 'DONATED')),
    balance_minor bigint not null check (balance_minor >= 0),
    fee_minor bigint not null check (fee_minor >= 0),
    payout_minor bigint not null check (payout_minor >= 0 and payout_minor + fee_minor = balance_minor),
    currency text not null,
    iban text not null default '',
    account_holder text not null default '',
    requested_at timestamptz not null,
    batch_id uuid references payout_batches (id),
    returned_reason text not null default '',
    check ((status in ('PENDING', 'DONATED')) = (batch_id is null))
);
create index payouts_wallet_idx on payouts (wallet_id);
create index payouts_pending_idx on payouts (festival_id, requested_at, id) where status = 'PENDING';

-- Organisers' reports read a festival's transactions by time.
create index transactions_festival_time_idx on transactions (festival_id, created_at);

-- The wearer's date of birth, read from an identity document by staff (who is
-- recorded), per band (a family's wallet has children's bands): bars check age levels
-- against it on the festival's day.
alter table wristbands
    add column birth_date date,
    add column age_verified_by uuid,
    add column age_verified_at timestamptz;

alter table wallets
    -- An anonymous wallet (box office): the SHA-256 of its claim code until claimed, and
    -- who claimed it (into their own wallet, if they had one: this one then closes).
    add column claim_hash bytea,
    add column claimed_by uuid,
    add column claimed_at timestamptz,
    -- What the wallet holds of money loaded online (spent last, moved first by
    -- transfers): it goes back to its card, never to a bank account.
    add column online_minor bigint not null default 0 check (online_minor >= 0);

-- A cashier's shift at a desk: its own drawer account (owned by the shift), the float
-- counted in, the moves to and from the safe, and the count at its close (the
-- difference from the ledger booked to the cash imbalance account). Movements between
-- the festival's own accounts are transactions whose wallet is the nil id.
create table cash_shifts (
    id uuid primary key,
    festival_id uuid not null,
    cashier_id uuid not null,
    drawer_account uuid not null,
    currency text not null,
    opened_at timestamptz not null,
    float_denominations bigint[] not null,
    float_counts bigint[] not null,
    float_minor bigint not null check (float_minor >= 0),
    to_safe_minor bigint not null default 0,
    from_safe_minor bigint not null default 0,
    closed_at timestamptz,
    closed_by uuid,
    counted_denominations bigint[],
    counted_counts bigint[],
    counted_minor bigint,
    expected_minor bigint
);
create unique index cash_shifts_open_idx on cash_shifts (festival_id, cashier_id) where closed_at is null;
create index cash_shifts_festival_idx on cash_shifts (festival_id, opened_at desc);

-- When cashless first heard the festival was over (COMPLETED or CANCELLED): holders have
-- at least 14 days from then to ask for their money, whatever deadline was set.
alter table festivals add column over_at timestamptz;
