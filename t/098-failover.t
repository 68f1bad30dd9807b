# Failover with nothing lost: a primary and a synchronous streaming standby
# (pg_basebackup -R, synchronous_standby_names), the module given both hosts
# with target_session_attrs=read-write.  The primary is stopped with -m
# immediate in the middle of 500 orders and the standby promoted: every
# order reaches the shop, every event is in the new primary exactly once,
# decisions resume within seconds, and the one promise is redeemed once.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;
use POSIX ();
use Time::HiRes qw(time sleep);

my $SHOP = CRM::Shop->start->port;
my $dir = servroot();
my $F = CRM::Test::timeout_factor();

pg_start();
my $P1 = pg_port();
my $P2 = CRM::Test::free_port();
my $pg_bin = '/usr/lib/postgresql/15/bin';

sub on {
    my ($port, $sql) = @_;
    my ($rc, $out, $err) = CRM::Test::run_cmd(
        cmd => ['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
                '-h', '127.0.0.1', '-p', $port, '-U', 'postgres', '-d', 'crm',
                '-c', $sql]);
    die "psql on $port failed: $err" if $rc;
    chomp $out;
    return $out;
}

# --- the standby --------------------------------------------------------------

my $sb = "$dir/standby";
mkdir $sb;
system('chown', 'postgres', $sb) == 0 or die;
my ($rc, $out, $err) = CRM::Test::run_cmd(cmd => [CRM::Test::as_postgres(),
    "$pg_bin/pg_basebackup", '-h', '127.0.0.1', '-p', $P1, '-U', 'postgres',
    '-D', "$sb/data", '-R', '-X', 'stream', '--no-sync']);
is($rc, 0, 'pg_basebackup -R makes a standby of the primary') or diag $err;
($rc, $out, $err) = CRM::Test::run_cmd(cmd => [CRM::Test::as_postgres(),
    "$pg_bin/pg_ctl", '-D', "$sb/data", '-w', '-t', 60, '-l', "$sb/postgres.log",
    '-o', "-p $P2 -k $sb -c listen_addresses=127.0.0.1 -c cluster_name=standby1",
    'start']);
is($rc, 0, 'the standby starts') or diag $err;
END {
    CRM::Test::run_cmd(cmd => [CRM::Test::as_postgres(), "$pg_bin/pg_ctl",
                               '-D', "$sb/data", '-m', 'immediate', 'stop'])
        if $sb && -f "$sb/data/postmaster.pid";
}
on($P1, "ALTER SYSTEM SET synchronous_standby_names = 'standby1'");
on($P1, 'SELECT pg_reload_conf()');
ok(wait_for(sub { on($P1, "SELECT count(*) FROM pg_stat_replication"
                          . " WHERE sync_state = 'sync'") eq '1' }, 20),
   'the standby is synchronous: a commit waits for it');

# --- nginx with both hosts ----------------------------------------------------------

my $policy = <<"YAML";
version: 1
database:
  conninfo: "host=127.0.0.1,127.0.0.1 port=$P1,$P2 dbname=crm user=postgres target_session_attrs=read-write connect_timeout=2"
  spool: \$SPOOL
  timeout: 2s
  connections: 2
identity:
  cookie: crm
  secret_file: \$SERVROOT/conf/crm.secret
fields:
  order_id: /order_id
  email: /customer/email
  total: /total
loyalty:
  promise:
    valid_for: 30d
    max_discount: 20
surprises:
  probability: 0
YAML
my $config = <<"CONF";
location = /orders {
    crm_capture order;
    proxy_set_header X-CRM-State \$crm_state;
    proxy_set_header X-CRM-Discount \$crm_discount;
    proxy_set_header X-CRM-Customer \$crm_customer;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /crm { crm_status; }
CONF
CRM::Test::spew("$dir/conf/crm.secret", ('f' x 40) . "\n");
ok(start_nginx({ policy => $policy, config => $config }), 'nginx starts');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 10),
   'connected to the primary');

