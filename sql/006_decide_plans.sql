-- 006: crm.decide_order() without re-planning on every order.
--
-- A LANGUAGE sql function that cannot be inlined is planned anew at every
-- call; release_unanswered() (three data-modifying statements) took about
-- 1 ms of each decision that way, more than the rest of it.  As plpgsql
-- its statements are planned once per session, and it returns at once in
-- the common case: no order of that customer is waiting for an answer.

CREATE OR REPLACE FUNCTION crm.release_unanswered(cid bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    n  bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM crm.orders AS o
                    WHERE o.customer_id = cid AND o.status = 'attempted'
                      AND o.decided
                      AND o.created_at < now() - interval '15 minutes')
    THEN
        RETURN;
    END IF;

    WITH ab AS (
        UPDATE crm.orders AS o
           SET status = 'abandoned', updated_at = now()
         WHERE o.customer_id = cid AND o.status = 'attempted' AND o.decided
           AND o.created_at < now() - interval '15 minutes'
        RETURNING o.event_id
    ), pr AS (
        UPDATE crm.promise AS p
           SET status = 'open', used_by = NULL, updated_at = now()
          FROM ab
         WHERE p.customer_id = cid AND p.used_by = ab.event_id
           AND p.status = 'reserved'
    ), gi AS (
        UPDATE crm.gift AS g
           SET status = 'released', updated_at = now()
          FROM ab
         WHERE g.customer_id = cid AND g.order_event = ab.event_id
           AND g.status = 'reserved'
        RETURNING g.day, g.cost, g.budgeted
    )
    SELECT count(*) INTO n
      FROM (SELECT crm.budget_give_back(array_agg(day), array_agg(cost))
              FROM gi
             WHERE gi.budgeted
            HAVING count(*) > 0) AS given;
END
$$;

CREATE OR REPLACE FUNCTION crm.expire_promises(cid bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE crm.promise AS p
       SET status = 'expired', updated_at = now()
     WHERE p.customer_id = cid AND p.status = 'open'
       AND p.valid_until < now();
END
$$;
