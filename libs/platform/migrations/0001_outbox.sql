-- Transactional outbox: a service writes its domain change and the event in one
-- transaction; the relay publishes rows to JetStream in `seq` order and deletes them
-- once JetStream has acknowledged them.
create table outbox (
    id              uuid primary key,               -- event id, sent as Nats-Msg-Id
    seq             bigint generated always as identity,
    subject         text not null,                  -- without the deployment prefix
    event_type      text not null,                  -- protobuf full name of the payload
    payload         bytea not null,
    headers         jsonb not null default '{}',    -- trace context captured at write time
    attempts        integer not null default 0,
    last_error      text,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint outbox_seq_key unique (seq)
);

-- Inbox: the ids of events a consumer has already applied, written in the same
-- transaction as the effect, so a redelivered event changes nothing the second time.
create table inbox (
    consumer        text not null,
    event_id        uuid not null,
    subject         text not null,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint inbox_pkey primary key (consumer, event_id)
);
