-- 011: an order the shop refused gives up its order id and
-- Idempotency-Key, so that nobody can claim a future id by sending an
-- order the shop refuses: the real order with that id is decided, and its
-- payment counts for its customer.  The ids the refused order had are kept
-- beside it for staff.

ALTER TABLE crm.orders
    ADD COLUMN refused_order_id text,
    ADD COLUMN refused_idempotency_key text;

COMMENT ON COLUMN crm.orders.refused_order_id IS
    'The order id a refused order had: it gave it up, so that the shop''s '
    'real order with that id is not taken for a repeat of this one.';
COMMENT ON COLUMN crm.orders.refused_idempotency_key IS
    'The Idempotency-Key a refused order had, given up likewise.';

-- refused orders of earlier versions give theirs up too
UPDATE crm.orders
   SET refused_order_id = order_id, order_id = NULL,
       refused_idempotency_key = idempotency_key, idempotency_key = NULL
 WHERE status = 'refused'
   AND (order_id IS NOT NULL OR idempotency_key IS NOT NULL);
