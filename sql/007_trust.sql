-- 007: nobody borrows a customer's identity, and the ledger keeps what the
-- shop was told.
--
-- * The e-mail decides who the customer is: another e-mail is another
--   customer, even with a phone on file for someone else, so phones are no
--   longer unique.  The phone identifies only an order with no e-mail, the
--   cookie only one with neither.  A name or birthday comes onto the file
--   only with the e-mail, or where the file has none.
-- * An order id (or Idempotency-Key) sent again with another identity is a
--   conflict: no decision, and the first order's stays as it was.
-- * A decision tells whether it created the customer: only then, or when
--   the request carried that customer's cookie, may the module hand out a
--   cookie naming her.
-- * An order the shop was told nothing about (the decision came too late)
--   gives back whatever the late decision reserved.
-- * Values kept for staff are bounded; totals with an exponent are read,
--   and a total that cannot be kept says why in the event's reason.
-- * Events keep the e-mail and phone they named, so that forgetting a
--   customer finds them.


-- bounded, normalized values --------------------------------------------------

-- norm_email: the e-mail as the module keeps it (trimmed, lower-cased), or
-- NULL when it cannot be one: over 254 octets, no "@" with something on
-- both sides, a control character or a space inside.
CREATE FUNCTION crm.norm_email(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN octet_length(t) <= 254
                 AND t ~ '^[^[:space:][:cntrl:]]+@[^[:space:][:cntrl:]@]+$'
                THEN t END
      FROM lower(btrim(s, E' \t\r\n\f\v')) AS t
$$;

COMMENT ON FUNCTION crm.norm_email(text) IS
    'Internal: the e-mail trimmed and lower-cased, NULL when it cannot be '
    'one (over 254 octets, no "@", control characters or spaces).';


-- norm_phone: the digits of s, an 11-digit number starting with 8 as +7;
-- NULL unless 5 to 15 digits remain (as the module's normalizer).
CREATE FUNCTION crm.norm_phone(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN length(d) = 11 AND left(d, 1) = '8'
                THEN '7' || substr(d, 2)
                WHEN length(d) BETWEEN 5 AND 15 THEN d END
      FROM regexp_replace(s, '[^0-9]', '', 'g') AS d
$$;

COMMENT ON FUNCTION crm.norm_phone(text) IS
    'Internal: the phone as digits (8XXXXXXXXXX as 7XXXXXXXXXX), NULL '
    'unless 5 to 15 digits.';


-- norm_id: an order id or Idempotency-Key as kept: NULL when empty or
-- over 128 octets (the module drops longer ones before they get here).
CREATE FUNCTION crm.norm_id(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN octet_length(s) BETWEEN 1 AND 128 THEN s END
$$;

COMMENT ON FUNCTION crm.norm_id(text) IS
    'Internal: an order id or Idempotency-Key, NULL when empty or over 128 '
    'octets.';


-- parse_money: the amount in s rounded to cents (half away from zero):
-- "129.90", "1.5e2", "1E2", "12.3456789"; NULL when s is no number or the
-- amount does not fit numeric(14,2) (1000000000000 and more).
CREATE OR REPLACE FUNCTION crm.parse_money(s text) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN abs(v) < 1000000000000 THEN v END
      FROM (SELECT round(btrim(s)::numeric, 2) AS v
             WHERE s ~ ('^\s*-?[0-9]{1,30}(\.[0-9]{0,30})?'
                        '([eE][-+]?[0-9]{1,3})?\s*$')) AS m
$$;

COMMENT ON FUNCTION crm.parse_money(text) IS
    'Internal: an amount rounded to cents, NULL when not a number or '
    'beyond numeric(14,2).';


-- money_reason: why the total s is not kept, or NULL when it is (or none
-- was sent).
CREATE FUNCTION crm.money_reason(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN nullif(s, '') IS NOT NULL AND crm.parse_money(s) IS NULL
                THEN 'total "' || left(s, 40) || '" is not an amount below '
                     || '1000000000000: stored as NULL' END
$$;

COMMENT ON FUNCTION crm.money_reason(text) IS
    'Internal: the reason an event''s total was not stored, NULL when it '
    'was.';


-- customers ------------------------------------------------------------------

ALTER TABLE crm.customer DROP CONSTRAINT customer_phone_key;
CREATE INDEX customer_phone ON crm.customer (phone, customer_id)
    WHERE phone IS NOT NULL;

COMMENT ON COLUMN crm.customer.email IS
    'Lower-cased, at most 254 octets; the e-mail decides who the customer '
    'is, so it is unique.';
COMMENT ON COLUMN crm.customer.phone IS
    'Digits only; the last phone an order with this customer''s e-mail '
    'gave.  Not unique: an order with only a phone is booked to the first '
    'customer (lowest id) with that phone.';
COMMENT ON COLUMN crm.customer.name IS
    'At most 200 characters; set by an order with the e-mail, or by a '
    'weaker identity only while empty.';


-- lookup_customer: the id of the customer a request names, without
-- creating or locking it: by e-mail when one is given; else by phone (the
-- first customer with it); else by the cookie's customer id.  Forgotten
-- customers are never found.  NULL when nobody is named.
CREATE FUNCTION crm.lookup_customer(email text, phone text, cookie_id bigint)
RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id  bigint;
BEGIN
    IF email IS NOT NULL THEN
        SELECT x.customer_id INTO v_id FROM crm.customer AS x
         WHERE x.email = lookup_customer.email;

    ELSIF phone IS NOT NULL THEN
        SELECT x.customer_id INTO v_id FROM crm.customer AS x
         WHERE x.phone = lookup_customer.phone AND x.forgotten_at IS NULL
         ORDER BY x.phone, x.customer_id
         LIMIT 1;

    ELSIF cookie_id IS NOT NULL THEN
        SELECT x.customer_id INTO v_id FROM crm.customer AS x
         WHERE x.customer_id = cookie_id AND x.forgotten_at IS NULL;
    END IF;

    RETURN v_id;
END
$$;

COMMENT ON FUNCTION crm.lookup_customer(text, text, bigint) IS
    'Internal: the customer an e-mail, else a phone, else a cookie names '
    '(arguments normalized); NULL for nobody.';


-- customer_of: the customer a request names (see lookup_customer), locked
-- FOR UPDATE, created when an e-mail or phone names nobody yet; created
-- tells whether this call made it.  An order with the e-mail brings its
-- phone, name and birthday onto the file; a weaker identity (phone only,
-- cookie) only fills what is empty.  customer is NULL when nothing names
-- anybody.
CREATE FUNCTION crm.customer_of(email text, phone text, cookie_id bigint,
    name text, birthday date, doc jsonb, OUT customer crm.customer,
    OUT created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    c        crm.customer;
    v_id     bigint;
    v_email  text := crm.norm_email(email);
    v_phone  text := crm.norm_phone(phone);
    v_name   text := left(nullif(btrim(name), ''), 200);
    v_try    integer;
BEGIN
    created := false;

    -- two first orders with one new phone make one customer
    IF v_email IS NULL AND v_phone IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(
            hashtextextended('ngx_crm phone ' || v_phone, 0));
    END IF;

    FOR v_try IN 1 .. 5 LOOP
        v_id := crm.lookup_customer(v_email, v_phone, cookie_id);

        IF v_id IS NOT NULL THEN
            SELECT * INTO c FROM crm.customer AS x
             WHERE x.customer_id = v_id AND x.forgotten_at IS NULL
               FOR UPDATE;

            -- still the one named, once locked (not forgotten meanwhile)
            EXIT WHEN FOUND
                AND (v_email IS NULL OR c.email = v_email)
                AND (v_email IS NOT NULL OR v_phone IS NULL
                     OR c.phone = v_phone);
            c := NULL;
            CONTINUE;
        END IF;

        IF v_email IS NULL AND v_phone IS NULL THEN
            RETURN;
        END IF;

        -- new: the id first, so that the holdout is recorded with the row;
        -- a customer created meanwhile by another order is found next round
        v_id := nextval(pg_get_serial_sequence('crm.customer', 'customer_id'));

        INSERT INTO crm.customer (customer_id, email, phone, name, birthday,
                                  holdout)
        VALUES (v_id, v_email, v_phone, v_name, customer_of.birthday,
                crm.holdout_of(v_id, (doc #>> '{holdout,percent}')::numeric))
        ON CONFLICT DO NOTHING
        RETURNING * INTO c;

        IF FOUND THEN
            customer := c;
            created := true;
            RETURN;
        END IF;
    END LOOP;

    IF c.customer_id IS NULL THEN
        RETURN;
    END IF;

    IF v_email IS NOT NULL THEN
        IF (v_phone IS NOT NULL AND v_phone IS DISTINCT FROM c.phone)
           OR (v_name IS NOT NULL AND v_name IS DISTINCT FROM c.name)
           OR (customer_of.birthday IS NOT NULL
               AND customer_of.birthday IS DISTINCT FROM c.birthday)
        THEN
            UPDATE crm.customer AS x
               SET phone = coalesce(v_phone, x.phone),
                   name = coalesce(v_name, x.name),
                   birthday = coalesce(customer_of.birthday, x.birthday)
             WHERE x.customer_id = c.customer_id
            RETURNING * INTO c;
        END IF;

    ELSIF (v_name IS NOT NULL AND c.name IS NULL)
          OR (customer_of.birthday IS NOT NULL AND c.birthday IS NULL)
    THEN
        UPDATE crm.customer AS x
           SET name = coalesce(x.name, v_name),
               birthday = coalesce(x.birthday, customer_of.birthday)
         WHERE x.customer_id = c.customer_id
        RETURNING * INTO c;
    END IF;

    customer := c;
END
$$;

COMMENT ON FUNCTION crm.customer_of(text, text, bigint, text, date, jsonb)
    IS 'Internal: the customer a request names, locked, created on first '
       'sight, and whether this call created it.';


CREATE OR REPLACE FUNCTION crm.find_customer(email text, phone text,
    cookie_id bigint, name text, birthday date, doc jsonb)
RETURNS crm.customer
LANGUAGE plpgsql AS $$
DECLARE
    c  crm.customer;
BEGIN
    SELECT (f.customer).* INTO c
      FROM crm.customer_of(email, phone, cookie_id, name, birthday, doc) AS f;
    RETURN c;
END
$$;

COMMENT ON FUNCTION crm.find_customer(text, text, bigint, text, date, jsonb)
    IS 'Internal: crm.customer_of() without telling whether it created the '
       'customer.';


-- same_identity: whether a request names customer c by the rule of
-- lookup_customer: its e-mail when it gives one, else its phone, else its
-- cookie.
CREATE FUNCTION crm.same_identity(c crm.customer, email text, phone text,
    cookie_id bigint) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN crm.norm_email(email) IS NOT NULL
                THEN c.email IS NOT DISTINCT FROM crm.norm_email(email)
                WHEN crm.norm_phone(phone) IS NOT NULL
                THEN c.phone IS NOT DISTINCT FROM crm.norm_phone(phone)
                ELSE cookie_id IS NOT NULL AND c.customer_id = cookie_id
                     AND c.forgotten_at IS NULL
           END
$$;

COMMENT ON FUNCTION crm.same_identity(crm.customer, text, text, bigint) IS
    'Internal: whether a request''s e-mail, else phone, else cookie names '
    'this customer.';


-- the order decision -----------------------------------------------------------

-- decide_order: as in 002, and: a repeat whose identity is not the first
-- order's customer answers {"conflict": true} and changes nothing; a new
-- decision says whether it created the customer ("created", not kept in
-- the order's decision, so a repeat never claims it).
CREATE OR REPLACE FUNCTION crm.decide_order(o jsonb, policy text)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    doc         jsonb;
    c           crm.customer;
    r           record;
    d           jsonb;
    tier        jsonb;
    v_event     uuid := (o ->> 'event_id')::uuid;
    v_order     text := crm.norm_id(o ->> 'order_id');
    v_key       text := crm.norm_id(o ->> 'idempotency_key');
    v_cookie    bigint := crm.parse_id(o ->> 'customer_id');
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

        IF NOT crm.same_identity(c, o ->> 'email', o ->> 'phone', v_cookie)
        THEN
            RETURN jsonb_build_object('customer_id', NULL, 'card', NULL,
                                      'tier', NULL, 'discount', 0,
                                      'promises', '[]'::jsonb, 'gift', NULL,
                                      'holdout', false, 'repeat', true,
                                      'conflict', true);
        END IF;

        RETURN d || '{"repeat": true}';
    END IF;

    f := crm.customer_of(o ->> 'email', o ->> 'phone', v_cookie,
                         o ->> 'name', crm.parse_date(o ->> 'birthday'), doc);
    c := f.customer;

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
            left(nullif(o ->> 'currency', ''), 16), v_discount,
            tier ->> 'name', v_gift, d);

    RETURN d || jsonb_build_object('created', f.created);
END
$$;

COMMENT ON FUNCTION crm.decide_order(jsonb, text) IS
    'Called by the module before an order goes upstream: finds or creates '
    'the customer, reserves promises, decides tier and gift, records the '
    'order; returns the decision as jsonb ("conflict": a repeated order id '
    'with another identity; "created": this order made the customer).';


-- orders the shop was told nothing about ---------------------------------------

-- undecide_order: the order of event ev went to the shop with no decision
-- (the decision came too late, or its client left while it was parked),
-- yet a late decision may have been committed: its promises open again,
-- its gift is released, and the order keeps discount 0.  Returns the gift
-- cost to give back to the budget and its day (NULLs when none).
CREATE FUNCTION crm.undecide_order(ev uuid, OUT day date, OUT cost numeric)
LANGUAGE plpgsql AS $$
DECLARE
    o  crm.orders;
BEGIN
    SELECT * INTO o FROM crm.orders x WHERE x.event_id = ev;

    IF NOT FOUND OR NOT o.decided THEN
        RETURN;
    END IF;

    PERFORM 1 FROM crm.customer x
     WHERE x.customer_id = o.customer_id FOR UPDATE;

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


-- apply_order: records an order that went upstream without a decision:
-- no discount, promise or gift, and a late decision of it given back.
-- Returns the gift cost to give back to the budget, as apply_order_result.
DROP FUNCTION crm.apply_order(jsonb);

CREATE FUNCTION crm.apply_order(e jsonb, OUT day date, OUT cost numeric)
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

        c := crm.find_customer(e ->> 'email', e ->> 'phone',
                               crm.parse_id(e ->> 'customer_id'),
                               e ->> 'name', crm.parse_date(e ->> 'birthday'),
                               crm.policy_doc(e ->> 'policy'));

        IF c.customer_id IS NULL THEN
            RETURN;
        END IF;

        -- a late decision that held the customer's row may have come first
        INSERT INTO crm.orders (event_id, customer_id, order_id, status,
                                decided, policy, total, currency, decision,
                                created_at)
        VALUES (v_event, c.customer_id, v_order, 'attempted', false,
                e ->> 'policy', crm.parse_money(e ->> 'total'),
                left(nullif(e ->> 'currency', ''), 16),
                jsonb_build_object('customer_id', c.customer_id, 'card', NULL,
                                   'tier', NULL, 'discount', 0,
                                   'promises', '[]'::jsonb, 'gift', NULL,
                                   'holdout', c.holdout, 'repeat', false),
                coalesce(to_timestamp((e ->> 'received_at')::float8), now()))
        ON CONFLICT DO NOTHING;

        UPDATE crm.event AS x SET customer_id = c.customer_id
         WHERE x.event_id = v_event AND x.customer_id IS NULL;
    END IF;

    SELECT u.day, u.cost INTO day, cost FROM crm.undecide_order(v_event) AS u;
END
$$;

COMMENT ON FUNCTION crm.apply_order(jsonb) IS
    'Internal: records an order that went upstream without a decision, and '
    'gives back what a late decision of it reserved.';


-- events -----------------------------------------------------------------------

ALTER TABLE crm.event ADD COLUMN email text, ADD COLUMN phone text;

CREATE INDEX event_email ON crm.event (email) WHERE email IS NOT NULL;
CREATE INDEX event_phone ON crm.event (phone) WHERE phone IS NOT NULL;

COMMENT ON COLUMN crm.event.email IS
    'The e-mail the request named (normalized), for crm.forget_customer().';
COMMENT ON COLUMN crm.event.phone IS
    'The phone the request named (digits), for crm.forget_customer().';
COMMENT ON COLUMN crm.event.reason IS
    'Why the body was passed on unread (bad_body), or why a value of it was '
    'not kept (an e-mail that cannot be one, a total out of range).';


-- record_events: as in 002, and: the e-mail and phone of each event kept
-- beside it, bounded ids, a total that cannot be kept named in the
-- reason, and an undecided order giving back a late decision's gift.
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
                               order_id, payload, body, state, reason, node,
                               email, phone)
        SELECT e.event_id, to_timestamp(e.received_at), e.kind,
               e.customer_id, crm.norm_id(e.order_id), e.payload,
               decode(e.body, 'base64'), e.state,
               coalesce(e.reason, crm.money_reason(e.total)), e.node,
               crm.norm_email(e.email), crm.norm_phone(e.phone)
          FROM l,
               jsonb_to_record(l.j) AS e(event_id uuid,
                   received_at double precision, kind text,
                   customer_id bigint, order_id text, payload jsonb,
                   body text, state text, reason text, node text,
                   email text, phone text, total text)
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
        v_day := NULL;

        CASE line ->> 'kind'
        WHEN 'order' THEN
            SELECT r.day, r.cost INTO v_day, v_cost
              FROM crm.apply_order(line) AS r;
        WHEN 'payment' THEN
            PERFORM crm.apply_payment(line);
        WHEN 'status' THEN
            PERFORM crm.apply_status(line);
        ELSE
            SELECT r.day, r.cost INTO v_day, v_cost
              FROM crm.apply_order_result(line) AS r;
        END CASE;

        IF v_day IS NOT NULL THEN
            v_days := v_days || v_day;
            v_costs := v_costs || v_cost;
        END IF;
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
    'idempotently, and applies orders without a decision, payments, '
    'statuses and order results.';

COMMENT ON COLUMN crm.interactions.state IS
    'ok, no_customer, bad_body, db_unavailable or conflict (an order id or '
    'Idempotency-Key sent again with another identity): what the module '
    'decided.';
COMMENT ON COLUMN crm.interactions.reason IS
    'Why the state is not ok, e.g. the JSON error of a bad body, or why a '
    'value was not kept (an e-mail that cannot be one, a total out of '
    'range, an order id over 128 octets).';
