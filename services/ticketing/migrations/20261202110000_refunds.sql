-- Refund requests. A buyer asks for some unused tickets of a paid order to be refunded;
-- an organizer approves (the tickets are revoked as REFUNDED, their places freed, the
-- money owed recorded on each order) or rejects with a note.

-- What each ticket cost its buyer: the order's total spread over its tickets in
-- proportion to list prices (domain/sale.rs), so refunds never exceed what was paid.
alter table tickets add column price_minor bigint not null default 0
    constraint tickets_price_check check (price_minor >= 0);
alter table orders add column refunded_minor bigint not null default 0;
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
