# crm_capture: every request a capture location sees is recorded once in
# crm.interactions, and the shop gets the request untouched, whatever its body.
# (A feedback location makes worker 0 check for missed due times every 2 s,
# so the counters may catch one connection busy with that.)
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;

our $SHOP = CRM::Shop->start->port;

# the same server for every block: capture locations in front of the shop
our $CONFIG = <<"CONF";
client_body_buffer_size 16k;
client_max_body_size 20m;
location = /status { crm_status; }
location /orders {
    crm_capture order;
    proxy_set_header X-CRM-State \$crm_state;
    proxy_pass http://127.0.0.1:$SHOP;
}
location /payments {
    crm_capture payment;
    proxy_pass http://127.0.0.1:$SHOP;
}
location /feedback {
    crm_capture feedback;
    proxy_pass http://127.0.0.1:$SHOP;
}
location /plain {
    proxy_pass http://127.0.0.1:$SHOP;
}
CONF

our $POLICY = <<'YAML';
version: 1
database:
  conninfo: "$CRM_CONNINFO"
  spool: $SPOOL
fields:
  order_id: /order/id
YAML

# what the last event looks like to staff
our $LAST = "SELECT kind, coalesce(order_id, '-'), state, coalesce(reason, '-'),"
          . " payload FROM crm.interactions ORDER BY event_id DESC LIMIT 1";

run_tests();

__DATA__

=== TEST 1: a JSON order: the shop gets it, staff see it once
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- request
POST /orders
{"order": {"id": "A-1001"}, "email": "Anna@Example.com", "total": 12.5}
--- request_headers
Content-Type: application/json
--- response_body_like: "body":"\{\\"order\\": \{\\"id\\": \\"A-1001\\"\}, \\"email\\": \\"Anna@Example.com\\", \\"total\\": 12.5\}".*"x-crm-state":"ok"
--- db eval
"$::LAST
order|A-1001|ok|-|{\"email\": \"Anna\@Example.com\", \"order\": {\"id\": \"A-1001\"}, \"total\": 12.5}"



=== TEST 2: a form payment becomes a JSON object; dotted keys name fields
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- request
POST /payments
order.id=P-7&amount=12.50&note=caf%C3%A9+au+lait
--- request_headers
Content-Type: application/x-www-form-urlencoded
--- response_body_like: "body":"order.id=P-7&amount=12.50&note=caf%C3%A9\+au\+lait"
--- db eval
"$::LAST
payment|P-7|ok|-|{\"note\": \"caf\xc3\xa9 au lait\", \"amount\": \"12.50\", \"order.id\": \"P-7\"}"



=== TEST 3: the same order sent twice is two interactions, each once
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- raw_request eval
my $b = '{"order": {"id": "TWICE"}}';
my $r = "POST /orders HTTP/1.1\r\nHost: localhost\r\n"
      . "Content-Type: application/json\r\nContent-Length: " . length($b);
"$r\r\n\r\n$b" . "$r\r\nConnection: close\r\n\r\n$b"
--- response_body_like: "length":26
--- wait: 0.2
--- db
SELECT count(*), count(DISTINCT event_id) FROM crm.interactions WHERE order_id = 'TWICE'
2|2



=== TEST 4: a location without crm_capture records nothing
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- request
POST /plain
{"order": {"id": "NOT-CAPTURED"}}
--- wait: 0.3
--- db
SELECT count(*) FROM crm.interactions WHERE order_id = 'NOT-CAPTURED'
0



=== TEST 5: an empty body
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- request
POST /feedback
--- response_body_like: "length":0
--- db eval
"$::LAST
feedback|-|bad_body|empty body|"



=== TEST 6: truncated JSON goes on untouched and is kept as bytes
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- request
POST /orders
{"order": {"id": "A-1
--- request_headers
Content-Type: application/json
--- response_body_like: "body":"\{\\"order\\": \{\\"id\\": \\"A-1".*"x-crm-state":"bad_body"
--- db eval
"$::LAST
order|-|bad_body|truncated JSON|{\"raw_base64\": \"eyJvcmRlciI6IHsiaWQiOiAiQS0x\"}"



=== TEST 7: nesting deeper than 64
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- request eval
"POST /orders\n" . ('[' x 100) . (']' x 100)
--- response_body_like: "length":200
--- db eval
"SELECT state, reason, length(decode(payload->>'raw_base64', 'base64')) FROM crm.interactions ORDER BY event_id DESC LIMIT 1
bad_body|nesting deeper than 64|200"



=== TEST 8: invalid UTF-8 inside a JSON string
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- request eval
"POST /orders\n{\"name\": \"\xff\xfe\"}"
--- response_body_like: "length":14,"md5":"4024490a585ddf45f02757daa3210abe"
--- db eval
"SELECT state, reason, encode(decode(payload->>'raw_base64', 'base64'), 'hex') FROM crm.interactions ORDER BY event_id DESC LIMIT 1
bad_body|invalid UTF-8|7b226e616d65223a2022fffe227d"



=== TEST 9: a form with a broken percent-escape
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- request
POST /orders
order.id=F-1&note=100%zz
--- request_headers
Content-Type: application/x-www-form-urlencoded
--- response_body_like: "body":"order.id=F-1&note=100%zz"
--- db eval
"$::LAST
order|-|bad_body|malformed percent-escape|{\"raw_base64\": \"b3JkZXIuaWQ9Ri0xJm5vdGU9MTAwJXp6\"}"



=== TEST 10: 10 MB does not fit client_body_buffer_size: passed on whole
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- request eval
"POST /orders\n" . ('x' x (10 * 1024 * 1024))
--- response_body_like: "length":10485760,"md5":"46f40f95feefb6ab49b2b3679b5ec0a2"
--- db eval
"$::LAST
order|-|bad_body|body larger than client_body_buffer_size|"



=== TEST 11: chunked bodies are read whole; an order that names nobody
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- raw_request eval
"POST /orders HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{\"orde\r\n13\r\nr\": {\"id\": \"CH-1\"}}\r\n0\r\n\r\n"
--- response_body_like: "length":25
--- db eval
"$::LAST
order|CH-1|no_customer|-|{\"order\": {\"id\": \"CH-1\"}}"



=== TEST 12: the counters
--- policy eval: $::POLICY
--- config eval: $::CONFIG
--- request
GET /status
--- response_body_like: "events":\{"captured":11,"written":11,"spooled":0,"replayed":0,"bad_body":6,"rejected":0,"cookies_rejected":0\},"orders":\{"decided":1,"undecided":0,"no_customer":3,"conflict":0\},"banners":\{"impressions":0,"would_show":0,"no_cookie":0,"cache_miss":0,"compressed":0,"no_place":0,"capped":0,"not_html":0\},"spool":\{"bytes":0\},"connections":\{"up":2,"busy":[01],
