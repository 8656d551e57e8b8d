-- Payments: one row per checkout asked of the provider. Amounts are integer minor units
-- of `currency`; `refunded_minor` only grows and never passes `amount_minor` (checked
-- here as a last wall; the refund command checks it under the row's lock first).
create table payments (
    id                  uuid primary key,
    festival_id         uuid not null,
    purpose             text not null constraint payments_purpose_check
                            check (purpose in ('TICKET_ORDER', 'CAMPING_BOOKING', 'WALLET_TOP_UP')),
    reference           text not null,
    payer_user_id       uuid not null,
    status              text not null constraint payments_status_check
                            check (status in ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'REFUNDED')),
    amount_minor        bigint not null constraint payments_amount_check check (amount_minor > 0),
    currency            text not null,
    refunded_minor      bigint not null default 0,
    -- Stripe's checkout session and, once paid, its payment intent.
    provider_session_id text not null constraint payments_session_key unique,
    provider_intent_id  text constraint payments_intent_key unique,
    checkout_url        text not null,
    failure_reason      text not null default '',
    disputed            boolean not null default false,
    expires_at          timestamptz not null,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    constraint payments_refunded_check check (refunded_minor >= 0 and refunded_minor <= amount_minor)
);
create index payments_festival_idx on payments (festival_id, created_at desc, id desc);
create index payments_reference_idx on payments (purpose, reference);
-- The reconciliation worker's work list.
create index payments_pending_idx on payments (expires_at) where status in ('PENDING', 'PROCESSING');

create table refunds (
    id                  uuid primary key,
    payment_id          uuid not null references payments (id),
    amount_minor        bigint not null constraint refunds_amount_check check (amount_minor > 0),
    status              text not null constraint refunds_status_check
                            check (status in ('PENDING', 'SUCCEEDED', 'FAILED')),
    reason              text not null,
    -- What asked for it: an organiser's id, or the event that caused it.
    requested_by        text not null,
    provider_refund_id  text constraint refunds_provider_key unique,
    -- A sender's lease: one sender at a time asks the provider for it.
    sending_until       timestamptz,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now()
);
create index refunds_payment_idx on refunds (payment_id, created_at);

-- Every provider event seen, by its id: a redelivery is answered without a second
-- effect. Events about a payment intent not known yet (a refund seen before the
-- completion) wait, `PARKED`, until it is.
create table webhook_events (
    event_id            text primary key,
    event_type          text not null,
    intent_id           text,
    payload             jsonb not null,
    outcome             text not null constraint webhook_events_outcome_check
                            check (outcome in ('APPLIED', 'PARKED', 'IGNORED')),
    received_at         timestamptz not null default now()
);
create index webhook_events_parked_idx on webhook_events (intent_id) where outcome = 'PARKED';

-- The effects applied, by object and event type: the same change arriving under a second
-- event id (Stripe may send one twice) has no second effect.
create table webhook_effects (
    effect_key          text primary key,
    event_id            text not null,
    applied_at          timestamptz not null default now()
);
