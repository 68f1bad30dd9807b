-- fn_orders: deciding an order and applying what the shop says of it.
--
-- The module makes one synchronous call per order, crm.decide_order();
-- everything else (payments, order statuses, the upstream's answer to an
-- order) comes through the spool and crm.record_events().  Every rule that
-- is money (a promise reserved once, the daily gift budget) is enforced
-- here, so it holds for any number of nginx workers and nodes.
--
-- Locks, always taken in this order so that nothing deadlocks:
--
--     the order key (advisory, decide_order only)
--     -> the customer row (FOR UPDATE)
--     -> that customer's orders, promises, gifts
--     -> the gift budget row of a day (shop-wide: whoever holds it never
--        waits for another customer; batches take it at their very end)
--
-- One customer's orders are therefore decided one at a time, on any node;
-- batches that apply events take crm.apply_lock() first, so two batches
-- never lock customers in opposite orders.  The states of orders and
-- promises are described in sql/002_orders.sql.

-- apply_lock: returns once this transaction is the only one applying
-- events (payments, statuses, results): batches from several workers then
-- never lock two customers in opposite orders.
CREATE OR REPLACE FUNCTION crm.apply_lock() RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('ngx_crm apply', 0))
$$;

COMMENT ON FUNCTION crm.apply_lock() IS
    'Internal: one transaction at a time applies spooled events.';

-- budget_give_back: returns the gifts' cost to their days' budgets;
-- returns nothing.  Kept apart so that callers hold the hot row last.
CREATE OR REPLACE FUNCTION crm.budget_give_back(days date[], costs numeric[])
RETURNS void
LANGUAGE sql AS $$
    UPDATE crm.gift_budget AS b
       SET spent = b.spent - s.cost
      FROM (SELECT d AS day, sum(c) AS cost
              FROM unnest(days, costs) AS u(d, c)
             GROUP BY d) AS s
     WHERE b.day = s.day
$$;

COMMENT ON FUNCTION crm.budget_give_back(date[], numeric[]) IS
    'Internal: gives released gifts'' cost back to their days'' budgets.';

-- release_unanswered: marks the customer's decided orders that heard no
-- answer for 15 minutes abandoned, opens their reserved promises and
-- releases their gifts; returns nothing.  The caller holds the customer.
-- plpgsql, not sql, so that its statements are planned once per session
-- (006); it returns at once in the common case, when no order of that
-- customer is waiting for an answer.
CREATE OR REPLACE FUNCTION crm.release_unanswered(cid bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n  bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crm.orders AS o
                    WHERE o.customer_id = cid AND o.status = 'attempted'
                      AND o.decided
                      AND o.created_at < now() - interval '15 minutes')
    THEN
        RETURN;
    END IF;

    WITH ab AS (
        UPDATE crm.orders AS o
           SET status = 'abandoned', updated_at = now()
         WHERE o.customer_id = cid AND o.status = 'attempted' AND o.decided
           AND o.created_at < now() - interval '15 minutes'
        RETURNING o.event_id
    ), pr AS (
        UPDATE crm.promise AS p
           SET status = 'open', used_by = NULL, updated_at = now()
          FROM ab
         WHERE p.customer_id = cid AND p.used_by = ab.event_id
           AND p.status = 'reserved'
    ), gi AS (
        UPDATE crm.gift AS g
           SET status = 'released', updated_at = now()
          FROM ab
         WHERE g.customer_id = cid AND g.order_event = ab.event_id
           AND g.status = 'reserved'
        RETURNING g.day, g.cost, g.budgeted
    )
    SELECT count(*) INTO n
      FROM (SELECT crm.budget_give_back(array_agg(day), array_agg(cost))
              FROM gi
             WHERE gi.budgeted
            HAVING count(*) > 0) AS given;
END
$$;

COMMENT ON FUNCTION crm.release_unanswered(bigint) IS
    'Internal: abandons a customer''s orders unanswered for 15 minutes and '
    'releases what they reserved.';

