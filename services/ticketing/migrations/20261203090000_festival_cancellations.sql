-- Festival cancellation. When program cancels a festival, every order it had paid (or was
-- still paying) is listed once, and the worker settles them one by one: the order is
-- cancelled, its tickets revoked as REFUNDED, and what it paid and was not refunded goes
-- back (payments refunds card orders on `order.cancelled`; the box office pays cash
-- back). Each order is its own transaction and its own row here, so a crash, a restart or
-- a failing order never stops or repeats the others: the run resumes where it was.
create table cancellation_runs (
    festival_id     uuid primary key references festivals (id),
    started_at      timestamptz not null,
    -- Set when no order waits any more.
    finished_at     timestamptz
);

create table cancellation_orders (
    order_id        uuid primary key references orders (id),
    festival_id     uuid not null references cancellation_runs (festival_id),
    payment_method  text not null,
    status          text not null default 'WAITING'
                        constraint cancellation_orders_status_check check (status in ('WAITING', 'SETTLED')),
    -- What the order gave back when settled (total less earlier refunds; 0 when nothing
    -- had been paid).
    refunded_minor  bigint not null default 0 constraint cancellation_orders_refunded_check check (refunded_minor >= 0),
    attempts        integer not null default 0,
    last_error      text,
    settled_at      timestamptz,
    -- A card order: when payments reported its payment refunded in full.
    confirmed_at    timestamptz
);
create index cancellation_orders_waiting_idx on cancellation_orders (festival_id, order_id) where status = 'WAITING';
create index cancellation_orders_festival_idx on cancellation_orders (festival_id, payment_method);
-- Listing a festival's orders when it is cancelled, and again for stragglers.
create index orders_festival_status_idx on orders (festival_id, status);

-- Festivals cancelled before runs existed: their paid orders are owed too.
insert into cancellation_runs (festival_id, started_at)
select id, now() from festivals where status = 'CANCELLED';
insert into cancellation_orders (order_id, festival_id, payment_method)
select o.id, o.festival_id, o.payment_method
  from orders o join cancellation_runs r using (festival_id)
 where o.status in ('PAID', 'AWAITING_PAYMENT');
