# The spool recovers by itself: a spool directory that cannot be used at
# start is retried until it can (one [alert], then capture resumes without a
# reload); a file that no worker holds, dropped in while nginx runs, is taken
# over and written within seconds; a full disk is said with its real errno;
# with the error log at debug, a batch PostgreSQL refuses is told state by
# state until it is written.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;
use File::Path qw(remove_tree);
use Time::HiRes qw(sleep time);

my $SHOP = CRM::Shop->start->port;

my $policy = <<'YAML';
version: 1
database:
  conninfo: "$CRM_CONNINFO"
  spool: $SPOOL
  timeout: 250ms
  connections: 2
fields:
  order_id: /order_id
YAML

my $config = <<"CONF";
location /events {
    crm_capture feedback;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /status { crm_status; }
CONF

my %conf = (policy => $policy, config => $config);
my $spool = servroot() . '/spool';
my $mounted = 0;

END {
    # before CRM::Test's END removes the server root
    if ($mounted) {
        system('umount', $spool) == 0 or system('umount', '-l', $spool);
    }
}

# one captured event; returns the HTTP status the client got
sub event {
    my ($id, $pad) = @_;
    my $body = qq({"order_id":"$id")
        . (defined $pad ? qq(,"pad":") . ('x' x $pad) . '"' : '') . '}';
    my ($status) = http_request('POST', '/events',
        { 'Content-Type' => 'application/json' }, $body, timeout => 5);
    return defined $status ? $status : 'none';
}

# "rows|distinct event ids" in crm.interactions of the ids starting $prefix
sub recorded {
    my ($prefix) = @_;
    my $r = psql("SELECT count(*) || '|' || count(DISTINCT event_id)"
                 . " FROM crm.interactions WHERE order_id LIKE '$prefix%'");
    chomp $r;
    return $r;
}

sub recorded_is {
    my ($prefix, $n, $within, $name) = @_;
    wait_for(sub { recorded($prefix) eq "$n|$n" }, $within * timeout_factor());
    is(recorded($prefix), "$n|$n", $name);
}

sub spool_bytes {
    my (undef, undef, $body) = http_get('/status');
    return $body =~ /"spool":\{"bytes":(\d+)\}/ ? $1 : -1;
}

sub levels {
    my ($text, $level) = @_;
    return grep { /\[$level\]/ } split /\n/, $text;
}

# -- a: the spool path unusable at start, PostgreSQL down ---------------------

pg_start();             # the cluster exists and has the schema
pg_stop();

# root opens any file whatever its mode: a file where the directory should
# be makes open() fail (ENOTDIR) for root too
remove_tree($spool);
spew_file($spool, "not a directory\n");

my $off = error_log_offset();
ok(start_nginx(\%conf), 'nginx starts while the spool path is not a directory');
my @lost = map { event("lost-$_") } 1 .. 5;
is("@lost", '200 200 200 200 200',
   'requests go on while events cannot be spooled');
sleep 3 * timeout_factor();     # retries happen meanwhile

unlink $spool or die "unlink $spool: $!";
mkdir $spool or die "mkdir $spool: $!";

ok(wait_for(sub { error_log_since($off) =~ /crm: spool "[^"]+" usable again/ },
            5 * timeout_factor()),
   'the worker says once the spool is usable again, without a reload');

my @kept = map { event("kept-$_") } 1 .. 5;
is("@kept", '200 200 200 200 200', 'requests after the recovery go on');
ok(spool_bytes() > 0, 'new events wait in the spool');

pg_start();
recorded_is('kept-', 5, 10, 'PostgreSQL up: the events captured after the '
            . 'recovery are written, once each');

my $log = error_log_since($off);
my @alerts = levels($log, 'alert');
is(scalar(@alerts), 1, 'one [alert] for the unusable spool, not one a retry')
    or diag join "\n", @alerts;
like($alerts[0] || '', qr/open\(\) "[^"]+" failed.*\(20: Not a directory\)$/,
     'the [alert] names the failing call and its errno');
is(recorded('lost-'), '0|0', 'the events of the unusable time are lost');
is(scalar(() = $log =~ /event not recorded: the spool is unusable/g), 5,
   'each lost event is said at [error]');
my @notices = $log =~ /usable again/g;
is(scalar(@notices), 1, 'the recovery is said once');
error_log_clean($off, expect => [qr/connecting to PostgreSQL failed/,
                                 qr/event not recorded: the spool is unusable/],
                ignore_levels => ['alert'],
                name => 'nothing else in the error log');

# -- b: a file no worker holds, dropped in while nginx runs -------------------

# one valid line, as a worker of an earlier nginx left it
sub orphan {
    my ($name, $id) = @_;
    my $line = sprintf('{"event_id":"%s","received_at":%.3f,'
                       . '"kind":"feedback","node":"gone","order_id":"%s",'
                       . '"payload":{"order_id":"%s"},"state":"ok"}' . "\n",
                       uuid(), time, $id, $id);
    # made aside and renamed: a scan never sees half of it
    spew_file("$spool/.drop", $line);
    rename "$spool/.drop", "$spool/$name" or die "rename: $!";
}

# b1: on the worker whose spool could not be opened at start
$off = error_log_offset();
orphan('worker-99999-1.jsonl', 'orphan-a');
recorded_is('orphan-a', 1, 5, 'an orphan dropped in after the recovery is '
            . 'written within seconds');
ok(!-e "$spool/worker-99999-1.jsonl", 'and removed');
like(error_log_since($off), qr/crm: replaying "[^"]+\/worker-99999-1\.jsonl"/,
     'the take-over is said');
error_log_clean($off, name => 'the take-over logs no error');

# b2: on a worker that started with a usable spool, long after its start
stop_nginx();
ok(start_nginx(\%conf), 'nginx starts with a usable spool');
sleep 2 * timeout_factor();
$off = error_log_offset();
orphan('worker-99998-2.jsonl', 'orphan-b');
recorded_is('orphan-b', 1, 5, 'an orphan dropped in seconds after the start '
            . 'is written within seconds');
ok(!-e "$spool/worker-99998-2.jsonl", 'and removed');
error_log_clean($off, name => 'the take-over logs no error');

# -- c: the spool disk full ---------------------------------------------------

stop_nginx();
SKIP: {
    if (system("mount -t tmpfs -o size=64k tmpfs '$spool' 2>/dev/null") != 0) {
        skip 'a full disk needs "mount -t tmpfs" (root): not available here', 11;
    }
    $mounted = 1;

    pg_stop();          # the lines stay in the file
    ok(start_nginx(\%conf), 'nginx starts with the spool on a 64k tmpfs');
    is(event('disk-1'), 200, 'an event while there is room');
    ok(wait_for(sub { spool_bytes() > 0 }, 5 * timeout_factor()),
       'it is in the spool');

    # fill the rest; the worker's file keeps the room left in its last page
    open my $fill, '>', "$spool/filler" or die "filler: $!";
    1 while syswrite($fill, 'f' x 4096);
    close $fill;

    $off = error_log_offset();

    # longer than the room in that page: a short write(), then ENOSPC
    is(event('disk-2', 6000), 200, 'the request goes on on a full disk');

    # the cut line was taken back: the room left still takes a short line
    is(event('disk-3'), 200, 'a short event after it');

    $log = error_log_since($off);
    my @crit = levels($log, 'crit');
    ok(@crit == 1 && $crit[0] =~ /\(28: No space left on device\)$/,
       'the lost write is said at [crit] with ENOSPC')
        or diag join "\n", @crit;
    unlike($log, qr/Operation now in progress/,
           'not with an errno left over from elsewhere');

    unlink "$spool/filler";
    is(event('disk-4'), 200, 'room again: an event');
    pg_start();
    recorded_is('disk-', 3, 10, 'the events that fitted are written, once '
                . 'each');
    is(recorded('disk-2'), '0|0', 'the one that did not fit is lost');
    error_log_clean($off, expect => [qr/connecting to PostgreSQL failed/],
                    ignore_levels => ['crit'],
                    name => 'nothing else in the error log');

    stop_nginx();
    if (system('umount', $spool) == 0) {
        $mounted = 0;
    }
}

# -- d: what the writer went through, in the debug log ------------------------

# CRM_TEST_DEBUG=1 for this nginx only.  A passing error (here lock_not_
# available, raised by a trigger while public.spool_hold has a row): the
# batch is refused whole, then line by line, waits for the scans, and is
# written once the error is gone; the debug log tells each state change.
psql(<<'SQL');
CREATE TABLE public.spool_hold (x int);
CREATE FUNCTION public.spool_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM public.spool_hold) THEN
        RAISE EXCEPTION 't065: held' USING ERRCODE = 'lock_not_available';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER spool_hold BEFORE INSERT ON crm.event
    FOR EACH STATEMENT EXECUTE FUNCTION public.spool_hold();
