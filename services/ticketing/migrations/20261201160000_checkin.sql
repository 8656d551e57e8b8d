-- Validity of a category's tickets at the gates: festival-local days (empty: every
-- day), zones (empty: every zone), and whether its holder may leave and come back.
alter table categories
    add column valid_days date[] not null default '{}',
    add column zones text[] not null default '{}',
    add column reentry boolean not null default false;


-- A check-in list: the categories (empty: all) and the zone an entrance admits.
create table checkin_lists (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    name            text not null,
    category_ids    uuid[] not null,
    zone            text,
    created_at      timestamptz not null,
    constraint checkin_lists_name_key unique (festival_id, name)
);

-- Scans beyond a plain first entry online (whose actor `ticket_presence` keeps):
-- re-entries, exits, overrides and manual check-ins, and every uploaded scan, refused
-- ones included (duplicates, revoked tickets accepted offline: `flagged`). `list_id`
-- null: the festival grounds. `actor_id`: the person or device that scanned.
create table scans (
    id              uuid primary key,
    festival_id     uuid not null,
    ticket_id       uuid,
    category_id     uuid,
    list_id         uuid,
    direction       text not null constraint scans_direction_check check (direction in ('ENTRY', 'EXIT')),
    outcome         text not null,
    gate            text not null,
    device_id       uuid,
    actor_id        uuid not null,
    scanned_at      timestamptz not null,
    recorded_at     timestamptz not null,
    upload_nonce    text,
    flagged         boolean not null default false,
    override_reason text
);
create index scans_ticket_idx on scans (ticket_id, scanned_at);
create index scans_festival_idx on scans (festival_id, outcome);

-- Uploads already applied, by (device, nonce): a replay answers the stored result.
create table scan_uploads (
    device_id       uuid not null,
    nonce           text not null,
    festival_id     uuid not null,
    result          bytea,
    received_at     timestamptz not null,
    primary key (device_id, nonce)
);

-- Devices identity revoked (from `device.revoked`): their tokens are refused at once.
create table revoked_devices (
    device_id       uuid primary key,
    festival_id     uuid not null,
    revoked_at      timestamptz not null
);

-- Where each ticket stands at each entrance: a list admits a ticket once (again after
-- an exit where its category allows re-entry). `list_key`: the list's id, the nil uuid
-- for the festival grounds. The primary key is the first entry's guard; who let it in
-- first (person or device) is kept here, every other accepted scan in `scans`.
create table ticket_presence (
    ticket_id       uuid not null references tickets (id),
    list_key        uuid not null,
    festival_id     uuid not null,
    inside          boolean not null,
    first_at        timestamptz not null,
    first_gate      text not null,
    first_actor     uuid not null,
    first_device    uuid,
    primary key (ticket_id, list_key)
);
create index ticket_presence_festival_idx on ticket_presence (festival_id, list_key);
create index ticket_presence_inside_idx on ticket_presence (festival_id) where inside;

-- Transfers: a category's tickets may change hands until a cut-off; the old ticket is
-- revoked (CANCELLED, `replaced_by` the new one) and the new holder gets a new ticket
-- and credential in the same order, on the same quotas.
alter table categories
    add column transferable boolean not null default false,
    add column transfer_cutoff timestamptz;
alter table tickets add column replaced_by uuid;

create table ticket_transfers (
    id              uuid primary key,
    festival_id     uuid not null,
    ticket_id       uuid not null references tickets (id),
    from_user_id    uuid not null,
    to_user_id      uuid,
    claim_hash      bytea,
    status          text not null constraint ticket_transfers_status_check check (status in ('PENDING', 'COMPLETED', 'CANCELLED')),
    new_ticket_id   uuid,
    created_at      timestamptz not null,
    completed_at    timestamptz
);
create unique index ticket_transfers_claim_key on ticket_transfers (claim_hash) where claim_hash is not null;
-- One open transfer per ticket.
create unique index ticket_transfers_pending_key on ticket_transfers (ticket_id) where status = 'PENDING';

-- The waiting list: one line per category, first come first served. An offer is a hold
-- in the person's name (so it takes stock like any hold and can never exceed a quota).
create table waitlist_entries (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    category_id     uuid not null references categories (id),
    user_id         uuid not null,
    quantity        integer not null constraint waitlist_entries_quantity_check check (quantity > 0),
    status          text not null constraint waitlist_entries_status_check
                        check (status in ('WAITING', 'OFFERED', 'BOUGHT', 'EXPIRED', 'LEFT')),
    hold_id         uuid references holds (id),
    created_at      timestamptz not null,
    offered_at      timestamptz,
    updated_at      timestamptz not null default now()
);
create unique index waitlist_entries_active_key on waitlist_entries (category_id, user_id)
    where status in ('WAITING', 'OFFERED');
create index waitlist_entries_queue_idx on waitlist_entries (category_id, created_at, id) where status = 'WAITING';
create index waitlist_entries_user_idx on waitlist_entries (user_id, created_at);
create index waitlist_entries_offered_idx on waitlist_entries (hold_id) where status = 'OFFERED';

-- Add-ons (parking, camping pass, merch): an add-on category's tickets each belong to an
-- admission ticket (`parent_ticket_id`), bought with it or later (`holds.for_ticket_id`).
alter table categories add column addon boolean not null default false;
alter table holds add column for_ticket_id uuid;
alter table tickets add column parent_ticket_id uuid references tickets (id);
create index tickets_parent_idx on tickets (parent_ticket_id) where parent_ticket_id is not null;

-- Hidden categories behind an access code: only the code's SHA-256 (with the festival's
-- id, so equal codes of two festivals do not match) is stored.
alter table categories add column access_code_hash bytea;
