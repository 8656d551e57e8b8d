-- Every stock move as one statement: lock the quotas in id order, then move their
-- counters, refusing (SQLSTATE FT001) when `p_guard` is set and a quota cannot give what
-- is asked. One statement lets a command send its last stock move, COMMIT and a fresh
-- BEGIN in one round trip (stock.rs), so a hot quota row stays locked only while the
-- database commits, not while the answer travels to the service and back.
create function move_stock(p_ids uuid[], p_held bigint[], p_sold bigint[], p_guard boolean)
returns void language plpgsql as $$
declare
    moved integer;
begin
    if cardinality(p_ids) > 1 then
        perform 1 from quotas where id = any(p_ids) order by id for update;
    end if;
    update quotas q
       set held = q.held + d.held, sold = q.sold + d.sold, updated_at = now()
      from unnest(p_ids, p_held, p_sold) as d(id, held, sold)
     where q.id = d.id and (not p_guard or q.size - q.held - q.sold >= d.held + d.sold);
    get diagnostics moved = row_count;
    if p_guard and moved <> cardinality(p_ids) then
        raise exception 'not enough stock' using errcode = 'FT001';
    end if;
end
$$;
