-- 009: the order decision with typed parameters, answered as a row.
--
-- The module sends SELECT * FROM crm.decide_order($1, ..., $11) with each
-- field a parameter (NULL when absent) and reads the row's columns, instead
-- of building a JSON document and reading seven JSON pointers back.  The
-- decision stored on the order (crm.orders.decision, which a repeat gets
-- back) stays jsonb.  crm.decide_order(jsonb, text) remains, for psql and
-- pgbench, as a call of this one.

-- decide_order: the decision for an order, as 007's, as a row: customer_id
-- NULL when nothing names a customer; conflict when the order id or key was
-- used by another identity (then nothing is decided); repeat when it was
-- decided before (the same decision again); created when this order made
-- the customer.  Raises when the policy was never registered.
CREATE FUNCTION crm.decide_order(event_id uuid, order_id text,
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
