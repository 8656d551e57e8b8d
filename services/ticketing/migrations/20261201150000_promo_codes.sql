-- Promo codes. `used` counts discounted tickets (not orders) and is changed by one
-- conditional statement under its row lock, so the last use is taken exactly once.
create table promo_codes (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    code            text not null,
    kind            text not null constraint promo_codes_kind_check check (kind in ('PERCENT', 'FIXED')),
    value           bigint not null constraint promo_codes_value_check check (value > 0),
    category_ids    uuid[] not null default '{}',
    min_basket_minor bigint not null default 0,
    max_uses        bigint not null default 0,
    max_uses_per_account integer not null default 0,
    used            bigint not null default 0 constraint promo_codes_used_check check (used >= 0),
    stackable       boolean not null default false,
    valid_from      timestamptz,
    valid_until     timestamptz,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint promo_codes_code_key unique (festival_id, code)
);

-- Which codes a hold used, for how many tickets: given back when the hold ends unsold.
create table promo_redemptions (
    hold_id         uuid not null references holds (id),
    promo_code_id   uuid not null references promo_codes (id),
    user_id         uuid not null,
    tickets         integer not null,
    discount_minor  bigint not null,
    primary key (hold_id, promo_code_id)
);
create index promo_redemptions_user_idx on promo_redemptions (promo_code_id, user_id);

alter table holds add column discount_minor bigint not null default 0;
