-- Ticketing's own copy of the festival facts program publishes (FestivalFacts): sales
-- follow its status, prices its currency. `version` only grows (newest facts win).
create table festivals (
    id              uuid primary key,
    name            text not null,
    time_zone       text not null,
    currency        text not null,
    start_time      timestamptz,
    end_time        timestamptz,
    status          text not null,
    version         bigint not null,
    deleted         boolean not null default false,
    updated_at      timestamptz not null default now()
);

create table categories (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    name            text not null,
    price_minor     bigint not null constraint categories_price_check check (price_minor >= 0),
    sale_start      timestamptz,
    sale_end        timestamptz,
    min_per_order   integer not null,
    max_per_order   integer not null,
    max_per_account integer not null,
    visibility      text not null constraint categories_visibility_check check (visibility in ('PUBLIC', 'HIDDEN')),
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint categories_name_key unique (festival_id, name)
);

-- One counter row per quota, changed by single conditional statements under a row lock
-- taken in id order (see docs/ARCHITECTURE.md, "Ticketing"). `held + sold <= size` is
-- the guard those statements keep; it is checked there, not here, so the test-only
-- race-hooks build can remove it and show what it prevents.
create table quotas (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    name            text not null,
    size            bigint not null constraint quotas_size_check check (size > 0),
    held            bigint not null default 0 constraint quotas_held_check check (held >= 0),
    sold            bigint not null default 0 constraint quotas_sold_check check (sold >= 0),
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint quotas_name_key unique (festival_id, name)
);

create table quota_categories (
    quota_id        uuid not null references quotas (id),
    category_id     uuid not null references categories (id),
    festival_id     uuid not null,
    primary key (quota_id, category_id)
);
create index quota_categories_category_idx on quota_categories (category_id);

create table holds (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    user_id         uuid not null,
    status          text not null constraint holds_status_check check (status in ('ACTIVE', 'CHECKED_OUT', 'RELEASED', 'EXPIRED')),
    total_minor     bigint not null,
    currency        text not null,
    expires_at      timestamptz not null,
    extended        boolean not null default false,
    order_id        uuid,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create index holds_expiry_idx on holds (expires_at) where status = 'ACTIVE';
create index holds_user_idx on holds (user_id, festival_id) where status = 'ACTIVE';

-- `quota_ids`: the quotas this item took its tickets from, recorded when it took them, so
-- giving them back or selling them moves exactly those counters (a quota created later
-- over the same category is not touched).
create table hold_items (
    hold_id         uuid not null references holds (id),
    category_id     uuid not null references categories (id),
    quantity        integer not null constraint hold_items_quantity_check check (quantity > 0),
    unit_price_minor bigint not null,
    quota_ids       uuid[] not null,
    primary key (hold_id, category_id)
);

create table orders (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    buyer_user_id   uuid,
    status          text not null constraint orders_status_check check (status in ('PAID', 'CANCELLED')),
    total_minor     bigint not null,
    currency        text not null,
    payment_method  text not null constraint orders_payment_method_check check (payment_method in ('FREE', 'CASH', 'EXTERNAL')),
    hold_id         uuid constraint orders_hold_key unique,
    created_by      uuid not null,
    cancelled_at    timestamptz,
    cancel_reason   text,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create index orders_buyer_idx on orders (buyer_user_id) where buyer_user_id is not null;

create table tickets (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    order_id        uuid not null references orders (id),
    category_id     uuid not null references categories (id),
    holder_user_id  uuid,
    status          text not null constraint tickets_status_check check (status in ('SOLD', 'USED', 'CANCELLED', 'REFUNDED')),
    credential      text not null,
    -- The quotas the ticket counts against (see hold_items.quota_ids).
    quota_ids       uuid[] not null,
    issued_at       timestamptz not null,
    used_at         timestamptz,
    used_gate       text,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create index tickets_order_idx on tickets (order_id);
create index tickets_holder_idx on tickets (holder_user_id, festival_id) where holder_user_id is not null;
create index tickets_revoked_idx on tickets (festival_id) where status in ('CANCELLED', 'REFUNDED');

-- A festival's ticket-signing keys (Ed25519), private halves sealed like identity's.
create table ticket_keys (
    festival_id     uuid not null references festivals (id),
    kid             text not null,
    public_key      bytea not null,
    sealed_private  bytea not null,
    created_at      timestamptz not null default now(),
    retired_at      timestamptz,
    -- A key id is 32 bits: unique per festival, not worldwide.
    primary key (festival_id, kid)
);
create unique index ticket_keys_active_key on ticket_keys (festival_id) where retired_at is null;
