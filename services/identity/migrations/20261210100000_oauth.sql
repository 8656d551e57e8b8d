-- Signing in with Google and GitHub (OAuth 2 authorization code with PKCE; OpenID
-- Connect for Google).

-- A provider's account linked to one of ours: at most one live link per provider and
-- account. An unlinked one keeps its row (`unlinked_at`): it is never linked again by
-- its address alone, only by an explicit link.
create table oauth_identities (
    provider     text not null check (provider in ('GOOGLE', 'GITHUB')),
    -- The provider's stable id for its account (OIDC `sub`, GitHub's numeric id), never
    -- the address: addresses change hands.
    subject      text not null,
    user_id      uuid not null references users (id),
    -- The address the provider gave when it was linked, if it verified it (shown to the
    -- holder); empty otherwise.
    email        text not null,
    linked_at    timestamptz not null,
    last_used_at timestamptz,
    unlinked_at  timestamptz,
    primary key (provider, subject)
);
create unique index oauth_identities_user_provider_key on oauth_identities (user_id, provider)
    where unlinked_at is null;

-- Sign-ins and links under way, between the redirect to the provider and its answer.
-- Only hashes of the state and of the client's binding are kept; a row is spent once
-- (deleted) and expires in minutes.
create table oauth_flows (
    state_hash    bytea primary key,
    binding_hash  bytea not null,
    provider      text not null check (provider in ('GOOGLE', 'GITHUB')),
    purpose       text not null check (purpose in ('SIGN_IN', 'LINK')),
    -- LINK: the account the provider's is linked to.
    user_id       uuid references users (id),
    code_verifier text not null,
    nonce         text not null,
    device_name   text not null default '',
    expires_at    timestamptz not null,
    check ((purpose = 'LINK') = (user_id is not null))
);
create index oauth_flows_expires_idx on oauth_flows (expires_at);

alter table security_audit drop constraint security_audit_action_check;
alter table security_audit add constraint security_audit_action_check check (action in ('SIGN_IN', 'SIGN_IN_FAILED',
    'SIGN_OUT_EVERYWHERE', 'ROLE_GRANTED', 'ROLE_REVOKED', 'DEVICE_CREATED', 'DEVICE_PAIRED', 'DEVICE_REVOKED',
    'SIGNING_KEY_ROTATED', 'SIGNING_KEY_REVOKED', 'ACCOUNT_DELETED', 'MFA_CHALLENGED', 'MFA_ENABLED', 'MFA_DISABLED',
    'MFA_FAILED', 'RECOVERY_CODE_USED', 'SECURITY_POLICY_CHANGED', 'SESSION_REVOKED', 'ACCOUNT_DISABLED',
    'ACCOUNT_ENABLED', 'BADGE_ISSUED', 'BADGE_REVOKED', 'PASSWORD_RESET_REQUESTED', 'PASSWORD_RESET', 'EMAIL_VERIFIED',
    'ACCOUNT_CREATED', 'OAUTH_LINKED', 'OAUTH_UNLINKED', 'OAUTH_FAILED'));
