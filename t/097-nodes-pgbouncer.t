# Three nginx nodes (their own prefixes, ports and spools, one secret file)
# through Debian's pgbouncer in transaction mode to one PostgreSQL: the
# money limits hold across the nodes, a change made through one node shows
# in another's banners within 2 s (LISTEN goes straight to PostgreSQL by
# database.listen_conninfo), an SLA breach opens exactly one compensation,
# and PostgreSQL sees no more backends than pgbouncer's pool.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;
use POSIX ();
use Time::HiRes ();

my $SHOP = CRM::Shop->start->port;
my $dir = servroot();
my $POOL = 4;

sub db { my $r = psql($_[0]); chomp $r; $r }

pg_start();

# --- pgbouncer, transaction pooling ------------------------------------------

my $BOUNCER_PORT = CRM::Test::free_port();
mkdir "$dir/bouncer";
CRM::Test::spew("$dir/bouncer/userlist.txt", qq("postgres" ""\n));
CRM::Test::spew("$dir/bouncer/pgbouncer.ini", <<"INI");
[databases]
crm = host=127.0.0.1 port=${\ pg_port()} dbname=crm user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $dir/bouncer/userlist.txt
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 500
logfile = $dir/bouncer/pgbouncer.log
pidfile = $dir/bouncer/pgbouncer.pid
INI
system('chown', '-R', 'postgres', "$dir/bouncer") == 0 or die "chown";
system(CRM::Test::as_postgres(), '/usr/sbin/pgbouncer', '-d', '-q',
       "$dir/bouncer/pgbouncer.ini") == 0 or die "pgbouncer did not start";
