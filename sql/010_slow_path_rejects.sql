-- 010: the slow path says how many events it could not write, so that
-- crm_status's events.written counts only what reached crm.event and
-- events.rejected what went to crm.spool_reject.

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
