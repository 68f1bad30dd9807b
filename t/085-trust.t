# Trust, tried as an attacker would: nobody borrows a customer's identity or
# her promises, and the ledger keeps what the shop was told.  Replayed order
# ids and Idempotency-Keys, e-mails that share a phone, typed e-mails,
# e-mails that cannot be one, totals written oddly, a decision that comes too
# late, an order internally redirected, a client that leaves while parked.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();

my $SHOP = CRM::Shop->start->port;
my $DEAD = do {     # a port nobody listens on: the upstream refuses
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1);
    my $p = $s->sockport; close $s; $p;
};

my $policy = <<'YAML';
version: 1
database:
  conninfo: "$CRM_CONNINFO"
  spool: $SPOOL
  timeout: 1s
  connections: 4
identity:
  cookie: crm
  secret_file: $SERVROOT/conf/crm.secret
  max_age: 30d
fields:
  order_id: /order_id
  email: /customer/email
  phone: /customer/phone
  name: /customer/name
  total: /total
loyalty:
  card:
    after_paid_orders: 1
    prefix: "CRM-"
  tiers:
    - name: member
      paid_orders: 1
      discount: 3
  promise:
    valid_for: 30d
    max_discount: 20
surprises:
  probability: 0
YAML

my $shop_headers = <<'CONF';
    proxy_set_header X-CRM-Discount $crm_discount;
    proxy_set_header X-CRM-Promise $crm_promise;
    proxy_set_header X-CRM-Customer $crm_customer;
    proxy_set_header X-CRM-Card $crm_card;
    proxy_set_header X-CRM-Tier $crm_tier;
    proxy_set_header X-CRM-State $crm_state;
CONF

