-- 002: customers, orders, promises, loyalty cards and surprises.
--
-- The module makes one synchronous call per order, crm.decide_order(), and
-- sends everything else (payments, order statuses, the upstream's answer to
-- an order) through the spool, into crm.record_events().  Every rule that
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
-- never lock customers in opposite orders.
--
-- States of a promise:  open -> reserved (by an order being decided)
--     -> kept (the upstream took the order) or -> open (it refused it, or
--     nothing was heard of it for 15 minutes);  open -> expired (past
--     valid_until);  open -> withdrawn (the paid order that earned it was
--     cancelled or refunded);  kept -> open (the order that used it was
--     cancelled or refunded while the promise is still valid, else
--     expired).
--
-- States of an order:  attempted (decided, or recorded without decision)
--     -> placed (2xx) | refused (any other answer) | abandoned (no answer
--     within 15 minutes);  -> paid;  -> shipped, delayed, delivered;
--     -> cancelled, refunded.
--
-- Tables are keyed for distribution by customer (Citus): every table that
-- holds a customer's data carries customer_id; crm.policy and
-- crm.gift_budget are shop-wide (reference tables).


-- the policy -----------------------------------------------------------------

CREATE TABLE crm.policy (
    sha256         text PRIMARY KEY,
    doc            jsonb NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE crm.policy IS
    'Policies the nginx nodes run, as JSON built from their YAML; each '
    'connection registers its own.  Views use the most recently '
    'registered one.';
COMMENT ON COLUMN crm.policy.sha256 IS
    'SHA-256 of the YAML file, as crm_status shows it.';
COMMENT ON COLUMN crm.policy.registered_at IS
    'When a connection last registered it; the newest is the one in force.';


-- register_policy: stores the policy document under its sha256 (once) and
-- marks it the most recent; returns nothing.
CREATE FUNCTION crm.register_policy(sha256 text, doc jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO crm.policy AS p (sha256, doc)
    VALUES (register_policy.sha256, register_policy.doc)
    ON CONFLICT ON CONSTRAINT policy_pkey
    DO UPDATE SET registered_at = now()
$$;

COMMENT ON FUNCTION crm.register_policy(text, jsonb) IS
    'Called by the module once per connection: the policy other calls name '
    'by its sha256.';


-- policy_doc: returns the policy registered under sha256, or the most
-- recently registered one when sha256 is NULL or unknown; NULL when none.
CREATE FUNCTION crm.policy_doc(sha256 text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT p.doc FROM crm.policy p WHERE p.sha256 = policy_doc.sha256),
        (SELECT p.doc FROM crm.policy p
          ORDER BY p.registered_at DESC LIMIT 1))
$$;


-- tier_of: returns the tier object of policy doc ({"name", "paid_orders",
-- "spent", "discount"}) that a customer with these figures has reached:
-- the last one listed whose conditions hold; NULL when none is reached.
CREATE FUNCTION crm.tier_of(doc jsonb, paid_orders integer, spent numeric)
RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT t.tier
      FROM jsonb_array_elements(
               CASE WHEN jsonb_typeof(doc #> '{loyalty,tiers}') = 'array'
                    THEN doc #> '{loyalty,tiers}' ELSE '[]' END)
           WITH ORDINALITY AS t(tier, n)
     WHERE (t.tier ->> 'paid_orders')::integer <= paid_orders
       AND (coalesce((t.tier ->> 'spent')::numeric, 0) = 0
            OR spent >= (t.tier ->> 'spent')::numeric)
     ORDER BY t.n DESC
     LIMIT 1
$$;


-- holdout_of: returns whether a customer falls in the holdout group of
-- percent: a stable hash of the id, so the answer never changes.
CREATE FUNCTION crm.holdout_of(customer_id bigint, percent numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT abs(hashint8(customer_id)::bigint) % 100 < coalesce(percent, 0)
$$;


-- parse_money: returns the amount in s ("129.90"), or NULL when s is not
-- a plain decimal number; never raises.
CREATE FUNCTION crm.parse_money(s text) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN s ~ '^\s*-?[0-9]{1,12}(\.[0-9]{0,6})?\s*$'
                THEN round(btrim(s)::numeric, 2) END
$$;


-- parse_date: returns the date in s ("1990-05-01", a time may follow), or
-- NULL when s is not a valid date; never raises.
CREATE FUNCTION crm.parse_date(s text) RETURNS date
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
           WHEN m IS NULL OR m[1]::integer < 1
               OR m[2]::integer NOT BETWEEN 1 AND 12
               OR m[3]::integer < 1
           THEN NULL
           ELSE CASE WHEN m[3]::integer
                          <= extract(day FROM make_date(m[1]::integer,
                                                        m[2]::integer, 1)
                                              + interval '1 month - 1 day')
                     THEN make_date(m[1]::integer, m[2]::integer,
                                    m[3]::integer)
                END
           END
      FROM regexp_match(s, '^\s*([0-9]{4})-([0-9]{2})-([0-9]{2})') AS m
$$;


-- parse_id: returns the positive integer in s, or NULL; never raises.
CREATE FUNCTION crm.parse_id(s text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN s ~ '^\s*[0-9]{1,18}\s*$' THEN btrim(s)::bigint END
$$;


-- customers ------------------------------------------------------------------

CREATE TABLE crm.customer (
    customer_id    bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    email          text UNIQUE,
    phone          text UNIQUE,
    name           text,
    birthday       date,
    card_number    text UNIQUE,
    card_issued_at timestamptz,
    paid_orders    integer NOT NULL DEFAULT 0,
    total_spent    numeric(14,2) NOT NULL DEFAULT 0,
    last_order_at  timestamptz,
    holdout        boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    forgotten_at   timestamptz
);

COMMENT ON TABLE crm.customer IS
    'One row a customer, found by e-mail, phone or the signed cookie; staff '
    'read crm.customer_overview.';
COMMENT ON COLUMN crm.customer.email IS
    'Lower-cased; the first e-mail seen stays (another one with the same '
    'phone or cookie orders as this customer but is not stored).';
COMMENT ON COLUMN crm.customer.phone IS 'Digits only.';
COMMENT ON COLUMN crm.customer.paid_orders IS
    'Paid orders not cancelled or refunded; the tier follows from it.';
COMMENT ON COLUMN crm.customer.total_spent IS
    'Sum of those orders'' totals.';
COMMENT ON COLUMN crm.customer.holdout IS
    'In the holdout group (no surprises): decided once, when the customer '
    'was created, by crm.holdout_of() and the policy''s holdout.percent.';
COMMENT ON COLUMN crm.customer.forgotten_at IS
    'Set by crm.forget_customer(): personal data erased, figures kept; the '
    'cookie no longer finds this customer.';


CREATE TABLE crm.relative (
    relative_id    bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    customer_id    bigint NOT NULL REFERENCES crm.customer,
    name           text NOT NULL,
    relation       text,
    birthday       date,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX relative_customer_id ON crm.relative (customer_id);

COMMENT ON TABLE crm.relative IS
    'People a customer buys for, added by staff with crm.add_relative(); '
    'their birthdays may bring banners (policy banners[].relatives).';


-- find_customer: returns the customer named by e-mail, else by phone, else
-- by the cookie's customer id (never a forgotten one), locked FOR UPDATE;
-- creates it when an e-mail or phone names nobody yet.  Takes the name and
-- birthday when given, and attaches a new e-mail or phone to a customer
-- that has none.  Returns NULL when nothing names a customer.
CREATE FUNCTION crm.find_customer(email text, phone text, cookie_id bigint,
    name text, birthday date, doc jsonb) RETURNS crm.customer
LANGUAGE plpgsql AS $$
DECLARE
    c        crm.customer;
    v_id     bigint;
    v_email  text := nullif(lower(btrim(email)), '');
    v_phone  text := nullif(regexp_replace(phone, '[^0-9]', '', 'g'), '');
    v_name   text := nullif(btrim(name), '');
BEGIN
    LOOP
        IF v_email IS NOT NULL THEN
            SELECT * INTO c FROM crm.customer AS x
             WHERE x.email = v_email FOR UPDATE;
            EXIT WHEN FOUND;
        END IF;

        IF v_phone IS NOT NULL THEN
            SELECT * INTO c FROM crm.customer AS x
             WHERE x.phone = v_phone FOR UPDATE;
            EXIT WHEN FOUND;
        END IF;

        IF cookie_id IS NOT NULL THEN
            SELECT * INTO c FROM crm.customer AS x
             WHERE x.customer_id = cookie_id AND x.forgotten_at IS NULL
               FOR UPDATE;
            EXIT WHEN FOUND;
        END IF;

        IF v_email IS NULL AND v_phone IS NULL THEN
            RETURN NULL;
        END IF;

        -- new: the id first, so that the holdout is recorded with the row;
        -- a customer created meanwhile by another order is found next round
        v_id := nextval(pg_get_serial_sequence('crm.customer', 'customer_id'));

        INSERT INTO crm.customer (customer_id, email, phone, name, birthday,
                                  holdout)
        VALUES (v_id, v_email, v_phone, v_name, find_customer.birthday,
                crm.holdout_of(v_id, (doc #>> '{holdout,percent}')::numeric))
        ON CONFLICT DO NOTHING
        RETURNING * INTO c;

        IF FOUND THEN
            RETURN c;
        END IF;
    END LOOP;

    -- what this order tells about the customer; an e-mail or phone that
    -- belongs to another customer stays with that one
    IF v_email IS NOT NULL AND c.email IS NULL THEN
        BEGIN
            UPDATE crm.customer AS x SET email = v_email
             WHERE x.customer_id = c.customer_id
            RETURNING * INTO c;
        EXCEPTION WHEN unique_violation THEN
            NULL;
        END;
    END IF;

    IF v_phone IS NOT NULL AND c.phone IS NULL THEN
        BEGIN
            UPDATE crm.customer AS x SET phone = v_phone
             WHERE x.customer_id = c.customer_id
            RETURNING * INTO c;
        EXCEPTION WHEN unique_violation THEN
            NULL;
        END;
    END IF;

    IF (v_name IS NOT NULL AND v_name IS DISTINCT FROM c.name)
       OR (find_customer.birthday IS NOT NULL
           AND find_customer.birthday IS DISTINCT FROM c.birthday)
    THEN
        UPDATE crm.customer AS x
           SET name = coalesce(v_name, x.name),
               birthday = coalesce(find_customer.birthday, x.birthday)
         WHERE x.customer_id = c.customer_id
        RETURNING * INTO c;
    END IF;

    RETURN c;
END
$$;

COMMENT ON FUNCTION crm.find_customer(text, text, bigint, text, date, jsonb)
    IS 'Internal: the customer an order or payment names, locked, created '
       'on first sight.';


-- orders ---------------------------------------------------------------------

CREATE TABLE crm.orders (
    event_id         uuid PRIMARY KEY,
    customer_id      bigint NOT NULL REFERENCES crm.customer,
    order_id         text UNIQUE,
    idempotency_key  text,
    status           text NOT NULL
                     CHECK (status IN ('attempted', 'placed', 'refused',
                                       'abandoned', 'paid', 'shipped',
                                       'delayed', 'delivered', 'cancelled',
                                       'refunded')),
    decided          boolean NOT NULL,
    policy           text,
    total            numeric(14,2),
    currency         text,
    discount         integer NOT NULL DEFAULT 0,
    tier             text,
    gift             text,
    decision         jsonb NOT NULL,
    result           integer,
    paid_at          timestamptz,
    paid_total       numeric(14,2),
    counted          boolean NOT NULL DEFAULT false,
    eta              text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX orders_idempotency_key ON crm.orders (idempotency_key)
    WHERE order_id IS NULL AND idempotency_key IS NOT NULL;
CREATE INDEX orders_customer_id ON crm.orders (customer_id);
CREATE INDEX orders_unanswered ON crm.orders (customer_id, created_at)
    WHERE status = 'attempted' AND decided;

COMMENT ON TABLE crm.orders IS
    'One row an order the module saw: what was decided for it and what '
    'became of it.';
COMMENT ON COLUMN crm.orders.event_id IS
    'The event that made the row: the order request (its id in '
    'crm.interactions), or the payment of an order never seen.';
COMMENT ON COLUMN crm.orders.order_id IS
    'The shop''s order id (policy fields.order_id); NULL when it had none.';
COMMENT ON COLUMN crm.orders.idempotency_key IS
    'The request''s Idempotency-Key, which stands for the order id when '
    'there is none.';
COMMENT ON COLUMN crm.orders.status IS
    'attempted (sent to the shop), placed (the shop answered 2xx), refused '
    '(it did not), abandoned (no answer heard within 15 minutes), paid, '
    'then shipped, delayed, delivered, cancelled or refunded.';
COMMENT ON COLUMN crm.orders.decided IS
    'false: PostgreSQL was unreachable when the order went through, so it '
    'got no discount, promise or gift.';
COMMENT ON COLUMN crm.orders.discount IS
    'Percent the shop was told to give ($crm_discount): the promises it '
    'reserved.';
COMMENT ON COLUMN crm.orders.tier IS 'The customer''s tier at the time.';
COMMENT ON COLUMN crm.orders.gift IS 'The gift the shop was told to pack.';
COMMENT ON COLUMN crm.orders.decision IS
    'The decision as the module received it; the same order sent again '
    'gets it back.';
COMMENT ON COLUMN crm.orders.result IS
    'HTTP status of the shop''s answer to the order (499: client gone).';
COMMENT ON COLUMN crm.orders.paid_total IS
    'What the payment counted towards total_spent.';
COMMENT ON COLUMN crm.orders.counted IS
    'Counted in the customer''s paid_orders and total_spent now (paid, not '
    'cancelled or refunded).';
COMMENT ON COLUMN crm.orders.eta IS
    'Expected delivery a delayed status gave, as the shop wrote it.';


-- promises -------------------------------------------------------------------

CREATE TABLE crm.promise (
    promise_id   bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES crm.customer,
    kind         text NOT NULL
                 CHECK (kind IN ('repeat_order', 'compensation', 'birthday',
                                 'sla_breach')),
    percent      integer NOT NULL CHECK (percent BETWEEN 1 AND 100),
    created_at   timestamptz NOT NULL DEFAULT now(),
    valid_until  timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'reserved', 'kept', 'expired',
                                   'withdrawn')),
    used_by      uuid,
    opened_by    uuid,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX promise_customer_live ON crm.promise (customer_id, valid_until)
    WHERE status IN ('open', 'reserved');
CREATE INDEX promise_used_by ON crm.promise (used_by)
    WHERE used_by IS NOT NULL;
CREATE INDEX promise_opened_by ON crm.promise (opened_by)
    WHERE opened_by IS NOT NULL;

COMMENT ON TABLE crm.promise IS
    'Every promised discount; staff read crm.promise_ledger.';
COMMENT ON COLUMN crm.promise.used_by IS
    'The order (crm.orders.event_id) that reserved or kept it.';
COMMENT ON COLUMN crm.promise.opened_by IS
    'The paid order (crm.orders.event_id) that earned a repeat_order '
    'promise; cancelling it withdraws the promise while still open.';


-- gifts ----------------------------------------------------------------------

CREATE TABLE crm.gift (
    gift_id      bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES crm.customer,
    order_event  uuid NOT NULL,
    name         text NOT NULL,
    cost         numeric(12,2) NOT NULL,
    day          date NOT NULL,
    budgeted     boolean NOT NULL DEFAULT false,
    status       text NOT NULL DEFAULT 'reserved'
                 CHECK (status IN ('reserved', 'sent', 'released')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX gift_customer_id ON crm.gift (customer_id, created_at);
CREATE INDEX gift_order_event ON crm.gift (order_event);

COMMENT ON TABLE crm.gift IS
    'Surprise gifts: one row each time the shop was told to pack one.';
COMMENT ON COLUMN crm.gift.order_event IS
    'The order (crm.orders.event_id) it goes with.';
COMMENT ON COLUMN crm.gift.day IS
    'The day of the policy''s timezone whose daily_budget it counts against.';
COMMENT ON COLUMN crm.gift.budgeted IS
    'Counted in crm.gift_budget (the policy had a daily_budget).';
COMMENT ON COLUMN crm.gift.status IS
    'reserved (order on its way), sent (the shop took the order) or '
    'released (the order was refused or never answered; cost given back).';


CREATE TABLE crm.gift_budget (
    day    date PRIMARY KEY,
    spent  numeric(14,2) NOT NULL DEFAULT 0
);

COMMENT ON TABLE crm.gift_budget IS
    'Money given in gifts per day, for the whole shop, checked against '
    'surprises.daily_budget in the same UPDATE that spends it.';


-- apply_lock: returns once this transaction is the only one applying
-- events (payments, statuses, results): batches from several workers then
-- never lock two customers in opposite orders.
CREATE FUNCTION crm.apply_lock() RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('ngx_crm apply', 0))
$$;


-- budget_give_back: returns the gifts' cost to their days' budgets;
-- returns nothing.  Kept apart so that callers hold the hot row last.
CREATE FUNCTION crm.budget_give_back(days date[], costs numeric[])
RETURNS void
LANGUAGE sql AS $$
    UPDATE crm.gift_budget AS b
       SET spent = b.spent - s.cost
      FROM (SELECT d AS day, sum(c) AS cost
              FROM unnest(days, costs) AS u(d, c)
             GROUP BY d) AS s
     WHERE b.day = s.day
$$;


-- release_unanswered: marks the customer's decided orders that heard no
-- answer for 15 minutes abandoned, opens their reserved promises and
-- releases their gifts; returns nothing.  The caller holds the customer.
CREATE FUNCTION crm.release_unanswered(cid bigint) RETURNS void
LANGUAGE sql AS $$
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
    SELECT crm.budget_give_back(array_agg(day), array_agg(cost))
      FROM gi
     WHERE gi.budgeted
    HAVING count(*) > 0
$$;


-- expire_promises: marks the customer's open promises past valid_until
-- expired; returns nothing.
CREATE FUNCTION crm.expire_promises(cid bigint) RETURNS void
LANGUAGE sql AS $$
    UPDATE crm.promise AS p
       SET status = 'expired', updated_at = now()
     WHERE p.customer_id = cid AND p.status = 'open'
       AND p.valid_until < now()
$$;


-- the decision ---------------------------------------------------------------

-- decide_order: returns the decision for an order about to go upstream,
-- as jsonb {"customer_id", "card", "tier", "discount", "promises", "gift",
-- "holdout", "repeat"}, and records the order.  The same order_id (or,
-- without one, the same idempotency_key or event_id) returns the stored
-- decision with "repeat": true and changes nothing.  "customer_id" is null
-- (and nothing is recorded) when no e-mail, phone or known cookie names a
-- customer.  Raises when the policy was never registered.
CREATE FUNCTION crm.decide_order(o jsonb, policy text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    doc         jsonb;
    c           crm.customer;
    r           record;
    d           jsonb;
    tier        jsonb;
    v_event     uuid := (o ->> 'event_id')::uuid;
    v_order     text := nullif(o ->> 'order_id', '');
    v_key       text := nullif(o ->> 'idempotency_key', '');
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
    SELECT p.doc INTO doc FROM crm.policy p WHERE p.sha256 = policy;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'crm: policy % is not registered', policy
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

    SELECT x.decision INTO d FROM crm.orders x
     WHERE x.event_id = v_event
        OR x.order_id = v_order
        OR (x.idempotency_key = v_key AND x.order_id IS NULL)
     LIMIT 1;

    IF FOUND THEN
        RETURN d || '{"repeat": true}';
    END IF;

    c := crm.find_customer(o ->> 'email', o ->> 'phone',
                           crm.parse_id(o ->> 'customer_id'),
                           o ->> 'name', crm.parse_date(o ->> 'birthday'),
                           doc);

    IF c.customer_id IS NULL THEN
        RETURN jsonb_build_object('customer_id', NULL, 'card', NULL,
                                  'tier', NULL, 'discount', 0,
                                  'promises', '[]'::jsonb, 'gift', NULL,
                                  'holdout', false, 'repeat', false);
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

    tier := crm.tier_of(doc, c.paid_orders, c.total_spent);

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
        'tier', tier ->> 'name',
        'discount', v_discount,
        'promises', to_jsonb(v_promises),
        'gift', v_gift,
        'holdout', c.holdout,
        'repeat', false);

    INSERT INTO crm.orders (event_id, customer_id, order_id, idempotency_key,
                            status, decided, policy, total, currency,
                            discount, tier, gift, decision)
    VALUES (v_event, c.customer_id, v_order, v_key, 'attempted', true,
            policy, crm.parse_money(o ->> 'total'),
            nullif(o ->> 'currency', ''), v_discount, tier ->> 'name',
            v_gift, d);

    RETURN d;
END
$$;

COMMENT ON FUNCTION crm.decide_order(jsonb, text) IS
    'Called by the module before an order goes upstream: finds or creates '
    'the customer, reserves promises, decides tier and gift, records the '
    'order; returns the decision as jsonb.';


-- applying spooled events ----------------------------------------------------

-- apply_order: records an order that went upstream without a decision
-- (PostgreSQL was unreachable): no discount, promise or gift.  Returns
-- nothing; does nothing when the order is known or names no customer.
CREATE FUNCTION crm.apply_order(e jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c        crm.customer;
    v_event  uuid := (e ->> 'event_id')::uuid;
    v_order  text := nullif(e ->> 'order_id', '');
BEGIN
    IF EXISTS (SELECT 1 FROM crm.orders x
                WHERE x.event_id = v_event OR x.order_id = v_order)
    THEN
        RETURN;
    END IF;

    c := crm.find_customer(e ->> 'email', e ->> 'phone',
                           crm.parse_id(e ->> 'customer_id'),
                           e ->> 'name', crm.parse_date(e ->> 'birthday'),
                           crm.policy_doc(e ->> 'policy'));

    IF c.customer_id IS NULL THEN
        RETURN;
    END IF;

    INSERT INTO crm.orders (event_id, customer_id, order_id, status, decided,
                            policy, total, currency, decision, created_at)
    VALUES (v_event, c.customer_id, v_order, 'attempted', false,
            e ->> 'policy', crm.parse_money(e ->> 'total'),
            nullif(e ->> 'currency', ''),
            jsonb_build_object('customer_id', c.customer_id, 'card', NULL,
                               'tier', NULL, 'discount', 0,
                               'promises', '[]'::jsonb, 'gift', NULL,
                               'holdout', c.holdout, 'repeat', false),
            coalesce(to_timestamp((e ->> 'received_at')::float8), now()))
    ON CONFLICT DO NOTHING;

    UPDATE crm.event AS x SET customer_id = c.customer_id
     WHERE x.event_id = v_event AND x.customer_id IS NULL;
END
$$;


-- issue_card: gives the customer a loyalty card unless it has one: prefix
-- and 8 random digits, unique; returns the card number.
CREATE FUNCTION crm.issue_card(cid bigint, prefix text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_card  text;
BEGIN
    LOOP
        -- 48 random bits of a version-4 uuid, as 8 decimal digits
        v_card := coalesce(prefix, '')
                  || lpad((('x' || left(replace(gen_random_uuid()::text,
                                                '-', ''), 12))::bit(48)
                           ::bigint % 100000000)::text, 8, '0');
        BEGIN
            UPDATE crm.customer AS x
               SET card_number = coalesce(x.card_number, v_card),
                   card_issued_at = coalesce(x.card_issued_at, now())
             WHERE x.customer_id = cid
            RETURNING x.card_number INTO v_card;
            RETURN v_card;
        EXCEPTION WHEN unique_violation THEN
            NULL;       -- that number is taken: draw again
        END;
    END LOOP;
END
$$;


-- apply_payment: the order becomes paid (once) and counts towards the
-- customer's tier; the card is issued when after_paid_orders is reached,
-- and a repeat_order promise opened at the tier's discount.  An unknown
-- order is created from the payment.  Returns nothing.
CREATE FUNCTION crm.apply_payment(e jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    doc       jsonb := crm.policy_doc(e ->> 'policy');
    c         crm.customer;
    o         crm.orders;
    tier      jsonb;
    v_event   uuid := (e ->> 'event_id')::uuid;
    v_order   text := nullif(e ->> 'order_id', '');
    v_at      timestamptz := coalesce(to_timestamp(
                                 (e ->> 'received_at')::float8), now());
    v_amount  numeric;
    v_after   integer;
    v_pct     integer;
BEGIN
    IF v_order IS NULL THEN
        RETURN;
    END IF;

    SELECT * INTO o FROM crm.orders x WHERE x.order_id = v_order;

    IF FOUND THEN
        SELECT * INTO c FROM crm.customer x
         WHERE x.customer_id = o.customer_id FOR UPDATE;
    ELSE
        c := crm.find_customer(e ->> 'email', e ->> 'phone',
                               crm.parse_id(e ->> 'customer_id'),
                               e ->> 'name',
                               crm.parse_date(e ->> 'birthday'), doc);
        IF c.customer_id IS NULL THEN
            RETURN;
        END IF;

        INSERT INTO crm.orders (event_id, customer_id, order_id, status,
                                decided, policy, total, currency, decision,
                                created_at)
        VALUES (v_event, c.customer_id, v_order, 'attempted', false,
                e ->> 'policy', crm.parse_money(e ->> 'total'),
                nullif(e ->> 'currency', ''),
                jsonb_build_object('customer_id', c.customer_id,
                                   'card', NULL, 'tier', NULL,
                                   'discount', 0, 'promises', '[]'::jsonb,
                                   'gift', NULL, 'holdout', c.holdout,
                                   'repeat', false),
                v_at)
        ON CONFLICT DO NOTHING;
    END IF;

    SELECT * INTO o FROM crm.orders x WHERE x.order_id = v_order FOR UPDATE;

    IF o.paid_at IS NOT NULL THEN
        RETURN;
    END IF;

    IF o.customer_id <> c.customer_id THEN
        -- created meanwhile for another customer: hold that one
        SELECT * INTO c FROM crm.customer x
         WHERE x.customer_id = o.customer_id FOR UPDATE;
    END IF;

    v_amount := coalesce(crm.parse_money(e ->> 'total'), o.total, 0);

    UPDATE crm.orders AS x
       SET paid_at = v_at,
           paid_total = v_amount,
           total = coalesce(x.total, v_amount),
           counted = x.status NOT IN ('cancelled', 'refunded'),
           status = CASE WHEN x.status IN ('attempted', 'placed', 'refused',
                                           'abandoned')
                         THEN 'paid' ELSE x.status END,
           updated_at = now()
     WHERE x.event_id = o.event_id
    RETURNING * INTO o;

    -- paid means the shop took it, whatever became of its answer
    UPDATE crm.promise AS p SET status = 'kept', updated_at = now()
     WHERE p.customer_id = c.customer_id AND p.used_by = o.event_id
       AND p.status = 'reserved';
    UPDATE crm.gift AS g SET status = 'sent', updated_at = now()
     WHERE g.customer_id = c.customer_id AND g.order_event = o.event_id
       AND g.status = 'reserved';

    UPDATE crm.event AS x SET customer_id = c.customer_id
     WHERE x.event_id = v_event AND x.customer_id IS NULL;

    IF NOT o.counted THEN
        RETURN;
    END IF;

    UPDATE crm.customer AS x
       SET paid_orders = x.paid_orders + 1,
           total_spent = x.total_spent + v_amount,
           last_order_at = greatest(x.last_order_at, v_at)
     WHERE x.customer_id = c.customer_id
    RETURNING * INTO c;

    IF doc IS NULL THEN
        RETURN;
    END IF;

    v_after := (doc #>> '{loyalty,card,after_paid_orders}')::integer;

    IF v_after IS NOT NULL AND c.paid_orders >= v_after
       AND c.card_number IS NULL
    THEN
        PERFORM crm.issue_card(c.customer_id,
                               doc #>> '{loyalty,card,prefix}');
    END IF;

    tier := crm.tier_of(doc, c.paid_orders, c.total_spent);
    v_pct := coalesce((tier ->> 'discount')::integer, 0);

    IF v_pct > 0 THEN
        INSERT INTO crm.promise (customer_id, kind, percent, created_at,
                                 valid_until, opened_by)
        VALUES (c.customer_id, 'repeat_order', least(v_pct, 100), v_at,
                v_at + coalesce((doc #>> '{loyalty,promise,valid_for_s}')
                                ::float8, 2592000) * interval '1 second',
                o.event_id);
    END IF;
END
$$;


-- apply_status: shipped, delayed (with eta), delivered, cancelled or
-- refunded.  Cancelling or refunding takes back what the order earned
-- (paid count, spent, its repeat_order promise if still open) and reopens
-- the promises it used while they are valid.  Returns nothing; other
-- statuses and unknown orders are left to crm.interactions.
CREATE FUNCTION crm.apply_status(e jsonb) RETURNS void
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


-- apply_order_result: the shop's answer to a decided order.  2xx: placed,
-- its promises kept, its gift sent; anything else: refused, its promises
-- open again, its gift released.  Returns the gift cost to give back to
-- the budget (negative: to spend again) and its day, for the caller to
-- apply last; NULLs when there is none.
CREATE FUNCTION crm.apply_order_result(e jsonb, OUT day date,
    OUT cost numeric)
LANGUAGE plpgsql AS $$
DECLARE
    o         crm.orders;
    g         crm.gift;
    v_event   uuid := (e ->> 'event_id')::uuid;
    v_code    integer := crm.parse_id(e ->> 'status');
BEGIN
    SELECT * INTO o FROM crm.orders x WHERE x.event_id = v_event;

    IF NOT FOUND OR NOT o.decided THEN
        RETURN;
    END IF;

    PERFORM 1 FROM crm.customer x
     WHERE x.customer_id = o.customer_id FOR UPDATE;

    SELECT * INTO o FROM crm.orders x WHERE x.event_id = v_event FOR UPDATE;

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

    UPDATE crm.orders AS x
       SET status = 'refused', result = v_code, updated_at = now()
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


-- record_events: writes a batch of spooled lines, in their order; returns
-- how many interactions were new.  Interactions are inserted in one
-- statement, once each; only the new ones that change something (an order
-- that was not decided, a payment, a status) and the shop's answers to
-- orders ("kind": "order_result", not interactions) are then applied one
-- by one.  Lines of an unknown kind go to crm.spool_reject.
CREATE OR REPLACE FUNCTION crm.record_events(batch text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    line     jsonb;
    todo     jsonb[];
    v_new    integer;
    v_day    date;
    v_cost   numeric;
    v_days   date[] := '{}';
    v_costs  numeric[] := '{}';
BEGIN
    WITH l AS (
        SELECT t.n, t.x, t.x::jsonb AS j
          FROM string_to_table(batch, E'\n') WITH ORDINALITY AS t(x, n)
         WHERE t.x <> ''
    ), ins AS (
        INSERT INTO crm.event (event_id, received_at, kind, customer_id,
                               order_id, payload, body, state, reason, node)
        SELECT e.event_id, to_timestamp(e.received_at), e.kind,
               e.customer_id, e.order_id, e.payload,
               decode(e.body, 'base64'), e.state, e.reason, e.node
          FROM l,
               jsonb_to_record(l.j) AS e(event_id uuid,
                   received_at double precision, kind text,
                   customer_id bigint, order_id text, payload jsonb,
                   body text, state text, reason text, node text)
         WHERE e.kind IN ('order', 'payment', 'status', 'feedback', 'banner')
        ON CONFLICT (event_id) DO NOTHING
        RETURNING event_id
    ), rej AS (
        INSERT INTO crm.spool_reject (line, error)
        SELECT l.x, 'unknown kind: ' || coalesce(l.j ->> 'kind', 'none')
          FROM l
         WHERE coalesce(l.j ->> 'kind', '')
               NOT IN ('order', 'payment', 'status', 'feedback', 'banner',
                       'order_result')
           AND NOT EXISTS (SELECT 1 FROM crm.spool_reject r
                            WHERE md5(r.line) = md5(l.x) AND r.line = l.x)
    )
    SELECT (SELECT count(*) FROM ins),
           array_agg(l.j ORDER BY l.n)
               FILTER (WHERE l.j ->> 'kind' = 'order_result'
                          OR ((l.j ->> 'kind' IN ('payment', 'status')
                               OR (l.j ->> 'kind' = 'order'
                                   AND (l.j ->> 'decided') IS DISTINCT FROM
                                       'true'))
                              AND (l.j ->> 'event_id')::uuid IN
                                  (SELECT event_id FROM ins)))
      INTO v_new, todo
      FROM l;

    IF todo IS NULL THEN
        RETURN v_new;
    END IF;

    PERFORM crm.apply_lock();

    FOREACH line IN ARRAY todo LOOP
        CASE line ->> 'kind'
        WHEN 'order' THEN
            PERFORM crm.apply_order(line);
        WHEN 'payment' THEN
            PERFORM crm.apply_payment(line);
        WHEN 'status' THEN
            PERFORM crm.apply_status(line);
        ELSE
            SELECT r.day, r.cost INTO v_day, v_cost
              FROM crm.apply_order_result(line) AS r;
            IF v_day IS NOT NULL THEN
                v_days := v_days || v_day;
                v_costs := v_costs || v_cost;
            END IF;
        END CASE;
    END LOOP;

    -- the shop-wide budget row last, once
    IF cardinality(v_days) > 0 THEN
        PERFORM crm.budget_give_back(v_days, v_costs);
    END IF;

    RETURN v_new;
END
$$;

COMMENT ON FUNCTION crm.record_events(text) IS
    'Called by the module: writes a batch of spooled events in order, '
    'idempotently, and applies payments, statuses and order results.';

CREATE INDEX spool_reject_line ON crm.spool_reject (md5(line));

CREATE OR REPLACE FUNCTION crm.record_events_slow(batch text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    l  text;
    n  integer := 0;
BEGIN
    FOR l IN SELECT x FROM string_to_table(batch, E'\n') AS x WHERE x <> ''
    LOOP
        BEGIN
            n := n + crm.record_events(l);
        EXCEPTION WHEN OTHERS THEN
            INSERT INTO crm.spool_reject (line, error)
            SELECT l, SQLERRM
             WHERE NOT EXISTS (SELECT 1 FROM crm.spool_reject r
                                WHERE md5(r.line) = md5(l) AND r.line = l);
        END;
    END LOOP;
    RETURN n;
END
$$;

COMMENT ON FUNCTION crm.record_events_slow(text) IS
    'Called by the module when a batch fails: writes it line by line; a '
    'line that fails is kept in crm.spool_reject (once).';


-- staff ----------------------------------------------------------------------

CREATE VIEW crm.customer_overview AS
    SELECT c.customer_id, c.email, c.phone, c.name, c.card_number,
           crm.tier_of(p.doc, c.paid_orders, c.total_spent) ->> 'name'
               AS tier,
           c.paid_orders, c.total_spent, c.last_order_at,
           coalesce((SELECT sum(x.percent) FROM crm.promise x
                      WHERE x.customer_id = c.customer_id
                        AND x.status = 'open' AND x.valid_until >= now()),
                    0)::integer AS open_discount,
           c.holdout
      FROM crm.customer c
      LEFT JOIN (SELECT doc FROM crm.policy
                  ORDER BY registered_at DESC LIMIT 1) AS p ON true;

COMMENT ON VIEW crm.customer_overview IS
    'Every customer with card, tier and what is promised to them.';
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


CREATE VIEW crm.promise_ledger AS
    SELECT p.promise_id, p.customer_id, p.kind, p.percent, p.created_at,
           p.valid_until,
           CASE WHEN p.status = 'open' AND p.valid_until < now()
                THEN 'expired' ELSE p.status END AS status,
           o.order_id
      FROM crm.promise p
      LEFT JOIN crm.orders o
        ON o.customer_id = p.customer_id AND o.event_id = p.used_by;

COMMENT ON VIEW crm.promise_ledger IS
    'Every promised discount and what became of it; none is kept twice.';
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


CREATE VIEW crm.surprise_report AS
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


-- add_relative: adds a relative to the customer with that e-mail; returns
-- the relative's id.  Raises when no customer has the e-mail.
CREATE FUNCTION crm.add_relative(email text, name text, relation text,
    birthday date) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_cid  bigint;
    v_id   bigint;
BEGIN
    SELECT c.customer_id INTO v_cid FROM crm.customer c
     WHERE c.email = lower(btrim(add_relative.email));

    IF NOT FOUND THEN
        RAISE EXCEPTION 'crm: no customer with e-mail %', email;
    END IF;

    INSERT INTO crm.relative (customer_id, name, relation, birthday)
    VALUES (v_cid, add_relative.name, add_relative.relation,
            add_relative.birthday)
    RETURNING relative_id INTO v_id;

    RETURN v_id;
END
$$;

COMMENT ON FUNCTION crm.add_relative(text, text, text, date) IS
    'Staff: adds a relative (name, relation, birthday) to the customer with '
    'this e-mail; returns the relative''s id.';


-- forget_customer: erases the personal data of the customer with that
-- e-mail: e-mail, phone, name, birthday, relatives, and the bodies of the
-- requests recorded for them; orders, promises and gifts stay, anonymous,
-- for the figures.  Returns true when someone was forgotten.
CREATE FUNCTION crm.forget_customer(email text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_cid  bigint;
BEGIN
    UPDATE crm.customer AS c
       SET email = NULL, phone = NULL, name = NULL, birthday = NULL,
           forgotten_at = now()
     WHERE c.email = lower(btrim(forget_customer.email))
    RETURNING c.customer_id INTO v_cid;

    IF NOT FOUND THEN
        RETURN false;
    END IF;

    DELETE FROM crm.relative r WHERE r.customer_id = v_cid;

    UPDATE crm.event AS x SET payload = NULL, body = NULL
     WHERE x.customer_id = v_cid
       AND (x.payload IS NOT NULL OR x.body IS NOT NULL);

    RETURN true;
END
$$;

COMMENT ON FUNCTION crm.forget_customer(text) IS
    'Staff: erases a customer''s personal data (e-mail, phone, name, '
    'birthday, relatives, request bodies), keeping anonymous orders and '
    'promises; returns true when someone was forgotten.';


-- the helpers, for \df+ ------------------------------------------------------

COMMENT ON FUNCTION crm.policy_doc(text) IS
    'Internal: the policy registered under a sha256, else the newest.';
COMMENT ON FUNCTION crm.tier_of(jsonb, integer, numeric) IS
    'The tier (JSON object) a policy gives for paid orders and money spent; '
    'NULL when none is reached.';
COMMENT ON FUNCTION crm.holdout_of(bigint, numeric) IS
    'Whether a customer id falls in a holdout of that percent (stable hash).';
COMMENT ON FUNCTION crm.parse_money(text) IS
    'Internal: a decimal amount, or NULL; never raises.';
COMMENT ON FUNCTION crm.parse_date(text) IS
    'Internal: a YYYY-MM-DD date, or NULL; never raises.';
COMMENT ON FUNCTION crm.parse_id(text) IS
    'Internal: a positive integer, or NULL; never raises.';
COMMENT ON FUNCTION crm.apply_lock() IS
    'Internal: one transaction at a time applies spooled events.';
COMMENT ON FUNCTION crm.budget_give_back(date[], numeric[]) IS
    'Internal: gives released gifts'' cost back to their days'' budgets.';
COMMENT ON FUNCTION crm.release_unanswered(bigint) IS
    'Internal: abandons a customer''s orders unanswered for 15 minutes and '
    'releases what they reserved.';
COMMENT ON FUNCTION crm.expire_promises(bigint) IS
    'Internal: marks a customer''s open promises past valid_until expired.';
COMMENT ON FUNCTION crm.apply_order(jsonb) IS
    'Internal: records an order that went upstream undecided.';
COMMENT ON FUNCTION crm.issue_card(bigint, text) IS
    'Internal: issues a loyalty card (prefix and 8 random digits) once.';
COMMENT ON FUNCTION crm.apply_payment(jsonb) IS
    'Internal: a payment event: paid once, card, repeat_order promise.';
COMMENT ON FUNCTION crm.apply_status(jsonb) IS
    'Internal: a status event; cancelled and refunded take back what the '
    'order earned.';
COMMENT ON FUNCTION crm.apply_order_result(jsonb) IS
    'Internal: the shop''s answer to a decided order: keep or release.';
