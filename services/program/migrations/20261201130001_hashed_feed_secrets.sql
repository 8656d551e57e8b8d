-- Calendar feed secrets are stored as SHA-256 digests (the secret carries 256 random
-- bits, so a fast hash is enough): a database leak reveals no working feed URL. The URL
-- is shown once, when the feed is created or rotated. Existing feeds keep working.
alter table calendar_feeds add column token_hash bytea;
update calendar_feeds set token_hash = sha256(convert_to(token, 'UTF8'));
alter table calendar_feeds
    alter column token_hash set not null,
    add constraint calendar_feeds_token_hash_key unique (token_hash),
    drop column token;
