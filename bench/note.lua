-- wrk: a note left on the shop's order page with no e-mail or phone, so
-- crm_capture feedback records it and makes no ticket
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"order_id":"B-1001","rating":5,"category":"delivery",' ..
           '"message":"Arrived a day early, thank you!","page":"/orders/B-1001"}'
