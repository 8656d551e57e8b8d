-- Orders paid online through the payments service: an order waits for its payment
-- (AWAITING_PAYMENT, with the checkout's URL) and gets its tickets when the payment
-- completes, or ends PAYMENT_FAILED when it does not.
alter table orders drop constraint orders_status_check;
alter table orders add constraint orders_status_check
    check (status in ('PAID', 'CANCELLED', 'AWAITING_PAYMENT', 'PAYMENT_FAILED'));
alter table orders drop constraint orders_payment_method_check;
alter table orders add constraint orders_payment_method_check
    check (payment_method in ('FREE', 'CASH', 'EXTERNAL', 'CARD'));
alter table orders add column payment_id uuid constraint orders_payment_key unique;
alter table orders add column checkout_url text not null default '';
