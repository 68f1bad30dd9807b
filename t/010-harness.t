# The test harness itself, on plain nginx (no ngx_crm): blocks, the functions
# that reload tests use, and the file's PostgreSQL cluster.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test no_module => 1;

# -- the functions, as a reload test uses them --------------------------------

my $one = { config => 'location = /v { return 200 "one\n"; }' };
ok(start_nginx($one), 'start_nginx');
my ($status, $headers, $body) = http_get('/v');
is($status, 200, 'http_get: status');
is($body, "one\n", 'http_get: body');
is($headers->{'content-type'}, 'text/plain', 'http_get: headers');

my $master = master_pid();
my @old = worker_pids();
ok($master && @old == 1, 'master_pid and one worker_pid');

my $off = error_log_offset();
is(reload_nginx({ config => 'location = /v { return 200 "two\n"; }' }), 1,
   'reload_nginx: a new generation took over');
my @new = worker_pids();
ok(@new == 1 && $new[0] != $old[0], 'reload_nginx: new worker');
is((http_get('/v'))[2], "two\n", 'reload_nginx: the new configuration answers');

is(reload_nginx({ config => 'location = /v { bad_directive; }' }), 0,
   'reload_nginx: a broken configuration is refused');
like(error_log_since($off), qr/\[emerg\].*unknown directive "bad_directive"/,
     'error_log_since: the [emerg]');
is((http_get('/v'))[2], "two\n", 'the old workers keep serving');
is(master_pid(), $master, 'the same master');
error_log_clean($off, ignore_levels => ['emerg'], name => 'error_log_clean');

my ($rc, $out) = nginx_t({ config => 'foo_bar on;' });
isnt($rc, 0, 'nginx_t: fails on a bad directive');
like($out, qr/unknown directive "foo_bar"/, 'nginx_t: output');
($rc, $out) = nginx_t($one);
is($rc, 0, 'nginx_t: passes a good one') or diag $out;

my ($s, $h, $b) = http_request('POST', '/v', { 'X-Test' => 'yes' }, 'body');
is($s, 200, 'http_request: POST with headers and a body');

stop_nginx();
ok(!master_pid(), 'stop_nginx');

is(psql('SELECT 1 + 1'), "2\n", 'psql');
like(conninfo(), qr/^host=127\.0\.0\.1 port=\d+ dbname=crm user=postgres$/,
     'conninfo');

# -- the blocks ----------------------------------------------------------------

run_tests();
done_testing();

__DATA__

=== TEST 1: status, body and headers
--- config
location = /hello {
    add_header X-Foo bar;
    return 200 "hello\n";
}
--- request
GET /hello
--- error_code: 200
--- response_body
hello
--- response_headers
Content-Type: text/plain
X-Foo: bar
!X-Absent
--- response_headers_like
Content-Length: ^\d+$
--- no_error_log
[warn]



=== TEST 2: a request body and request headers
Proxied to itself so that $request_body is read before the header goes out.
--- config
location = /body {
    proxy_pass http://127.0.0.1:$PORT/sink;
    add_header X-Body $request_body;
    add_header X-Seen $http_x_test;
}
location = /sink { return 204; }
--- request
POST /body
{"a": 1}
--- request_headers
X-Test: yes
--- error_code: 204
--- response_headers
X-Body: {"a": 1}
X-Seen: yes



=== TEST 3: an [error] that the block expects
--- config
location / { }
--- request
GET /missing
--- error_code: 404
--- error_log
/html/missing" failed (2: No such file or directory)
--- no_error_log
[alert]



=== TEST 4: an [error] let through with ignore_levels
--- config
location / { }
--- request
GET /missing-too
--- error_code: 404
--- ignore_levels: error



=== TEST 5: must_die on an unknown directive
--- config
foo_bar on;
--- must_die
--- error_log
unknown directive "foo_bar"



=== TEST 6: a policy section adds crm_policy (unknown without the module)
--- policy
version: 1
--- must_die
--- error_log eval
qr{unknown directive "crm_policy" in /tmp/crm-test-[^ ]+/conf/t/nginx\.conf}



=== TEST 7: placeholders in the configuration and the expectation
--- config
location = /where { return 200 "$SERVROOT $SPOOL $PORT\n"; }
--- request
GET /where
--- response_body
$SERVROOT $SERVROOT/spool $PORT
--- response_body_like: ^/tmp/crm-test-010-harness-\w+ \S+/spool \d+$



=== TEST 8: a chunked response is decoded
--- config
location = /chunked {
    default_type text/html;
    sub_filter hello bye;
    return 200 "hello world\n";
}
--- request
GET /chunked
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
bye world



=== TEST 9: an explicit HTTP/1.0 request, and two workers
--- workers: 2
--- main_config
worker_shutdown_timeout 10s;
--- config
location = /proto { return 200 "$server_protocol\n"; }
--- request
GET /proto HTTP/1.0
--- response_body
HTTP/1.0



=== TEST 10: a raw request
--- config
location = /raw { return 200 "raw $request_method\n"; }
--- raw_request eval
"HEAD /raw HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
--- response_body:
--- response_headers
Content-Length: 9



=== TEST 11: the database: sql before, db after
--- sql
CREATE TABLE harness (id int PRIMARY KEY, name text);
INSERT INTO harness VALUES (1, 'one'), (2, 'two');
--- config
location = /db { return 200 "ok\n"; }
--- request
GET /db
--- wait: 0.1
--- response_body
ok
--- db
SELECT id, name FROM harness ORDER BY id
1|one
2|two



=== TEST 12: the same configuration keeps nginx running, logs are per block
--- config
location = /db { return 200 "ok\n"; }
--- request
GET /db
--- response_body
ok
--- no_error_log
start worker process
