-- fn_calendar: business time in SQL, for the staff views (how many
-- business minutes a ticket has left, how long the first response took).
-- A ticket's due time comes in its event line, counted by the module by
-- the same rules; t/075-sql-tickets.t pins these.
--
-- The calendar is the "sla" object of the policy document the module
-- registered: {"timezone", "hours": [[start, end] by weekday, 0 Sunday, in
-- minutes since local midnight, [0, 0] closed], "holidays": ["YYYY-MM-DD"]}.
-- A local date is open when its weekday has hours and it is no holiday;
-- its open period runs from the instant local time first reaches start to
-- the instant it first reaches end (1440: the next date's midnight).

-- local_instant: the first instant at which local time in zone tz reaches
-- date d plus minute minutes: for a time that happens twice (clocks go
-- back) the earlier, for one that does not happen (clocks go forward) the
-- instant of the change.
CREATE OR REPLACE FUNCTION crm.local_instant(d date, minute integer,
    tz text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    l    timestamp := d + make_interval(mins => minute);
    u    timestamptz := l AT TIME ZONE tz;
    c    timestamptz;
    lo   timestamptz;
    hi   timestamptz;
    mid  timestamptz;
    best timestamptz;
    k    integer;
BEGIN
    -- the offsets around it: each candidate that shows l is a real one
    FOREACH c IN ARRAY ARRAY[
        l AT TIME ZONE 'UTC' - ((u - interval '1 day') AT TIME ZONE tz
                                - (u - interval '1 day') AT TIME ZONE 'UTC'),
        u,
        l AT TIME ZONE 'UTC' - ((u + interval '1 day') AT TIME ZONE tz
                                - (u + interval '1 day') AT TIME ZONE 'UTC')]
    LOOP
        IF c AT TIME ZONE tz = l AND (best IS NULL OR c < best) THEN
            best := c;
        END IF;
    END LOOP;

    IF best IS NOT NULL THEN
        RETURN best;
    END IF;

    -- in a gap: the change lies within a day of u; halve to the second
    lo := u - interval '1 day';
    hi := u + interval '1 day';

    FOR k IN 1 .. 40 LOOP
        EXIT WHEN hi - lo <= interval '1 second';
        mid := lo + (hi - lo) / 2;

        IF mid AT TIME ZONE tz >= l THEN
            hi := mid;
        ELSE
            lo := mid;
        END IF;
    END LOOP;

    RETURN date_trunc('second', hi);
END
$$;

COMMENT ON FUNCTION crm.local_instant(date, integer, text) IS
    'Internal: the first instant at which local time in tz reaches d plus '
    'minute minutes.';

-- business_time: the business time of calendar sla between a and b
-- (negative when b is before a); NULL when either is NULL.  Walks the
-- local dates, at most ten years of them.
CREATE OR REPLACE FUNCTION crm.business_time(sla jsonb, a timestamptz,
    b timestamptz)
RETURNS interval
LANGUAGE plpgsql STABLE AS $$
DECLARE
    tz     text := coalesce(sla ->> 'timezone', 'UTC');
    d      date;
    last   date;
    h      jsonb;
    ps     timestamptz;
    pe     timestamptz;
    x      timestamptz;
    sign   integer := 1;
    total  interval := interval '0';
BEGIN
    IF a IS NULL OR b IS NULL OR sla IS NULL THEN
        RETURN NULL;
    END IF;

    IF b < a THEN
        x := a; a := b; b := x;
        sign := -1;
    END IF;

    -- the date before a's too: its period may reach past midnight in
    -- UTC terms when it ends at 24:00 on a day clocks change
    d := (a AT TIME ZONE tz)::date - 1;
    last := least((b AT TIME ZONE tz)::date, d + 3653);

    WHILE d <= last LOOP
        h := sla -> 'hours' -> extract(dow FROM d)::integer;

        IF (h ->> 1)::integer > (h ->> 0)::integer
           AND NOT coalesce(sla -> 'holidays', '[]'::jsonb)
                   ? to_char(d, 'YYYY-MM-DD')
        THEN
            ps := crm.local_instant(d, (h ->> 0)::integer, tz);
            pe := crm.local_instant(d, (h ->> 1)::integer, tz);

            IF least(pe, b) > greatest(ps, a) THEN
                total := total + (least(pe, b) - greatest(ps, a));
            END IF;
        END IF;

        d := d + 1;
    END LOOP;

    RETURN sign * justify_hours(total);
END
$$;

COMMENT ON FUNCTION crm.business_time(jsonb, timestamptz, timestamptz) IS
    'Business time of a policy''s sla calendar between two instants '
    '(negative when the second is earlier), as the module counts a '
    'ticket''s due time.';
