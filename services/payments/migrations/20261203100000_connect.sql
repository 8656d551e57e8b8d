-- Stripe Connect: vendors of a festival get a connected account (Express), onboard on
-- Stripe's page, and are paid by destination charges: the buyer pays the platform's
-- account, Stripe transfers the amount less the platform's application fee (the
-- organiser's commission) to the vendor.
create table vendor_accounts (
    id                  uuid primary key,
    festival_id         uuid not null,
    -- The vendors service's id of the vendor (one account per vendor and festival).
    vendor_id           uuid not null,
    display_name        text not null,
    provider_account_id text not null constraint vendor_accounts_provider_key unique,
    -- The platform's application fee, in basis points of each charge (0 to 10,000).
    commission_bps      integer not null constraint vendor_accounts_commission_check
                            check (commission_bps between 0 and 10000),
    charges_enabled     boolean not null default false,
    payouts_enabled     boolean not null default false,
    details_submitted   boolean not null default false,
    -- When the provider said so (an event's time, or when we asked): older news is ignored.
    state_at            timestamptz,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    constraint vendor_accounts_vendor_key unique (festival_id, vendor_id)
);

alter table payments drop constraint payments_purpose_check;
alter table payments add constraint payments_purpose_check
    check (purpose in ('TICKET_ORDER', 'CAMPING_BOOKING', 'WALLET_TOP_UP', 'VENDOR_ORDER'));
-- A destination charge: whose it is, and the platform's fee taken from it.
alter table payments add column vendor_account_id uuid references vendor_accounts (id);
alter table payments add column application_fee_minor bigint not null default 0
    constraint payments_fee_check check (application_fee_minor >= 0 and application_fee_minor <= amount_minor);
create index payments_vendor_idx on payments (vendor_account_id) where vendor_account_id is not null;

-- A refund of a destination charge pulls the vendor's share back (a transfer reversal).
-- When the vendor's balance cannot cover it (paid out already), the buyer is refunded
-- from the platform's balance and the vendor's share is recorded as a debt.
alter table refunds add column reverse_transfer boolean not null default true;
-- When the provider was first asked for it: from then on its key never changes (an
-- answer lost on the way may have been a refund made), unless the provider refused.
alter table refunds add column asked_at timestamptz;

create table vendor_debts (
    id                  uuid primary key,
    vendor_account_id   uuid not null references vendor_accounts (id),
    refund_id           uuid not null constraint vendor_debts_refund_key unique references refunds (id),
    amount_minor        bigint not null constraint vendor_debts_amount_check check (amount_minor > 0),
    currency            text not null,
    created_at          timestamptz not null default now(),
    settled_at          timestamptz,
    -- Who recorded it paid (an organiser's account).
    settled_by          uuid
);
create index vendor_debts_account_idx on vendor_debts (vendor_account_id) where settled_at is null;
