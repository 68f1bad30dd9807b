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

-- business_percentile: the fraction-th percentile of intervals (NULLs
-- left out), as a justified interval: the first response times of the
-- views below.
CREATE OR REPLACE FUNCTION crm.business_percentile(fraction float8,
    v interval[])
RETURNS interval
LANGUAGE sql IMMUTABLE AS $$
    SELECT justify_hours(make_interval(secs => percentile_cont(fraction)
               WITHIN GROUP (ORDER BY extract(epoch FROM x))))
      FROM unnest(v) AS x
$$;

COMMENT ON FUNCTION crm.business_percentile(float8, interval[]) IS
    'Internal: a percentile of business times, for crm.sla_report and '
    'crm.feedback_topics.';

-- ticket_times: internal: each ticket with its calendar (the sla object of
-- the policy it was given under) and its first response in business time.
CREATE OR REPLACE VIEW crm.ticket_times AS
    SELECT t.*, s.sla,
           (t.received_at AT TIME ZONE coalesce(s.sla ->> 'timezone', 'UTC'))
               ::date AS day,
           crm.business_time(s.sla, t.received_at, t.answered_at)
               AS first_response
      FROM crm.ticket t
      CROSS JOIN LATERAL (SELECT crm.policy_doc(t.policy)
                                 #> '{feedback,sla}' AS sla) s;

COMMENT ON VIEW crm.ticket_times IS
    'Internal: tickets with their SLA calendar, local day and first '
    'response in business time, for the three feedback views.';

-- open_tickets: what is waiting, the one due first on top.
CREATE OR REPLACE VIEW crm.open_tickets AS
    SELECT t.ticket, t.customer_id, c.name, c.email, c.phone, t.order_id,
           t.category, t.rating, t.message, t.conflict, t.received_at,
           t.due_at, t.answered_at, t.breached_at IS NOT NULL AS breached,
           (extract(epoch FROM crm.business_time(t.sla, now(), t.due_at))
            / 60)::integer AS business_minutes_left
      FROM crm.ticket_times t
      JOIN crm.customer c USING (customer_id)
     WHERE t.resolved_at IS NULL
     ORDER BY t.due_at, t.received_at;

COMMENT ON VIEW crm.open_tickets IS
    'Every unresolved feedback ticket, the one due first on top.';
COMMENT ON COLUMN crm.open_tickets.ticket IS
    'The number the customer was given (crm.answer_ticket, '
    'crm.resolve_ticket take it in any case, with spaces or dashes).';
COMMENT ON COLUMN crm.open_tickets.conflict IS
    'A low rating or a conflict category: a compensation was promised.';
COMMENT ON COLUMN crm.open_tickets.due_at IS
    'The time the customer was promised an answer by.';
COMMENT ON COLUMN crm.open_tickets.answered_at IS
    'The first response; NULL while nobody answered.';
COMMENT ON COLUMN crm.open_tickets.breached IS
    'The due time passed with no response (an sla_breach promise opened).';
COMMENT ON COLUMN crm.open_tickets.business_minutes_left IS
    'Business minutes until due_at; negative once late.';

-- sla_report: how fast the shop answered, per day the tickets came in.
CREATE OR REPLACE VIEW crm.sla_report AS
    SELECT t.day, count(*) AS tickets,
           round(avg((t.answered_at IS NOT NULL)::integer), 3) AS answered,
           round(avg((t.answered_at <= t.target_at IS TRUE)::integer), 3)
               AS within_target,
           round(avg((t.answered_at <= t.due_at IS TRUE)::integer), 3)
               AS within_limit,
           crm.business_percentile(0.5,
               array_agg(t.first_response))
               AS median_first_response,
           crm.business_percentile(0.9,
               array_agg(t.first_response))
               AS p90_first_response,
           count(t.breached_at) AS breaches
      FROM crm.ticket_times t
     GROUP BY t.day
     ORDER BY t.day;

COMMENT ON VIEW crm.sla_report IS
    'Per day (in the SLA time zone) the tickets arrived: how many, the '
    'shares answered, answered within the target and within the limit, '
    'the first response times in business time, the breaches.';
COMMENT ON COLUMN crm.sla_report.within_target IS
    'Share of the day''s tickets answered by feedback.sla.target (0..1).';
COMMENT ON COLUMN crm.sla_report.within_limit IS
    'Share of the day''s tickets answered by their due time (0..1).';
COMMENT ON COLUMN crm.sla_report.median_first_response IS
    'Median business time to the first response, of the answered ones.';

-- feedback_topics: where customers are unhappy, per category.
CREATE OR REPLACE VIEW crm.feedback_topics AS
    SELECT t.category, count(*) AS tickets,
           round(avg(t.rating), 2) AS avg_rating,
           round(avg((t.rating >= 4)::integer), 3) AS csat,
           count(*) FILTER (WHERE t.conflict) AS conflicts,
           count(t.breached_at) AS breaches,
           crm.business_percentile(0.5,
               array_agg(t.first_response))
               AS median_first_response
      FROM crm.ticket_times t
     GROUP BY t.category
     ORDER BY avg(t.rating) NULLS LAST, count(*) DESC;

COMMENT ON VIEW crm.feedback_topics IS
    'Per feedback category: tickets, ratings, conflicts and breaches; the '
    'worst rated first.';
COMMENT ON COLUMN crm.feedback_topics.csat IS
    'Share of the rated tickets rated 4 or 5 of 5 (0..1).';
COMMENT ON COLUMN crm.feedback_topics.conflicts IS
    'Tickets that promised a compensation.';

-- banner_report: which banner brings customers back.  Per banner and day
-- (in the shop's time zone): the treated customers' impressions and the
-- holdout's would_show exposures, how many of those customers ordered
-- within 7 days after their first one that day, and the difference of the
-- two rates with its 95 % interval (two-proportion z interval).
CREATE OR REPLACE VIEW crm.banner_report AS
    WITH tz AS (
        SELECT coalesce((SELECT p.doc ->> 'timezone' FROM crm.policy p
                          ORDER BY p.registered_at DESC LIMIT 1), 'UTC') AS tz
    ), seen AS (
        SELECT e.payload ->> 'banner' AS banner,
               (e.received_at AT TIME ZONE tz.tz)::date AS day,
               coalesce((e.payload ->> 'would_show')::boolean, false)
                   AS holdout,
               e.customer_id, count(*) AS n, min(e.received_at) AS first_at
          FROM crm.event e, tz
         WHERE e.kind = 'banner' AND e.customer_id IS NOT NULL
         GROUP BY 1, 2, 3, 4
    ), back AS (
        SELECT s.*,
               (SELECT count(*) FROM crm.orders o
                 WHERE o.customer_id = s.customer_id
                   AND o.created_at > s.first_at
                   AND o.created_at <= s.first_at + interval '7 days'
                   AND o.status NOT IN ('attempted', 'refused', 'abandoned'))
                   AS orders
          FROM seen s
    ), g AS (
        SELECT banner, day,
               sum(n) FILTER (WHERE NOT holdout) AS impressions,
               count(*) FILTER (WHERE NOT holdout) AS customers,
               coalesce(sum(orders) FILTER (WHERE NOT holdout), 0)
                   AS orders_within_7d,
               count(*) FILTER (WHERE NOT holdout AND orders > 0)
                   AS customers_back,
               coalesce(sum(n) FILTER (WHERE holdout), 0)
                   AS holdout_exposures,
               count(*) FILTER (WHERE holdout) AS holdout_customers,
               coalesce(sum(orders) FILTER (WHERE holdout), 0)
                   AS holdout_orders_within_7d,
               count(*) FILTER (WHERE holdout AND orders > 0)
                   AS holdout_customers_back
          FROM back
         GROUP BY banner, day
    ), r AS (
        SELECT g.*,
               CASE WHEN customers > 0
                    THEN customers_back::float8 / customers END AS rate,
               CASE WHEN holdout_customers > 0
                    THEN holdout_customers_back::float8 / holdout_customers
               END AS holdout_rate
          FROM g
    ), d AS (
        SELECT r.*, rate - holdout_rate AS difference,
               sqrt(rate * (1 - rate) / nullif(customers, 0)
                    + holdout_rate * (1 - holdout_rate)
                      / nullif(holdout_customers, 0)) AS se
          FROM r
    )
    SELECT banner, day, coalesce(impressions, 0) AS impressions, customers,
           orders_within_7d, holdout_exposures, holdout_customers,
           holdout_orders_within_7d,
           round(rate::numeric, 4) AS rate,
           round(holdout_rate::numeric, 4) AS holdout_rate,
           round(difference::numeric, 4) AS difference,
           round((difference - 1.96 * se)::numeric, 4) AS difference_low,
           round((difference + 1.96 * se)::numeric, 4) AS difference_high,
           round((difference / nullif(se, 0))::numeric, 2) AS z
      FROM d
     ORDER BY day DESC, banner;

COMMENT ON VIEW crm.banner_report IS
    'Per banner and day (shop time zone): impressions and the customers '
    'who saw it, orders they placed within 7 days of their first '
    'impression that day; the same for the holdout''s would_show '
    'exposures; rate (share of those customers who ordered), holdout_rate, '
    'their difference with a 95 % two-proportion z interval '
    '(difference_low..difference_high) and z.  NULL where a group is empty.';
