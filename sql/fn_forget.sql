-- fn_forget: forgetting a customer who asks to be forgotten (008).  Rare
-- and for staff, not for the request path: it scans crm.event and
-- crm.spool_reject.

-- forget_customer(customer_id): erases the customer's personal data and
-- every recorded copy of it:
--   * crm.customer: e-mail, phone, name, birthday, card number (also in
--     the decisions kept with her orders); forgotten_at is set;
--   * crm.relative: her relatives are deleted;
--   * crm.event: payload, body, e-mail and phone are set to NULL for every
--     event booked to her id, naming her e-mail, naming her phone (unless
--     the event names another customer: phones are shared), or whose body
--     or payload holds her e-mail as a client may write it: in any case,
--     each character as itself, %XX-encoded or a JSON \uXXXX escape;
--   * crm.spool_reject: lines that name her are deleted: a line that parses
--     as JSON by its "email", "phone" or "customer_id" field, its payload
--     or its base64 "body" decoded, and any line by its text: the e-mail
--     as above, or, for a line that does not parse, the phone's digits
--     standing alone.
-- Returns true when a customer was forgotten; false when there is no such
-- customer or she was forgotten before (events booked to her id since are
-- erased all the same).  It scans crm.event and crm.spool_reject: it is
-- rare and staff-only.
CREATE OR REPLACE FUNCTION crm.forget_customer(customer_id bigint)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    c        crm.customer;
    v_pat    text;
    v_hit    boolean;
    v_lines  bigint[] := '{}';
    j        jsonb;
    r        record;
