-- Idempotency keys of money and inventory commands: the key, a hash of the request it
-- came with and the response, written in the same transaction as the command's effect.
-- A retry with the same key and request gets the stored response; with another request,
-- ERR_1006.
create table idempotency_keys (
    scope           text not null,                  -- command and caller, e.g. ticketing.CreateOrder:<user>
    key             text not null,
    request_hash    bytea not null,
    response        bytea,                          -- protobuf; set before the transaction commits
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint idempotency_keys_pkey primary key (scope, key)
);

create index idempotency_keys_created_at_idx on idempotency_keys (created_at);
