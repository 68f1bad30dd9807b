-- fn_policy: the policies the nginx nodes run (crm.policy) and what they
-- decide about one customer without looking at her orders.

-- register_policy: stores the policy document under its sha256 (once) and
-- marks it the most recent; returns nothing.
CREATE OR REPLACE FUNCTION crm.register_policy(sha256 text,
    doc jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO crm.policy AS p (sha256, doc)
    VALUES (register_policy.sha256, register_policy.doc)
    ON CONFLICT ON CONSTRAINT policy_pkey
    DO UPDATE SET registered_at = now()
$$;

COMMENT ON FUNCTION crm.register_policy(text, jsonb) IS
    'Called by the module once per connection: the policy other calls name '
    'by its sha256.';

-- policy_doc: returns the policy registered under sha256, or the most
-- recently registered one when sha256 is NULL or unknown; NULL when none.
CREATE OR REPLACE FUNCTION crm.policy_doc(sha256 text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT p.doc FROM crm.policy p WHERE p.sha256 = policy_doc.sha256),
        (SELECT p.doc FROM crm.policy p
          ORDER BY p.registered_at DESC LIMIT 1))
$$;

COMMENT ON FUNCTION crm.policy_doc(text) IS
    'Internal: the policy registered under a sha256, else the newest.';

-- tier_of: returns the tier object of policy doc ({"name", "paid_orders",
-- "spent", "discount"}) that a customer with these figures has reached:
-- the last one listed whose conditions hold; NULL when none is reached.
CREATE OR REPLACE FUNCTION crm.tier_of(doc jsonb, paid_orders integer,
    spent numeric)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    t        jsonb;
    reached  jsonb;
BEGIN
    -- plpgsql, not sql: a sql function with a FROM is planned at every call
    IF jsonb_typeof(doc #> '{loyalty,tiers}') IS DISTINCT FROM 'array' THEN
        RETURN NULL;
    END IF;

    FOR t IN SELECT x FROM jsonb_array_elements(doc #> '{loyalty,tiers}') x
    LOOP
        IF (t ->> 'paid_orders')::integer <= tier_of.paid_orders
           AND (coalesce((t ->> 'spent')::numeric, 0) = 0
                OR tier_of.spent >= (t ->> 'spent')::numeric)
        THEN
            reached := t;
        END IF;
    END LOOP;

    RETURN reached;
END
$$;

COMMENT ON FUNCTION crm.tier_of(jsonb, integer, numeric) IS
    'The tier (JSON object) a policy gives for paid orders and money spent; '
    'NULL when none is reached.';

-- holdout_of: returns whether a customer falls in the holdout group of
-- percent: a stable hash of the id, so the answer never changes.
CREATE OR REPLACE FUNCTION crm.holdout_of(customer_id bigint, percent numeric)
RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT abs(hashint8(customer_id)::bigint) % 100 < coalesce(percent, 0)
$$;

COMMENT ON FUNCTION crm.holdout_of(bigint, numeric) IS
    'Whether a customer id falls in a holdout of that percent (stable hash).';
