-- Banners: what the module needs to choose a customer's banner without
-- waiting on PostgreSQL.  A worker asks crm.banner_state() once per
-- customer when its shared-memory entry is missing or old, and keeps the
-- answer; the page views themselves never query.


-- birthday_of: the occurrence of a birthday nearest to a day (this year's,
-- last year's or next year's; 29 February is the 28th in other years)
CREATE OR REPLACE FUNCTION crm.birthday_of(birthday date, day date)
RETURNS date
LANGUAGE sql IMMUTABLE AS $$
    SELECT d FROM (
        SELECT (birthday + make_interval(years =>
                    (extract(year FROM day)::integer
                     - extract(year FROM birthday)::integer) + k))::date AS d
          FROM generate_series(-1, 1) AS k
    ) AS o
    ORDER BY abs(d - day), d
    LIMIT 1
$$;

COMMENT ON FUNCTION crm.birthday_of(date, date) IS
    'Internal: the occurrence of a birthday nearest to a day.';


-- banner_state: the banners whose trigger holds for a customer now, in the
-- order of spec (the policy's banners as the module sends them: "id",
-- "when", and for birthday "days_before", "days_after", "gift",
-- "relatives"), each with the values of its placeholders; the customer's
-- name; today's impressions per banner id (all nodes, the holdout's
-- would_show exposures counted alike), so that a cap
-- counted on one node is known to the others.  A birthday banner that
-- holds promises its gift here, once per person and year.  Holdout
-- customers get no birthday or surprise_sent banner: those come back
-- marked "would_show", to be counted as exposures, not shown.  NULL for a
-- customer who does not exist or was forgotten.
CREATE OR REPLACE FUNCTION crm.banner_state(cid bigint, policy text,
    spec jsonb)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    doc      jsonb := crm.policy_doc(policy);
    c        crm.customer;
    tz       text;
    today    date;
    b        jsonb;
    vars     jsonb;
    out      jsonb := '[]';
    v_max    integer;
    v_disc   integer;
    v_until  timestamptz;
    r        record;
    v_prom   bigint;
    v_year   integer;
    v_gift   jsonb;
