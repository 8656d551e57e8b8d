-- Emergency revocation: a revoked key is never published again, whatever its age.
alter table signing_keys
    add column revoked_at timestamptz,
    add column revoked_reason text;
