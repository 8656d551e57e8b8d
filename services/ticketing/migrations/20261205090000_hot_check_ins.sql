-- A check-in updates its ticket (SOLD to USED, when and where). An index whose predicate
-- reads `status` made every such update a non-HOT one: a new heap tuple wherever there
-- was room, a new entry in every index of the table, and more for vacuum, at the gates'
-- busiest moment. The revocation list's index now reads a generated column that a
-- check-in leaves unchanged (false), and pages keep a tenth free for the new version, so
-- a check-in is a HOT update on the ticket's own page.
alter table tickets add column revoked boolean generated always as (status in ('CANCELLED', 'REFUNDED')) stored;
drop index tickets_revoked_idx;
create index tickets_revoked_idx on tickets (festival_id) where revoked;
alter table tickets set (fillfactor = 90);
