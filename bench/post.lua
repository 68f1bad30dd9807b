-- wrk: an order as a shop would post it
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"order_id":"B-1001","customer":{"email":"Anna@Example.com",' ..
           '"phone":"+7 912 345-67-89","name":"Anna"},"total":129.90,' ..
           '"currency":"EUR","items":[{"sku":"tea-1","qty":2}]}'
