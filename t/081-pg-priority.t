# The pool's order of queries: a decision an order waits for goes before
# the background work (the spool's batches, banner fills, periodic checks),
# and the background never takes the last connection.  With the events
# table locked by staff, the spool's batch and a banner fill would each hold
# one of two connections for as long as the lock lasts; an order arriving
# then must still be decided at once.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;
use POSIX ();
use Time::HiRes qw(time sleep);

my $SHOP = CRM::Shop->start->port;

# valgrind and ASan slow nginx down: every wait grows with them
my $F = CRM::Test::timeout_factor();
my $TIMEOUT = 6 * $F;
my $LOCK = 8 * $F;

my $policy = <<'YAML';
version: 1
database:
  conninfo: "$CRM_CONNINFO"
  spool: $SPOOL
  timeout: TIMEOUTs
  connections: 2
identity:
  cookie: crm
  secret_file: $SERVROOT/conf/crm.secret
fields:
  order_id: /order_id
  email: /customer/email
  name: /customer/name
  total: /total
banners:
  - id: ready
    when: discount_ready
    template: '<p class="crm">{discount}% for you</p>'
YAML

my $config = <<"CONF";
location = /orders {
    crm_capture order;
    proxy_set_header X-CRM-State \$crm_state;
    proxy_set_header X-CRM-Customer \$crm_customer;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /notes {
    crm_capture feedback;
    proxy_pass http://127.0.0.1:$SHOP;
}
location /s/ {
    crm_banner on;
    add_header X-Banner \$crm_banner;
}
location = /crm { crm_status; }
CONF

CRM::Test::spew(servroot() . '/conf/crm.secret', ('p' x 40) . "\n");
mkdir servroot() . '/html/s';
CRM::Test::spew(servroot() . '/html/s/page.html',
                "<html><body><h1>Shop</h1></body></html>\n");

$policy =~ s/TIMEOUT/$TIMEOUT/;
ok(start_nginx({ policy => $policy, config => $config }), 'nginx starts');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":2/ }, 10),
   'both connections up');

sub order {
    my ($id, $email, %o) = @_;
    my ($status, $headers, $resp) = http_request('POST', '/orders',
        { 'Content-Type' => 'application/json', %{ $o{headers} || {} } },
        qq({"order_id":"$id","customer":{"email":"$email","name":"Eva"},)
        . qq("total":20}), timeout => 10);
    my %seen = $resp =~ /"x-crm-(\w+)":"([^"]*)"/g;
    $seen{cookie} = $headers->{'set-cookie'};
    return \%seen;
}

sub db { my $r = psql($_[0]); chomp $r; $r }

sub waiting_on_lock {
    my ($what) = @_;
    return db("SELECT count(*) FROM pg_stat_activity WHERE datname = "
              . "current_database() AND wait_event_type = 'Lock' AND "
              . "query LIKE '%$what%'");
}

# a customer with a promise and her cookie; her banner state not yet read
my $o = order('PR-1', 'eva@example.com');
is($o->{state}, 'ok', 'a first order is decided');
my ($cookie) = ($o->{cookie} // '') =~ /^(crm=[^;]+)/;
ok($cookie, '... and sets her cookie');
db("INSERT INTO crm.promise (customer_id, kind, percent, valid_until) "
   . "VALUES ($o->{customer}, 'repeat_order', 10, now() + interval '1 day')");
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"spool":\{"bytes":0\}/ }, 10),
   'the spool is written out');

# staff hold the events table: what reads or writes it waits
my $pid = fork;
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    open STDOUT, '>', '/dev/null';
    { exec 'psql', '-X', '-q', '-h', '127.0.0.1', '-p', pg_port(), '-U',
           'postgres', '-d', 'crm', '-c', 'BEGIN; LOCK TABLE crm.event IN '
           . "ACCESS EXCLUSIVE MODE; SELECT pg_sleep($LOCK); COMMIT;" };
    POSIX::_exit(1);
}
ok(wait_for(sub { db("SELECT count(*) FROM pg_locks l JOIN pg_class c "
                     . "ON c.oid = l.relation WHERE c.relname = 'event' "
                     . "AND l.mode = 'AccessExclusiveLock' AND l.granted")
                  ne '0' }, 5),
   'staff lock crm.event');

# the spool's batch waits on the lock, on one connection
http_request('POST', '/notes', { 'Content-Type' => 'application/json' },
             '{"order_id":"PR-1","message":"thanks"}');
ok(wait_for(sub { waiting_on_lock('record_events') }, 5),
   'the spool batch waits for the lock on a connection');

# a page view of hers misses the cache: a background fill, which would
# wait on the lock too
my ($s, $h) = http_request('GET', '/s/page.html',
                           { Cookie => $cookie, Accept => 'text/html' });
is($s, 200, 'her page is served at once');
is($h->{'x-banner'} // '', '', '... without a banner: her state is not read yet');
sleep(0.5);
is(waiting_on_lock('banner_rows'), '0',
   'the banner fill is not given the last connection');

# an order now: decided on the connection left, not after the lock
my $t0 = time;
$o = order('PR-2', 'otto@example.com');
my $took = time - $t0;
is($o->{state}, 'ok', 'an order during the lock is decided');
# before: it waited until the fill holding the connection timed out
cmp_ok($took, '<', $TIMEOUT / 2,
       "... without waiting for the lock (${\ sprintf '%.2f', $took} s)");
is(waiting_on_lock('record_events'), '1', '... while the spool batch still waits');

waitpid($pid, 0);

# the lock gone: the batch is written, the fill runs, the banner shows
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"spool":\{"bytes":0\}/ }, 10),
   'after the lock the spool is written out');
ok(wait_for(sub {
       my ($s, $h) = http_request('GET', '/s/page.html',
                                  { Cookie => $cookie, Accept => 'text/html' });
       ($h->{'x-banner'} // '') eq 'ready';
   }, 10), '... and her banner state is read: the banner shows');
is(db("SELECT count(*) FROM crm.event WHERE kind = 'feedback'"), '1',
   'the note was written once');

done_testing();
