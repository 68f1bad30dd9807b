-- pgbench: the decision the module asks for before an order goes upstream,
-- one crm.decide_order() a transaction, as the module sends it: the
-- order's fields as typed parameters and the policy's sha256, a row back.  Customers are 1000 e-mails, so most
-- orders find a customer that exists and lock its row; order ids are
-- random, so a few are repeats.
--
-- Needs a policy registered under the sha256 'bench' first, e.g.
--
--   SELECT crm.register_policy('bench', '{"loyalty": {"card":
--     {"after_paid_orders": 1, "prefix": "CRM-"}, "tiers": [{"name":
--     "member", "paid_orders": 1, "spent": 0, "discount": 5}], "promise":
--     {"valid_for_s": 2592000, "max_discount": 20}}, "surprises":
--     {"probability": 0.1, "min_paid_orders": 0, "cooldown_s": 2592000,
--     "daily_budget": 100, "gifts": [{"name": "tea", "cost": 2.5}]},
--     "holdout": {"percent": 10}, "timezone": "UTC"}');
--
-- pgbench -n -M prepared -c 8 -j 8 -T 5 -f bench/decide.sql crm

\set c random(1, 1000)
\set o random(1, 2000000000)
SELECT customer_id, card, tier, discount, promises, gift, holdout, conflict,
       created
  FROM crm.decide_order(gen_random_uuid(), 'B-' || :o, NULL,
                        'customer' || :c || '@example.com', NULL, NULL,
                        'Bench', NULL, '19.90', 'EUR', 'bench');