sub order {
    my ($id, $email) = @_;
    my ($s, $h, $b) = http_request('POST', '/orders',
        { 'Content-Type' => 'application/json' },
        qq({"order_id":"$id","customer":{"email":"$email"},"total":20}),
        timeout => 30);
    my %seen = ($b // '') =~ /"x-crm-(\w+)":"([^"]*)"/g;
    $seen{shop} = ($s == 200 && ($b // '') =~ m{"uri":"/orders"}) ? 1 : 0;
    return \%seen;
}

my $o = order('F-0', 'fay@example.com');
is($o->{state}, 'ok', 'a first order of Fay is decided');
my $fay = $o->{customer};
on($P1, "INSERT INTO crm.promise (customer_id, kind, percent, valid_until)"
        . " VALUES ($fay, 'repeat_order', 10, now() + interval '1 day')");

# --- 500 orders, the primary killed after the first 150 ----------------------------

my $N = 500;
my %kid;
for my $c (0 .. 4) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open my $log, '>', "$dir/client-$c" or POSIX::_exit(1);
        $log->autoflush(1);
        for my $i (1 .. $N / 5) {
            my $n = $c * ($N / 5) + $i;
            # every fifth order is Fay's: her promise is there to be taken
            my $email = $n % 5 ? "c$n\@example.com" : 'fay@example.com';
            my $r = order("F-$n", $email);
            printf $log "%d %.3f %s %s %s\n", $n, time, $r->{shop},
                   $r->{state} // '-', $r->{discount} // '-';
        }
        close $log;
        POSIX::_exit(0);
    }
    $kid{$pid} = $c;
}

sub done_orders { my $n = 0; $n += () = CRM::Test::slurp($_) =~ /\n/g for glob "$dir/client-*"; $n }
ok(wait_for(sub { done_orders() >= 150 }, 60 * $F), '150 orders done');
($rc) = CRM::Test::run_cmd(cmd => [CRM::Test::as_postgres(), "$pg_bin/pg_ctl",
    '-D', "$dir/pg/data", '-m', 'immediate', 'stop']);
my $killed = time;
is($rc, 0, 'the primary is stopped with -m immediate');
($rc, $out, $err) = CRM::Test::run_cmd(cmd => [CRM::Test::as_postgres(),
    "$pg_bin/pg_ctl", '-D', "$sb/data", '-w', 'promote']);
is($rc, 0, 'the standby is promoted') or diag $err;
my $promoted = time;

waitpid($_, 0) for keys %kid;
my @lines = map { split /\n/, CRM::Test::slurp($_) } glob "$dir/client-*";
is(scalar(@lines), $N, "all $N orders answered");
is(scalar(grep { (split / /)[2] eq '1' } @lines), $N,
   '... every one by the shop: none lost in the failover');

# decisions resume: the first decided order answered after the promotion
my ($first_ok) = sort { $a <=> $b }
                 map { my @f = split / /; $f[1] > $promoted && $f[3] eq 'ok' ? $f[1] : () } @lines;
ok(defined $first_ok, 'orders are decided again after the promotion');
cmp_ok(($first_ok // 1e12) - $promoted, '<', 10 * $F,
       sprintf('... within seconds (%.1f s after the promotion)',
               ($first_ok // 0) - $promoted));
my $undecided = grep { (split / /)[3] ne 'ok' } @lines;
note("$undecided orders went on without a decision during the failover");

# every event in the new primary, once
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"spool":\{"bytes":0\}/ }, 60 * $F),
   'the spool is written out to the new primary');
is(on($P2, "SELECT count(*) || ' ' || count(DISTINCT order_id) FROM crm.event"
           . " WHERE kind = 'order'"), ($N + 1) . ' ' . ($N + 1),
   'every order\'s event is in the new primary, exactly once');
is(on($P2, "SELECT count(*) FROM crm.orders"), $N + 1,
   '... and every order is known, decided or recorded from its event');

# the promise: redeemed once
my $got = grep { (split / /)[4] eq '10' } @lines;
cmp_ok($got, '<=', 1, "at most one order got Fay's 10 % ($got)");
is(on($P2, "SELECT count(*) FROM crm.orders WHERE customer_id = $fay AND discount > 0"),
   $got, '... and the new primary agrees');
is(on($P2, "SELECT count(*) FROM crm.promise WHERE customer_id = $fay"
           . " AND status IN ('kept', 'reserved')"), $got,
   '... the promise is kept at most once');

error_log_clean(0, expect => [qr/server closed the connection unexpectedly/,
                              qr/connecting to PostgreSQL failed/,
                              qr/PostgreSQL failed/, qr/query failed/,
                              qr/PostgreSQL query timed out/]);

stop_nginx();
done_testing();
