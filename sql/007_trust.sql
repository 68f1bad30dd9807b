-- 007: nobody borrows a customer's identity, and the ledger keeps what the
-- shop was told.
--
-- * The e-mail decides who the customer is: another e-mail is another
--   customer, even with a phone on file for someone else, so phones are no
--   longer unique.  The phone identifies only an order with no e-mail, the
--   cookie only one with neither.  A name or birthday comes onto the file
--   only with the e-mail, or where the file has none.
-- * An order id (or Idempotency-Key) sent again with another identity is a
--   conflict: no decision, and the first order's stays as it was.
-- * A decision tells whether it created the customer: only then, or when
--   the request carried that customer's cookie, may the module hand out a
--   cookie naming her.
-- * An order the shop was told nothing about (the decision came too late)
--   gives back whatever the late decision reserved.
-- * Values kept for staff are bounded; totals with an exponent are read,
--   and a total that cannot be kept says why in the event's reason.
-- * Events keep the e-mail and phone they named, so that forgetting a
--   customer finds them.


-- customers ------------------------------------------------------------------

ALTER TABLE crm.customer DROP CONSTRAINT customer_phone_key;
CREATE INDEX customer_phone ON crm.customer (phone, customer_id)
    WHERE phone IS NOT NULL;

COMMENT ON COLUMN crm.customer.email IS
    'Lower-cased, at most 254 octets; the e-mail decides who the customer '
    'is, so it is unique.';
COMMENT ON COLUMN crm.customer.phone IS
    'Digits only; the last phone an order with this customer''s e-mail '
    'gave.  Not unique: an order with only a phone is booked to the first '
    'customer (lowest id) with that phone.';
COMMENT ON COLUMN crm.customer.name IS
    'At most 200 characters; set by an order with the e-mail, or by a '
    'weaker identity only while empty.';


-- events -----------------------------------------------------------------------

ALTER TABLE crm.event ADD COLUMN email text, ADD COLUMN phone text;

CREATE INDEX event_email ON crm.event (email) WHERE email IS NOT NULL;
CREATE INDEX event_phone ON crm.event (phone) WHERE phone IS NOT NULL;

COMMENT ON COLUMN crm.event.email IS
    'The e-mail the request named (normalized), for crm.forget_customer().';
COMMENT ON COLUMN crm.event.phone IS
    'The phone the request named (digits), for crm.forget_customer().';
COMMENT ON COLUMN crm.event.reason IS
    'Why the body was passed on unread (bad_body), or why a value of it was '
    'not kept (an e-mail that cannot be one, a total out of range).';
