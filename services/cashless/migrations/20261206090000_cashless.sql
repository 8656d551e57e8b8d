-- Cashless: festival facts (program's projection), per-festival rules and keys,
-- terminals, wallets and wristbands, and the ledger: accounts, transactions and their
-- entries (append-only), and the hash-chained journal over them.

create table festivals (
    id uuid primary key,
    name text not null,
    time_zone text not null,
    currency text not null,
    start_time timestamptz,
    end_time timestamptz,
    status text not null,
    version bigint not null,
    deleted boolean not null default false,
    updated_at timestamptz not null default now()
);

-- One row per known festival (made with its facts), so a charge always finds its rules.
create table settings (
    festival_id uuid primary key,
    min_top_up_minor bigint not null default 100 check (min_top_up_minor > 0),
    max_top_up_minor bigint not null default 50000 check (max_top_up_minor >= min_top_up_minor),
    max_balance_minor bigint not null default 100000 check (max_balance_minor > 0),
    max_charge_minor bigint not null default 10000 check (max_charge_minor > 0),
    daily_cap_minor bigint not null default 0 check (daily_cap_minor >= 0),
    offline_limit_minor bigint not null default 3000 check (offline_limit_minor >= 0),
    low_balance_minor bigint not null default 0 check (low_balance_minor >= 0),
    updated_at timestamptz not null default now()
);

-- The festival's wristband master key (AES-128) and journal signing key (Ed25519),
-- sealed with the service's sealing key.
create table festival_keys (
    festival_id uuid primary key,
    master_key_sealed bytea not null,
    journal_key_sealed bytea not null,
    journal_public_key bytea not null,
    created_at timestamptz not null default now()
);

-- Devices identity revoked (`device.revoked`): their charges are refused at once.
create table revoked_devices (
    device_id uuid primary key,
    festival_id uuid not null,
    revoked_at timestamptz not null
);

-- A paired device made a payment terminal of one vendor. Keyed by festival too: an
-- organiser registering some other festival's device id blocks nothing there.
create table terminals (
    festival_id uuid not null,
    device_id uuid not null,
    vendor_id uuid not null,
    label text not null,
    registered_at timestamptz not null,
    primary key (festival_id, device_id)
);

-- Ledger accounts. Amounts in `entries` are signed: a debit is positive, a credit
-- negative; every transaction's entries sum to zero. A wallet (a liability of the
-- festival towards its holder) holds minus the sum of its entries.
create table accounts (
    id uuid primary key,
    festival_id uuid not null,
    kind text not null check (kind in ('WALLET', 'VENDOR_REVENUE', 'CASH_DRAWER', 'CARD_CLEARING',
        'CORRECTIONS', 'FLOAT', 'PLATFORM_FEES', 'REFUNDS_PAYABLE', 'SAFE', 'CASH_IMBALANCE', 'DONATIONS', 'PROMO', 'OFFLINE_LOSS', 'ONLINE_CLEARING', 'CHARGEBACKS')),
    currency text not null,
    -- The vendor (VENDOR_REVENUE), cashier (CASH_DRAWER) or wallet (WALLET) it belongs
    -- to; null for the festival's own accounts.
    owner_id uuid,
    created_at timestamptz not null default now(),
    unique nulls not distinct (festival_id, kind, owner_id)
);

