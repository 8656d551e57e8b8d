-- The security audit log: sign-ins and their failures, signing out everywhere, role
-- grants and revocations, device creation, pairing and revocation, signing-key rotation
-- and revocation, account deletion, right passwords awaiting a second factor, second-factor
-- changes, failures and recovery codes
-- used, festivals' security policies, sessions ended by their owner, accounts disabled
-- and enabled, staff badges issued and revoked, password resets asked and done,
-- addresses verified. Personal data minimised: ids, an action, the
-- client's network prefix (IPv4 /24, IPv6 /48), a short detail; never an email or a
-- password. Append-only: the application's role may insert and read, nothing else.
create table security_audit (
    id uuid primary key,
    at timestamptz not null,
    action text not null check (action in ('SIGN_IN', 'SIGN_IN_FAILED', 'SIGN_OUT_EVERYWHERE', 'ROLE_GRANTED',
        'ROLE_REVOKED', 'DEVICE_CREATED', 'DEVICE_PAIRED', 'DEVICE_REVOKED', 'SIGNING_KEY_ROTATED',
        'SIGNING_KEY_REVOKED', 'ACCOUNT_DELETED', 'MFA_CHALLENGED', 'MFA_ENABLED', 'MFA_DISABLED', 'MFA_FAILED',
        'RECOVERY_CODE_USED', 'SECURITY_POLICY_CHANGED', 'SESSION_REVOKED', 'ACCOUNT_DISABLED',
        'ACCOUNT_ENABLED', 'BADGE_ISSUED', 'BADGE_REVOKED',
        'PASSWORD_RESET_REQUESTED', 'PASSWORD_RESET', 'EMAIL_VERIFIED')),
    -- Who did it (a person; none for a device pairing itself), whose account it concerns,
    -- and the festival it concerns (none for the platform's own).
    actor_id uuid,
    subject_id uuid,
    festival_id uuid,
    ip_prefix text not null default '',
    detail text not null default ''
);
create index security_audit_festival_idx on security_audit (festival_id, at desc, id desc);
create index security_audit_at_idx on security_audit (at desc, id desc);

create function security_audit_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'security_audit is append-only';
end $$;
create trigger security_audit_append_only before update or delete or truncate on security_audit
    for each statement execute function security_audit_append_only();
revoke update, delete, truncate on security_audit from current_user;