BEGIN
    SELECT * INTO c FROM crm.customer AS x
     WHERE x.customer_id = cid AND x.forgotten_at IS NULL;

    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    tz := coalesce(doc ->> 'timezone', 'UTC');
    today := (now() AT TIME ZONE tz)::date;

    FOR b IN SELECT e FROM jsonb_array_elements(coalesce(spec, '[]')) AS e
    LOOP
        vars := NULL;

        CASE b ->> 'when'

        WHEN 'conflict' THEN
            -- an open conflict ticket, else an open compensation or
            -- sla_breach promise
            SELECT jsonb_build_object('ticket', t.ticket,
                       'discount', coalesce(p.percent::text, ''))
              INTO vars
              FROM crm.ticket AS t
              LEFT JOIN crm.promise AS p
                     ON p.promise_id = t.compensation
                    AND p.status IN ('open', 'reserved')
             WHERE t.customer_id = cid AND t.conflict
               AND t.resolved_at IS NULL
             ORDER BY t.received_at DESC
             LIMIT 1;

            IF vars IS NULL THEN
                SELECT jsonb_build_object(
                           'ticket', coalesce((SELECT t.ticket
                                                 FROM crm.ticket AS t
                                                WHERE t.compensation
                                                      = p.promise_id
                                                   OR t.breach_promise
                                                      = p.promise_id
                                                LIMIT 1), ''),
                           'discount', p.percent::text)
                  INTO vars
                  FROM crm.promise AS p
                 WHERE p.customer_id = cid
                   AND p.kind IN ('compensation', 'sla_breach')
                   AND p.status = 'open' AND p.valid_until >= now()
                 ORDER BY p.created_at DESC
                 LIMIT 1;
            END IF;

        WHEN 'order_delayed' THEN
            SELECT jsonb_build_object('order_id', coalesce(o.order_id, ''),
                                      'eta', coalesce(o.eta, ''))
              INTO vars
              FROM crm.orders AS o
             WHERE o.customer_id = cid AND o.status = 'delayed'
             ORDER BY o.updated_at DESC
             LIMIT 1;

        WHEN 'new_card' THEN
            IF c.card_number IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM crm.orders AS o
                                WHERE o.customer_id = cid
                                  AND o.created_at > c.card_issued_at)
            THEN
                vars := jsonb_build_object('card', c.card_number,
                            'tier', coalesce(crm.tier_of(doc, c.paid_orders,
                                                         c.total_spent)
                                             ->> 'name', ''));
            END IF;

        WHEN 'discount_ready' THEN
            -- what the next order would get: whole open promises, the
            -- first to expire first, within max_discount (as decided)
            v_max := coalesce((doc #>> '{loyalty,promise,max_discount}')
                              ::integer, 100);
            v_disc := 0;
            v_until := NULL;

            FOR r IN
                SELECT p.percent, p.valid_until FROM crm.promise AS p
                 WHERE p.customer_id = cid AND p.status = 'open'
                   AND p.valid_until >= now()
                 ORDER BY p.valid_until, p.promise_id
            LOOP
                CONTINUE WHEN v_disc + r.percent > v_max;
                v_disc := v_disc + r.percent;
                v_until := coalesce(v_until, r.valid_until);
            END LOOP;

            IF v_disc > 0 THEN
                vars := jsonb_build_object('discount', v_disc::text,
                            'valid_until',
                            to_char(v_until AT TIME ZONE tz, 'YYYY-MM-DD'));
            END IF;

        WHEN 'surprise_sent' THEN
            SELECT jsonb_build_object('gift', o.gift,
                                      'order_id', coalesce(o.order_id, ''))
              INTO vars
              FROM (SELECT o.gift, o.order_id FROM crm.orders AS o
                     WHERE o.customer_id = cid AND o.decided
                       AND o.status NOT IN ('attempted', 'refused',
                                            'abandoned')
                     ORDER BY o.created_at DESC
                     LIMIT 1) AS o
             WHERE o.gift IS NOT NULL;

        WHEN 'birthday' THEN
            FOR r IN
                SELECT 0::bigint AS person, c.name AS name,
                       crm.birthday_of(c.birthday, today) AS day
                 WHERE c.birthday IS NOT NULL
                UNION ALL
                SELECT x.relative_id, x.name,
                       crm.birthday_of(x.birthday, today)
                  FROM crm.relative AS x
                 WHERE x.customer_id = cid AND x.birthday IS NOT NULL
                   AND coalesce((b ->> 'relatives')::boolean, false)
                ORDER BY 1
            LOOP
                CONTINUE WHEN today NOT BETWEEN
                    r.day - coalesce((b ->> 'days_before')::integer, 0)
                    AND r.day + coalesce((b ->> 'days_after')::integer, 0);

                vars := jsonb_build_object('relative', coalesce(r.name, ''),
                                           'discount', '', 'valid_until', '');

                IF NOT c.holdout
                   AND coalesce((b ->> 'gift')::integer, 0) BETWEEN 1 AND 100
                THEN
                    v_year := extract(year FROM r.day)::integer;

                    INSERT INTO crm.birthday_gift (customer_id, person, year)
                    VALUES (cid, r.person, v_year)
                    ON CONFLICT DO NOTHING;

                    IF FOUND THEN
                        INSERT INTO crm.promise (customer_id, kind, percent,
                                                 valid_until)
                        VALUES (cid, 'birthday', (b ->> 'gift')::integer,
                                now() + make_interval(secs => coalesce(
                                    (doc #>> '{loyalty,promise,valid_for_s}')
                                    ::float8, 30 * 86400)))
                        RETURNING promise_id INTO v_prom;

                        UPDATE crm.birthday_gift AS g
                           SET promise_id = v_prom
                         WHERE g.customer_id = cid AND g.person = r.person
                           AND g.year = v_year;
                    END IF;

                    -- the gift of this birthday, as it stands
                    SELECT jsonb_build_object('discount', p.percent::text,
                               'valid_until',
                               to_char(p.valid_until AT TIME ZONE tz,
                                       'YYYY-MM-DD'))
                      INTO v_gift
                      FROM crm.birthday_gift AS g
                      JOIN crm.promise AS p ON p.promise_id = g.promise_id
                     WHERE g.customer_id = cid AND g.person = r.person
                       AND g.year = v_year;

                    vars := vars || coalesce(v_gift, '{}');
                END IF;

                EXIT;
            END LOOP;

        ELSE
            NULL;
        END CASE;

        IF vars IS NOT NULL THEN
            out := out || jsonb_build_array(jsonb_build_object(
                'id', b ->> 'id',
                'vars', vars,
                'would_show', c.holdout
                              AND b ->> 'when' IN ('birthday',
                                                   'surprise_sent')));
        END IF;
    END LOOP;

    RETURN jsonb_build_object(
        'name', coalesce(c.name, ''),
        'holdout', c.holdout,
        'banners', out,
        'shown', coalesce((
            SELECT jsonb_object_agg(s.id, s.n)
              FROM (SELECT e.payload ->> 'banner' AS id, count(*) AS n
                      FROM crm.event AS e
                     WHERE e.kind = 'banner' AND e.customer_id = cid
                       AND e.received_at >= (today::timestamp AT TIME ZONE tz)
                     GROUP BY 1) AS s
             WHERE s.id IS NOT NULL), '{}'));
END
$$;

COMMENT ON FUNCTION crm.banner_state(bigint, text, jsonb) IS
    'The banners that apply to a customer now, in policy order, with their '
    'placeholders'' values, her name and today''s impressions per banner; '
    'promises a birthday gift once per person and year.  Called by the '
    'module to fill its shared-memory banner state.';


-- banner_rows: crm.banner_state() as rows, for the module to read without
-- parsing JSON: (0, NULL, false, 0, 'name', her name) first, then one row
-- a placeholder of each banner (n from 1, in order; key NULL for a banner
-- without placeholders).  No rows for a customer who is not there.
CREATE OR REPLACE FUNCTION crm.banner_rows(cid bigint, policy text,
    spec jsonb)
RETURNS TABLE (n integer, id text, would_show boolean, shown bigint,
               key text, value text)
LANGUAGE sql AS $$
    WITH s AS MATERIALIZED (
        SELECT crm.banner_state(cid, policy, spec) AS j
    )
    SELECT 0, NULL::text, false, 0::bigint, 'name'::text, s.j ->> 'name'
      FROM s
     WHERE s.j IS NOT NULL
    UNION ALL
    SELECT b.n::integer, b.e ->> 'id', (b.e ->> 'would_show')::boolean,
           coalesce((s.j -> 'shown' ->> (b.e ->> 'id'))::bigint, 0),
           v.key, v.value
      FROM s
     CROSS JOIN LATERAL jsonb_array_elements(s.j -> 'banners')
           WITH ORDINALITY AS b(e, n)
      LEFT JOIN LATERAL jsonb_each_text(b.e -> 'vars') AS v(key, value)
             ON true
     WHERE s.j IS NOT NULL
     ORDER BY 1
$$;

COMMENT ON FUNCTION crm.banner_rows(bigint, text, jsonb) IS
    'crm.banner_state() as rows (banner ordinal, id, would_show, shown '
    'today, placeholder, value), as the module reads it.';


-- banner_changed: a change to what a customer's banners would be tells
-- every nginx node (NOTIFY crm_banner, her id): each node's listening
-- worker looks her state up again at once.  A row trigger on the tables
-- banner_state() reads, so staff's own UPDATEs count as much as the
-- module's functions; a transaction's notifications with the same id are
-- sent once, at commit.
CREATE OR REPLACE FUNCTION crm.banner_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.customer_id IS NOT NULL THEN
        PERFORM pg_notify('crm_banner', OLD.customer_id::text);
    END IF;

    IF TG_OP <> 'DELETE' AND NEW.customer_id IS NOT NULL THEN
        PERFORM pg_notify('crm_banner', NEW.customer_id::text);
    END IF;

    RETURN NULL;
END
$$;

COMMENT ON FUNCTION crm.banner_changed() IS
    'Trigger: NOTIFY crm_banner with the customer id of a changed row, so '
    'that the nginx nodes look her banner state up again.';

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['promise', 'orders', 'ticket', 'customer',
                             'relative', 'gift']
    LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER banner_changed'
                       ' AFTER INSERT OR UPDATE OR DELETE ON crm.%I'
                       ' FOR EACH ROW EXECUTE FUNCTION crm.banner_changed()',
                       t);
    END LOOP;
END
$$;
