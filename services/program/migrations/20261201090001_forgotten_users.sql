-- Accounts identity deleted, with the id of the deletion event: a membership event older
-- than it (redelivered late) must not bring the deleted account back onto a roster.
-- Holds only the pseudonymous user id.
create table forgotten_users (
    user_id     uuid primary key,
    event_id    uuid not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
