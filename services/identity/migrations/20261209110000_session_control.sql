-- Sessions as their owner sees them: the network and the device name they signed in
-- with, when they were last used (a sign-in or a refresh).
alter table sessions
    add column ip_prefix text not null default '',
    add column device_name text not null default '',
    add column last_used_at timestamptz;
-- Services poll the sessions ended in the last few minutes (ListRevokedSessions).
create index sessions_revoked_at_idx on sessions (revoked_at) where revoked_at is not null;

-- A sign-in waiting for its second factor keeps the device name its session will show.
alter table mfa_challenges add column device_name text not null default '';

-- Accounts an admin disabled: no sign-in, no refresh, no session.
alter table users
    add column disabled_at timestamptz,
    add column disabled_reason text;
