-- Mailed links: password resets and address verifications. Only the token's hash is
-- stored; a token is spent once (deleted) and expires; one per user and purpose (the
-- newest replaces the last).
create table email_tokens (
    token_hash  bytea primary key,
    user_id     uuid not null references users (id),
    purpose     text not null check (purpose in ('PASSWORD_RESET', 'EMAIL_VERIFICATION')),
    -- The address the link was sent to (a verification verifies that address only).
    email       text not null,
    expires_at  timestamptz not null,
    created_at  timestamptz not null default now()
);
create unique index email_tokens_user_purpose_key on email_tokens (user_id, purpose);

alter table users add column email_verified_at timestamptz;
