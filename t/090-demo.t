# The demo, as a shop owner runs it: examples/demo.sh with
# CRM_DEMO_WALKTHROUGH=1 starts its own PostgreSQL, the demo shop and nginx
# with the module, runs the walkthrough (orders, a payment, statuses), shows
# what staff see in psql, stops everything and exits.  Checked here: it
# succeeds, the second order gets the promised 5 % off, staff see the card
# and the kept promise, and nothing of it stays running.
#
# Needs root (the demo runs PostgreSQL as the postgres user and nginx workers
# as www-data) and the module built at build/ngx_http_crm_module.so (or
# CRM_MODULE).
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Cwd qw(abs_path);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

my $ROOT = abs_path("$FindBin::Bin/..");
my $DEMO = "$ROOT/examples/demo.sh";
# CRM_MODULE as for the other tests, but not an ASan build (the demo's
# stock nginx does not preload libasan): then build/'s plain one.
my $MODULE = $ENV{CRM_MODULE} && !$ENV{CRM_TEST_ASAN}
    ? $ENV{CRM_MODULE} : "$ROOT/build/ngx_http_crm_module.so";
my $TIMEOUT = 120;

plan skip_all => "the module is not built: $MODULE is missing"
    . " (run ./config.sh build)" unless -f $MODULE;
plan skip_all => 'the demo runs PostgreSQL as the postgres user and nginx'
    . ' workers as www-data: run this test as root' if $> != 0;
plan skip_all => "$DEMO is missing or not executable" unless -x $DEMO;
for my $tool ('/usr/lib/postgresql/15/bin/initdb', '/usr/sbin/nginx') {
    plan skip_all => "$tool not found (run ./config.sh deps)" unless -x $tool;
}

# The demo clears CRM_DEMO_DIR when it starts, so it gets a directory of its
# own inside ours; ours must be searchable by www-data (the nginx workers
# write their spool in it) and the postgres user.
my $TMP = tempdir('crm-test-090-demo-XXXX', TMPDIR => 1, CLEANUP => 0);
chmod 0755, $TMP or die "chmod $TMP: $!";
my $RUN = "$TMP/run";

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1, ReuseAddr => 1)
        or die "no free port: $!";
    return $s->sockport;
}

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    my $text = <$fh>;
    return defined $text ? $text : '';
}

sub cmdline {
    my ($pid) = @_;
    return '' unless defined $pid && $pid =~ /^\d+$/;
    my $c = slurp("/proc/$pid/cmdline");
    $c =~ tr/\0/ /;
    return $c;
}

# Ports of our own (not 8080/8081/55432, which a running demo may hold); the
# demo takes any free port when one of these was taken meanwhile.
my ($port, $shop_port, $pg_port) = (free_port(), free_port(), free_port());

# --- the run -----------------------------------------------------------------

my $t0 = time;
my $pid = fork;
die "fork: $!" unless defined $pid;
if ($pid == 0) {
    POSIX::setpgid(0, 0);    # a group of its own: a timeout stops all of it
    chdir $ROOT or POSIX::_exit(126);
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', "$TMP/demo.out";
    open STDERR, '>', "$TMP/demo.err";
    $ENV{CRM_MODULE} = $MODULE;
    @ENV{qw(CRM_DEMO_WALKTHROUGH CRM_DEMO_DIR CRM_DEMO_PORT
            CRM_DEMO_SHOP_PORT CRM_DEMO_PG_PORT)}
        = (1, $RUN, $port, $shop_port, $pg_port);
    $ENV{CRM_DEMO_SCREENSHOT} = "$TMP/banner.png" if -x '/usr/bin/chromium';
    exec $DEMO or print STDERR "cannot run $DEMO: $!\n";
    POSIX::_exit(127);
}

