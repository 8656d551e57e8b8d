-- Languages, descriptions and images; artist bios and links.
alter table festivals
    add column languages    text[] not null default '{en}',
    add column descriptions jsonb  not null default '{}',
    add column image_urls   text[] not null default '{}';
alter table artists
    add column bios  jsonb  not null default '{}',
    add column links text[] not null default '{}';
alter table performances add column cancel_reason text not null default '';

-- Favourites: a festival-goer's starred performances.
create table favourites (
    user_id         uuid not null,
    performance_id  uuid not null references performances (id),
    festival_id     uuid not null references festivals (id),
    created_at      timestamptz not null default now(),
    primary key (user_id, performance_id)
);
create index favourites_performance_idx on favourites (performance_id);
create index favourites_festival_user_idx on favourites (festival_id, user_id);

-- The secret of a personal calendar feed: a read-only capability over one person's
-- starred sets, shown again on request like a calendar app's secret address.
create table calendar_feeds (
    festival_id     uuid not null references festivals (id),
    user_id         uuid not null,
    token           text not null unique,
    created_at      timestamptz not null default now(),
    primary key (festival_id, user_id)
);

-- Festival members as identity reports them (membership.granted/revoked): who may be
-- given a shift of which role.
create table festival_members (
    festival_id     uuid not null,
    user_id         uuid not null,
    role            text not null,
    primary key (festival_id, user_id, role)
);
create index festival_members_user_idx on festival_members (user_id);

create table shifts (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    place_kind      text not null
                    constraint shifts_place_kind_check check (place_kind in ('STAGE', 'ZONE', 'BAR', 'GATE', 'OTHER')),
    place           text not null,
    role            text not null constraint shifts_role_check check (role in ('STAFF', 'CASHIER', 'SECURITY')),
    head_count      integer not null constraint shifts_head_count_check check (head_count between 1 and 1000),
    start_time      timestamptz not null,
    end_time        timestamptz not null,
    notes           text not null default '',
    created_at      timestamptz not null default now(),
    constraint shifts_time_check check (start_time < end_time)
);
create index shifts_festival_idx on shifts (festival_id, start_time);

create table shift_assignments (
    shift_id        uuid not null references shifts (id),
    user_id         uuid not null,
    festival_id     uuid not null references festivals (id),
    start_time      timestamptz not null,   -- copied from the shift, for the overlap check
    end_time        timestamptz not null,
    assigned_by     uuid not null,
    created_at      timestamptz not null default now(),
    primary key (shift_id, user_id)
);
create index shift_assignments_user_idx on shift_assignments (user_id, start_time);
