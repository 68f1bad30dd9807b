# Host names in database.conninfo are looked up when the configuration is
# read, never by a worker: libpq is given a hostaddr for every host, so a
# worker reconnecting after PostgreSQL restarts opens no resolver file and
# asks no DNS server.  A name that does not resolve fails nginx -t, as an
# upstream's does.  URIs and host lists work as before.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use POSIX ();

pg_start();
my $PG = pg_port();

sub policy {
    my ($conninfo) = @_;
    return <<"YAML";
version: 1
database:
  conninfo: "$conninfo"
  spool: \$SPOOL
  timeout: 2s
fields:
  email: /email
YAML
}
my $config = <<'CONF';
location = /notes { crm_capture feedback; return 204; }
location = /crm { crm_status; }
CONF

# --- a name that does not resolve ------------------------------------------------

my ($rc, $out) = nginx_t({ policy => policy("host=no-such-host.invalid port=$PG"
                                            . " dbname=crm user=postgres"),
                           config => $config });
isnt($rc, 0, 'nginx -t fails for a host name that does not resolve');
like($out, qr/crm: database\.conninfo: host "no-such-host\.invalid" not found/,
     '... and says which, and where');

($rc, $out) = nginx_t({ policy => policy("host=localhost,localhost port=$PG,$PG,$PG"
                                         . " dbname=crm user=postgres"),
                        config => $config });
isnt($rc, 0, 'nginx -t fails for more ports than hosts');
like($out, qr/crm: database\.conninfo: 2 hosts and 3 ports; expected one port, or one for each host/,
     '... and says so');

# --- localhost, looked up at start ------------------------------------------------

ok(start_nginx({ policy => policy("host=localhost port=$PG dbname=crm user=postgres"),
                 config => $config }),
   'nginx starts with host=localhost');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 10),
   '... and connects (libpq given every address of the name)');

# a worker reconnecting: no resolver file opened, no DNS asked
my ($worker) = worker_pids();
my $trace = servroot() . '/strace.out';
my $spid = fork;
die "fork: $!" unless defined $spid;
if ($spid == 0) {
    exec 'strace', '-f', '-qq', '-e', 'trace=openat,open,connect', '-o', $trace,
         '-p', $worker;
    POSIX::_exit(1);
}
sleep 1;
ok(kill(0, $spid), 'strace follows the worker');
pg_stop();
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":0/ }, 10),
   'PostgreSQL stops: the worker has no connection');
pg_start();
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 15),
   'PostgreSQL starts again: the worker reconnects');
kill 'INT', $spid;
waitpid($spid, 0);
my $calls = CRM::Test::slurp($trace);
my @resolver = $calls =~ m{^.*"/etc/(?:hosts|resolv\.conf|nsswitch\.conf|gai\.conf|host\.conf)".*$}mg;
is(scalar(@resolver), 0, 'the worker opened no resolver file while reconnecting')
    or diag join "\n", @resolver;
my @dns = $calls =~ m{^.*connect\(.*htons\(53\).*$}mg;
is(scalar(@dns), 0, '... and asked no DNS server') or diag join "\n", @dns;
like($calls, qr/connect\(.*htons\($PG\)/,
     '... it connected to PostgreSQL by address') or diag $calls;

# --- a URI and a host list ------------------------------------------------------------

ok(start_nginx({ policy => policy("postgresql://localhost:$PG/crm?user=postgres"),
                 config => $config }),
   'a URI with a host name');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 10), '... connects');

ok(start_nginx({ policy => policy("host=localhost,127.0.0.1 port=1,$PG"
                                  . " dbname=crm user=postgres connect_timeout=2"),
                 config => $config }),
   'a list of a name and an address, each with its port');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 15),
   '... connects through the second after the first refuses');

done_testing();
