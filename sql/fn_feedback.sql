-- fn_feedback: feedback tickets.  The module numbers a ticket and dates it
-- when the request arrives; crm.record_events() opens it from the event
-- line through crm.apply_feedback().  Staff answer and resolve tickets;
-- crm.check_breaches(), called every few seconds by the module, marks the
-- tickets whose due time passed unanswered and compensates the customer.

-- open_ticket_promise: the promise of kind ("compensation",
-- "sla_breach") a ticket gives customer cid, valid for the policy's
-- loyalty.promise.valid_for; none (NULL) when percent is not 1..100, when
-- she never paid an order (a contact form costs nothing to send, so a
-- stranger's complaint is answered and counted but mints no discount), or
-- when one of that kind is still open or reserved for her, so that
-- complaints and missed answers are not stacked into discounts.
CREATE OR REPLACE FUNCTION crm.open_ticket_promise(cid bigint, kind text,
    percent bigint, doc jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v  bigint;
BEGIN
    IF percent IS NULL OR percent NOT BETWEEN 1 AND 100
       OR NOT EXISTS (SELECT 1 FROM crm.orders AS o
                       WHERE o.customer_id = cid AND o.paid_at IS NOT NULL)
       OR EXISTS (SELECT 1 FROM crm.promise AS p
                   WHERE p.customer_id = cid
                     AND p.kind = open_ticket_promise.kind
                     AND p.status IN ('open', 'reserved'))
    THEN
        RETURN NULL;
    END IF;

    INSERT INTO crm.promise (customer_id, kind, percent, valid_until)
    VALUES (cid, open_ticket_promise.kind, percent,
            now() + make_interval(secs => coalesce(
                (doc #>> '{loyalty,promise,valid_for_s}')::float8,
                30 * 86400)))
    RETURNING promise_id INTO v;

    RETURN v;
END
$$;

COMMENT ON FUNCTION crm.open_ticket_promise(bigint, text, bigint, jsonb) IS
    'Internal: a ticket''s compensation or sla_breach promise, for a '
    'customer who paid an order, one open at a time.';

-- apply_feedback: opens the ticket of a feedback event line: the customer
-- found or created as for orders (the phone and name given are stored on
-- her where she has none), a conflict's compensation promised unless one
-- is still open for her.  The line carries what the module
-- decided: "ticket", "received_at", "target_at", "due_at" (epoch seconds),
-- "conflict", "compensation" and "breach_compensation" (percents).  A line
-- with no ticket (nobody to answer) opens none; the same ticket for the
-- same customer again is a retry and changes nothing; the same ticket for
-- another customer is an error, so the line is kept in crm.spool_reject.
CREATE OR REPLACE FUNCTION crm.apply_feedback(e jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c          crm.customer;
    t          crm.ticket;
    v_doc      jsonb;
    v_ticket   text := e ->> 'ticket';
    v_event    uuid := (e ->> 'event_id')::uuid;
    v_rating   bigint := crm.parse_id(e ->> 'rating');
    v_percent  bigint := crm.parse_id(e ->> 'compensation');
    v_promise  bigint;
    v_phone    text := crm.norm_phone(e ->> 'phone');
BEGIN
    IF v_ticket IS NULL THEN
        RETURN;
    END IF;

    v_doc := crm.policy_doc(e ->> 'policy');

    -- a contact form proves nothing: it finds or makes the customer, and
    -- fills in her phone and name only where she has none, never
    -- overwriting what an order or a login gave
    c := crm.find_customer(e ->> 'email',
                           CASE WHEN crm.norm_email(e ->> 'email') IS NULL
                                THEN e ->> 'phone' END,
                           crm.parse_id(e ->> 'customer_id'), NULL, NULL,
                           v_doc);

    IF c.customer_id IS NULL THEN
        RETURN;
    END IF;

    UPDATE crm.customer AS x
       SET phone = coalesce(x.phone, v_phone),
           name = coalesce(x.name, nullif(btrim(e ->> 'name'), ''))
     WHERE x.customer_id = c.customer_id
       AND ((x.phone IS NULL AND v_phone IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM crm.customer AS y
                              WHERE y.phone = v_phone))
            OR (x.name IS NULL AND nullif(btrim(e ->> 'name'), '') IS NOT NULL));

    SELECT * INTO t FROM crm.ticket AS x WHERE x.ticket = v_ticket;

    IF FOUND THEN
        IF t.customer_id = c.customer_id THEN
            RETURN;
        END IF;

        RAISE EXCEPTION 'ticket % was given to another customer', v_ticket;
    END IF;

    -- one compensation open at a time: complaints cannot be stacked into
    -- discounts (the next is opened once this one is kept or gone)
    IF (e ->> 'conflict')::boolean THEN
        v_promise := crm.open_ticket_promise(c.customer_id, 'compensation',
                                             v_percent, v_doc);
    END IF;

    INSERT INTO crm.ticket (ticket, event_id, customer_id, order_id,
                            category, rating, message, conflict, policy,
                            received_at, target_at, due_at, breach_percent,
                            compensation)
    VALUES (v_ticket, v_event, c.customer_id, crm.norm_id(e ->> 'order_id'),
            left(nullif(e ->> 'category', ''), 256),
            CASE WHEN v_rating BETWEEN 1 AND 5 THEN v_rating END,
            left(e ->> 'message', 65536),
            coalesce((e ->> 'conflict')::boolean, false), e ->> 'policy',
            to_timestamp((e ->> 'received_at')::float8),
            to_timestamp((e ->> 'target_at')::float8),
            to_timestamp((e ->> 'due_at')::float8),
            least(greatest(coalesce(
                crm.parse_id(e ->> 'breach_compensation'), 0), 0), 100),
            v_promise);

    UPDATE crm.event AS x SET customer_id = c.customer_id
     WHERE x.event_id = v_event AND x.customer_id IS NULL;
END
$$;

COMMENT ON FUNCTION crm.apply_feedback(jsonb) IS
    'Internal: opens the ticket of a feedback event, with a conflict''s '
    'compensation.';

-- ticket_of: the ticket named by s, as a customer may read it out (any
-- case, spaces and dashes ignored), locked FOR UPDATE; an ERROR naming it
-- when there is none.
CREATE OR REPLACE FUNCTION crm.ticket_of(s text) RETURNS crm.ticket
LANGUAGE plpgsql AS $$
DECLARE
    t  crm.ticket;
BEGIN
    SELECT * INTO t FROM crm.ticket AS x
     WHERE x.ticket = upper(translate(s, ' -', ''))
       FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown ticket: %', s
            USING ERRCODE = 'no_data_found';
    END IF;

    RETURN t;
END
$$;

COMMENT ON FUNCTION crm.ticket_of(text) IS
    'Internal: the ticket a staff member names, locked; an error when '
    'unknown.';

-- answer_ticket: records an answer by staff; the first one is the
-- ticket's first response.  Returns the time of the first response.
CREATE OR REPLACE FUNCTION crm.answer_ticket(ticket text, staff text,
    reply text)
RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    t  crm.ticket := crm.ticket_of(answer_ticket.ticket);
BEGIN
    IF nullif(btrim(staff), '') IS NULL THEN
        RAISE EXCEPTION 'answer_ticket: staff must name who answered';
    END IF;

    INSERT INTO crm.ticket_reply (ticket, staff, reply)
    VALUES (t.ticket, staff, reply);

    UPDATE crm.ticket AS x
       SET answered_at = coalesce(x.answered_at, now()),
           answered_by = coalesce(x.answered_by, answer_ticket.staff)
     WHERE x.ticket = t.ticket
    RETURNING x.answered_at INTO t.answered_at;

    RETURN t.answered_at;
END
$$;

COMMENT ON FUNCTION crm.answer_ticket(text, text, text) IS
    'Records a staff answer to a ticket; the first is its first response. '
    'Returns when the first response was given.  An unknown ticket is an '
    'error.';

-- resolve_ticket: closes a ticket with a note.  withdraw_compensation:
-- the conflict was unfounded, and its compensation, while still open, is
-- withdrawn.  Returns whether a compensation was withdrawn.
CREATE OR REPLACE FUNCTION crm.resolve_ticket(ticket text, note text,
    withdraw_compensation boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    t  crm.ticket := crm.ticket_of(resolve_ticket.ticket);
BEGIN
    UPDATE crm.ticket AS x
       SET resolved_at = coalesce(x.resolved_at, now()),
           resolution = resolve_ticket.note
     WHERE x.ticket = t.ticket;

    IF withdraw_compensation AND t.compensation IS NOT NULL THEN
        UPDATE crm.promise AS p
           SET status = 'withdrawn', updated_at = now()
         WHERE p.promise_id = t.compensation AND p.status = 'open';

        RETURN FOUND;
    END IF;

    RETURN false;
END
$$;

COMMENT ON FUNCTION crm.resolve_ticket(text, text, boolean) IS
    'Closes a ticket; with withdraw_compensation, a conflict found '
    'unfounded gives back its compensation if not used yet.';

-- check_breaches: marks the unanswered, unresolved tickets whose due time
-- has passed as breached, once each, oldest due first and at most batch
-- of them (tickets a staff member holds are left for the next call), and
-- opens their sla_breach promises.  One caller at a time across nodes (a
-- second one returns 0 at once); returns how many tickets it marked, so
-- that a caller given batch calls again at once.
DROP FUNCTION IF EXISTS crm.check_breaches();

CREATE OR REPLACE FUNCTION crm.check_breaches(batch integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    t  record;
    n  integer := 0;
    v  bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtextextended('ngx_crm breaches', 0))
    THEN
        RETURN 0;
    END IF;

    -- picked once (a CTE, materialized), not a LIMIT the plan may rescan
    FOR t IN
        WITH picked AS MATERIALIZED (
            SELECT y.ticket FROM crm.ticket AS y
             WHERE y.answered_at IS NULL AND y.breached_at IS NULL
               AND y.resolved_at IS NULL AND y.due_at <= now()
             ORDER BY y.due_at
             LIMIT greatest(batch, 1)
               FOR UPDATE SKIP LOCKED)
        UPDATE crm.ticket AS x SET breached_at = now()
          FROM picked
         WHERE x.ticket = picked.ticket
        RETURNING x.ticket, x.customer_id, x.breach_percent, x.policy
    LOOP
        n := n + 1;

        v := crm.open_ticket_promise(t.customer_id, 'sla_breach',
                                     t.breach_percent,
                                     crm.policy_doc(t.policy));

        IF v IS NOT NULL THEN
            UPDATE crm.ticket AS x SET breach_promise = v
             WHERE x.ticket = t.ticket;
        END IF;
    END LOOP;

    RETURN n;
END
$$;

COMMENT ON FUNCTION crm.check_breaches(integer) IS
    'Called by the module every few seconds: marks at most batch tickets '
    'whose due time passed with no response as breached, once each, with '
    'their sla_breach promise; returns how many.';
