create table users (
    id              uuid primary key,
    email           text not null,
    password_hash   text not null,
    display_name    text not null,
    language        text not null constraint users_language_check check (language in ('fr', 'en', 'de', 'es', 'it', 'pt')),
    role            text not null default 'USER' constraint users_role_check check (role in ('ADMIN', 'USER')),
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    deleted_at      timestamptz
);
-- A deleted account frees its address.
create unique index users_email_key on users (email) where deleted_at is null;

-- A session is one login: a family of refresh tokens rotated one after another.
create table sessions (
    id              uuid primary key,
    user_id         uuid not null references users (id),
    revoked_at      timestamptz,
    revoked_reason  text,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create index sessions_user_idx on sessions (user_id) where revoked_at is null;

create table refresh_tokens (
    token_hash      bytea primary key,          -- SHA-256 of the token; the token itself is never stored
    session_id      uuid not null references sessions (id),
    expires_at      timestamptz not null,
    used_at         timestamptz,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create index refresh_tokens_session_idx on refresh_tokens (session_id);

create table signing_keys (
    kid             text primary key,           -- RFC 7638 thumbprint
    public_key      bytea not null,
    sealed_private  bytea not null,             -- ChaCha20-Poly1305(PKCS#8), see signing.rs
    retired_at      timestamptz,                -- null: the active signer
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create unique index signing_keys_one_active on signing_keys ((true)) where retired_at is null;

create table memberships (
    festival_id     uuid not null,
    user_id         uuid not null references users (id),
    role            text not null constraint memberships_role_check check (role in ('ORGANIZER', 'STAFF', 'CASHIER', 'SECURITY')),
    granted_by      uuid not null,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint memberships_pkey primary key (festival_id, user_id, role)
);
create index memberships_user_idx on memberships (user_id);
