-- Face-value resale. A holder who cannot come hands an unused ticket back; the worker
-- offers it to the first in its category's waiting list as a hold of one ticket at the
-- category's face value, taking no stock (the place is the seller's ticket's). When the
-- buyer's order is paid, the seller's ticket is revoked (replaced by the buyer's, which
-- takes over its quotas) and the seller gets back what they paid for it, up to the face
-- value, minus the festival's fee.
create table resale_policies (
    festival_id         uuid primary key references festivals (id),
    enabled             boolean not null,
    fee_fixed_minor     bigint not null constraint resale_policies_fixed_check check (fee_fixed_minor >= 0),
    fee_basis_points    integer not null constraint resale_policies_bp_check check (fee_basis_points between 0 and 10000),
    set_by              uuid not null,
    set_at              timestamptz not null
);

create table resale_listings (
    id                  uuid primary key,
    festival_id         uuid not null references festivals (id),
    ticket_id           uuid not null references tickets (id),
    order_id            uuid not null references orders (id),
    category_id         uuid not null references categories (id),
    seller_user_id      uuid not null,
    status              text not null constraint resale_listings_status_check
                            check (status in ('LISTED', 'OFFERED', 'SOLD', 'WITHDRAWN', 'ENDED')),
    -- What the next buyer pays, what the festival keeps and what the seller gets back,
    -- fixed when listed.
    price_minor         bigint not null constraint resale_listings_price_check check (price_minor >= 0),
    fee_minor           bigint not null constraint resale_listings_fee_check check (fee_minor >= 0),
    payout_minor        bigint not null constraint resale_listings_payout_check check (payout_minor >= 0),
    currency            text not null,
    -- While OFFERED: the buyer's hold.
    hold_id             uuid references holds (id),
    new_ticket_id       uuid references tickets (id),
    end_reason          text,
    created_at          timestamptz not null,
    updated_at          timestamptz not null,
    sold_at             timestamptz
);
-- One live listing per ticket.
create unique index resale_listings_live_key on resale_listings (ticket_id) where status in ('LISTED', 'OFFERED');
create index resale_listings_listed_idx on resale_listings (created_at, id) where status = 'LISTED';
create index resale_listings_offered_idx on resale_listings (hold_id) where status = 'OFFERED';
create index resale_listings_seller_idx on resale_listings (seller_user_id, created_at desc);

-- A hold that offers a resold ticket (it takes no stock).
alter table holds add column resale_id uuid references resale_listings (id);