create table wallets (
    id uuid primary key references accounts (id),
    festival_id uuid not null,
    user_id uuid,
    status text not null default 'ACTIVE' check (status in ('ACTIVE', 'CLOSED')),
    currency text not null,
    -- The guard every movement updates under the row's lock, and a projection of the
    -- ledger (VerifyLedger recomputes it).
    balance_minor bigint not null default 0 check (balance_minor >= 0),
    -- What was spent on `spent_day` (the festival's day), for the daily cap.
    spent_day date,
    spent_today_minor bigint not null default 0,
    created_at timestamptz not null default now()
);
create unique index wallets_holder_idx on wallets (festival_id, user_id) where user_id is not null;
create index wallets_festival_idx on wallets (festival_id, id);

create table wristbands (
    festival_id uuid not null,
    -- Upper-case hex of the band's UID.
    uid text not null,
    wallet_id uuid not null references wallets (id),
    status text not null default 'ACTIVE' check (status in ('ACTIVE', 'BLOCKED')),
    bound_at timestamptz not null,
    -- Who bound it (the holder or a member of staff, who tapped the band to prove it
    -- was in their hand) and who blocked it.
    bound_by uuid not null,
    blocked_at timestamptz,
    blocked_by uuid,
    block_reason text not null default '',
    primary key (festival_id, uid)
);
create index wristbands_wallet_idx on wristbands (wallet_id);

create table transactions (
    id uuid primary key,
    festival_id uuid not null,
    kind text not null check (kind in ('TOPUP', 'PAYMENT', 'REFUND', 'TRANSFER', 'CORRECTION')),
    currency text not null,
    -- Positive: what moved.
    amount_minor bigint not null check (amount_minor > 0),
    -- The wallet it concerns (the payer for PAYMENT and TRANSFER), its signed change and
    -- balance right after.
    wallet_id uuid not null,
    wallet_change_minor bigint not null,
    balance_after_minor bigint not null,
    -- The vendor (PAYMENT), the receiving wallet (TRANSFER) and its balance right after.
    counterpart_id uuid,
    counterpart_balance_after_minor bigint,
    -- A person's or a terminal's id.
    actor_id uuid not null,
    -- CORRECTION: why; a card TOPUP: the card terminal's receipt.
    reason text not null default '',
    created_at timestamptz not null,
    -- PAYMENT: the terminal's idempotency key (a charge is booked once per terminal and
    -- key, also after the kit's key table forgets it), the festival day it counts in,
    -- what the wallet had spent that day with it, and the daily cap it was checked
    -- against (0: none).
    idempotency_key text,
    charge_day date,
    day_spent_after_minor bigint,
    daily_cap_minor bigint
);
create unique index transactions_charge_key_idx on transactions (actor_id, idempotency_key) where kind = 'PAYMENT';

-- Top-ups paid online (payments' payment.completed for a WALLET_TOP_UP): each payment
-- credits its wallet once, however often or late its event comes; refunds and disputes
-- take back what the wallet still holds (the rest is a chargeback loss) and block its
-- bands. A reversal heard before the completion leaves a REVERSED row, so the late
-- completion credits nothing.
create table online_top_ups (
    payment_id uuid primary key,
    festival_id uuid not null,
    wallet_id uuid,
    status text not null check (status in ('CREDITED', 'REFUSED', 'REVERSED')),
    amount_minor bigint not null default 0,
    reversed_minor bigint not null default 0,
    uncollected_minor bigint not null default 0,
    updated_at timestamptz not null
);
-- Each refund or dispute applies once (by the provider's id).
create table online_top_up_reversals (
    reversal_id text primary key,
    payment_id uuid not null,
    amount_minor bigint not null,
    applied_at timestamptz not null
);

-- Every charge a terminal uploaded from offline, booked or not: applied once per
-- terminal and sequence number (the primary key), the gaps in a terminal's sequence
-- read from here, and a band's offline charges at other terminals found by time.
create table offline_uploads (
    device_id uuid not null,
    seq bigint not null check (seq > 0),
    festival_id uuid not null,
    uid text not null,
    amount_minor bigint not null,
    charged_at timestamptz not null,
    uploaded_at timestamptz not null,
    transaction_id uuid,
    -- What the festival's offline-loss account paid of it (a band's total is capped at
    -- the offline limit).
    loss_minor bigint not null default 0,
    primary key (device_id, seq)
);
create index offline_uploads_band_idx on offline_uploads (festival_id, uid, charged_at);

-- What offline charging let through that online charging would not have: never
-- silently absorbed, listed for the organisers.
create table offline_exceptions (
    id uuid primary key,
    festival_id uuid not null,
    device_id uuid not null,
    seq bigint not null,
    uid text not null,
    wallet_id uuid,
    amount_minor bigint not null,
    shortfall_minor bigint not null default 0,
    kind text not null check (kind in ('OVERDRAWN', 'UNFUNDED', 'BAD_TAP', 'UNKNOWN_BAND', 'BLOCKED_BAND',
        'SEEN_ELSEWHERE', 'OVER_MAX_CHARGE', 'SEQUENCE_REUSED')),
    transaction_id uuid,
    charged_at timestamptz not null,
    recorded_at timestamptz not null
);
create index offline_exceptions_festival_idx on offline_exceptions (festival_id, recorded_at desc, id desc);
create index transactions_wallet_idx on transactions (wallet_id, created_at desc, id desc);
create index transactions_counterpart_idx on transactions (counterpart_id, created_at desc) where counterpart_id is not null;

-- No foreign key to accounts on purpose: its check would take a shared lock on a
-- vendor's revenue account for every charge, and every bar charges at once. Accounts are
-- only ever written by this service, and VerifyLedger checks every entry's account.
create table entries (
    transaction_id uuid not null references transactions (id),
    account_id uuid not null,
    festival_id uuid not null,
    currency text not null,
    amount_minor bigint not null check (amount_minor <> 0),
    primary key (transaction_id, account_id)
);
create index entries_account_idx on entries (account_id);
create index entries_festival_idx on entries (festival_id, currency);

-- A transaction commits only with entries that balance (checked at commit, after
-- every entry of its statement or transaction is written).
create function cashless_check_balanced() returns trigger language plpgsql as $$
declare
    n bigint;
    total numeric;
begin
    select count(*), coalesce(sum(amount_minor), 0) into n, total from entries where transaction_id = new.id;
    if n < 2 or total <> 0 then
        raise exception 'transaction % does not balance (% entries, sum %)', new.id, n, total
            using errcode = '23514';
    end if;
    return null;
end $$;
create constraint trigger transactions_balanced after insert on transactions
    deferrable initially deferred for each row execute function cashless_check_balanced();

-- The hash chain: each chained transaction's hash covers its content and the previous
-- hash of its festival's chain.
create table journal (
    festival_id uuid not null,
    seq bigint not null check (seq > 0),
    transaction_id uuid not null unique references transactions (id),
    prev_hash bytea not null,
    hash bytea not null,
    chained_at timestamptz not null default now(),
    primary key (festival_id, seq)
);

-- Transactions not chained yet (the worker deletes a row once it chained it), in the
-- order they are chained: when they were made.
create table journal_queue (
    transaction_id uuid primary key,
    festival_id uuid not null,
    created_at timestamptz not null
);
create index journal_queue_order_idx on journal_queue (festival_id, created_at, transaction_id);

-- One row per festival whose chain exists: the head the next link follows, locked by
-- the one worker chaining that festival.
create table journal_heads (
    festival_id uuid primary key,
    seq bigint not null,
    hash bytea not null
);

-- Signed closures of the chain (up to `seq`, whose hash is `head_hash`).
create table journal_closures (
    festival_id uuid not null,
    seq bigint not null,
    head_hash bytea not null,
    closed_at timestamptz not null,
    signature bytea not null,
    primary key (festival_id, seq)
);

-- The ledger and the journal are append-only: no update, delete or truncate, whoever
-- asks. The service's own role also loses the privileges (a deployment that runs
-- migrations with another role keeps it from granting them back).
create function cashless_append_only() returns trigger language plpgsql as $$
begin
    raise exception '% is append-only', tg_table_name using errcode = '42501';
end $$;
create trigger transactions_append_only before update or delete on transactions
    for each row execute function cashless_append_only();
create trigger transactions_no_truncate before truncate on transactions
    for each statement execute function cashless_append_only();
create trigger entries_append_only before update or delete on entries
    for each row execute function cashless_append_only();
create trigger entries_no_truncate before truncate on entries
    for each statement execute function cashless_append_only();
create trigger journal_append_only before update or delete on journal
    for each row execute function cashless_append_only();
create trigger journal_no_truncate before truncate on journal
    for each statement execute function cashless_append_only();
create trigger closures_append_only before update or delete on journal_closures
    for each row execute function cashless_append_only();
create trigger offline_exceptions_append_only before update or delete on offline_exceptions
    for each row execute function cashless_append_only();
revoke update, delete, truncate on transactions, entries, journal, journal_closures, offline_exceptions from current_user;
-- Foreign keys to transactions lock the row they reference (FOR KEY SHARE), which needs
-- the UPDATE privilege on one of its columns: the id's, which the trigger above (and the
-- primary key) keep from ever changing.
grant update (id) on transactions to current_user;