END {
    if ($dir && -f "$dir/bouncer/pgbouncer.pid") {
        my $pid = CRM::Test::slurp("$dir/bouncer/pgbouncer.pid");
        kill 'TERM', $pid + 0 if $pid;
    }
}
ok(wait_for(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$BOUNCER_PORT") }, 10),
   "pgbouncer 1.18 listens in transaction mode, pool of $POOL");

my $BOUNCER = "host=127.0.0.1 port=$BOUNCER_PORT dbname=crm user=postgres";

# --- three nodes -----------------------------------------------------------------

my $allday = join '', map { "      $_: \"00:00-24:00\"\n" }
    qw(mon tue wed thu fri sat sun);

my $policy = <<"YAML";
version: 1
database:
  conninfo: "$BOUNCER"
  listen_conninfo: "\$CRM_CONNINFO"
  spool: \$SPOOL
  timeout: 5s
  connections: 4
identity:
  cookie: crm
  secret_file: \$SERVROOT/conf/crm.secret
fields:
  order_id: /order_id
  email: /customer/email
  name: /customer/name
  total: /total
  message: /message
cache:
  ttl: 1h
loyalty:
  promise:
    valid_for: 30d
    max_discount: 20
surprises:
  probability: 1
  min_paid_orders: 0
  cooldown: 0s
  daily_budget: 10
  gifts:
    - name: tea
      cost: 2.50
holdout:
  percent: 0
feedback:
  sla:
    target: 1s
    limit: 3s
    timezone: UTC
    breach_compensation: 10
    hours:
$allday
banners:
  - id: ready
    when: discount_ready
    template: '<p class="crm">{discount}% off for you</p>'
YAML

my $config = <<"CONF";
location = /orders {
    crm_capture order;
    proxy_set_header X-CRM-Discount \$crm_discount;
    proxy_set_header X-CRM-Gift \$crm_gift;
    proxy_set_header X-CRM-Customer \$crm_customer;
    proxy_set_header X-CRM-State \$crm_state;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /payments {
    crm_capture payment;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /feedback { crm_capture feedback; }
location /s/ {
    crm_banner on;
    add_header X-Banner \$crm_banner;
}
location = /crm { crm_status; }
CONF

CRM::Test::spew("$dir/conf/crm.secret", ('n' x 40) . "\n");
mkdir "$dir/html/s";
CRM::Test::spew("$dir/html/s/page.html",
                "<html><body><h1>Shop</h1></body></html>\n");

ok(start_nginx({ policy => $policy, config => $config, workers => 2 }),
   'node A starts (two workers)');

# nodes B and C: node A's files with their own port, spool and prefix
my %PORT = (a => CRM::Test::server_port());
sub node_cmd {
    my ($name, @args) = @_;
    return CRM::Test::nginx_in("$dir/$name", @args);
}
for my $name (qw(b c)) {
    $PORT{$name} = CRM::Test::free_port();
    mkdir "$dir/$name"; mkdir "$dir/$name/logs"; mkdir "$dir/$name/conf";
    (my $p = CRM::Test::slurp(CRM::Test::policy_file()))
        =~ s{^(\s*spool:\s*)\S+}{$1$dir/spool-$name}m;
    CRM::Test::spew("$dir/$name/conf/policy.yaml", $p);
    my $c = CRM::Test::slurp("$dir/conf/nginx.conf");
    $c =~ s{listen 127\.0\.0\.1:\d+}{listen 127.0.0.1:$PORT{$name}};
    $c =~ s{crm_policy \S+;}{crm_policy $dir/$name/conf/policy.yaml;};
    CRM::Test::spew("$dir/$name/conf/nginx.conf", $c);
    my ($rc) = node_cmd($name);
    is($rc, 0, "node " . uc($name) . " starts on its own port and spool");
}
END {
    for my $name (qw(b c)) {
        node_cmd($name, '-s', 'stop') if $dir && -f "$dir/$name/logs/nginx.pid";
    }
}

sub status_of { (http_request('GET', '/crm', {}, undef, port => $PORT{$_[0]}))[2] }
for my $name (qw(a b c)) {
    ok(wait_for(sub { status_of($name) =~ /"up":[1-9]/ }, 10),
       "node " . uc($name) . " is connected through pgbouncer");
}

sub order {
    my ($node, $id, $email, %o) = @_;
    my ($status, $headers, $resp) = http_request('POST', '/orders',
        { 'Content-Type' => 'application/json', %{ $o{headers} || {} } },
        qq({"order_id":"$id","customer":{"email":"$email","name":"N"},)
        . qq("total":30}), port => $PORT{$node}, timeout => 20);
    my %seen = $resp =~ /"x-crm-(\w+)":"([^"]*)"/g;
    $seen{status} = $status;
    $seen{cookie} = $headers->{'set-cookie'};
    return \%seen;
}

sub settle {
    for my $name (qw(a b c)) {
        wait_for(sub { status_of($name) =~ /"spool":\{"bytes":0\}/ }, 20);
    }
}

# --- one promise, 50 orders at once over three nodes --------------------------------

my $first = order('a', 'N-0', 'nina@example.com');
is($first->{state}, 'ok', 'Nina orders through node A');
my $nina = $first->{customer};
my ($cookie) = ($first->{cookie} // '') =~ /^(crm=[^;]+)/;
settle();
db("DELETE FROM crm.gift");
db("UPDATE crm.gift_budget SET spent = 0");
db("INSERT INTO crm.promise (customer_id, kind, percent, valid_until) "
   . "VALUES ($nina, 'repeat_order', 10, now() + interval '1 day')");

my @nodes = qw(a b c);
my %kid;
for my $i (1 .. 50) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $o = order($nodes[$i % 3], "N-$i", 'nina@example.com');
        CRM::Test::spew("$dir/order-$i",
                        join(' ', map { "$_=" . ($o->{$_} // '') }
                                  qw(status state discount gift)));
        POSIX::_exit(0);
    }
    $kid{$pid} = $i;
}
waitpid($_, 0) for keys %kid;
my @res = map { CRM::Test::slurp("$dir/order-$_") } 1 .. 50;
is(scalar(grep { /status=200 state=ok / } @res), 50,
   '50 concurrent orders over three nodes: all decided and passed on');
is(scalar(grep { /discount=10 / } @res), 1,
   '... exactly one got the promise\'s 10 %');
is(scalar(grep { /discount=0 / } @res), 49, '... the other 49 none');
is(scalar(grep { /gift=tea/ } @res), 4,
   '... the daily gift budget (10, tea at 2.50) gave exactly 4 gifts');
settle();
is(db("SELECT string_agg(status, ',') FROM crm.promise WHERE customer_id = $nina"
      . " AND kind = 'repeat_order' AND percent = 10"), 'kept',
   'the promise is kept once');
is(db("SELECT count(*) FROM crm.orders WHERE customer_id = $nina AND discount > 0"),
   '1', '... by one order');
is(db("SELECT sum(cost) || ' in ' || count(*) FROM crm.gift"
      . " WHERE status <> 'released'"), '10.00 in 4',
   'the gifts cost exactly the budget');
is(db("SELECT spent FROM crm.gift_budget WHERE day = current_date"), '10.00',
   '... and the budget row says so');

# --- a change through node A shows on node C within 2 s ---------------------------

db("INSERT INTO crm.promise (customer_id, kind, percent, valid_until) "
   . "VALUES ($nina, 'repeat_order', 15, now() + interval '1 day')");
sub banner_c {
    my ($s, $h) = http_request('GET', '/s/page.html',
        { Cookie => $cookie, Accept => 'text/html' }, undef, port => $PORT{c});
    return $h->{'x-banner'} // '';
}
ok(wait_for(sub { banner_c() eq 'ready' }, 10),
   'node C shows Nina her discount banner (its cache.ttl is an hour)');
my $o = order('a', 'N-99', 'nina@example.com', headers => { Cookie => $cookie });
is($o->{discount}, '15', 'she orders through node A with the 15 %');
my $t0 = Time::HiRes::time();
ok(wait_for(sub { banner_c() eq '' }, 5),
   'node C drops the banner: the promise was used through node A');
my $took = Time::HiRes::time() - $t0;
cmp_ok($took, '<', 2 * CRM::Test::timeout_factor(),
       sprintf('... within 2 s (%.2f s), by NOTIFY past pgbouncer', $took));

# --- an SLA breach, checked by every node: one compensation ----------------------------

# compensation is for a customer who paid: her first order, paid through C
my ($ps) = http_request('POST', '/payments', { 'Content-Type' => 'application/json' },
                        '{"order_id":"N-0","total":30}', port => $PORT{c});
is($ps, 200, 'Nina pays her first order through node C');
settle();

my ($fs, $fh, $fb) = http_request('POST', '/feedback',
    { 'Content-Type' => 'application/json' },
    '{"customer":{"email":"nina@example.com"},"message":"where is it?"}',
    port => $PORT{b});
my ($ticket) = $fb =~ /"ticket":"(\w+)"/;
ok($ticket, "a ticket through node B ($fs)");
ok(wait_for(sub { db("SELECT breached FROM crm.open_tickets"
                     . " WHERE ticket = '$ticket'") eq 't' }, 30),
   'unanswered past its 3 s it is breached');
select(undef, undef, undef, 4);
is(db("SELECT count(*) FROM crm.promise WHERE customer_id = $nina"
      . " AND kind = 'sla_breach'"), '1',
   'exactly one sla_breach compensation, with three nodes checking');

# --- PostgreSQL's backends ----------------------------------------------------------

my $backends = db("SELECT count(*) FROM pg_stat_activity WHERE datname = 'crm'"
                  . " AND backend_type = 'client backend'"
                  . " AND pid <> pg_backend_pid() AND query NOT LIKE 'LISTEN%'");
cmp_ok($backends, '<=', $POOL,
       "PostgreSQL has $backends backends for the nodes' pools (pgbouncer's"
       . " pool is $POOL; the nodes hold 3 x 2 workers x 4 connections)");
is(db("SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN crm_banner'"),
   '3', '... and one LISTEN connection per node, straight to PostgreSQL');

for my $name (qw(b c)) {
    node_cmd($name, '-s', 'stop');
    ok(wait_for(sub { !-f "$dir/$name/logs/nginx.pid" }, 30),
       "node " . uc($name) . " stops");
    my $log = CRM::Test::slurp("$dir/$name/logs/error.log");
    my @bad = grep { /\[(alert|crit|emerg|error)\]/ } split /\n/, $log;
    is(scalar(@bad), 0, "node " . uc($name) . "'s error log is clean")
        or diag join "\n", @bad[0 .. ($#bad < 4 ? $#bad : 4)];
}

done_testing();
