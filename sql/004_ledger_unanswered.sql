-- 004: the ledger shows a promise reserved by an order that never got an
-- answer as released once the 15 minutes are over, as crm.decide_order()
-- will treat it, rather than "reserved" until that customer orders again.

CREATE OR REPLACE VIEW crm.promise_ledger AS
    SELECT p.promise_id, p.customer_id, p.kind, p.percent, p.created_at,
           p.valid_until,
           CASE
               WHEN p.status = 'reserved' AND o.status = 'attempted'
                    AND o.decided
                    AND o.created_at < now() - interval '15 minutes'
               THEN CASE WHEN p.valid_until < now() THEN 'expired'
                         ELSE 'open' END
               WHEN p.status = 'open' AND p.valid_until < now()
               THEN 'expired'
               ELSE p.status
           END AS status,
           CASE
               WHEN p.status = 'reserved' AND o.status = 'attempted'
                    AND o.decided
                    AND o.created_at < now() - interval '15 minutes'
               THEN NULL
               ELSE o.order_id
           END AS order_id
      FROM crm.promise p
      LEFT JOIN crm.orders o
        ON o.customer_id = p.customer_id AND o.event_id = p.used_by;

COMMENT ON VIEW crm.promise_ledger IS
    'Every promised discount and what became of it; none is kept twice.  '
    'A promise reserved by an order that got no answer within 15 minutes '
    'shows as open again.';
