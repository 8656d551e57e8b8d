-- Money loaded online and still unspent when the festival is over goes back to the card
-- it came from, through payments. A refund is booked here first (the wallet pays it into
-- the online clearing account it came in by), then asked of payments under its own id as
-- the idempotency key; payments' `payment.refunded` for it confirms it and moves nothing
-- again. A refusal books it back into the wallet.
create table card_refunds (
    id uuid primary key,
    festival_id uuid not null,
    wallet_id uuid not null references wallets (id),
    payment_id uuid not null references online_top_ups (payment_id),
    transaction_id uuid not null references transactions (id),
    amount_minor bigint not null check (amount_minor > 0),
    status text not null check (status in ('BOOKED', 'SENT', 'CONFIRMED', 'FAILED')),
    -- Payments' refund id, from its answer or from its event, whichever comes first.
    refund_id text unique,
    failure text not null default '',
    booked_at timestamptz not null,
    updated_at timestamptz not null
);
create index card_refunds_booked_idx on card_refunds (festival_id, booked_at) where status = 'BOOKED';
create index card_refunds_payment_idx on card_refunds (payment_id);

-- When a payment was first heard of: the newest top-up goes back to its card first.
alter table online_top_ups add column heard_at timestamptz not null default now();

-- An offline sale of an age-restricted product to a band below its level (a till that
-- did not check its snapshot) is booked and flagged.
alter table offline_exceptions drop constraint offline_exceptions_kind_check;
alter table offline_exceptions add constraint offline_exceptions_kind_check check (kind in ('OVERDRAWN', 'UNFUNDED',
    'BAD_TAP', 'UNKNOWN_BAND', 'BLOCKED_BAND', 'SEEN_ELSEWHERE', 'OVER_MAX_CHARGE', 'SEQUENCE_REUSED', 'UNDERAGE'));

-- Money loaded online that came in from another wallet (a transfer, a claim): the
-- close-out pays no such wallet's online money back to a card, since the card that
-- loaded it is not its holder's.
alter table wallets add column online_received_minor bigint not null default 0;

-- A refund payments reports while one of the close-out's refunds of the same payment is
-- still waiting for payments' answer (so its id is unknown): kept aside, taking nothing,
-- until the run learns whose it is.
create table parked_reversals (
    reversal_id text primary key,
    payment_id uuid not null,
    festival_id uuid not null,
    amount_minor bigint not null,
    parked_at timestamptz not null
);

-- Non-refundable credit (promotional credit, staff drink tokens): an organiser grants it
-- from the festival's PROMO or STAFF_TOKENS account into the wallet's own CREDIT account;
-- a connected terminal's charge spends it before the holder's money. It is never paid
-- out, moved, refunded or spent offline. `credit_spent_minor` is the credit share of the
-- wallet's last charge, written by the charge's own statement for it to report.
alter table wallets
    add column credit_minor bigint not null default 0 check (credit_minor >= 0),
    add column credit_spent_minor bigint not null default 0;
alter table accounts drop constraint accounts_kind_check;
alter table accounts add constraint accounts_kind_check check (kind in ('WALLET', 'VENDOR_REVENUE', 'CASH_DRAWER',
    'CARD_CLEARING', 'CORRECTIONS', 'FLOAT', 'PLATFORM_FEES', 'REFUNDS_PAYABLE', 'SAFE', 'CASH_IMBALANCE', 'DONATIONS',
    'PROMO', 'OFFLINE_LOSS', 'ONLINE_CLEARING', 'CHARGEBACKS', 'UNCLAIMED', 'BANK', 'CREDIT', 'STAFF_TOKENS'));

-- A refund or dispute of a top-up is taken from its wallet only up to what is not
-- already on its way back to the card; what that left out is kept here and taken if a
-- refund under way is booked back.
alter table online_top_ups add column capped_minor bigint not null default 0;
-- When a run last asked payments about a refund it took: each run asks about those it
-- asked about longest ago.
alter table card_refunds add column checked_at timestamptz;