BEGIN
    SELECT * INTO c FROM crm.customer AS x
     WHERE x.customer_id = forget_customer.customer_id
       FOR UPDATE;

    IF NOT FOUND THEN
        RETURN false;
    END IF;

    IF c.forgotten_at IS NULL THEN
        UPDATE crm.customer AS x
           SET email = NULL, phone = NULL, name = NULL, birthday = NULL,
               card_number = NULL, forgotten_at = now()
         WHERE x.customer_id = c.customer_id;

        UPDATE crm.orders AS o
           SET decision = jsonb_set(o.decision, '{card}', 'null')
         WHERE o.customer_id = c.customer_id
           AND o.decision ->> 'card' IS NOT NULL;
    END IF;

    DELETE FROM crm.relative AS x WHERE x.customer_id = c.customer_id;

    -- The e-mail as a regular expression over lower-cased text: each
    -- character as itself, as the escape encoding of its bytes (how a
    -- bytea reads as text), %XX of its UTF-8 bytes, or a JSON \uXXXX
    -- escape (its backslash doubled in a bytea's escape encoding), of
    -- either case; a space also as "+".
    IF c.email IS NOT NULL THEN
        SELECT string_agg('(?:' || a.alts || ')', '' ORDER BY ch.n)
          INTO v_pat
          FROM regexp_split_to_table(c.email, '') WITH ORDINALITY
               AS ch(s, n),
               LATERAL (
                   SELECT string_agg(DISTINCT f.alt, '|') AS alts
                     FROM unnest(ARRAY[lower(ch.s), upper(ch.s)]) AS v(s),
                          LATERAL (VALUES
                              (regexp_replace(v.s, '([^[:alnum:]])',
                                              '\\\1', 'g')),
                              (regexp_replace(
                                   encode(convert_to(v.s, 'UTF8'), 'escape'),
                                   '([^[:alnum:]])', '\\\1', 'g')),
                              ((SELECT string_agg('%' || lpad(to_hex(
                                                      get_byte(b, i)), 2,
                                                      '0'), '')
                                  FROM convert_to(v.s, 'UTF8') AS b,
                                       generate_series(0, length(b) - 1)
                                       AS i)),
                              (CASE WHEN ascii(v.s) < 65536
                                    THEN '\\\\?u' || lpad(to_hex(ascii(v.s)),
                                                          4, '0') END),
                              (CASE WHEN v.s = ' ' THEN '\+' END)
                          ) AS f(alt)
                    WHERE f.alt IS NOT NULL
               ) AS a;
    END IF;

    UPDATE crm.event AS x
       SET payload = NULL, body = NULL, email = NULL, phone = NULL
     WHERE (x.payload IS NOT NULL OR x.body IS NOT NULL
            OR x.email IS NOT NULL OR x.phone IS NOT NULL)
       AND (x.customer_id = c.customer_id
            OR x.email = c.email
            OR (x.phone = c.phone AND x.customer_id IS NULL
                AND x.email IS NULL)
            OR lower(encode(x.body, 'escape')) ~ v_pat
            OR lower(x.payload::text) ~ v_pat);

    -- what she wrote in her tickets and what staff answered her
    UPDATE crm.ticket AS x SET message = NULL
     WHERE x.customer_id = c.customer_id AND x.message IS NOT NULL;

    UPDATE crm.ticket_reply AS x SET reply = NULL
     WHERE x.reply IS NOT NULL
       AND x.ticket IN (SELECT t.ticket FROM crm.ticket AS t
                         WHERE t.customer_id = c.customer_id);

    FOR r IN SELECT x.reject_id, x.line, x.error FROM crm.spool_reject AS x
    LOOP
        v_hit := lower(r.line || E'\n' || r.error) ~ v_pat;

        IF v_hit IS NOT TRUE THEN
            BEGIN
                j := r.line::jsonb;
                v_hit := crm.norm_email(j ->> 'email') = c.email
                    OR crm.norm_phone(j ->> 'phone') = c.phone
                    OR crm.parse_id(j ->> 'customer_id') = c.customer_id
                    OR lower((j -> 'payload')::text) ~ v_pat
                    OR lower(encode(decode(j ->> 'body', 'base64'),
                                    'escape')) ~ v_pat;
            EXCEPTION WHEN data_exception THEN
                -- not JSON, or a "body" that is not base64: the text only
                v_hit := r.line ~ ('(^|[^0-9])' || c.phone || '($|[^0-9])');
            END;
        END IF;

        IF v_hit THEN
            v_lines := v_lines || r.reject_id;
        END IF;
    END LOOP;

    DELETE FROM crm.spool_reject AS x WHERE x.reject_id = ANY (v_lines);

    RETURN c.forgotten_at IS NULL;
END
$$;

COMMENT ON FUNCTION crm.forget_customer(bigint) IS
    'Staff: forgets the customer with this id: erases e-mail, phone, name, '
    'birthday and card number, deletes relatives, erases every event that '
    'is hers or names her e-mail or phone (bodies and payloads searched for '
    'the e-mail, also URL- or JSON-escaped), her tickets'' messages and '
    'the replies to them, and deletes the rejected spool lines naming '
    'her; orders, tickets, promises, gifts and figures stay, anonymous. '
    'True when someone was forgotten.';

-- forget_customer(email): the same, for the customer with this e-mail, or,
-- for a text without "@", the one customer with this phone (digits, as
-- crm.norm_phone reads it).  Raises when several customers share the
-- phone: then forget by customer id.  False when nobody matches.
CREATE OR REPLACE FUNCTION crm.forget_customer(email text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_ids    bigint[];
    v_phone  text;
BEGIN
    IF strpos(email, '@') > 0 THEN
        SELECT array_agg(x.customer_id) INTO v_ids FROM crm.customer AS x
         WHERE x.email = crm.norm_email(forget_customer.email);
    ELSE
        v_phone := crm.norm_phone(email);

        SELECT array_agg(x.customer_id ORDER BY x.customer_id) INTO v_ids
          FROM crm.customer AS x
         WHERE x.phone = v_phone;

        IF cardinality(v_ids) > 1 THEN
            RAISE EXCEPTION 'crm: % customers have the phone %: forget by '
                            'customer id', cardinality(v_ids), v_phone
                USING DETAIL = 'customer ids: '
                               || array_to_string(v_ids, ', '),
                      HINT = 'SELECT crm.forget_customer(customer_id) for '
                             'each of them who asked to be forgotten';
        END IF;
    END IF;

    IF v_ids IS NULL THEN
        RETURN false;
    END IF;

    RETURN crm.forget_customer(v_ids[1]);
END
$$;

COMMENT ON FUNCTION crm.forget_customer(text) IS
    'Staff: crm.forget_customer(customer_id) for the customer with this '
    'e-mail, or, for a text without "@", the one customer with this phone '
    '(an error when several share it: forget by customer id); false when '
    'nobody matches.';
