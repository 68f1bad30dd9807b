# The directives and variables of SPEC.md: accepted where they belong,
# refused with nginx-style errors elsewhere.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test;

run_tests();

__DATA__

=== TEST 1: every directive in its place; variables read "off" and zeros
--- policy
version: 1
database:
  conninfo: "host=127.0.0.1 port=1 dbname=crm"
  spool: $SPOOL
--- http_config
crm_banner off;
crm_banner_types text/html application/xhtml+xml;
--- config
crm_banner on;
location = /vars {
    return 200 "state=$crm_state discount=$crm_discount holdout=$crm_holdout customer=[$crm_customer] card=[$crm_card] tier=[$crm_tier] promise=[$crm_promise] gift=[$crm_gift] ticket=[$crm_ticket] banner=[$crm_banner]\n";
}
location = /status { crm_status; }
location /orders { crm_capture order; return 204; }
location /payments { crm_capture payment; return 204; }
location /status-updates { crm_capture status; return 204; }
location /feedback { crm_capture feedback; return 204; }
--- request
GET /vars
--- response_body
state=off discount=0 holdout=0 customer=[] card=[] tier=[] promise=[] gift=[] ticket=[] banner=[]
--- error_log eval
qr/crm: connecting to PostgreSQL failed/
--- ignore_levels: error



=== TEST 2: crm_capture with an unknown kind
--- policy
version: 1
database:
  conninfo: "dbname=crm"
--- config
location /orders { crm_capture orders; }
--- must_die
--- error_log eval
qr/\[emerg\] .*invalid value "orders" in \S+nginx\.conf:\d+/



=== TEST 3: crm_capture is a location directive
--- policy
version: 1
database:
  conninfo: "dbname=crm"
--- config
crm_capture order;
--- must_die
--- error_log
"crm_capture" directive is not allowed here



=== TEST 4: crm_capture twice
--- policy
version: 1
database:
  conninfo: "dbname=crm"
--- config
location /orders { crm_capture order; crm_capture payment; }
--- must_die
--- error_log
"crm_capture" directive is duplicate



=== TEST 5: crm_capture without crm_policy
--- config
location /orders { crm_capture order; }
--- must_die
--- error_log eval
qr/"crm_capture" in \S+nginx\.conf:\d+ needs "crm_policy" in the http block/



=== TEST 6: crm_banner on without crm_policy
--- config
crm_banner on;
--- must_die
--- error_log eval
qr/"crm_banner" in \S+nginx\.conf:\d+ needs "crm_policy" in the http block/



=== TEST 7: crm_banner off needs no policy, nor does crm_status
--- config
crm_banner off;
location = /status { crm_status; }
--- request
GET /status
--- response_body_like: ^\{"version":"\d+\.\d+\.\d+","pid":\d+,"policy":null\}$



=== TEST 8: crm_banner takes on or off
--- config
crm_banner yes;
--- must_die
--- error_log
invalid value "yes" in "crm_banner" directive, it must be "on" or "off"



=== TEST 9: crm_policy only in http
--- config
crm_policy /etc/nothing.yaml;
--- must_die
--- error_log
"crm_policy" directive is not allowed here



=== TEST 10: crm_policy twice
--- policy
version: 1
database:
  conninfo: "dbname=crm"
--- http_config
crm_policy $SERVROOT/conf/policy.yaml;
--- must_die
--- error_log
"crm_policy" directive is duplicate



=== TEST 11: crm_policy names a file that is not there
--- http_config
crm_policy $SERVROOT/missing.yaml;
--- must_die
--- error_log eval
qr{open\(\) "\S+/missing\.yaml" failed \(2: No such file or directory\)}



=== TEST 12: crm_status takes no arguments
--- config
location = /status { crm_status json; }
--- must_die
--- error_log
invalid number of arguments in "crm_status" directive



=== TEST 13: crm_banner_types needs a type
--- config
crm_banner_types;
--- must_die
--- error_log
invalid number of arguments in "crm_banner_types" directive



=== TEST 14: X-CRM variables do not exist under other names
--- config
location = /x { return 200 "$crm_nonsense"; }
--- must_die
--- error_log
unknown "crm_nonsense" variable



=== TEST 15: crm_status refuses POST
--- config
location = /status { crm_status; }
--- request
POST /status
x
--- error_code: 405
