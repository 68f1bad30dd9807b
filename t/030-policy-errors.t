# nginx -t refuses every kind of policy error with FILE:LINE:COLUMN and a
# message that says what is expected; the loader's own unit tests
# (t/unit/policy.c) go through many more documents.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test;

run_tests();

__DATA__

=== TEST 1: an unknown key, nested
--- policy
version: 1
database:
  conninfo: "x"
  spool_dir: y
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:4:3:\ unknown\ key\ "spool_dir"\ in\ "database";\ expected\ one\ of:\ conninfo,\ listen_conninfo,\ connections,\ timeout,\ spool}


=== TEST 2: a wrong type: a quoted number
--- policy
version: 1
database:
  conninfo: "x"
  connections: "4"
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:4:16:\ "database\.connections"\ is\ "4";\ expected\ an\ integer\ from\ 1\ to\ 256,\ without\ quotes}


=== TEST 3: a percent over 100
--- policy
version: 1
database: {conninfo: "x"}
loyalty:
  tiers:
    - name: gold
      paid_orders: 5
      discount: 101
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:7:17:\ "loyalty\.tiers\[0\]\.discount"\ is\ 101;\ expected\ a\ percent\ from\ 0\ to\ 100}


=== TEST 4: a probability over 1
--- policy
version: 1
database: {conninfo: "x"}
surprises:
  probability: 1.5
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:4:16:\ "surprises\.probability"\ is\ 1\.5;\ expected\ a\ probability\ from\ 0\ to\ 1}


=== TEST 5: a negative cost
--- policy
version: 1
database: {conninfo: "x"}
surprises:
  probability: 0.1
  gifts:
    - name: tea
      cost: -3
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:7:13:\ "surprises\.gifts\[0\]\.cost"\ is\ \-3;\ expected\ an\ amount\ of\ money\ from\ 0}


=== TEST 6: an unknown banner trigger
--- policy
version: 1
database: {conninfo: "x"}
banners:
  - id: sorry
    when: angry
    template: "<p>Sorry</p>"
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:5:11:\ "banners\[0\]\.when"\ is\ angry;\ expected\ one\ of:\ conflict,\ order_delayed,\ birthday,\ new_card,\ discount_ready,\ surprise_sent}


=== TEST 7: an unknown weekday
--- policy
version: 1
database: {conninfo: "x"}
feedback:
  sla:
    hours:
      mon: "09:00-18:00"
      fun: "10:00-12:00"
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:7:7:\ unknown\ key\ "fun"\ in\ "feedback\.sla\.hours";\ expected\ one\ of:\ mon,\ tue,\ wed,\ thu,\ fri,\ sat,\ sun}


=== TEST 8: malformed business hours
--- policy
version: 1
database: {conninfo: "x"}
feedback:
  sla:
    hours:
      tue: "9:00-18"
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:6:12:\ "feedback\.sla\.hours\.tue"\ is\ "9:00\-18";\ expected\ HH:MM\-HH:MM}


=== TEST 9: business hours that end before they start
--- policy
version: 1
database: {conninfo: "x"}
feedback:
  sla:
    hours:
      wed: "18:00-09:00"
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:6:12:\ "feedback\.sla\.hours\.wed"\ is\ "18:00\-09:00";\ expected\ HH:MM\-HH:MM}


=== TEST 10: a bad duration
--- policy
version: 1
database: {conninfo: "x"}
cache:
  ttl: 10 minutes
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:4:8:\ "cache\.ttl"\ is\ 10\ minutes;\ expected\ a\ duration\ from\ 0s\ to\ 1d}


=== TEST 11: a bad size
--- policy
version: 1
database: {conninfo: "x"}
cache:
  size: 16q
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:4:9:\ "cache\.size"\ is\ 16q;\ expected\ a\ size\ from\ 64k\ to\ 1g}


=== TEST 12: a missing required section
--- policy
version: 1
cache:
  size: 16m
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:1:1:\ missing\ required\ key\ "database"\ in\ the\ policy}


=== TEST 13: a missing version
--- policy
database: {conninfo: "x"}
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:1:1:\ missing\ required\ key\ "version"\ in\ the\ policy}


=== TEST 14: a duplicate key
--- policy
version: 1
database:
  conninfo: "x"
  conninfo: "y"
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:4:3:\ duplicate\ key\ "conninfo"\ in\ "database"}


=== TEST 15: a YAML syntax error
--- policy
version: 1
database:
  conninfo: "x"
 timeout: 1s
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:4:2:\ YAML\ syntax\ error:\ did\ not\ find\ expected\ key}


=== TEST 16: an unknown template placeholder
--- policy
version: 1
database: {conninfo: "x"}
banners:
  - id: card
    when: new_card
    template: "Your card {card} for {nmae}"
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:6:15:\ "banners\[0\]\.template"\ has\ the\ unknown\ placeholder\ \{nmae\}}


=== TEST 16b: a placeholder the banner's trigger cannot fill
--- policy
version: 1
database: {conninfo: "x"}
banners:
  - id: card
    when: new_card
    template: "Your card {card}: order {order_id} is late"
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:6:15:\ "banners\[0\]\.template"\ has\ \{order_id\},\ which\ a\ "new_card"\ banner\ cannot\ fill;\ expected\ only\ \{name\},\ \{card\},\ \{tier\}}


=== TEST 17: version 2
--- policy
version: 2
database: {conninfo: "x"}
--- must_die
--- error_log eval
qr{\[emerg\] .*/conf/t/policy\.yaml:1:10:\ "version"\ is\ 2;\ expected}


=== TEST 18: examples/crm.yaml, every key at its default, loads
--- policy eval
open my $f, '<', "$FindBin::Bin/../examples/crm.yaml" or die; local $/; <$f>
--- config
location = /status { crm_status; }
--- request
GET /status
--- response_body_like: "policy":\{"file":"[^"]+/conf/policy\.yaml","sha256":"[0-9a-f]{64}"
