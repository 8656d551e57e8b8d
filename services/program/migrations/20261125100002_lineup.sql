alter table festivals add column travel_minutes integer not null default 15
    constraint festivals_travel_check check (travel_minutes >= 0);

create table artists (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    name            text not null,
    genres          text[] not null default '{}',
    bio             text not null default '',
    image_url       text not null default '',
    contact         text not null default '',   -- organizers only
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint artists_name_key unique (festival_id, name)
);

create table performances (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    artist_id       uuid not null references artists (id),
    stage_id        uuid not null references stages (id),
    start_time      timestamptz not null,
    end_time        timestamptz not null,
    status          text not null default 'DRAFT'
                    constraint performances_status_check check (status in ('DRAFT', 'PUBLISHED', 'CANCELLED')),
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint performances_time_check check (start_time < end_time)
);
create index performances_festival_idx on performances (festival_id, start_time);
