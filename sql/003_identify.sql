-- 003: the customer a shop names in a response header (identity.upstream_header).
--
-- When the shop's response names a logged-in customer by e-mail, the module
-- needs that customer's id to sign the cookie.  It asks here in the
-- background and keeps the answer in its shared-memory cache; the cookie is
-- set on the first response after the answer is there.

-- identify_customer: the customer with this e-mail (trimmed, lower-cased),
-- created when new; NULL for an empty e-mail.  policy is the sha256 the
-- module registered (for the holdout of a new customer).
CREATE FUNCTION crm.identify_customer(email text, policy text)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    c  crm.customer;
BEGIN
    c := crm.find_customer(email, NULL, NULL, NULL, NULL,
                           crm.policy_doc(policy));
    RETURN c.customer_id;
END
$$;

COMMENT ON FUNCTION crm.identify_customer(text, text) IS
    'Called by the module for identity.upstream_header: the id of the '
    'customer with this e-mail, created when new.';
