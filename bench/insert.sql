-- pgbench: what the module writes for one event, one INSERT a transaction
INSERT INTO crm.event (event_id, received_at, kind, order_id, payload, state, node)
VALUES (gen_random_uuid(), now(), 'order', 'B-1001',
        '{"order_id":"B-1001","customer":{"email":"Anna@Example.com","phone":"+7 912 345-67-89","name":"Anna"},"total":129.90,"currency":"EUR","items":[{"sku":"tea-1","qty":2}]}',
        'ok', 'bench');
