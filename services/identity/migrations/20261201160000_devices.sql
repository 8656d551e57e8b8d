-- Paired devices: gate scanners, next cashless terminals. A device is created by an
-- organiser with a one-time pairing code (only its SHA-256 is kept, and only until it is
-- used, revoked or expired), binds its own Ed25519 public key when it pairs, and gets
-- short-lived device tokens against proofs signed with that key. `last_proof_at` only
-- grows: a proof works once.
create table devices (
    id                  uuid primary key,
    festival_id         uuid not null,
    name                text not null,
    gate                text not null,
    level               text not null constraint devices_level_check check (level in ('STEWARD', 'SUPERVISOR')),
    status              text not null constraint devices_status_check check (status in ('PENDING', 'ACTIVE', 'REVOKED')),
    pairing_code_hash   bytea,
    pairing_expires_at  timestamptz not null,
    public_key          bytea,
    last_proof_at       timestamptz,
    created_by          uuid not null,
    created_at          timestamptz not null,
    paired_at           timestamptz,
    revoked_at          timestamptz,
    revoked_by          uuid
);
create unique index devices_pairing_code_key on devices (pairing_code_hash) where pairing_code_hash is not null;
create index devices_festival_idx on devices (festival_id, created_at desc);
