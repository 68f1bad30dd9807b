-- fn_customers: who a request names.  The e-mail decides who the customer
-- is; the phone identifies only an order with no e-mail, the cookie only
-- one with neither (007).  lookup_customer finds without locking,
-- customer_of finds or creates and locks, the others are built on them.

-- lookup_customer: the id of the customer a request names, without
-- creating or locking it: by e-mail when one is given; else by phone (the
-- first customer with it); else by the cookie's customer id.  Forgotten
-- customers are never found.  NULL when nobody is named.
CREATE OR REPLACE FUNCTION crm.lookup_customer(email text, phone text,
    cookie_id bigint)
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
CREATE OR REPLACE FUNCTION crm.customer_of(email text, phone text,
    cookie_id bigint, name text, birthday date, doc jsonb,
    OUT customer crm.customer, OUT created boolean)
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

-- find_customer: returns the customer named by e-mail, else by phone, else
-- by the cookie's customer id (never a forgotten one), locked FOR UPDATE;
-- creates it when an e-mail or phone names nobody yet.  Takes the name and
-- birthday when given, and attaches a new e-mail or phone to a customer
-- that has none.  Returns NULL when nothing names a customer.
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
CREATE OR REPLACE FUNCTION crm.same_identity(c crm.customer, email text,
    phone text, cookie_id bigint) RETURNS boolean
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

-- identify_customer: the customer with this e-mail (trimmed, lower-cased),
-- created when new; NULL for an empty e-mail.  policy is the sha256 the
-- module registered (for the holdout of a new customer).
CREATE OR REPLACE FUNCTION crm.identify_customer(email text, policy text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    c  crm.customer;
BEGIN
    c := crm.find_customer(email, NULL, NULL, NULL, NULL,
                           crm.policy_doc(policy));
    RETURN c.customer_id;
END
$$;

COMMENT ON FUNCTION crm.identify_customer(text, text) IS
    'Called by the module for identity.upstream_header: the id of the '
    'customer with this e-mail, created when new.';

-- add_relative: adds a relative to the customer with that e-mail; returns
-- the relative's id.  Raises when no customer has the e-mail.
CREATE OR REPLACE FUNCTION crm.add_relative(email text, name text,
    relation text, birthday date) RETURNS bigint
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
