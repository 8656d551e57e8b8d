-- Idempotency keys of money and inventory commands: the key, a hash of the request it
-- came with and the response, written in the same transaction as the command's effect.
-- A retry with the same key and request gets the stored response; with another request,
-- ERR_1006.
create table idempotency_keys (
    scope           text not null,                  -- command and caller: ticketing.CreateOrder:<user id>
    key             text not null,
    request_hash    bytea not null,
    response        bytea,                          -- protobuf; set before the transaction commits
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint idempotency_keys_pkey primary key (scope, key)
);

create index idempotency_keys_created_at_idx on idempotency_keys (created_at);

-- A claimed key must carry its response when the transaction commits: a command that
-- forgot to store it would otherwise leave a key that answers every retry with nothing.
create function idempotency_keys_completed() returns trigger language plpgsql as $$
begin
    if exists (select 1 from idempotency_keys where scope = new.scope and key = new.key and response is null) then
        raise exception 'idempotency key % claimed without a response', new.key
            using errcode = 'check_violation';
    end if;
    return null;
end;
$$;

create constraint trigger idempotency_keys_completed
    after insert on idempotency_keys
    deferrable initially deferred
    for each row execute function idempotency_keys_completed();
