-- fn_helpers: reading and bounding the values a request carries (money,
-- dates, ids, e-mails, phones), as the module reads them; NULL for what
-- cannot be one, never an error.
--
-- A LANGUAGE sql function that PostgreSQL cannot inline (a FROM, STRICT
-- over a non-strict body) is planned anew at every call: 40 to 90 us each,
-- several times an order.  Those are plpgsql, whose plans a session keeps;
-- the one-expression ones stay sql and are inlined.

-- parse_money: the amount in s rounded to cents (half away from zero):
-- "129.90", "1.5e2", "1E2", "12.3456789"; NULL when s is no number or the
-- amount does not fit numeric(14,2) (1000000000000 and more).
CREATE OR REPLACE FUNCTION crm.parse_money(s text) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v  numeric;
BEGIN
    IF s IS NULL
       OR s !~ ('^\s*-?[0-9]{1,30}(\.[0-9]{0,30})?'
                '([eE][-+]?[0-9]{1,3})?\s*$')
    THEN
        RETURN NULL;
    END IF;

    v := round(btrim(s)::numeric, 2);

    RETURN CASE WHEN abs(v) < 1000000000000 THEN v END;
END
$$;

COMMENT ON FUNCTION crm.parse_money(text) IS
    'Internal: an amount rounded to cents, NULL when not a number or '
    'beyond numeric(14,2).';

-- parse_date: returns the date in s ("1990-05-01", a time may follow), or
-- NULL when s is not a valid date; never raises.
CREATE OR REPLACE FUNCTION crm.parse_date(s text) RETURNS date
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    m   text[];
    y   integer;
    mo  integer;
    d   integer;
BEGIN
    m := regexp_match(s, '^\s*([0-9]{4})-([0-9]{2})-([0-9]{2})');

    IF m IS NULL THEN
        RETURN NULL;
    END IF;

    y := m[1]::integer;
    mo := m[2]::integer;
    d := m[3]::integer;

    IF y < 1 OR mo NOT BETWEEN 1 AND 12 OR d < 1
       OR d > extract(day FROM make_date(y, mo, 1)
                               + interval '1 month - 1 day')
    THEN
        RETURN NULL;
    END IF;

    RETURN make_date(y, mo, d);
END
$$;

COMMENT ON FUNCTION crm.parse_date(text) IS
    'Internal: a YYYY-MM-DD date, or NULL; never raises.';

-- parse_id: returns the positive integer in s, or NULL; never raises.
CREATE OR REPLACE FUNCTION crm.parse_id(s text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN s ~ '^\s*[0-9]{1,18}\s*$' THEN btrim(s)::bigint END
$$;

COMMENT ON FUNCTION crm.parse_id(text) IS
    'Internal: a positive integer, or NULL; never raises.';

-- money_reason: why the total s is not kept, or NULL when it is (or none
-- was sent).
CREATE OR REPLACE FUNCTION crm.money_reason(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN nullif(s, '') IS NOT NULL AND crm.parse_money(s) IS NULL
                THEN 'total "' || left(s, 40) || '" is not an amount below '
                     || '1000000000000: stored as NULL' END
$$;

COMMENT ON FUNCTION crm.money_reason(text) IS
    'Internal: the reason an event''s total was not stored, NULL when it '
    'was.';

-- norm_email and norm_phone are STRICT: an event naming no e-mail or phone
-- (most lines) calls neither, which keeps the spool's write rate.

-- norm_email: the e-mail as the module keeps it, byte for byte the rule of
-- its C normalizer (ngx_http_crm_email_normalize): ASCII white space
-- trimmed, ASCII letters lower-cased (other characters kept as written);
-- NULL when it cannot be one: over 254 octets, an ASCII control character
-- or space inside, or a last "@" without something on both sides.
CREATE OR REPLACE FUNCTION crm.norm_email(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    t  text := translate(btrim(s, E' \t\r\n\f\x0B'),
                         'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                         'abcdefghijklmnopqrstuvwxyz');
BEGIN
    IF octet_length(t) <= 254
       AND t ~ '^[^\x01-\x20\x7f]+@[^\x01-\x20\x7f@]+$'
    THEN
        RETURN t;
    END IF;

    RETURN NULL;
END
$$;

COMMENT ON FUNCTION crm.norm_email(text) IS
    'Internal: the e-mail trimmed and lower-cased as the module does (ASCII '
    'only), NULL when it cannot be one (over 254 octets, no "@", control '
    'characters or spaces).';

-- norm_phone: the digits of s, an 11-digit number starting with 8 as +7;
-- NULL unless 5 to 15 digits remain (as the module's normalizer).
CREATE OR REPLACE FUNCTION crm.norm_phone(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    d  text := regexp_replace(s, '[^0-9]', '', 'g');
BEGIN
    IF length(d) = 11 AND left(d, 1) = '8' THEN
        RETURN '7' || substr(d, 2);
    END IF;

    IF length(d) BETWEEN 5 AND 15 THEN
        RETURN d;
    END IF;

    RETURN NULL;
END
$$;

COMMENT ON FUNCTION crm.norm_phone(text) IS
    'Internal: the phone as digits (8XXXXXXXXXX as 7XXXXXXXXXX), NULL '
    'unless 5 to 15 digits.';

-- norm_id: an order id or Idempotency-Key as kept: NULL when empty or
-- over 128 octets (the module drops longer ones before they get here).
CREATE OR REPLACE FUNCTION crm.norm_id(s text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN octet_length(s) BETWEEN 1 AND 128 THEN s END
$$;

COMMENT ON FUNCTION crm.norm_id(text) IS
    'Internal: an order id or Idempotency-Key, NULL when empty or over 128 '
    'octets.';
