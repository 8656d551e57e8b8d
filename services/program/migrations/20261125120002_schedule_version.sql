-- A counter bumped by every change to a festival's stages, artists or performances, so
-- the public timetable can be cached per festival and checked with the festival row.
alter table festivals add column schedule_version bigint not null default 0;

create function bump_schedule_version() returns trigger language plpgsql as $$
begin
    update festivals set schedule_version = schedule_version + 1
     where id = (case when tg_op = 'DELETE' then old.festival_id else new.festival_id end);
    return null;
end $$;

create trigger stages_schedule_version after insert or update or delete on stages
    for each row execute function bump_schedule_version();
create trigger artists_schedule_version after insert or update or delete on artists
    for each row execute function bump_schedule_version();
create trigger performances_schedule_version after insert or update or delete on performances
    for each row execute function bump_schedule_version();
