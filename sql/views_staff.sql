-- views_staff: what staff read (\d+ shows each COMMENT).  Views are the
-- staff's surface, tables the module's.  A view's columns stay as they
-- are: CREATE OR REPLACE VIEW can only add columns at the end.

-- interactions: every captured event once, the body as JSON.
CREATE OR REPLACE VIEW crm.interactions AS
    SELECT event_id, received_at, kind, customer_id, order_id,
           coalesce(payload,
                    CASE WHEN body IS NOT NULL
                         THEN jsonb_build_object('raw_base64',
                                                 encode(body, 'base64'))
                    END) AS payload,
           state, reason
      FROM crm.event;

COMMENT ON VIEW crm.interactions IS
    'Every request a crm_capture location saw, once, as the shop sent it.';
COMMENT ON COLUMN crm.interactions.event_id IS
    'Unique id the module gave the event when it arrived.';
COMMENT ON COLUMN crm.interactions.received_at IS
    'When nginx received the request.';
COMMENT ON COLUMN crm.interactions.kind IS
    'order, payment, status, feedback or banner.';
COMMENT ON COLUMN crm.interactions.customer_id IS
    'The customer the event belongs to, when known.';
COMMENT ON COLUMN crm.interactions.order_id IS
    'The order id the body carried (policy fields.order_id).';
COMMENT ON COLUMN crm.interactions.payload IS
    'The body as JSON; a form body becomes an object of its fields; a body '
    'that was not valid JSON or form is kept as {"raw_base64": ...}; '
    'NULL when it was too large to read.';
COMMENT ON COLUMN crm.interactions.state IS
    'ok, no_customer, bad_body, db_unavailable or conflict (an order id or '
    'Idempotency-Key sent again with another identity): what the module '
    'decided.';
COMMENT ON COLUMN crm.interactions.reason IS
    'Why the state is not ok, e.g. the JSON error of a bad body, or why a '
    'value was not kept (an e-mail that cannot be one, a total out of '
    'range, an order id over 128 octets).';

-- customer_overview: one row a customer, with her tier under the policy in
-- force and the discount open to her; forgotten_at once she is forgotten.
CREATE OR REPLACE VIEW crm.customer_overview AS
    SELECT c.customer_id, c.email, c.phone, c.name, c.card_number,
           crm.tier_of(p.doc, c.paid_orders, c.total_spent) ->> 'name'
               AS tier,
           c.paid_orders, c.total_spent, c.last_order_at,
           coalesce((SELECT sum(x.percent) FROM crm.promise x
                      WHERE x.customer_id = c.customer_id
                        AND x.status = 'open' AND x.valid_until >= now()),
                    0)::integer AS open_discount,
           c.holdout, c.forgotten_at
      FROM crm.customer c
      LEFT JOIN (SELECT doc FROM crm.policy
                  ORDER BY registered_at DESC LIMIT 1) AS p ON true;

COMMENT ON VIEW crm.customer_overview IS
    'Every customer with card, tier and what is promised to them; a '
    'forgotten customer keeps her figures, with no e-mail, phone, name or '
    'card.';
COMMENT ON COLUMN crm.customer_overview.email IS
    'NULL once forgotten (crm.forget_customer).';
COMMENT ON COLUMN crm.customer_overview.card_number IS
    'Loyalty card, issued when loyalty.card.after_paid_orders is reached.';
COMMENT ON COLUMN crm.customer_overview.tier IS
    'Highest tier of the most recently registered policy that the paid '
    'orders and total spent reach; NULL when none.';
COMMENT ON COLUMN crm.customer_overview.paid_orders IS
    'Paid orders, less those cancelled or refunded.';
COMMENT ON COLUMN crm.customer_overview.last_order_at IS
    'When the last payment arrived.';
COMMENT ON COLUMN crm.customer_overview.open_discount IS
    'Sum of the percents of open, unexpired promises (one order gets at '
    'most loyalty.promise.max_discount of it).';
COMMENT ON COLUMN crm.customer_overview.holdout IS
    'In the holdout group: gets no surprises.';
COMMENT ON COLUMN crm.customer_overview.forgotten_at IS
    'When crm.forget_customer() erased the customer''s personal data; NULL '
    'while she is known.';

-- promise_ledger: every promise and what became of it.  A promise reserved
-- by an order that never got an answer shows as released once the 15
-- minutes are over, as crm.decide_order() will treat it (004).
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
COMMENT ON COLUMN crm.promise_ledger.kind IS
    'repeat_order (a paid order earned it), compensation, birthday or '
    'sla_breach.';
COMMENT ON COLUMN crm.promise_ledger.percent IS 'Discount in percent.';
COMMENT ON COLUMN crm.promise_ledger.status IS
    'open, reserved (by an order on its way), kept (used by order_id), '
    'expired or withdrawn (the paid order that earned it was cancelled or '
    'refunded).';
COMMENT ON COLUMN crm.promise_ledger.order_id IS
    'The shop''s id of the order that reserved or used it.';

-- surprise_report: treated customers against the holdout.
CREATE OR REPLACE VIEW crm.surprise_report AS
    SELECT g.cohort,
           count(c.customer_id) AS customers,
           round(avg(CASE WHEN c.paid_orders >= 2 THEN 1.0 ELSE 0.0 END), 3)
               AS repeat_order_rate,
           (SELECT round(avg(o.paid_total), 2)
              FROM crm.orders o
              JOIN crm.customer x ON x.customer_id = o.customer_id
             WHERE o.counted AND x.holdout = g.holdout) AS average_order,
           (SELECT count(*)
              FROM crm.gift s
              JOIN crm.customer x ON x.customer_id = s.customer_id
             WHERE s.status <> 'released' AND x.holdout = g.holdout)
               AS gifts,
           (SELECT coalesce(sum(s.cost), 0)
              FROM crm.gift s
              JOIN crm.customer x ON x.customer_id = s.customer_id
             WHERE s.status <> 'released' AND x.holdout = g.holdout)
               AS gift_cost
      FROM (VALUES ('treated', false, 1), ('holdout', true, 2))
           AS g(cohort, holdout, n)
      LEFT JOIN crm.customer c ON c.holdout = g.holdout
     GROUP BY g.cohort, g.holdout, g.n
     ORDER BY g.n;

COMMENT ON VIEW crm.surprise_report IS
    'Do surprises pay off: customers who may get gifts against the holdout '
    'group, who never do.';
COMMENT ON COLUMN crm.surprise_report.cohort IS
    'treated (may get surprises) or holdout (holdout.percent of customers).';
COMMENT ON COLUMN crm.surprise_report.customers IS
    'Customers in the group.';
COMMENT ON COLUMN crm.surprise_report.repeat_order_rate IS
    'Share of the group''s customers with two or more paid orders.';
COMMENT ON COLUMN crm.surprise_report.average_order IS
    'Average total of the group''s paid orders (not cancelled or refunded).';
COMMENT ON COLUMN crm.surprise_report.gifts IS
    'Gifts packed (not released by a refused or unanswered order).';
COMMENT ON COLUMN crm.surprise_report.gift_cost IS 'Their cost.';