# Interrupted (Ctrl-C reaches only our process group): stop the demo too.
for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub {
        kill 'TERM', -$pid;
        waitpid $pid, 0;
        diag "caught SIG$sig; the demo was stopped; its files are in $TMP";
        exit 1;
    };
}

my ($rc, $timed_out) = (undef, 0);
while (1) {
    my $w = waitpid $pid, POSIX::WNOHANG();
    if ($w == $pid) {
        $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
        last;
    }
    if (time - $t0 > $TIMEOUT) {
        # SIGTERM: the demo's trap stops nginx, the shop and PostgreSQL
        $timed_out = 1;
        kill 'TERM', -$pid;
        my $deadline = time + 45;
        while (waitpid($pid, POSIX::WNOHANG()) != $pid) {
            if (time > $deadline) {
                kill 'KILL', -$pid;
                waitpid $pid, 0;
                last;
            }
            sleep 0.2;
        }
        last;
    }
    sleep 0.2;
}

$SIG{$_} = 'DEFAULT' for qw(INT TERM HUP);

my $out = slurp("$TMP/demo.out");
my $err = slurp("$TMP/demo.err");
$out =~ tr/\r//d;

ok(!$timed_out, "the demo finished within ${TIMEOUT}s")
    or diag "it was stopped with SIGTERM after ${TIMEOUT}s";
is($rc, 0, 'the walkthrough exits 0 (every step got the answer it expects)');
like($err, qr/^demo: walkthrough done$/m, 'it says the walkthrough is done');

# The demo prints each step as "# N. what" then "$ command" and the answer.
my %step;
for my $part (split /^(?=# \d+\. )/m, $out) {
    $step{$1} = $part if $part =~ /^# (\d+)\. /;
}
is(scalar(keys %step), 8, 'all eight steps of the walkthrough ran');

# step 1: the first order, no discount
like($step{1} || '', qr/^HTTP\/1\.1 201 /m, 'the first order is taken (201)');
like($step{1} || '', qr/"discount_percent":\s*0\b/,
     'the first order gets no discount');

# step 3: the second order, 80.00 with the 5 % promised by the payment
my $second = $step{3} || '';
like($second, qr/^HTTP\/1\.1 201 /m, 'the second order is taken (201)');
like($second, qr/"discount_percent":\s*5\b/,
     'the second order gets the promised 5 % (discount_percent: 5)');
like($second, qr/"charged":\s*76(?:\.0+)?\s*[,}]/,
     'and is charged 76.00 instead of 80.00');
like($second, qr/"card":\s*"DEMO-\d{8}"/,
     'the shop was told her loyalty card');
like($second, qr/"tier":\s*"member"/, 'and her tier');

# step 6: a client's own X-CRM-Discount is removed
like($step{6} || '', qr/"discount_percent":\s*0\b/,
     'a customer sending X-CRM-Discount himself gets nothing for it');

# step 7: the banner, in the page a browser gets
like($step{7} || '', qr{<div class="crm-banner"[^>]*>Sorry, Anna: order D-2 is late\. It will be with you by 2026-12-01\.</div>\s*</body>},
     "Anna's account page shows her personal banner (her order is late) "
     . 'right before </body>');
like($step{7} || '', qr/^Cache-Control: private/mi,
     '... as a private page');
SKIP: {
    skip 'no chromium here (Debian\'s chromium package): no screenshot', 1
        unless -x '/usr/bin/chromium';
    my $png = -f "$TMP/banner.png" ? slurp("$TMP/banner.png") : '';
    ok(substr($png, 0, 8) eq "\x89PNG\r\n\x1a\n" && length($png) > 5000,
       'chromium took a screenshot of the banner page ('
       . length($png) . ' bytes)');
}

