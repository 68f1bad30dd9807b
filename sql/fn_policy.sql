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
LANGUAGE sql IMMUTABLE AS $$
    SELECT t.tier
      FROM jsonb_array_elements(
               CASE WHEN jsonb_typeof(doc #> '{loyalty,tiers}') = 'array'
                    THEN doc #> '{loyalty,tiers}' ELSE '[]' END)
           WITH ORDINALITY AS t(tier, n)
     WHERE (t.tier ->> 'paid_orders')::integer <= paid_orders
       AND (coalesce((t.tier ->> 'spent')::numeric, 0) = 0
            OR spent >= (t.tier ->> 'spent')::numeric)
     ORDER BY t.n DESC
     LIMIT 1
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