my $config = <<"CONF";
location = /orders {
    crm_capture order;
    client_body_buffer_size 2m;
    client_max_body_size 2m;
$shop_headers
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /payments {
    crm_capture payment;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /orders-fallback {
    crm_capture order;
$shop_headers
    proxy_pass http://127.0.0.1:$DEAD;
    error_page 502 = \@fallback;
}
location = /orders-refused {
    crm_capture order;
    proxy_pass http://127.0.0.1:$DEAD;
    error_page 502 = \@sorry;
}
location \@fallback {
$shop_headers
    proxy_pass http://127.0.0.1:$SHOP;
}
location \@sorry {
    return 503;
}
location /orders-small/ {
    crm_capture order;
    client_max_body_size 100;
    error_page 413 /orders-small/too-large;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /crm { crm_status; }
CONF

open my $f, '>', servroot() . '/conf/crm.secret' or die;
print $f 'k' x 40, "\n";
close $f;

my %conf = (policy => $policy, config => $config,
            http_config => "underscores_in_headers on;\n");
ok(start_nginx(\%conf), 'nginx starts');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 10),
   'connected to PostgreSQL');

sub db { my $r = psql($_[0]); chomp $r; $r }

sub json_str {
    my ($s) = @_;
    $s =~ s/(["\\])/\\$1/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\n/\\n/g;
    return qq("$s");
}

# an order: what the shop saw of the decision, the status and the cookie
sub order {
    my (%o) = @_;
    my @c;
    push @c, '"email":' . json_str($o{email}) if defined $o{email};
    push @c, '"phone":' . json_str($o{phone}) if defined $o{phone};
    push @c, '"name":' . json_str($o{name}) if defined $o{name};
    my $body = '{' . (defined $o{id} ? '"order_id":' . json_str($o{id}) . ',' : '')
             . '"customer":{' . join(',', @c) . '},"total":'
             . ($o{total} // 100) . '}';
    my %h = ('Content-Type' => 'application/json', %{ $o{headers} || {} });
    my ($status, $headers, $resp) =
        http_request('POST', $o{path} || '/orders', \%h, $body);
    # the shop gets no header for an empty variable
    my %seen = map { $_ => '' } qw(discount promise customer card tier state);
    %seen = (%seen, ($resp // '') =~ /"x-crm-(\w+)":"([^"]*)"/g);
    $seen{status} = $status;
    $seen{cookie} = $headers->{'set-cookie'};
    return \%seen;
}

sub pay {
    my ($id, $total) = @_;
    my ($s) = http_request('POST', '/payments',
                           { 'Content-Type' => 'application/json' },
                           qq({"order_id":"$id","total":$total}));
    return $s;
}

sub settle {
    wait_for(sub { (http_get('/crm'))[2] =~ /"spool":\{"bytes":0\}/ }, 10);
    select(undef, undef, undef, 0.2);
}

sub status_json { (http_get('/crm'))[2] }

sub cookie_of { my ($o) = @_; ($o->{cookie} // '') =~ /^(crm=[^;]+)/ ? $1 : undef }

# a customer with a paid order, so that she has a 3 % promise open
sub regular {
    my ($id, $email, %o) = @_;
    my $r = order(id => $id, email => $email, %o);
    settle();
    pay($id, 100);
    settle();
    return $r;
}

# --- 1. a replayed order id or Idempotency-Key with another identity -----------

my $anna_first = regular('A-1', 'anna@example.com', name => 'Anna');
my $anna = $anna_first->{customer};
my $anna_cookie = cookie_of($anna_first);
ok($anna && $anna_cookie, 'Anna\'s first order made her and gave her a cookie');
is(db("SELECT count(*) FROM crm.promise_ledger WHERE customer_id = $anna AND status = 'open'"),
   '1', 'her paid order opened a promise');

my $before = db("SELECT customer_id || '|' || discount || '|' || status || '|' || decision::text"
                . " FROM crm.orders WHERE order_id = 'A-1'");
my $evil = order(id => 'A-1', email => 'attacker@evil.com');
is($evil->{state}, 'conflict', 'A-1 again with another e-mail: $crm_state=conflict');
is($evil->{customer}, '', '... the shop is told no customer');
is($evil->{discount}, '0', '... and no discount');
is($evil->{card}, '', '... and no card');
ok(!defined $evil->{cookie}, '... and no cookie is set');
is($evil->{status}, 200, '... the order still goes to the shop');
settle();
is(db("SELECT customer_id || '|' || discount || '|' || status || '|' || decision::text"
      . " FROM crm.orders WHERE order_id = 'A-1'"), $before,
   '... and the first order\'s decision is untouched');
like(status_json(), qr/"conflict":1\b/, 'the conflict is counted in crm_status');
is(db("SELECT state FROM crm.interactions WHERE order_id = 'A-1' ORDER BY received_at DESC LIMIT 1"),
   'conflict', 'staff see the replay as a conflict');

my $evil2 = order(id => 'EVIL-1', headers => { Cookie => 'crm=forged' });
is($evil2->{state}, 'no_customer', 'nothing obtained names Anna');

$evil = order(id => 'A-1', phone => '+1 555 0100 999');
is($evil->{state}, 'conflict', 'A-1 again with only another phone: conflict');

my $retry = order(id => 'A-1', email => ' Anna@Example.com ');
is($retry->{state}, 'ok', 'a true retry (same e-mail) is decided');
is($retry->{customer}, $anna, '... as Anna, the same decision');
ok(!defined $retry->{cookie}, '... but a retry from a browser without her cookie gets none');
$retry = order(id => 'A-1', email => 'anna@example.com',
               headers => { Cookie => $anna_cookie });
like($retry->{cookie} // '', qr/^crm=v1\.$anna\./, '... with her cookie: refreshed');

# the same with Idempotency-Key, orders with no order id
my $k = order(email => 'anna@example.com', headers => { 'Idempotency-Key' => 'K-77' });
is($k->{discount}, '3', 'an order keyed by Idempotency-Key reserves Anna\'s promise');
settle();
my $evil3 = order(email => 'attacker@evil.com', headers => { 'Idempotency-Key' => 'K-77' });
is($evil3->{state}, 'conflict', 'the same Idempotency-Key with another e-mail: conflict');
is("$evil3->{discount}|$evil3->{customer}", '0|', '... no discount, no customer');
ok(!defined $evil3->{cookie}, '... no cookie');
my $evil4 = order(headers => { 'Idempotency-Key' => 'K-77', Cookie => 'crm=v1.1.1.x' });
is($evil4->{state}, 'no_customer', 'the key with no identity names nobody');
settle();
is(db("SELECT count(*) FROM crm.promise_ledger WHERE customer_id = $anna AND status = 'kept'"),
   '1', 'Anna\'s promise was kept once, by her own order');

# an order id claimed first by someone whose order the shop refused belongs
# to nobody: the real buyer's order with that id is decided, and its payment
# counts for her
my $squat = order(id => 'SQ-1', email => 'mallory@evil.com',
                  headers => { 'X-Shop-Status' => 400 });
is($squat->{status}, 400, 'a squatter\'s order with a future order id is refused by the shop');
settle();
my $real = order(id => 'SQ-1', email => 'victim@example.com');
is($real->{state}, 'ok', '... the real order with that id is decided, no conflict');
like($real->{cookie} // '', qr/^crm=v1\.$real->{customer}\./, '... and creates her, with her cookie');
settle();
pay('SQ-1', 100);
settle();
is(db("SELECT email || '|' || paid_orders FROM crm.customer_overview"
      . " WHERE email IN ('victim\@example.com', 'mallory\@evil.com') ORDER BY email"),
   "mallory\@evil.com|0\nvictim\@example.com|1", '... and its payment counts for her, not the squatter');
is(db("SELECT status FROM crm.orders WHERE refused_order_id = 'SQ-1'"), 'refused',
   '... staff find the refused attempt by refused_order_id');

# X_CRM_* is X-CRM-* to a FastCGI shop (HTTP_X_CRM_*): removed too
my (undef, undef, $seen) = http_request('POST', '/orders',
    [ 'Content-Type' => 'application/json', 'X_CRM_Discount' => '99',
      'x_crm-tier' => 'gold', 'X-Crm_Card' => 'CRM-1' ],
    '{"order_id":"U-1","customer":{"email":"ursula@example.com"}}');
unlike($seen, qr/"x[-_]crm[-_](discount|tier|card)":"(99|gold|CRM-1)"/i,
       'X_CRM_* and mixed spellings from the client never reach the shop');

# --- 2. e-mails that share a phone are different customers --------------------

my $xavier = regular('X-1', 'xavier@example.com', phone => '+7 900 555 00 01',
                     name => 'Xavier')->{customer};
my $y = order(id => 'Y-1', email => 'yvonne@example.com',
              phone => '8 (900) 555-00-01', name => 'Yvonne');
isnt($y->{customer}, $xavier, 'Yvonne with Xavier\'s phone is another customer');
is($y->{discount}, '0', '... who does not get his promise');
settle();
is(db("SELECT name || '|' || email FROM crm.customer_overview WHERE customer_id = $xavier"),
   'Xavier|xavier@example.com', '... and Xavier is not renamed');
is(db("SELECT status FROM crm.promise_ledger WHERE customer_id = $xavier"), 'open',
   '... his promise is still open');
is(db("SELECT phone FROM crm.customer_overview WHERE customer_id = $y->{customer}"),
   '79005550001', 'both keep the phone (phones are not unique)');

my $s = order(id => 'S-1', phone => '+7 900 555-00-01', name => 'Stranger');
is($s->{customer}, $xavier, 'an order with only the phone is booked to its first customer');
ok(!defined $s->{cookie}, '... and gets no cookie naming him');
settle();
is(db("SELECT name FROM crm.customer_overview WHERE customer_id = $xavier"), 'Xavier',
   '... and a name sent with only a phone never overwrites his');
my $c = order(id => 'S-2', name => 'Cookie Monster', headers => { Cookie => $anna_cookie });
is($c->{customer}, $anna, 'an order with only Anna\'s cookie is hers');
settle();
is(db("SELECT name FROM crm.customer_overview WHERE customer_id = $anna"), 'Anna',
   '... and its name does not overwrite hers');
order(id => 'A-9', email => 'anna@example.com', name => 'Anna K.');
settle();
is(db("SELECT name FROM crm.customer_overview WHERE customer_id = $anna"), 'Anna K.',
   'a name sent with her e-mail is taken');

# --- 3. typing someone's e-mail does not return her cookie --------------------

my $typed = order(id => 'T-1', email => 'anna@example.com');
is($typed->{customer}, $anna, 'an order typed with Anna\'s e-mail is decided as hers');
ok(!defined $typed->{cookie}, '... but the browser gets no cookie naming her');
my $new = order(id => 'N-1', email => 'new.one@example.com');
like($new->{cookie} // '', qr/^crm=v1\.$new->{customer}\./,
     'the order that creates a customer sets her cookie');
my $again = order(id => 'N-2', email => 'new.one@example.com');
ok(!defined $again->{cookie}, 'her next order without the cookie gets none');
$again = order(id => 'N-3', headers => { Cookie => cookie_of($new) });
like($again->{cookie} // '', qr/^crm=v1\.$new->{customer}\./,
     'with her cookie, the cookie is refreshed');
my $other = order(id => 'N-4', email => 'anna@example.com',
                  headers => { Cookie => cookie_of($new) });
is($other->{customer}, $anna, 'her cookie with Anna\'s e-mail: the e-mail decides');
ok(!defined $other->{cookie}, '... and no cookie naming Anna or her is set');

# --- 5. e-mails that cannot be one; values bounded ----------------------------

my $long = ('a' x (1024 * 1024)) . '@example.com';
my $off;
my $written = status_json() =~ /"written":(\d+)/ ? $1 : -1;
my $e1 = order(id => 'E-1', email => $long);
is($e1->{state}, 'no_customer', 'a 1 MB e-mail names nobody');
my $e2 = order(id => 'E-2', email => "eve\@example.com\r\nBcc: all\@example.com");
is($e2->{state}, 'no_customer', 'an e-mail with CR/LF names nobody');
my $e3 = order(id => 'E-3', email => 'no-at-sign.example.com');
is($e3->{state}, 'no_customer', 'an e-mail without "@" names nobody');
my $e4 = order(id => 'x' x 300, email => 'olga@example.com');
is($e4->{state}, 'ok', 'an order id of 300 octets: the order is still decided');
settle();
is(db("SELECT count(*) FROM crm.interactions WHERE order_id IN ('E-1', 'E-2', 'E-3')"),
   '3', 'the three events are recorded in crm.interactions');
like(db("SELECT reason FROM crm.interactions WHERE order_id = 'E-1'"), qr/e-mail is not one/,
     '... with the reason');
is(db("SELECT count(*) FROM crm.spool_reject"), '0', 'nothing went to crm.spool_reject');
is(db("SELECT count(*) FROM crm.customer WHERE email LIKE '%aaaa%' OR email LIKE '%bcc%'"),
   '0', 'no customer was made of them');
like(db("SELECT reason FROM crm.interactions i JOIN crm.customer c USING (customer_id)"
        . " WHERE c.email = 'olga\@example.com'"),
     qr/order_id longer than 128/, 'the long order id was dropped, and the event says so');
my $now = status_json() =~ /"written":(\d+)/ ? $1 : -1;
# three undecided orders and a decided one; its result line is no event
is($now - $written, 4, 'events.written counts the four events, none rejected');

# a line PostgreSQL refuses goes to crm.spool_reject and is no written event
psql("ALTER TABLE crm.event ADD CONSTRAINT t085_poison"
     . " CHECK (order_id IS DISTINCT FROM 'POISON')");
$written = status_json() =~ /"written":(\d+)/ ? $1 : -1;
$off = error_log_offset();
order(id => 'POISON', email => 'olga@example.com');
order(id => 'NOT-POISON', email => 'olga@example.com');
settle();
is(db("SELECT count(*) FROM crm.spool_reject WHERE line LIKE '%POISON%'"), '1',
   'a refused event is kept in crm.spool_reject');
like(status_json(), qr/"rejected":1\b/, '... counted as events.rejected');
$now = status_json() =~ /"written":(\d+)/ ? $1 : -1;
is($now - $written, 1, '... and not as events.written');
error_log_clean($off, name => 'a refused line: said once',
                expect => [qr/1 events PostgreSQL could not write|violates check constraint "t085_poison"/]);
psql("ALTER TABLE crm.event DROP CONSTRAINT t085_poison");

# --- 9. totals written oddly ----------------------------------------------------

my %totals = ('T9-1' => ['1.5e2', '150.00'], 'T9-2' => ['1E2', '100.00'],
              'T9-3' => ['12.3456789', '12.35'], 'T9-4' => ['1000000000000', '']);
for my $id (sort keys %totals) {
    order(id => $id, email => 'tina@example.com', total => $totals{$id}[0]);
}
settle();
for my $id (sort keys %totals) {
    is(db("SELECT coalesce(total::text, '') FROM crm.orders WHERE order_id = '$id'"),
       $totals{$id}[1], "total $totals{$id}[0] stored as '$totals{$id}[1]'");
}
like(db("SELECT reason FROM crm.interactions WHERE order_id = 'T9-4'"),
     qr/total "1000000000000" is not an amount/, 'the total not stored says why');
is(db("SELECT count(*) FROM crm.interactions WHERE order_id IN ('T9-1','T9-2','T9-3') AND reason IS NOT NULL"),
   '0', 'the totals stored have no reason');

# --- 7. a decision that comes too late reserves nothing -------------------------

my $kate = regular('K-1', 'kate@example.com')->{customer};
my $pk = db("SELECT promise_id FROM crm.promise_ledger WHERE customer_id = $kate AND status = 'open'");
like($pk, qr/^\d+$/, 'Kate has a promise');

# her row locked for 2.5 s: longer than database.timeout (1 s)
sub lock_customer {
    my ($id, $seconds) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        { exec 'psql', '-X', '-q', '-h', '127.0.0.1', '-p', pg_port(), '-U', 'postgres',
               '-d', 'crm', '-c', "BEGIN; SELECT 1 FROM crm.customer WHERE customer_id = $id"
               . " FOR UPDATE; SELECT pg_sleep($seconds); COMMIT;" };
        POSIX::_exit(1);
    }
    wait_for(sub { db("SELECT count(*) FROM pg_stat_activity"
                      . " WHERE query LIKE 'BEGIN; SELECT 1 FROM crm.customer%'"
                      . " AND state = 'active'") ne '0' }, 5)
        or die "the customer row was not locked";
    return $pid;
}

$off = error_log_offset();
my $locker = lock_customer($kate, 2.5);
my $late = order(id => 'K-2', email => 'kate@example.com');
is($late->{state}, 'db_unavailable', 'with her row locked the order goes on undecided');
is($late->{discount}, '0', '... with 0 %');
waitpid $locker, 0;
settle();
ok(wait_for(sub { db("SELECT status FROM crm.promise_ledger WHERE promise_id = $pk") eq 'open' }, 10),
   'the late decision\'s reservation is given back: the promise is open');
is(db("SELECT discount || '|' || decided FROM crm.orders WHERE order_id = 'K-2'"), '0|false',
   '... and the order says 0 %, undecided: what the shop was told');
my $next = order(id => 'K-3', email => 'kate@example.com');
is($next->{discount}, '3', 'her next order gets the promise');
settle();
is(db("SELECT status || '|' || order_id FROM crm.promise_ledger WHERE promise_id = $pk"),
   'kept|K-3', '... and keeps it');
error_log_clean($off, name => 'late decision: only the expected warnings',
                expect => [qr/no order decision in time|query timed out/]);

# --- 7. an internally redirected order is settled at once ------------------------

my $fb = regular('F-1', 'fred@example.com')->{customer};
my $pf = db("SELECT promise_id FROM crm.promise_ledger WHERE customer_id = $fb AND status = 'open'");
$off = error_log_offset();
my $r = order(id => 'F-2', email => 'fred@example.com', path => '/orders-fallback');
is($r->{status}, 200, 'error_page 502 = @fallback: the fallback shop answers');
is($r->{discount}, '3', '... and still sees the decision');
settle();
is(db("SELECT status || '|' || order_id FROM crm.promise_ledger WHERE promise_id = $pf"),
   'kept|F-2', '... the promise is kept at once, not after 15 minutes');
is(db("SELECT status FROM crm.orders WHERE order_id = 'F-2'"), 'placed',
   '... and the order is placed');
settle(); pay('F-2', 100); settle();
my $pf2 = db("SELECT promise_id FROM crm.promise_ledger WHERE customer_id = $fb AND status = 'open'");
$r = order(id => 'F-3', email => 'fred@example.com', path => '/orders-refused');
is($r->{status}, 503, 'error_page 502 = @sorry answering 503');
settle();
is(db("SELECT status FROM crm.promise_ledger WHERE promise_id = $pf2"), 'open',
   '... the reservation is released at once');
is(db("SELECT status FROM crm.orders WHERE refused_order_id = 'F-3'"), 'refused',
   '... and the order is refused');
error_log_clean($off, name => 'internal redirect: only the refused upstream',
                expect => [qr/connect\(\) failed \(111: Connection refused\)/]);

# --- 7. a client that leaves while its order is parked ----------------------------

# the decision in time (0.8 s), or too late (2.5 s, past database.timeout)
my $n = 0;
for my $hold (0.8, 2.5) {
    $n++;
    my $lea = regular("L-$n", "lea$n\@example.com")->{customer};
    my $pl = db("SELECT promise_id FROM crm.promise_ledger WHERE customer_id = $lea AND status = 'open'");
    my $off = error_log_offset();
    my $locker = lock_customer($lea, $hold);
    my $body = qq({"order_id":"L-$n-2","customer":{"email":"lea$n\@example.com"},"total":10});
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port(),
                                     Proto => 'tcp') or die "connect: $!";
    print $sock "POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
    Time::HiRes::sleep(0.3);
    close $sock;
    waitpid $locker, 0;
    settle();
    ok(wait_for(sub { db("SELECT count(*) FROM crm.interactions WHERE order_id = 'L-$n-2'") eq '1' }, 10),
       "client gone while parked ($hold s): the order is recorded");
    ok(wait_for(sub { db("SELECT status FROM crm.promise_ledger WHERE promise_id = $pl") eq 'open' }, 10),
       '... and what it reserved is given back');
    is(db("SELECT discount || '|' || (status = 'placed') FROM crm.orders WHERE order_id = 'L-$n-2'"),
       '0|false', '... the order is not placed, and keeps 0 %');
    is(db("SELECT state || '|' || reason FROM crm.interactions WHERE order_id = 'L-$n-2'"),
       'db_unavailable|the client left while the decision was awaited',
       '... noticed while parked: the shop never got it');
    error_log_clean($off, name => "client gone ($hold s): no error",
                    expect => [qr/client prematurely closed|no order decision in time|query timed out/]);
}

# --- an error_page redirect while the body is read, into a capturing location -

$off = error_log_offset();
my $big = 'x' x 500;
my ($st) = http_raw("POST /orders-small/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                    . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    . sprintf("%x\r\n%s\r\n0\r\n\r\n", length $big, $big), 5);
ok(defined $st, 'a chunked body over client_max_body_size with error_page into a'
                . ' capturing location is answered, not left hanging');
error_log_clean($off, name => 'error_page 413: only the too large body',
                expect => [qr/client intended to send too large chunked body/]);

done_testing();
