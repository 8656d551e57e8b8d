-- Partner vouchers: places of one category reserved for a partner (a sponsor, a promoter,
-- a guest list). Creating one takes `max_uses` places from the category's quotas as
-- held; a hold made with its code takes from that reservation instead of the public
-- stock (`used` counts them) and gives it back if it ends unsold. Closing a voucher (by
-- hand, or the worker once `valid_until` passed) frees what it still reserves.
create table vouchers (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    category_id     uuid not null references categories (id),
    partner         text not null,
    code_hash       bytea not null,
    max_uses        integer not null constraint vouchers_max_uses_check check (max_uses between 1 and 10000),
    used            integer not null default 0,
    price_minor     bigint constraint vouchers_price_check check (price_minor >= 0),
    -- The quotas its places were taken from.
    quota_ids       uuid[] not null,
    valid_until     timestamptz not null,
    closed_at       timestamptz,
    created_by      uuid not null,
    created_at      timestamptz not null,
    -- `used <= max_uses` is the one conditional update's guard (store/vouchers.rs), as
    -- for quotas: a test-only build removes it and its race test must see it matter.
    constraint vouchers_used_check check (used >= 0),
    constraint vouchers_code_key unique (festival_id, code_hash)
);
create index vouchers_festival_idx on vouchers (festival_id, created_at);
create index vouchers_open_expiry_idx on vouchers (valid_until) where closed_at is null;

alter table holds add column voucher_id uuid references vouchers (id);
