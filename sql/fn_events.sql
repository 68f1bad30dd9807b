-- fn_events: the spool's way in.  The module writes events in batches: one
-- call of crm.record_events() with the batch as newline-separated JSON
-- lines, exactly as they stand in the worker's spool file.  The event id is
-- made by the module, so a batch that is replayed after a partial write
-- inserts nothing twice.  When PostgreSQL refuses a batch, the module sends
-- it again to crm.record_events_slow(); each line is tried on its own and a
-- line that cannot be read is kept in crm.spool_reject instead of blocking
-- the lines after it.

-- record_events: writes a batch of spooled lines, in their order; returns
-- how many interactions were new.  Interactions are inserted in one
-- statement, once each, with the e-mail and phone each named kept beside
-- it, ids bounded and a total that cannot be kept named in the reason; only
-- the new ones that change something (an order that was not decided, a
-- payment, a status, a feedback's ticket) and the shop's answers to orders
-- ("kind": "order_result", not interactions) are then applied one by one,
-- an undecided order giving back a late decision's gift.  Lines of an unknown
-- kind go to crm.spool_reject.
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
                               OR (l.j ->> 'kind' = 'feedback'
                                   AND l.j ? 'ticket')
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
        WHEN 'feedback' THEN
            PERFORM crm.apply_feedback(line);
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

-- record_events_slow: writes a batch line by line; a line PostgreSQL cannot
-- read or apply goes to crm.spool_reject (once), a passing error (deadlock,
-- lock or statement timeout, shutdown) fails the whole batch so that it is
-- sent again.  Returns how many of the lines kept in crm.spool_reject were
-- events (not order_result lines), as the module counts lines.
CREATE OR REPLACE FUNCTION crm.record_events_slow(batch text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    l  text;
    n  integer := 0;
BEGIN
    FOR l IN SELECT x FROM string_to_table(batch, E'\n') AS x WHERE x <> ''
    LOOP
        BEGIN
            PERFORM crm.record_events(l);
        EXCEPTION WHEN OTHERS THEN
            -- 40: transaction rollback (deadlock, serialization);
            -- 55: object not in prerequisite state (lock not available);
            -- 57: operator intervention (timeouts, shutdown)
            IF left(SQLSTATE, 2) IN ('40', '55', '57') THEN
                RAISE;
            END IF;

            INSERT INTO crm.spool_reject (line, error)
            SELECT l, SQLERRM
             WHERE NOT EXISTS (SELECT 1 FROM crm.spool_reject r
                                WHERE md5(r.line) = md5(l) AND r.line = l);

            IF NOT starts_with(l, '{"kind":"order_result",') THEN
                n := n + 1;
            END IF;
        END;
    END LOOP;
    RETURN n;
END
$$;

COMMENT ON FUNCTION crm.record_events_slow(text) IS
    'Called by the module when a batch fails: writes it line by line; a '
    'line PostgreSQL cannot read goes to crm.spool_reject, a passing error '
    '(deadlock, timeout) fails the batch so that it is sent again; returns '
    'the number of events rejected.';
