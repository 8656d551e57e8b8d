-- Each festival's badge-signing keys (Ed25519): the private half sealed under identity's
-- sealing key and bound to its key id; the public halves are published for gates.
create table badge_keys (
    kid             text primary key,
    festival_id     uuid not null,
    public_key      bytea not null,
    sealed_private  bytea not null,
    created_at      timestamptz not null default now()
);
create index badge_keys_festival_idx on badge_keys (festival_id, created_at desc);

-- Staff badges: who holds which, what it opens and until when. Revoked ones stay: the
-- revocation list gates download is made of them.
create table badges (
    id              uuid primary key,
    festival_id     uuid not null,
    user_id         uuid not null references users (id),
    role            text not null,
    zones           text[] not null,
    credential      text not null,
    issued_by       uuid not null,
    issued_at       timestamptz not null,
    valid_until     timestamptz not null,
    revoked_at      timestamptz,
    revoke_reason   text
);
create index badges_festival_idx on badges (festival_id, issued_at desc, id desc);
create index badges_user_idx on badges (user_id);
create index badges_revoked_idx on badges (festival_id) where revoked_at is not null;
