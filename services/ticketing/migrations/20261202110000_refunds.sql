-- Refund requests. A buyer asks for some unused tickets of a paid order to be refunded;
-- an organizer approves (the tickets are revoked as REFUNDED, their places freed, the
-- money owed recorded on each order) or rejects with a note.

-- What each ticket cost its buyer: the order's total spread over its tickets in
-- proportion to list prices (domain/sale.rs), so refunds never exceed what was paid.
alter table tickets add column price_minor bigint not null default 0
    constraint tickets_price_check check (price_minor >= 0);
-- Tickets sold before: each live ticket (not replaced by a transfer) gets its order's
-- total spread by its category's list price, what rounding leaves going to the order's
-- first ticket, so an order's tickets add up to what it paid.
with live as (
    select t.id, t.order_id, greatest(c.price_minor, 0) as weight,
           row_number() over (partition by t.order_id order by t.id) as rank
    from tickets t join categories c on c.id = t.category_id
    where t.replaced_by is null
), per_order as (
    select order_id, sum(weight) as weights, count(*) as tickets from live group by order_id
), share as (
    select l.id, l.order_id, l.rank,
           case when p.weights > 0 then o.total_minor * l.weight / p.weights else o.total_minor / p.tickets end as price
    from live l join per_order p using (order_id) join orders o on o.id = l.order_id
), rest as (
    select s.order_id, o.total_minor - sum(s.price) as left_over
    from share s join orders o on o.id = s.order_id group by s.order_id, o.total_minor
)
update tickets t
   set price_minor = s.price + case when s.rank = 1 then r.left_over else 0 end
  from share s join rest r using (order_id)
 where t.id = s.id;
alter table orders add column refunded_minor bigint not null default 0;
-- What each ticket of a hold item costs after the hold's promo codes (null: held before
-- this column; checkout then spreads the hold's total by list price).
alter table hold_items add column net_unit_price_minor bigint;
alter table orders add constraint orders_refunded_check check (refunded_minor between 0 and total_minor);

create table refund_requests (
    id              uuid primary key,
    festival_id     uuid not null references festivals (id),
    order_id        uuid not null references orders (id),
    requested_by    uuid not null,
    status          text not null constraint refund_requests_status_check
                        check (status in ('PENDING', 'APPROVED', 'REJECTED', 'WITHDRAWN')),
    reason          text not null,
    currency        text not null,
    -- What was refunded, once approved (add-ons that followed their tickets included).
    amount_minor    bigint not null default 0,
    decided_by      uuid,
    decision_note   text,
    created_at      timestamptz not null,
    decided_at      timestamptz
);
create index refund_requests_festival_idx on refund_requests (festival_id, created_at desc);
create index refund_requests_requester_idx on refund_requests (requested_by, festival_id) where status = 'PENDING';

create table refund_request_tickets (
    request_id      uuid not null references refund_requests (id),
    ticket_id       uuid not null references tickets (id),
    -- While the request is pending: one open request per ticket.
    open            boolean not null default true,
    primary key (request_id, ticket_id)
);
create unique index refund_request_tickets_open_key on refund_request_tickets (ticket_id) where open;
