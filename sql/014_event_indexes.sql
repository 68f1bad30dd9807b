-- 014: cheaper event writes.  Every captured request, impression and ticket
-- is a crm.event row, and each index is written with it: on the bench's
-- lines an insert cost 23.3 ms per 2000 events with the six indexes and
-- 19.5 ms with these (median of ten batches, fresh tables).  One index on
-- (customer_id, received_at) serves both a customer's events and her
-- banner impressions of a day (crm.banner_state); received_at, which only
-- grows, is a BRIN index, for the ranges of days that reports read.

DROP INDEX crm.event_banner_customer;
DROP INDEX crm.event_customer_id;
CREATE INDEX event_customer ON crm.event (customer_id, received_at)
    WHERE customer_id IS NOT NULL;

DROP INDEX crm.event_received_at;
CREATE INDEX event_received_at ON crm.event USING brin (received_at);
