-- 005: the slow path keeps only lines PostgreSQL cannot read.
--
-- A deadlock, a serialization failure, a lock or statement timeout, or a
-- server going away is not the line's fault: the error goes back to the
-- module, which sends the whole batch again later, instead of the line
-- landing in crm.spool_reject.

CREATE OR REPLACE FUNCTION crm.record_events_slow(batch text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    l  text;
    n  integer := 0;
BEGIN
    FOR l IN SELECT x FROM string_to_table(batch, E'\n') AS x WHERE x <> ''
    LOOP
        BEGIN
            n := n + crm.record_events(l);
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
        END;
    END LOOP;
    RETURN n;
END
$$;

COMMENT ON FUNCTION crm.record_events_slow(text) IS
    'Called by the module when a batch fails: writes it line by line; a '
    'line PostgreSQL cannot read goes to crm.spool_reject, a passing error '
    '(deadlock, timeout) fails the batch so that it is sent again.';
