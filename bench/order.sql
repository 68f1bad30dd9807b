-- pgbench: what one order through crm_capture order makes PostgreSQL do,
-- sent as the module sends it (unnamed statements, -M extended): the
-- decision, then the order's event line and its result line through
-- crm.record_events() (the module batches these; here each order sends
-- its own two).  Customers are 1000 e-mails as in bench/order.lua, order
-- ids unique per client and run.  Needs the policy registered under the
-- sha256 'bench' (bench/run.sh copies the module's).
--
-- (pgbench reads a colon and a letter as a variable, in a string too: the
-- line's "decided":true is an argument of format().)
--
-- pgbench -n -M extended -c 2 -j 2 -T 5 -f bench/order.sql crm

\set c random(1, 1000)
\set o random(1, 2000000000)
SELECT customer_id, card, tier, discount, promises, gift, holdout, conflict,
       created
  FROM crm.decide_order(
           md5('P-' || CAST(:o AS text) || '-' || CAST(:client_id AS text))::uuid,
           'P-' || CAST(:o AS text) || '-' || CAST(:client_id AS text), NULL,
           'customer' || CAST(:c AS text) || '@example.com', NULL, NULL,
           'Customer ' || CAST(:c AS text), NULL, '49.90', NULL, 'bench');
SELECT crm.record_events(format(
    '{"event_id":"%1$s","received_at":%2$s,"kind":"order","node":"bench",'
    '"policy":"bench","decided":%6$s,"order_id":"%3$s","email":"%4$s",'
    '"name":"%5$s","total":"49.90","payload":{"order_id":"%3$s",'
    '"customer":{"email":"%4$s","name":"%5$s"},"total":49.90},'
    '"state":"ok"}' || E'\n' ||
    '{"kind":"order_result","event_id":"%1$s","received_at":%2$s,'
    '"order_id":"%3$s","status":200,"policy":"bench"}',
    md5('P-' || CAST(:o AS text) || '-' || CAST(:client_id AS text))::uuid,
    extract(epoch FROM now()),
    'P-' || CAST(:o AS text) || '-' || CAST(:client_id AS text),
    'customer' || CAST(:c AS text) || '@example.com',
    'Customer ' || CAST(:c AS text), 'true'));
