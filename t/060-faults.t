# Faults: PostgreSQL down, stopped mid-traffic, hung, slow, too old; a worker
# killed; reloads under traffic; a client that goes away.  Every captured
# request is recorded once, and the shop never waits on the database.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;
use IO::Socket::INET;
use POSIX ();

my $shop = CRM::Shop->start;
my $SHOP = $shop->port;

sub policy {
    my ($conninfo) = @_;
    return <<"YAML";
version: 1
database:
  conninfo: "$conninfo"
  spool: \$SPOOL
  timeout: 250ms
  connections: 2
fields:
  order_id: /order_id
YAML
}

my $config = <<"CONF";
location /orders {
    crm_capture order;
    proxy_set_header X-CRM-State \$crm_state;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /status { crm_status; }
location = /fast { return 200 "fast\\n"; }
CONF

my %conf = (policy => policy('$CRM_CONNINFO'), config => $config);

# sends one order; returns its $crm_state as the shop saw it, or the failure
sub order {
    my ($id, %o) = @_;
    my ($status, $h, $body) = http_request('POST', '/orders',
        { 'Content-Type' => 'application/json' }, qq({"order_id":"$id","email":"fault\@example.com"}),
        timeout => $o{timeout} || 5);
    return "status " . (defined $status ? $status : 'none')
        unless defined $status && $status == 200;
    return $body =~ /"x-crm-state":"(\w+)"/ ? $1 : 'no state';
}

# "rows|distinct event ids" of the orders whose id starts with $prefix
sub recorded {
    my ($prefix) = @_;
    my $r = psql("SELECT count(*) || '|' || count(DISTINCT event_id)"
                 . " FROM crm.interactions WHERE order_id LIKE '$prefix%'");
    chomp $r;
    return $r;
}

sub recorded_is {
    my ($prefix, $n, $name) = @_;
    my $want = "$n|$n";
    wait_for(sub { recorded($prefix) eq $want }, 30);
    is(recorded($prefix), $want, $name);
}

sub status_field {
    my ($re) = @_;
    my (undef, undef, $body) = http_get('/status');
    return $body =~ $re ? $1 : undef;
}

# -- the database down from the start, then started -------------------------

pg_start();             # the cluster exists and has the schema
pg_stop();
my $off = error_log_offset();
ok(start_nginx(\%conf), 'nginx starts while PostgreSQL is down');
my @states = map { order("start-$_") } 1 .. 20;
is(scalar(grep { !/^(ok|db_unavailable)$/ } @states), 0,
   'all 20 orders reached the shop') or diag "@states";
is($states[-1], 'db_unavailable', 'the shop is told the database is down');
like(status_field(qr/("spool":\{"bytes":\d+\})/), qr/"bytes":[1-9]/,
     'the events wait in the spool');
pg_start();
recorded_is('start-', 20, 'database started: all 20 recorded, once each');
like(error_log_since($off), qr/crm: connecting to PostgreSQL failed: .*refused/,
     'the error log says why');
error_log_clean($off, expect => [qr/connecting to PostgreSQL failed/],
                name => 'nothing worse than the refused connections');

# -- stopped in the middle of traffic and restarted ---------------------------

$off = error_log_offset();
@states = ();
for my $i (1 .. 90) {
    pg_stop() if $i == 30;
    pg_start() if $i == 60;
    push @states, order("mid-$i");
}
is(scalar(grep { !/^(ok|db_unavailable)$/ } @states), 0,
   'every order reached the shop while PostgreSQL went away and came back');
recorded_is('mid-', 90, 'none lost, none doubled');
error_log_clean($off, expect => [qr/PostgreSQL failed/, qr/query failed/],
                name => 'only connection errors logged');

# -- a worker killed with SIGKILL while its events are spooled ----------------

pg_stop();
$off = error_log_offset();
order("kill-$_") for 1 .. 10;
my ($victim) = worker_pids();
kill 'KILL', $victim;
ok(wait_for(sub { my @w = worker_pids(); @w == 1 && $w[0] != $victim }, 10),
   'the master starts a new worker');
pg_start();
recorded_is('kill-', 10, 'the killed worker\'s spooled events are replayed');
like(error_log_since($off), qr/crm: replaying "[^"]+worker-$victim-\d+\.jsonl"/,
     'the new worker took the file over');
error_log_clean($off, expect => [qr/PostgreSQL failed/, qr/exited on signal 9/],
                ignore_levels => ['alert'],
                name => 'the kill is the only alert');

# -- reload under traffic -------------------------------------------------------

# the orders may wait longer than 250 ms for a decision here: new workers
# connect while the old ones finish, which under valgrind takes a while
my %rconf = (%conf, policy => $conf{policy} =~ s/timeout: 250ms/timeout: 3s/r);
is(reload_nginx(\%rconf), 1, 'reload with a 3 s database.timeout');
$off = error_log_offset();
my $pid = fork;
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    my $bad = 0;
    for my $i (1 .. 150) {
        $bad++ unless order("reload-$i") eq 'ok';
    }
    POSIX::_exit($bad > 255 ? 255 : $bad);
}
my $reloads = 0;
for (1 .. 3) {
    select(undef, undef, undef, 0.2);
    $reloads += reload_nginx(\%rconf);
}
waitpid $pid, 0;
is($? >> 8, 0, 'all 150 orders answered during 3 reloads');
is($reloads, 3, 'the reloads took');
recorded_is('reload-', 150, 'none lost, none doubled across reloads');
error_log_clean($off, name => 'reloads logged no error');
is(reload_nginx(\%conf), 1, 'back to the 250 ms database.timeout');