INSERT INTO public.spool_hold VALUES (1);
SQL

$off = error_log_offset();
{
    local $ENV{CRM_TEST_DEBUG} = 1;
    ok(start_nginx(\%conf), 'nginx starts with its error log at debug');
}

SKIP: {
    if (!wait_for(sub { error_log_since($off) =~ /\[debug\] .*crm spool/ },
                  5 * timeout_factor()))
    {
        skip 'no debug lines: a module built without NGX_DEBUG', 4;
    }

    is(event('story-1'), 200, 'an event while PostgreSQL refuses it');
    ok(wait_for(sub { error_log_since($off) =~ /: paused -> pending/ },
                5 * timeout_factor()),
       'the writer waits for a scan and tries again');
    psql('DELETE FROM public.spool_hold');
    recorded_is('story-', 1, 5, 'the error gone, the event is written once');

    # refused whole once, then line by line until it is written: a
    # refused batch is never sent whole again, whatever the pauses
    my $told = qr/^no file -> idle, idle -> pending, pending -> in flight, (?x)
                  in\ flight\ ->\ pending,\ pending\ ->\ slow,
                  (?:\ slow\ ->\ paused,\ paused\ ->\ pending,
                     \ pending\ ->\ slow,)+
                  \ slow\ ->\ pending,\ pending\ ->\ idle$/;
    my $story = sub {
        join ', ', map { /crm spool "[^"]+\/worker-\d+-\d+\.jsonl": (.+)$/ }
                   grep { /\[debug\]/ } split /\n/, error_log_since($off);
    };
    wait_for(sub { $story->() =~ $told }, 5 * timeout_factor());
    like($story->(), $told, 'the debug log tells the story, state by state, '
         . "with the worker's file");
}

error_log_clean($off, expect => [qr/crm: query failed: ERROR:  t065: held/],
                name => 'only the refused batches logged');
stop_nginx();
psql(<<'SQL');
DROP TRIGGER spool_hold ON crm.event;
DROP FUNCTION public.spool_hold();
DROP TABLE public.spool_hold;
SQL

done_testing();

sub spew_file {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "write $file: $!\n";
    print $fh $text;
    close $fh or die "write $file: $!\n";
}

sub uuid {
    my @b = map { int rand 256 } 1 .. 16;
    $b[6] = ($b[6] & 0x0f) | 0x70;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    return sprintf '%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-'
                   . '%02x%02x%02x%02x%02x%02x', @b;
}