-- expire_promises: marks the customer's open promises past valid_until
-- expired; returns nothing.
CREATE OR REPLACE FUNCTION crm.expire_promises(cid bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE crm.promise AS p
       SET status = 'expired', updated_at = now()
     WHERE p.customer_id = cid AND p.status = 'open'
       AND p.valid_until < now();
END
$$;

COMMENT ON FUNCTION crm.expire_promises(bigint) IS
    'Internal: marks a customer''s open promises past valid_until expired.';

-- decide_order: the decision for an order about to go upstream, as a row,
-- and the order recorded (the module's call, typed parameters): customer_id
-- NULL when nothing names a customer; conflict when the order id or key was
-- used by another identity (then nothing is decided); repeat when it was
-- decided before (the same decision again); created when this order made
-- the customer.  Raises when the policy was never registered.
CREATE OR REPLACE FUNCTION crm.decide_order(event_id uuid, order_id text,
    idempotency_key text, email text, phone text, cookie_id bigint,
    name text, birthday text, total text, currency text, policy text,
    OUT customer_id bigint, OUT card text, OUT tier text,
    OUT discount integer, OUT promises bigint[], OUT gift text,
    OUT holdout boolean, OUT repeat boolean, OUT conflict boolean,
    OUT created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_variable
DECLARE
    doc         jsonb;
    c           crm.customer;
    r           record;
    d           jsonb;
    v_tier      jsonb;
    v_event     uuid := decide_order.event_id;
    v_order     text := crm.norm_id(decide_order.order_id);
    v_key       text := crm.norm_id(decide_order.idempotency_key);
    v_cookie    bigint := decide_order.cookie_id;
    v_owner     bigint;
    f           record;
    v_max       integer;
    v_discount  integer := 0;
    v_promises  bigint[] := '{}';
    v_prob      double precision;
    v_surprise  boolean;
    v_budget    numeric;
    v_spent     numeric;
    v_day       date;
    v_gift      text;
    v_cost      numeric;
    v_try       integer;
BEGIN
  <<decide>>
  BEGIN
    SELECT p.doc INTO doc FROM crm.policy p
     WHERE p.sha256 = decide_order.policy;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'crm: policy % is not registered',
            decide_order.policy
            USING HINT = 'call crm.register_policy() first';
    END IF;

    IF v_event IS NULL THEN
        RAISE EXCEPTION 'crm: decide_order() needs an event_id';
    END IF;

    IF v_order IS NOT NULL THEN
        v_key := NULL;
    END IF;

    -- the same order twice, at once on two nodes, is decided once
    IF v_order IS NOT NULL OR v_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(
            hashtextextended(coalesce('ngx_crm order ' || v_order,
                                      'ngx_crm key ' || v_key), 0));
    END IF;

    -- three single-key lookups: one OR of them plans as a scan
    SELECT x.decision, x.customer_id INTO d, v_owner FROM crm.orders x
     WHERE x.event_id = v_event;

    IF NOT FOUND AND v_order IS NOT NULL THEN
        SELECT x.decision, x.customer_id INTO d, v_owner FROM crm.orders x
         WHERE x.order_id = v_order;
    END IF;

    IF NOT FOUND AND v_key IS NOT NULL THEN
        SELECT x.decision, x.customer_id INTO d, v_owner FROM crm.orders x
         WHERE x.idempotency_key = v_key AND x.order_id IS NULL;
    END IF;

    IF FOUND THEN
        SELECT * INTO c FROM crm.customer x WHERE x.customer_id = v_owner;

        IF NOT crm.same_identity(c, decide_order.email, decide_order.phone,
                                 v_cookie)
        THEN
            d := '{"customer_id": null, "discount": 0, "promises": [],'
                 ' "holdout": false, "repeat": true, "conflict": true}';
            EXIT decide;
        END IF;

        d := d || '{"repeat": true}';
        EXIT decide;
    END IF;

    f := crm.customer_of(decide_order.email, decide_order.phone, v_cookie,
                         decide_order.name,
                         crm.parse_date(decide_order.birthday), doc);
    c := f.customer;

    IF c.customer_id IS NULL THEN
        d := '{"customer_id": null, "discount": 0, "promises": [],'
             ' "holdout": false, "repeat": false}';
        EXIT decide;
    END IF;

    PERFORM crm.release_unanswered(c.customer_id);
    PERFORM crm.expire_promises(c.customer_id);

    -- whole promises, the first to expire first, within max_discount
    v_max := coalesce((doc #>> '{loyalty,promise,max_discount}')::integer,
                      100);

    FOR r IN
        SELECT p.promise_id, p.percent FROM crm.promise p
         WHERE p.customer_id = c.customer_id AND p.status = 'open'
           AND p.valid_until >= now()
         ORDER BY p.valid_until, p.promise_id
    LOOP
        CONTINUE WHEN v_discount + r.percent > v_max;

        UPDATE crm.promise AS p
           SET status = 'reserved', used_by = v_event, updated_at = now()
         WHERE p.promise_id = r.promise_id AND p.status = 'open';

        IF FOUND THEN
            v_discount := v_discount + r.percent;
            v_promises := v_promises || r.promise_id;
        END IF;
    END LOOP;

    v_tier := crm.tier_of(doc, c.paid_orders, c.total_spent);

    -- a surprise: cheap conditions first, the shop-wide budget row last
    v_prob := coalesce((doc #>> '{surprises,probability}')::float8, 0);

    v_surprise := NOT c.holdout
        AND v_prob > 0
        AND jsonb_typeof(doc #> '{surprises,gifts}') = 'array'
        AND c.paid_orders
            >= coalesce((doc #>> '{surprises,min_paid_orders}')::integer, 0)
        AND random() < v_prob;

    -- the cooldown: gifts of refused or unanswered orders do not count
    IF v_surprise THEN
        v_surprise := NOT EXISTS (
            SELECT 1 FROM crm.gift g
             WHERE g.customer_id = c.customer_id AND g.status <> 'released'
               AND g.created_at > now()
                   - coalesce((doc #>> '{surprises,cooldown_s}')::float8, 0)
                     * interval '1 second');
    END IF;

    IF v_surprise THEN
        v_budget := coalesce((doc #>> '{surprises,daily_budget}')::numeric,
                             0);
        v_day := (now() AT TIME ZONE coalesce(doc ->> 'timezone', 'UTC'))
                 ::date;

        FOR v_try IN 1 .. 5 LOOP
            v_spent := 0;

            IF v_budget > 0 THEN
                SELECT b.spent INTO v_spent
                  FROM crm.gift_budget b WHERE b.day = v_day;

                IF NOT FOUND THEN
                    INSERT INTO crm.gift_budget (day) VALUES (v_day)
                    ON CONFLICT (day) DO NOTHING;
                    v_spent := 0;
                END IF;
            END IF;

            SELECT g ->> 'name', (g ->> 'cost')::numeric INTO v_gift, v_cost
              FROM jsonb_array_elements(doc #> '{surprises,gifts}') AS g
             WHERE v_budget <= 0
                OR v_spent + (g ->> 'cost')::numeric <= v_budget
             ORDER BY random()
             LIMIT 1;

            EXIT WHEN NOT FOUND OR v_budget <= 0;

            -- the check and the spending are one step, whatever runs beside
            UPDATE crm.gift_budget AS b
               SET spent = b.spent + v_cost
             WHERE b.day = v_day AND b.spent + v_cost <= v_budget;

            EXIT WHEN FOUND;

            v_gift := NULL;     -- spent meanwhile: look again
        END LOOP;

        IF v_gift IS NOT NULL THEN
            INSERT INTO crm.gift (customer_id, order_event, name, cost, day,
                                  budgeted)
            VALUES (c.customer_id, v_event, v_gift, v_cost, v_day,
                    v_budget > 0);
        END IF;
    END IF;

    d := jsonb_build_object(
        'customer_id', c.customer_id,
        'card', c.card_number,
        'tier', v_tier ->> 'name',
        'discount', v_discount,
        'promises', to_jsonb(v_promises),
        'gift', v_gift,
        'holdout', c.holdout,
        'repeat', false);

    INSERT INTO crm.orders (event_id, customer_id, order_id, idempotency_key,
                            status, decided, policy, total, currency,
                            discount, tier, gift, decision)
    VALUES (v_event, c.customer_id, v_order, v_key, 'attempted', true,
            decide_order.policy, crm.parse_money(decide_order.total),
            left(nullif(decide_order.currency, ''), 16), v_discount,
            v_tier ->> 'name', v_gift, d);

    d := d || jsonb_build_object('created', f.created);
  END;

    -- one way out: the decision as a row
    SELECT x.customer_id, x.card, x.tier, x.discount, x.promises, x.gift,
           coalesce(x.holdout, false), coalesce(x.repeat, false),
           coalesce(x.conflict, false), coalesce(x.created, false)
      INTO customer_id, card, tier, discount, promises, gift, holdout,
           repeat, conflict, created
      FROM jsonb_to_record(d) AS x(customer_id bigint, card text, tier text,
               discount integer, promises bigint[], gift text,
               holdout boolean, repeat boolean, conflict boolean,
               created boolean);
END
$$;

COMMENT ON FUNCTION crm.decide_order(uuid, text, text, text, text, bigint,
    text, text, text, text, text) IS
    'Called by the module before an order goes upstream: finds or creates '
    'the customer, reserves promises, decides tier and gift, records the '
    'order; returns the decision as a row.';

-- decide_order(o, policy): the same decision for an order given as jsonb
-- (event_id, order_id, idempotency_key, email, phone, customer_id, name,
-- birthday, total, currency), answered as jsonb; for psql and pgbench.
CREATE OR REPLACE FUNCTION crm.decide_order(o jsonb, policy text)
RETURNS jsonb
LANGUAGE sql AS $$
    SELECT to_jsonb(d)
      FROM crm.decide_order((o ->> 'event_id')::uuid, o ->> 'order_id',
                            o ->> 'idempotency_key', o ->> 'email',
                            o ->> 'phone', crm.parse_id(o ->> 'customer_id'),
                            o ->> 'name', o ->> 'birthday', o ->> 'total',
                            o ->> 'currency', policy) AS d
$$;

COMMENT ON FUNCTION crm.decide_order(jsonb, text) IS
    'The order decision for psql and pgbench: the fields as one jsonb '
    '(event_id, order_id, idempotency_key, email, phone, customer_id, name, '
    'birthday, total, currency), the decision as jsonb.';

-- lock_decided_order: the decided order of event ev, its customer's row
-- locked first and then its own (the order of locks above); NULL when the
-- event has no order or its order was not decided.
CREATE OR REPLACE FUNCTION crm.lock_decided_order(ev uuid)
RETURNS crm.orders
LANGUAGE plpgsql AS $$
DECLARE
    o  crm.orders;
BEGIN
    SELECT * INTO o FROM crm.orders x WHERE x.event_id = ev;

    IF NOT FOUND OR NOT o.decided THEN
        RETURN NULL;
    END IF;

    PERFORM 1 FROM crm.customer x
     WHERE x.customer_id = o.customer_id FOR UPDATE;

    SELECT * INTO o FROM crm.orders x WHERE x.event_id = ev FOR UPDATE;
    RETURN o;
END
$$;

COMMENT ON FUNCTION crm.lock_decided_order(uuid) IS
    'Internal: the decided order of an event, locked with its customer.';

-- record_undecided_order: books an order that went upstream without a
-- decision, as the event e names it, to the customer it names (found or
-- created): no discount, promise or gift.  Returns that customer, NULL when
-- nothing names one; records nothing when the order is there already (a
-- late decision that held the customer's row may have come first).
CREATE OR REPLACE FUNCTION crm.record_undecided_order(e jsonb, order_id text)
RETURNS crm.customer
LANGUAGE plpgsql AS $$
DECLARE
    c  crm.customer;
BEGIN
    c := crm.find_customer(e ->> 'email', e ->> 'phone',
                           crm.parse_id(e ->> 'customer_id'),
                           e ->> 'name', crm.parse_date(e ->> 'birthday'),
                           crm.policy_doc(e ->> 'policy'));

    IF c.customer_id IS NOT NULL THEN
        INSERT INTO crm.orders (event_id, customer_id, order_id, status,
                                decided, policy, total, currency, decision,
                                created_at)
        VALUES ((e ->> 'event_id')::uuid, c.customer_id,
                record_undecided_order.order_id, 'attempted', false,
                e ->> 'policy', crm.parse_money(e ->> 'total'),
                left(nullif(e ->> 'currency', ''), 16),
                jsonb_build_object('customer_id', c.customer_id, 'card', NULL,
                                   'tier', NULL, 'discount', 0,
                                   'promises', '[]'::jsonb, 'gift', NULL,
                                   'holdout', c.holdout, 'repeat', false),
                coalesce(to_timestamp((e ->> 'received_at')::float8), now()))
        ON CONFLICT DO NOTHING;
    END IF;

    RETURN c;
END
$$;

COMMENT ON FUNCTION crm.record_undecided_order(jsonb, text) IS
    'Internal: an order recorded without a decision, booked to the '
    'customer its event names.';

-- undecide_order: the order of event ev went to the shop with no decision
-- (the decision came too late, or its client left while it was parked),
-- yet a late decision may have been committed: its promises open again,
-- its gift is released, and the order keeps discount 0.  Returns the gift
-- cost to give back to the budget and its day (NULLs when none).
CREATE OR REPLACE FUNCTION crm.undecide_order(ev uuid, OUT day date,
    OUT cost numeric)
LANGUAGE plpgsql AS $$
DECLARE
    o  crm.orders := crm.lock_decided_order(ev);
BEGIN
    IF o.event_id IS NULL THEN
        RETURN;
    END IF;

    UPDATE crm.promise AS p
       SET status = 'open', used_by = NULL, updated_at = now()
     WHERE p.customer_id = o.customer_id AND p.used_by = ev
       AND p.status IN ('reserved', 'kept');

    UPDATE crm.gift AS x SET status = 'released', updated_at = now()
     WHERE x.customer_id = o.customer_id AND x.order_event = ev
       AND x.status IN ('reserved', 'sent')
    RETURNING CASE WHEN x.budgeted THEN x.day END, x.cost INTO day, cost;

    UPDATE crm.orders AS x
       SET decided = false, discount = 0, gift = NULL, updated_at = now(),
           decision = jsonb_build_object(
               'customer_id', o.customer_id, 'card', NULL, 'tier', NULL,
               'discount', 0, 'promises', '[]'::jsonb, 'gift', NULL,
               'holdout', coalesce((o.decision ->> 'holdout')::boolean,
                                   false),
               'repeat', false)
     WHERE x.event_id = ev;
END
$$;

COMMENT ON FUNCTION crm.undecide_order(uuid) IS
    'Internal: an order the shop got with no decision gives back what a '
    'late decision reserved; returns the gift cost to give back.';

-- apply_order returned void before 007: CREATE OR REPLACE cannot change
-- that, so a database older than 007 loses the old one first, in the same
-- transaction.
DO $$
BEGIN
    IF (SELECT p.prorettype FROM pg_proc AS p
         WHERE p.oid = to_regprocedure('crm.apply_order(jsonb)'))
       = 'void'::regtype
    THEN
        DROP FUNCTION crm.apply_order(jsonb);
    END IF;
END
$$;

-- apply_order: records an order that went upstream without a decision
-- (PostgreSQL was unreachable): no discount, promise or gift.  Returns
-- nothing; does nothing when the order is known or names no customer.
CREATE OR REPLACE FUNCTION crm.apply_order(e jsonb, OUT day date,
    OUT cost numeric)
LANGUAGE plpgsql AS $$
DECLARE
    c        crm.customer;
    v_event  uuid := (e ->> 'event_id')::uuid;
    v_order  text := crm.norm_id(e ->> 'order_id');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crm.orders x WHERE x.event_id = v_event)
    THEN
        IF v_order IS NOT NULL
           AND EXISTS (SELECT 1 FROM crm.orders x WHERE x.order_id = v_order)
        THEN
            RETURN;         -- another event's order: a retry or a conflict
        END IF;

        c := crm.record_undecided_order(e, v_order);

        IF c.customer_id IS NULL THEN
            RETURN;
        END IF;

        UPDATE crm.event AS x SET customer_id = c.customer_id
         WHERE x.event_id = v_event AND x.customer_id IS NULL;
    END IF;

    SELECT u.day, u.cost INTO day, cost FROM crm.undecide_order(v_event) AS u;
END
$$;

COMMENT ON FUNCTION crm.apply_order(jsonb) IS
    'Internal: records an order that went upstream without a decision, and '
    'gives back what a late decision of it reserved.';

-- apply_order_result: the shop's answer to a decided order.  2xx: placed,
-- its promises kept, its gift sent; anything else: refused, its promises
-- open again, its gift released, its order id and key given up.  Returns the gift cost to give back to
-- the budget (negative: to spend again) and its day, for the caller to
-- apply last; NULLs when there is none.
CREATE OR REPLACE FUNCTION crm.apply_order_result(e jsonb, OUT day date,
    OUT cost numeric)
LANGUAGE plpgsql AS $$
DECLARE
    o         crm.orders;
    g         crm.gift;
    v_event   uuid := (e ->> 'event_id')::uuid;
    v_code    integer := crm.parse_id(e ->> 'status');
BEGIN
    o := crm.lock_decided_order(v_event);

    IF o.event_id IS NULL THEN
        RETURN;
    END IF;

    IF v_code BETWEEN 200 AND 299 THEN
        IF o.status IN ('attempted', 'abandoned') THEN
            UPDATE crm.orders AS x
               SET status = 'placed', result = v_code, updated_at = now()
             WHERE x.event_id = v_event;
        END IF;

        IF o.status = 'abandoned' THEN
            -- the answer came late: what it used is used after all
            UPDATE crm.promise AS p
               SET status = 'kept', used_by = v_event, updated_at = now()
             WHERE p.customer_id = o.customer_id AND p.status = 'open'
               AND p.promise_id IN (
                   SELECT x::bigint
                     FROM jsonb_array_elements_text(o.decision -> 'promises')
                          AS x);

            UPDATE crm.gift AS x SET status = 'sent', updated_at = now()
             WHERE x.customer_id = o.customer_id AND x.order_event = v_event
               AND x.status = 'released'
            RETURNING CASE WHEN x.budgeted THEN x.day END, - x.cost
                 INTO day, cost;
        END IF;

        UPDATE crm.promise AS p SET status = 'kept', updated_at = now()
         WHERE p.customer_id = o.customer_id AND p.used_by = v_event
           AND p.status = 'reserved';

        UPDATE crm.gift AS x SET status = 'sent', updated_at = now()
         WHERE x.customer_id = o.customer_id AND x.order_event = v_event
           AND x.status = 'reserved';

        RETURN;
    END IF;

    IF o.status <> 'attempted' THEN
        RETURN;
    END IF;

    -- a refused order gives up its ids (sql/011): nobody claims a future
    -- order id with an order the shop refuses
    UPDATE crm.orders AS x
       SET status = 'refused', result = v_code, updated_at = now(),
           refused_order_id = x.order_id, order_id = NULL,
           refused_idempotency_key = x.idempotency_key,
           idempotency_key = NULL
     WHERE x.event_id = v_event;

    UPDATE crm.promise AS p
       SET status = 'open', used_by = NULL, updated_at = now()
     WHERE p.customer_id = o.customer_id AND p.used_by = v_event
       AND p.status = 'reserved';

    UPDATE crm.gift AS x SET status = 'released', updated_at = now()
     WHERE x.customer_id = o.customer_id AND x.order_event = v_event
       AND x.status = 'reserved'
    RETURNING CASE WHEN x.budgeted THEN x.day END, x.cost INTO day, cost;
END
$$;

COMMENT ON FUNCTION crm.apply_order_result(jsonb) IS
    'Internal: the shop''s answer to a decided order: keep or release.';

-- apply_status: shipped, delayed (with eta), delivered, cancelled or
-- refunded.  Cancelling or refunding takes back what the order earned
-- (paid count, spent, its repeat_order promise if still open) and reopens
-- the promises it used while they are valid.  Returns nothing; other
-- statuses and unknown orders are left to crm.interactions.
CREATE OR REPLACE FUNCTION crm.apply_status(e jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    o         crm.orders;
    v_status  text := lower(btrim(e ->> 'status'));
    v_event   uuid := (e ->> 'event_id')::uuid;
BEGIN
    IF v_status IS NULL
       OR v_status NOT IN ('shipped', 'delayed', 'delivered', 'cancelled',
                           'refunded')
    THEN
        RETURN;
    END IF;

    SELECT * INTO o FROM crm.orders x
     WHERE x.order_id = nullif(e ->> 'order_id', '');

    IF NOT FOUND THEN
        RETURN;
    END IF;

    PERFORM 1 FROM crm.customer x
     WHERE x.customer_id = o.customer_id FOR UPDATE;

    SELECT * INTO o FROM crm.orders x WHERE x.event_id = o.event_id
       FOR UPDATE;

    UPDATE crm.event AS x SET customer_id = o.customer_id
     WHERE x.event_id = v_event AND x.customer_id IS NULL;

    IF v_status NOT IN ('cancelled', 'refunded') THEN
        UPDATE crm.orders AS x
           SET status = v_status,
               eta = CASE WHEN v_status = 'delayed'
                          THEN coalesce(nullif(e ->> 'eta', ''), x.eta)
                          ELSE x.eta END,
               updated_at = now()
         WHERE x.event_id = o.event_id;
        RETURN;
    END IF;

    IF o.status IN ('cancelled', 'refunded') THEN
        RETURN;         -- taken back already
    END IF;

    UPDATE crm.orders AS x
       SET status = v_status, counted = false, updated_at = now()
     WHERE x.event_id = o.event_id;

    IF o.counted THEN
        UPDATE crm.customer AS x
           SET paid_orders = x.paid_orders - 1,
               total_spent = x.total_spent - coalesce(o.paid_total, 0)
         WHERE x.customer_id = o.customer_id;

        UPDATE crm.promise AS p
           SET status = 'withdrawn', updated_at = now()
         WHERE p.customer_id = o.customer_id AND p.opened_by = o.event_id
           AND p.status = 'open';
    END IF;

    -- the discount it used is the customer's again
    UPDATE crm.promise AS p
       SET status = CASE WHEN p.valid_until >= now() THEN 'open'
                         ELSE 'expired' END,
           used_by = NULL,
           updated_at = now()
     WHERE p.customer_id = o.customer_id AND p.used_by = o.event_id
       AND p.status IN ('kept', 'reserved');
END
$$;

COMMENT ON FUNCTION crm.apply_status(jsonb) IS
    'Internal: a status event; cancelled and refunded take back what the '
    'order earned.';
