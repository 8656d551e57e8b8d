-- Credit for the next edition. Before cancelling a festival, its organisers may offer
-- buyers the same tickets at a next edition instead of their money back: a policy maps
-- each category to one of the next festival's. When the festival is cancelled, buyers
-- have `choice_days` to choose; an order whose buyer chose nothing by then is refunded.
-- A credited order is cancelled without a refund and its buyer gets 100 % promo codes at
-- the next edition, one per category, for as many tickets as the order had.
create table cancellation_policies (
    festival_id         uuid primary key references festivals (id),
    next_festival_id    uuid not null references festivals (id),
    choice_days         integer not null constraint cancellation_policies_days_check check (choice_days between 1 and 90),
    set_by              uuid not null,
    set_at              timestamptz not null
);

create table cancellation_policy_categories (
    festival_id         uuid not null references cancellation_policies (festival_id) on delete cascade,
    category_id         uuid not null references categories (id),
    next_category_id    uuid not null references categories (id),
    primary key (festival_id, category_id)
);

-- Until when buyers choose (null: no offer, every order is refunded at once).
alter table cancellation_runs add column choose_until timestamptz;
-- The buyer's choice (null: none yet), and the codes a credited order gave.
alter table cancellation_orders add column remedy text
    constraint cancellation_orders_remedy_check check (remedy in ('REFUND', 'CREDIT'));
alter table cancellation_orders add column credit_codes text[] not null default '{}';