# What staff see: the three queries, after the steps.
my ($staff) = $out =~ /^(# What the staff see, in PostgreSQL.*)\z/ms;
$staff ||= '';

my ($interactions) = $staff =~ /crm\.interactions[^\n]*\n(.*?\(\d+ rows?\))/s;
like($interactions || '', qr/\(7 rows\)/,
     'crm.interactions holds the six API requests and the banner shown');
like($interactions || '', qr/^\s*banner\s*\|\s*\|\s*ok\s*$/m,
     '... the banner\'s impression last');

my ($overview) = $staff =~ /crm\.customer_overview[^\n]*\n(.*?\(\d+ rows?\))/s;
$overview ||= '';
like($overview, qr/^\s*\d+\s*\|\s*anna\@example\.com\s*\|\s*49301234567\s*\|\s*Anna\s*\|\s*DEMO-\d{8}\s*\|\s*member\s*\|\s*1\s*\|\s*100\.00\s*\|/m,
     'customer_overview: Anna with her card (DEMO-...), tier member,'
     . ' 1 paid order, 100.00 spent');
like($overview, qr/^\s*\d+\s*\|\s*bob\@example\.com\s*\|/m,
     'customer_overview: Bob');

my ($ledger) = $staff =~ /crm\.promise_ledger[^\n]*\n(.*?\(\d+ rows?\))/s;
$ledger ||= '';
like($ledger, qr/^\s*\d+\s*\|\s*\d+\s*\|\s*repeat_order\s*\|\s*5\s*\|[^|\n]*\|[^|\n]*\|\s*kept\s*\|\s*D-2\s*$/m,
     'promise_ledger: the 5 % repeat_order promise, kept by order D-2');
like($ledger, qr/\(1 row\)/, 'and it is the only promise');

# --- nothing stays running ---------------------------------------------------

sub leftovers {
    my @left;
    opendir my $dh, '/proc' or return ('cannot read /proc');
    for my $p (grep { /^\d+$/ } readdir $dh) {
        next if $p == $$;
        my $cmd = cmdline($p);
        next unless length $cmd;
        my $cwd = readlink("/proc/$p/cwd") || '';
        if (index($cmd, $TMP) >= 0                       # nginx master, etc.
            || ($cmd =~ /^nginx: / && index($cwd, $RUN) == 0)   # workers
            || $cmd =~ m{examples/shop\.py \Q$shop_port\E\b}
            || ($cmd =~ m{\bpostgres\b} && $cmd =~ /-p \Q$pg_port\E\b/))
        {
            push @left, "$p $cmd";
        }
    }
    return @left;
}

# The ports the demo really used (it takes others when ours were taken).
my ($used_pg) = $out =~ /psql -h 127\.0\.0\.1 -p (\d+) -U postgres crm/;
$pg_port = $used_pg if $used_pg;

my @left = leftovers();
# a process that is just exiting gets a moment
if (@left) {
    sleep 2;
    @left = leftovers();
}
is_deeply(\@left, [], 'nothing of the demo is left running')
    or diag join "\n", @left;

my $pgrep = '';
if (open my $ph, '-|', 'pgrep', '-af', '--', $TMP) {
    local $/;
    $pgrep = <$ph> // '';
    close $ph;
}
chomp $pgrep;
is($pgrep, '', "pgrep -af $TMP finds nothing");

my $shop_pid = slurp("$RUN/shop.pid");
chomp $shop_pid;
ok($shop_pid =~ /^\d+$/ && cmdline($shop_pid) !~ /shop\.py/,
   'the demo shop has stopped')
    or diag "shop pid '$shop_pid': " . cmdline($shop_pid);
ok(!-e "$RUN/nginx/nginx.pid", 'nginx removed its pid file (it has exited)');
ok(!-e "$RUN/pg" && !-l "$RUN/pg",
   'the throwaway PostgreSQL cluster is gone (.run/pg removed)');

if (Test::More->builder->is_passing) {
    system 'rm', '-rf', $TMP;
} else {
    diag "the demo's output and logs are kept in $TMP";
    diag "--- stderr:\n$err";
    diag "--- stdout:\n$out";
}

done_testing();
