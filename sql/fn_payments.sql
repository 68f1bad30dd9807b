-- fn_payments: a payment makes an order paid and counts towards the
-- customer's tier and loyalty card.

-- issue_card: gives the customer a loyalty card unless it has one: prefix
-- and 8 random digits, unique; returns the card number.
CREATE OR REPLACE FUNCTION crm.issue_card(cid bigint, prefix text) RETURNS text
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

COMMENT ON FUNCTION crm.issue_card(bigint, text) IS
    'Internal: issues a loyalty card (prefix and 8 random digits) once.';

-- apply_payment: the order becomes paid (once) and counts towards the
-- customer's tier; the card is issued when after_paid_orders is reached,
-- and a repeat_order promise opened at the tier's discount.  An unknown
-- order is created from the payment.  Returns nothing.
CREATE OR REPLACE FUNCTION crm.apply_payment(e jsonb) RETURNS void
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
        c := crm.record_undecided_order(e, v_order);
        IF c.customer_id IS NULL THEN
            RETURN;
        END IF;
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

COMMENT ON FUNCTION crm.apply_payment(jsonb) IS
    'Internal: a payment event: paid once, card, repeat_order promise.';