# -- a slow query: longer than the timeout ------------------------------------

psql(<<'SQL');
CREATE TABLE public.slow_once (done boolean NOT NULL);
INSERT INTO public.slow_once VALUES (false);
CREATE FUNCTION public.slow_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (SELECT done FROM public.slow_once) THEN
        UPDATE public.slow_once SET done = true;
        PERFORM pg_sleep(1.5);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER slow_once BEFORE INSERT ON crm.orders
    FOR EACH STATEMENT EXECUTE FUNCTION public.slow_once();
SQL
$off = error_log_offset();
@states = map { order("slow-$_") } 1 .. 5;
is($states[0], 'db_unavailable',
   'a decision slower than the timeout: the order goes on without one');
is(scalar(grep { !/^(ok|db_unavailable)$/ } @states), 0,
   'every order is answered') or diag "@states";
# the slow transaction holds the customer's row until it ends
select(undef, undef, undef, 2);
is(order('slow-6'), 'ok', 'once it is over, orders are decided again');
recorded_is('slow-', 6, 'all recorded once');
like(error_log_since($off), qr/crm: PostgreSQL query timed out/,
     'the timeout is logged');
error_log_clean($off, expect => [qr/timed out/],
                name => 'nothing else logged');
psql('DROP TRIGGER slow_once ON crm.orders');

# -- a hung database: it accepts and never answers -----------------------------

my $hung = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                 Proto => 'tcp', Listen => 64, ReuseAddr => 1)
    or die "listen: $!";
my $hung_port = $hung->sockport;
my $hung_pid = fork;
die "fork: $!" unless defined $hung_pid;
if ($hung_pid == 0) {
    my @held;
    while (my $c = $hung->accept) { push @held, $c }
    POSIX::_exit(0);
}
close $hung;

my %hung_conf = (policy => policy("host=127.0.0.1 port=$hung_port dbname=crm"
                                  . " user=postgres"),
                 config => $config);
$off = error_log_offset();
ok(start_nginx(\%hung_conf), 'nginx starts with a hung database');
@states = map { order("hung-$_", timeout => 3) } 1 .. 10;
is(scalar(grep { !/^(ok|db_unavailable)$/ } @states), 0,
   'orders go on while the database hangs') or diag "@states";
my ($s, undef, $b) = http_get('/fast');
is("$s $b", "200 fast\n", 'another location answers meanwhile');
ok(wait_for(sub { error_log_since($off) =~ /connecting to PostgreSQL timed out/ },
            10), 'the connect timeout is logged');

# back to the real database: the spooled events follow
%conf = (policy => policy('$CRM_CONNINFO'), config => $config);
is(reload_nginx(\%conf), 1, 'reload to the real database');
recorded_is('hung-', 10, 'what was spooled during the hang is written once');
kill 'KILL', $hung_pid;
waitpid $hung_pid, 0;
error_log_clean($off, expect => [qr/timed out/, qr/PostgreSQL failed/],
                name => 'only timeouts logged');

# -- a schema older than the module needs -------------------------------------

psql('DROP SCHEMA crm CASCADE');
$off = error_log_offset();
ok(start_nginx(\%conf), 'restart with no schema in the database');
ok(wait_for(sub { error_log_since($off) =~ /crm: the database has no crm schema/ }, 10),
   'the error log says the schema is missing and how to apply it');
order("schema-$_") for 1 .. 3;
ok(apply_schema(), 'config.sh db applies the schema');
recorded_is('schema-', 3, 'then the spooled events are written');
# under valgrind a connect can take longer than its timeout
error_log_clean($off, expect => [qr/crm schema/, qr/the database schema is version \d, the module needs/,
                                 qr/connecting to PostgreSQL timed out/],
                name => 'no other error');

# -- several hosts: the first refuses, libpq moves on to the second -------------

my $dead = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                 Proto => 'tcp', Listen => 1) or die;
my $dead_port = $dead->sockport;
close $dead;            # nothing listens there now: connections are refused
my $pg_port = pg_port();
ok(start_nginx({ policy => policy("host=127.0.0.1,127.0.0.1 port=$dead_port,$pg_port"
                                  . " dbname=crm user=postgres"),
                 config => $config }),
   'nginx starts with two hosts, the first one refusing');
ok(wait_for(sub { (http_get('/status'))[2] =~ /"up":[1-9]/ }, 10),
   'libpq moves on to the second host and the pool connects');
is(order('multi-1'), 'ok', 'and orders are decided');
recorded_is('multi-', 1, 'and recorded');

# -- a client that goes away while its body is read ----------------------------

$off = error_log_offset();
my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port(),
                              Proto => 'tcp') or die "connect: $!";
print $c "POST /orders HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n"
       . "Content-Type: application/json\r\n\r\n{\"order_id\":";
select(undef, undef, undef, 0.2);
close $c;
($s, undef, $b) = http_get('/fast');
is("$s $b", "200 fast\n", 'the server goes on after a client left mid-body');
is(order('after-gone'), 'ok', 'and captures the next order');
recorded_is('after-gone', 1, 'which is recorded');
error_log_clean($off, expect => [qr/connecting to PostgreSQL timed out/],
                name => 'no error for the client that left');

done_testing();
