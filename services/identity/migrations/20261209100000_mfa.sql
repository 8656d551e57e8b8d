-- A second factor per account (TOTP, RFC 6238): the secret sealed under the service's
-- sealing key, bound to the account's id; pending until a first code confirms it.
create table mfa_totp (
    user_id         uuid primary key references users (id),
    sealed_secret   bytea not null,
    confirmed_at    timestamptz,
    -- The last time step whose code was accepted: a code is accepted once.
    last_step       bigint not null default 0,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);

-- Single-use recovery codes, only their hashes (80-bit codes: no salt or stretching needed).
create table mfa_recovery_codes (
    user_id         uuid not null references users (id),
    code_hash       bytea not null,
    used_at         timestamptz,
    primary key (user_id, code_hash)
);

-- A sign-in whose password was right, waiting for its second factor (deleted once answered).
create table mfa_challenges (
    challenge_hash  bytea primary key,          -- SHA-256 of the challenge; never the challenge
    user_id         uuid not null references users (id),
    expires_at      timestamptz not null,
    attempts        int not null default 0
);
create index mfa_challenges_user_idx on mfa_challenges (user_id);

-- Whether a session was started with a second factor (its access tokens say so).
alter table sessions add column mfa boolean not null default false;

-- A festival's security policy: whether its staff must sign in with a second factor.
create table festival_security_policies (
    festival_id         uuid primary key,
    staff_mfa_required  boolean not null,
    updated_by          uuid not null,
    updated_at          timestamptz not null
);
