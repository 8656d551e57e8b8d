-- Membership events may arrive out of order (redelivery after a failure). Each row keeps
-- the id (UUIDv7, time-ordered) of the event that last set it, and a revocation is kept
-- as an inactive row, so an older event never overrides a newer one.
alter table festival_members
    add column active   boolean not null default true,
    add column event_id uuid;
