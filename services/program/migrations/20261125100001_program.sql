-- Festivals: the tenant root. Every other service scopes its rows by these ids.
create table festivals (
    id              uuid primary key,
    name            text not null,
    slug            text not null,
    time_zone       text not null,
    currency        text not null constraint festivals_currency_check check (currency ~ '^[A-Z]{3}$'),
    venue           text not null default '',
    address         text not null default '',
    start_time      timestamptz,
    end_time        timestamptz,
    capacity        integer not null default 0 constraint festivals_capacity_check check (capacity >= 0),
    status          text not null default 'DRAFT'
                    constraint festivals_status_check check (status in ('DRAFT', 'PUBLISHED', 'ONGOING', 'COMPLETED', 'CANCELLED')),
    created_by      uuid not null,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    deleted_at      timestamptz,
    constraint festivals_dates_check check (start_time is null or end_time is null or start_time < end_time)
);
-- A deleted festival frees its slug.
create unique index festivals_slug_key on festivals (slug) where deleted_at is null;

create table stages (
    id                  uuid primary key,
    festival_id         uuid not null references festivals (id),
    name                text not null,
    capacity            integer not null default 0 constraint stages_capacity_check check (capacity >= 0),
    position            integer not null default 0,
    changeover_minutes  integer not null default 0 constraint stages_changeover_check check (changeover_minutes >= 0),
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    constraint stages_name_key unique (festival_id, name)
);
create index stages_festival_idx on stages (festival_id, position);
