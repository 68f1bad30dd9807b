# What a PostgreSQL connection was doing when it failed: every error line
# about one ends with " while <what>", the server and the query in flight,
# and the debug log (forced on for this file) tells each state change.
use FindBin;
use lib "$FindBin::Bin/lib";
BEGIN { $ENV{CRM_TEST_DEBUG} = 1 }      # error_log at level debug
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
  connections: 1
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
CONF

sub order {
    my ($id) = @_;
    my ($status, $h, $body) = http_request('POST', '/orders',
        { 'Content-Type' => 'application/json' },
        qq({"order_id":"$id","email":"states\@example.com"}), timeout => 5);
    return "status " . (defined $status ? $status : 'none')
        unless defined $status && $status == 200;
    return $body =~ /"x-crm-state":"(\w+)"/ ? $1 : 'no state';
}

# the first line of the log since $off that matches $re, waiting for it
sub log_line {
    my ($off, $re, $seconds) = @_;
    my $line;
    wait_for(sub {
        ($line) = grep { $_ =~ $re } split /\n/, error_log_since($off);
        defined $line;
    }, $seconds || 10);
    return $line // '';
}

pg_start();             # the cluster, with the schema
my $pg_port = pg_port();

# -- nothing listens: refused while connecting --------------------------------

my $dead = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                 Proto => 'tcp', Listen => 1) or die;
my $dead_port = $dead->sockport;
close $dead;

my $off = error_log_offset();
ok(start_nginx({ policy => policy("host=127.0.0.1 port=$dead_port"
                                  . " dbname=crm user=postgres"),
                 config => $config }),
   'nginx starts with nothing listening on the database port');
like(log_line($off, qr/\[error\].*connecting to PostgreSQL failed/),
     qr/refused.* while connecting to PostgreSQL, PostgreSQL server: 127\.0\.0\.1:$dead_port$/,
     'refused: the error names the step and the server');
like(log_line($off, qr/\[debug\].*crm pg conn 0: connect write -> closed/),
     qr/\*\d+ crm pg conn 0: connect write -> closed/,
     'the debug log shows the connection giving up');
like(log_line($off, qr/\[debug\].*crm pg conn 0: closed -> backoff/),
     qr/backoff/, 'and waiting to reconnect');
like(log_line($off, qr/crm pg conn 0: backoff -> connect write/),
     qr/backoff -> connect write/, 'then trying again');
error_log_clean($off, expect => [qr/connecting to PostgreSQL failed/],
                name => 'only the refused connections logged');

# -- a listener that never answers: the login times out -----------------------

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

$off = error_log_offset();
ok(start_nginx({ policy => policy("host=127.0.0.1 port=$hung_port"
                                  . " dbname=crm user=postgres"),
                 config => $config }),
   'nginx starts with a database that never answers');
like(log_line($off, qr/\[error\].*connecting to PostgreSQL timed out/),
     qr/ while logging in to PostgreSQL, PostgreSQL server: 127\.0\.0\.1:$hung_port$/,
     'hung: the timeout says the TCP connect worked and the login did not');
like(log_line($off, qr/crm pg conn 0: connect write -> connect read/),
     qr/connect write -> connect read/,
     'the debug log shows the connect, then the wait for the server');
kill 'KILL', $hung_pid;
waitpid $hung_pid, 0;
error_log_clean($off, expect => [qr/timed out/],
                name => 'only the timeouts logged');

# -- a schema older than the module needs -------------------------------------

psql(<<'SQL');
CREATE TABLE public.schema_saved AS
    SELECT * FROM crm.schema_version
    WHERE version = (SELECT max(version) FROM crm.schema_version);
DELETE FROM crm.schema_version
    WHERE version = (SELECT version FROM public.schema_saved);
SQL
$off = error_log_offset();
ok(start_nginx({ policy => policy('$CRM_CONNINFO'), config => $config }),
   'nginx starts on a schema that is too old');
like(log_line($off, qr/\[error\].*the database schema is version/),
     qr/the module needs \d+; .* while checking the crm schema version, PostgreSQL server: 127\.0\.0\.1:$pg_port, query: "SELECT coalesce\(max\(version\), 0\) FROM crm\.schema_version"$/,
     'too old: the error says it came from the schema check, and which query');
like(log_line($off, qr/crm pg conn 0: check schema -> closed/),
     qr/check schema -> closed/, 'the debug log shows the check failing');
is(order('states-old'), 'db_unavailable', 'orders go on without a decision');

psql(<<'SQL');
INSERT INTO crm.schema_version SELECT * FROM public.schema_saved;
DROP TABLE public.schema_saved;
SQL
like(log_line($off, qr/crm pg conn 0: on connect -> idle/, 30),
     qr/on connect -> idle/, 'once migrated, the policy is registered');
like(log_line($off, qr/crm pg conn 0: check schema -> on connect/),
     qr/check schema -> on connect/, 'after the schema check');
ok(wait_for(sub { (http_get('/status'))[2] =~ /"up":1/ }, 10),
   'and the connection is up');
is(order('states-ok'), 'ok', 'orders are decided again');
like(log_line($off, qr/crm pg conn 0: idle -> busy/), qr/idle -> busy/,
     'the debug log shows the query going out');
like(log_line($off, qr/crm pg conn 0: busy -> idle/), qr/busy -> idle/,
     'and its answer coming back');
# under valgrind a worker's first connect can outlast its 1 s timeout
error_log_clean($off, expect => [qr/the database schema is version \d+, the module needs/,
                                 qr/connecting to PostgreSQL timed out/],
                name => 'only the schema logged');

# -- a query slower than the timeout --------------------------------------------

psql(<<'SQL');
CREATE FUNCTION public.slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sleep(1);
    RETURN NULL;
END $$;
CREATE TRIGGER slow BEFORE INSERT ON crm.orders
    FOR EACH STATEMENT EXECUTE FUNCTION public.slow();
SQL
$off = error_log_offset();
is(order('states-slow'), 'db_unavailable', 'a slow decision is given up');
like(log_line($off, qr/\[error\].*PostgreSQL query timed out/),
     qr/ while running a query, PostgreSQL server: 127\.0\.0\.1:$pg_port, query: "SELECT [^"]*\bcrm\.decide_order\([^"]*\)"$/,
     'the timeout names the query it cut short');
like(log_line($off, qr/crm pg conn 0: busy -> closed/), qr/busy -> closed/,
     'and the debug log shows the connection closed for it');
psql('DROP TRIGGER slow ON crm.orders');
ok(wait_for(sub { error_log_since($off) =~ /crm pg conn 0: on connect -> idle/ }, 30),
   'the connection comes back');
error_log_clean($off, expect => [qr/timed out/],
                name => 'only the timeout logged');

done_testing();
