package CRM::Test;

=head1 NAME

CRM::Test - data-driven tests for ngx_crm against a real nginx and PostgreSQL

=head1 SYNOPSIS

    use FindBin;
    use lib "$FindBin::Bin/lib";    # or: use lib 't/lib'; from the repo root
    use CRM::Test;

    run_tests();                    # declares the plan itself

    __DATA__

    === TEST 1: status answers
    --- policy
    version: 1
    database:
      conninfo: "$CRM_CONNINFO"
    --- config
    location = /crm { crm_status; }
    --- request
    GET /crm
    --- error_code: 200
    --- response_headers
    Content-Type: application/json
    --- response_body_like: "pid":\s*\d+
    --- no_error_log
    [warn]

=head1 HOW IT WORKS

Each test file gets its own server root, a fresh directory
F</tmp/crm-test-NAME-XXXX> (C<servroot()>), its own free loopback port
(C<server_port()>) and, when it needs one, its own throwaway PostgreSQL
cluster under F<servroot/pg>.

For every block the harness writes F<conf/nginx.conf> (and F<conf/policy.yaml>),
runs C<--- sql>, (re)starts nginx when that text differs from what is running
(or when the block says C<--- restart>), sends the request, and checks.  nginx
runs as a daemon with a master and C<worker_processes 1> (as C<user root> when
the tests run as root), logs to F<logs/error.log> at level C<info>, serves
F<servroot/html> (an F<index.html>) as C<root>, and keeps every temporary path
under the server root.

Every check is one TAP assertion, so the number of tests is known in advance:
C<run_tests()> declares the plan itself (unless the file already did, or tests
already ran; then end the file with C<done_testing()>).  At the end of the file
one more assertion, C<clean shutdown>, stops nginx and PostgreSQL and checks
that nginx quit gracefully, that no C<[alert]>, C<[crit]>, C<[emerg]> or
C<[error]> was logged while it shut down, and, in the sanitizer modes, that
valgrind or AddressSanitizer found nothing in ngx_crm.  A file that declares its
plan by hand counts it (C<plan tests =E<gt> N + 1>).

=head1 SECTIONS

=over

=item C<--- main_config>, C<--- http_config>, C<--- config>

Lines added at the top level, inside C<http {}>, and inside the one
C<server { listen 127.0.0.1:PORT; server_name localhost; }>.

=item C<--- policy>

YAML written to F<conf/policy.yaml>; C<crm_policy that-file;> is then added to
C<http {}>.  Without this section there is no C<crm_policy> line.

=item C<--- workers: N>

C<worker_processes N> (default 1).

=item C<--- no_module>

Do not C<load_module> the ngx_crm module for this block.  A whole file says
C<use CRM::Test no_module =E<gt> 1;>.

=item C<--- restart>

Restart nginx before this block even when its configuration is unchanged
(otherwise shared memory and counters carry over from the previous block).

=item C<--- request>

First line C<METHOD /uri> (optionally C<HTTP/1.0>), the body after it (its last
newline removed).  Sent as HTTP/1.1 with C<Host: localhost>,
C<Connection: close> and a C<Content-Length> when there is a body.

=item C<--- request_headers> (alias C<--- more_headers>)

C<Name: value> lines added to the request.

=item C<--- raw_request>

Bytes sent as they are instead of C<--- request>; write them with the
C<eval> filter to get C<\r\n>: C<--- raw_request eval> then
C<"GET / HTTP/1.0\r\n\r\n">.  The response is read until nginx closes the
connection: send HTTP/1.0 or C<Connection: close>.

=item C<--- error_code>

Expected status; 200 when absent (whenever a request is sent).

=item C<--- response_body>, C<--- response_body_like>

The body (chunked encoding decoded) exactly, or matching a regular
expression (C</s>; the last newline of the section removed).

=item C<--- response_headers>, C<--- response_headers_like>

One header a line: C<Name: value> (value exact, name in any case), C<!Name>
(must be absent); C<_like> takes C<Name: regex>.  A repeated header is seen
as its values joined with C<, >.

=item C<--- error_log>, C<--- no_error_log>

Each line a substring that must (must not) appear in the part of
F<logs/error.log> written during this block.  C<--- error_log> waits up to 3 s
for its lines.  With the C<eval> filter a line may be a C<qr//>.

=item C<--- must_die>

The configuration must fail: C<nginx -t> must fail (or, when it passes, nginx
must fail to start).  C<--- error_log> and C<--- no_error_log> are then matched
against that output, no request is sent and the automatic log check is not done.

=item C<--- sql>

SQL run with C<psql> (C<ON_ERROR_STOP>) before nginx starts and the request is
sent.  Starts the cluster.

=item C<--- db>

First line a query, the other lines the rows as C<psql -AtX> prints them
(C<|>-separated).  Compared after removing trailing whitespace; retried for
up to 3 s until it matches, as the module writes after it answers.

=item C<--- wait: SECONDS>

Sleep after the request, before the database and log checks.

=item C<--- timeout: SECONDS>

How long to wait for the response (default 10).

=item C<--- ignore_levels: LEVEL ...>

Levels from C<error crit alert emerg> the automatic log check lets through.

=back

The automatic log check: every block fails on any C<[alert]>, C<[crit]> or
C<[emerg]> in its part of the error log, and on any C<[error]> line that no
C<--- error_log> line matches, unless C<--- ignore_levels> names the level.

Durations (timeouts, waits, polling) are multiplied by C<timeout_factor()>:
1, 2 under ASan, 10 under valgrind.

=head1 PLACEHOLDERS

In the configuration sections, C<--- policy>, C<--- request>,
C<--- raw_request>, C<--- sql>, C<--- db>, the expected C<--- response_body>
and C<--- response_headers> values, and in text given to the functions below:

    $CRM_CONNINFO  host=127.0.0.1 port=N dbname=crm user=postgres
                   (starts the file's PostgreSQL cluster the first time)
    $SERVROOT      the server root
    $SPOOL         $SERVROOT/spool (created empty)
    $PORT          nginx's port
    $PG_PORT       PostgreSQL's port

nginx variables are lower case and do not clash.

=head1 FILE OPTIONS

    use CRM::Test no_module => 1;   # nginx without ngx_crm
    use CRM::Test db => 1;          # start PostgreSQL even if no block asks
    use CRM::Test schema => 1;      # and apply sql/ with ./config.sh db

Without C<no_module> the file is skipped with a message when the module is
not built.  PostgreSQL is started when a block has C<--- sql> or C<--- db> or
uses C<$CRM_CONNINFO>.

=head1 FUNCTIONS

For tests written in plain Perl (reload, faults); all exported.

=over

=item C<start_nginx($conf)> -> ($ok, $output)

C<$conf> is a hash ref of the sections above (C<config>, C<http_config>,
C<main_config>, C<policy>, C<workers>, C<no_module>) or the whole text of an
nginx.conf.  Stops a running nginx first; waits for the workers.

=item C<reload_nginx($conf)> -> 1 or 0

Writes the configuration when given (C<reload_nginx()> re-reads the files as
they are, e.g. after C<write_policy()>), sends SIGHUP and waits: 1 when a new
generation of workers took over (the old ones are gone), 0 when the master
logged C<[emerg]> and kept the old workers.  Dies when neither happens in time.

=item C<stop_nginx()>

SIGQUIT and wait; TERM, then KILL, when that takes too long (recorded as a
failure of the next log check).

=item C<nginx_t($conf)> -> ($exit_code, $output)

C<nginx -t> on that configuration, written to F<conf/t/nginx.conf> (and
F<conf/t/policy.yaml>) so that the running one stays as it is.

=item C<http_get($path, \%headers)>

=item C<http_request($method, $path, \%headers, $body, timeout =E<gt> S, protocol =E<gt> 'HTTP/1.0', port =E<gt> N)>

=item C<http_raw($bytes, $timeout, $port)>

Return C<($status, \%headers, $body, $raw)>: header names lower-cased, the
body de-chunked; C<$status> is undef when nothing valid came back (C<$raw>
then says why).  Request headers may also be an array ref of pairs.  Sent
with C<Host: localhost> and C<Connection: close> unless given, to
C<server_port()> or to C<port> (a second C<server {}> that the test wrote
into C<--- http_config>, listening on a C<free_port()>).

=item C<write_policy($yaml)> -> path; C<policy_file()>

=item C<error_log_offset()>, C<error_log_since($offset)>

=item C<error_log_clean($offset, name =E<gt> ..., expect =E<gt> [...], ignore_levels =E<gt> [...])>

One assertion: the automatic log check on the log written since C<$offset>.

=item C<server_port()>, C<servroot()>, C<master_pid()>, C<worker_pids()>

=item C<free_port()>: a loopback port free now, e.g. for a second server

=item C<nginx_in($prefix, @args)> -> ($rc, $out, $err): another nginx node
with its own prefix (C<$prefix/conf/nginx.conf>, C<$prefix/logs/>), run as
the harness runs nginx (valgrind, ASan); C<nginx_in($prefix, '-s', 'stop')>

=item C<psql($sql)> -> output (C<-AtX>; dies on an SQL error)

=item C<conninfo()>, C<pg_start()>, C<pg_stop()>, C<pg_port()>, C<apply_schema()>

=item C<expand($text)>: the placeholders above; C<make_conf(%sections)>

=item C<wait_for(sub { ... }, $seconds)>: poll until true; C<timeout_factor()>

=item C<done_testing()>: the clean-shutdown check, then Test::More's

=back

Test::More's C<ok is isnt like unlike is_deeply cmp_ok pass fail diag note
explain subtest plan skip BAIL_OUT> and Test::Base's C<blocks> are exported
too; do not also C<use Test::More>.

=head1 ENVIRONMENT

    CRM_MODULE         the .so to load (default build/ngx_http_crm_module.so)
    CRM_NGINX          the nginx binary (default /usr/sbin/nginx)
    CRM_TEST_KEEP=1    keep the server root even when all passed
    CRM_TEST_DEBUG=1   error_log at level debug
    CRM_TEST_VALGRIND=1  run nginx under valgrind memcheck (t/valgrind.supp)
    CRM_TEST_ASAN=1    preload libasan (for a module built with
                       -fsanitize=address; t/lsan.supp)

Under valgrind every process writes F<logs/valgrind-PID.log>; an invalid
read/write/free, a use of uninitialised memory or a definite leak whose stack
names ngx_crm (C<ngx_http_crm> or C<crm_>) fails C<clean shutdown>.  Under
ASan the logs are F<logs/asan.PID>: any AddressSanitizer error fails, and so
does a direct leak whose stack names ngx_crm or C<E<lt>unknown moduleE<gt>>
(a worker unloads the module as it exits, before LeakSanitizer prints; the
harness loads no other module).  nginx itself loses memory at exit (pools of
main(), the cycle): those records are counted in one line of diagnostics
and shown with C<prove -v>; they never fail a test.  nginx must be stopped
gracefully for the reports: the harness does so at the end of each file.
Under valgrind C<worker_rlimit_nofile> cannot be raised.

=head1 PROCESSES

Everything the harness starts stops at the end of the file, also when the
test dies or gets SIGINT, SIGTERM or SIGHUP (END block): nginx with SIGQUIT
(then TERM, KILL), PostgreSQL with C<pg_ctl stop -m fast>.  The test
process adopts the daemons (PR_SET_CHILD_SUBREAPER) so that it can reap them.

=head1 WHEN A TEST FAILS

The server root is kept and its path printed, e.g.
C<# servroot kept: /tmp/crm-test-020-order-Ab12>.  There:
F<logs/error.log> (every block's part starts with a line
C<crm-test: TEST n: ...> written by the harness), F<conf/nginx.conf> (the
last block's), F<pg/postgres.log>, and the sanitizer logs.  Re-run one block
by adding C<--- ONLY> to it; C<CRM_TEST_DEBUG=1> for debug logging.

=cut

use strict;
use warnings;

use Config;
use Cwd qw(abs_path);
use Exporter ();
use File::Basename qw(basename dirname);
use File::Path qw(remove_tree);
use File::Temp qw(tempdir);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Test::Base ();
use Test::More import => [qw(note explain subtest BAIL_OUT)];
use Time::HiRes qw(sleep time);

our @EXPORT = qw(
    run_tests done_testing note explain subtest BAIL_OUT
    start_nginx reload_nginx stop_nginx nginx_t make_conf
    http_get http_request http_raw
    write_policy policy_file expand
    error_log_offset error_log_since error_log_clean
    server_port free_port servroot master_pid worker_pids
    psql conninfo pg_start pg_stop pg_port apply_schema
    wait_for timeout_factor
);

my $Repo = abs_path(dirname(__FILE__) . '/../../..');
my $Nginx = $ENV{CRM_NGINX} || '/usr/sbin/nginx';
my $Module = $ENV{CRM_MODULE} || "$Repo/build/ngx_http_crm_module.so";
my $Valgrind = $ENV{CRM_TEST_VALGRIND};
my $Asan = $ENV{CRM_TEST_ASAN};
my $Factor = $Valgrind ? 10 : $Asan ? 2 : 1;

my %Opt;            # file options given to "use CRM::Test"
my $Dir;            # the server root
my $Port;           # nginx's port
my %Pg;             # the cluster: port, data, running
my $Running = '';   # configuration (and policy) text nginx runs with
my @Problems;       # what went wrong while stopping nginx, for the next check
my $Owner = $$;
my $Finished = 0;
my $Cmd_seq = 0;
my $Libasan;

sub import {
    my ($class, %opt) = @_;
    %Opt = (%Opt, %opt);
    Exporter::export(__PACKAGE__, scalar caller, @EXPORT);
    @_ = ('Test::Base');
    goto &Test::Base::import;   # Test::More's functions, blocks(), filters
}

# nginx and postgres daemonize; this process adopts them (PR_SET_CHILD_SUBREAPER)
# so that reap() collects them when they exit: in a container nobody else may.
my %Sys_prctl = ('x86_64-linux' => 157, 'aarch64-linux' => 167);
if (my $nr = $Sys_prctl{ $Config{archname} =~ /^(\w+-linux)/ ? $1 : '' }) {
    syscall($nr, 36, 1, 0, 0, 0);
}

sub reap {
    1 while waitpid(-1, POSIX::WNOHANG()) > 0;
}

$SIG{PIPE} = 'IGNORE';
for my $sig (qw(INT TERM HUP)) {
    $SIG{$sig} = sub { print STDERR "# caught SIG$sig, cleaning up\n"; exit 1 };
}

END {
    if ($$ == $Owner) {
        my $exit = $?;
        finish($exit);
        $? = $exit;
    }
}


# ---------------------------------------------------------------------------
# small helpers

sub timeout_factor { $Factor }

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or return '';
    local $/;
    my $text = <$fh>;
    return defined $text ? $text : '';
}

sub spew {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "write $file: $!\n";
    print $fh $text;
    close $fh or die "write $file: $!\n";
}

sub wait_for {
    my ($cond, $seconds) = @_;
    my $deadline = time + $seconds;
    while (1) {
        my $r = $cond->();
        return $r if $r;
        return 0 if time > $deadline;
        sleep 0.05;
    }
}

# never the same port twice in one test file: the kernel may hand a port
# closed a moment ago out again, and two servers of one nginx on one port
# do not fail, the second just never answers (a flaky 082 under valgrind)
my %Given;

sub free_port {
    for (1 .. 100) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Proto => 'tcp',
                                      Listen => 1, ReuseAddr => 1)
            or die "cannot find a free port: $!\n";
        my $port = $s->sockport;
        close $s;
        return $port if !$Given{$port}++;
    }
    die "cannot find a port not given out before\n";
}

# A pattern list from a section: lines, or what the "eval" filter made.
sub patterns {
    my ($v) = @_;
    return () unless defined $v;
    return @$v if ref $v eq 'ARRAY';
    return ($v) if ref $v;
    return grep { /\S/ } split /\n/, $v;
}

sub matches {
    my ($text, $p) = @_;
    return ref $p ? $text =~ $p : index($text, $p) >= 0;
}

# Runs a command with stdout and stderr in files (a daemon may keep them
# open, so no pipes); returns (exit code, stdout, stderr).
sub run_cmd {
    my (%a) = @_;
    my $base = servroot() . "/tmp/cmd-" . ++$Cmd_seq;
    spew("$base.in", defined $a{stdin} ? $a{stdin} : '');
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        $SIG{PIPE} = 'DEFAULT';
        chdir($a{dir} || '/');
        open STDIN, '<', "$base.in";
        open STDOUT, '>', "$base.out";
        open STDERR, '>', "$base.err";
        $ENV{$_} = $a{env}{$_} for keys %{ $a{env} || {} };
        exec(@{ $a{cmd} }) or print STDERR "cannot run $a{cmd}[0]: $!\n";
        POSIX::_exit(127);
    }
    waitpid $pid, 0;
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    my @out = (slurp("$base.out"), slurp("$base.err"));
    unlink "$base.in", "$base.out", "$base.err";
    return ($rc, @out);
}


# ---------------------------------------------------------------------------
# server root, configuration

sub servroot {
    return $Dir if $Dir;
    my $name = basename($0, '.t');
    $name =~ s/[^\w-]/_/g;
    $Dir = tempdir("crm-test-$name-XXXX", TMPDIR => 1);
    chmod 0755, $Dir;   # the postgres user walks through it
    mkdir "$Dir/$_" for qw(conf logs html tmp spool);
    spew("$Dir/html/index.html", "<html><body>index</body></html>\n");
    return $Dir;
}

sub server_port { $Port ||= free_port() }

sub policy_file { servroot() . '/conf/policy.yaml' }

sub expand {
    my ($text) = @_;
    return $text unless defined $text && !ref $text;
    my $dir = servroot();
    $text =~ s/\$CRM_CONNINFO\b/conninfo()/ge;
    $text =~ s/\$SERVROOT\b/$dir/g;
    $text =~ s/\$SPOOL\b/$dir\/spool/g;
    $text =~ s/\$PORT\b/server_port()/ge;
    $text =~ s/\$PG_PORT\b/pg_port()/ge;
    return $text;
}

sub write_policy {
    my ($yaml, $file) = @_;
    $file ||= policy_file();
    spew($file, expand($yaml));
    return $file;
}

# The text of an nginx.conf from sections; writes the policy to $policy_file
# (default conf/policy.yaml) when there is one.
sub make_conf {
    my (%s) = @_;
    my $dir = servroot();
    my $port = server_port();
    my $t = "$dir/tmp";
    my $main = expand($s{main_config}) || '';
    my $conf = "# written by CRM::Test for $0\n"
        . "daemon on;\nmaster_process on;\n"
        . "worker_processes " . ($s{workers} || 1) . ";\n";
    $conf .= "user root;\n" if $> == 0 && $main !~ /^\s*user\s/m;
    $conf .= "error_log logs/error.log "
        . ($ENV{CRM_TEST_DEBUG} ? 'debug' : 'info') . ";\n"
        . "pid logs/nginx.pid;\nlock_file logs/nginx.lock;\n";
    $conf .= "load_module $Module;\n" unless $s{no_module} || $Opt{no_module};
    $conf .= "$main\n"
        . "events {\n    worker_connections 1024;\n}\n\n"
        . "http {\n"
        . "    access_log off;\n"
        . "    client_body_temp_path $t/client_body;\n"
        . "    proxy_temp_path $t/proxy;\n"
        . "    fastcgi_temp_path $t/fastcgi;\n"
        . "    uwsgi_temp_path $t/uwsgi;\n"
        . "    scgi_temp_path $t/scgi;\n"
        . "    types {\n"
        . "        text/html html;\n        application/json json;\n"
        . "        text/css css;\n        application/javascript js;\n"
        . "    }\n";
    if (defined $s{policy}) {
        my $file = write_policy($s{policy}, $s{policy_file});
        $conf .= "    crm_policy $file;\n";
    }
    $conf .= expand($s{http_config}) . "\n" if defined $s{http_config};
    $conf .= "    server {\n"
        . "        listen 127.0.0.1:$port;\n"
        . "        server_name localhost;\n"
        . "        root $dir/html;\n"
        . (defined $s{config} ? expand($s{config}) : '') . "\n"
        . "    }\n}\n";
    return $conf;
}

sub conf_text {
    my ($conf, $policy_file) = @_;
    return make_conf(%$conf, policy_file => $policy_file) if ref $conf;
    return expand($conf);
}


# ---------------------------------------------------------------------------
# nginx processes

sub nginx_cmd { return nginx_cmd_at(servroot() . '/', @_) }

sub nginx_cmd_at {
    my ($prefix, @args) = @_;
    my @cmd = ($Nginx, '-p', $prefix, @args);
    my %env;
    if ($Valgrind) {
        my $supp = "$Repo/t/valgrind.supp";
        unshift @cmd, 'valgrind', '--tool=memcheck', '--leak-check=full',
            '--show-leak-kinds=definite', '--errors-for-leak-kinds=definite',
            '--trace-children=yes', '--child-silent-after-fork=no',
            '--num-callers=30', '--keep-debuginfo=yes',
            "--log-file=$Dir/logs/valgrind-%p.log",
            (-f $supp ? "--suppressions=$supp" : ());
    }
    if ($Asan) {
        chomp(my $lib = $Libasan ||= `gcc -print-file-name=libasan.so`);
        die "CRM_TEST_ASAN: libasan.so not found (gcc says '$lib')\n"
            unless $lib =~ m{^/} && -e $lib;
        my $supp = "$Repo/t/lsan.supp";
        %env = (LD_PRELOAD => $lib,
                ASAN_OPTIONS => "detect_leaks=1:log_path=$Dir/logs/asan"
                              . ":abort_on_error=0:exitcode=1"
                              . ":fast_unwind_on_malloc=0",
                (-f $supp ? (LSAN_OPTIONS => "suppressions=$supp") : ()));
    }
    return (cmd => \@cmd, env => \%env);
}

# another nginx node, with its own prefix (conf/nginx.conf and logs/ under
# it), run as the harness runs nginx: valgrind, ASan's preload
sub nginx_in {
    my ($prefix, @args) = @_;
    return run_cmd(nginx_cmd_at("$prefix/", '-c', "$prefix/conf/nginx.conf",
                                @args));
}

sub alive {
    my ($pid) = @_;
    my $stat = slurp("/proc/$pid/stat");
    return 0 unless $stat =~ /\)\s+(\S)/;
    return $1 ne 'Z' && $1 ne 'X';   # nobody may reap the daemon: Z is dead
}

sub master_pid {
    return undef unless $Dir;
    my ($pid) = slurp("$Dir/logs/nginx.pid") =~ /(\d+)/;
    return $pid && alive($pid) ? $pid : undef;
}

sub children_of {
    my ($ppid) = @_;
    my @kids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = slurp($stat);
        push @kids, $1 if $s =~ /^(\d+) .*\)\s+([^Z])\s+(\d+)/s && $3 == $ppid;
    }
    return sort { $a <=> $b } @kids;
}

sub worker_pids {
    my $master = master_pid() or return ();
    return children_of($master);
}

sub start_nginx {
    my ($conf) = @_;
    stop_nginx();
    my $text = conf_text($conf);
    my $dir = servroot();
    spew("$dir/conf/nginx.conf", $text);
    log_mark("start_nginx");
    my $off = error_log_offset();
    my ($rc, $out, $err) = run_cmd(nginx_cmd('-c', "$dir/conf/nginx.conf"));
    $out .= $err;
    my $workers = $text =~ /^\s*worker_processes\s+(\d+)/m ? $1 : 1;
    my $up = $rc == 0 && wait_for(sub { my @w = worker_pids(); @w >= $workers },
                                  $Valgrind ? 30 : 10);
    if (!$up) {
        $out .= "\nnginx did not start (exit code $rc); error.log says:\n"
            . tail(error_log_since($off), 30);
        stop_nginx() if master_pid();
        return wantarray ? (0, $out) : 0;
    }
    $Running = $text . (ref $conf && defined $conf->{policy}
                        ? slurp(policy_file()) : '');
    return wantarray ? (1, $out) : 1;
}

sub stop_nginx {
    $Running = '';
    my $master = master_pid() or return;
    my @workers = worker_pids();
    my $off = error_log_offset();
    kill 'QUIT', $master;
    my $gone = sub { !alive($master) && !grep { alive($_) } @workers };
    if (!wait_for($gone, $Valgrind ? 60 : 10)) {
        push @Problems, "nginx did not quit gracefully in time; sent TERM";
        kill 'TERM', $master, @workers;
        if (!wait_for($gone, 5)) {
            push @Problems, "nginx did not stop on TERM; sent KILL";
            kill 'KILL', $master, @workers;
            wait_for($gone, 5);
        }
        unlink "$Dir/logs/nginx.pid";
    }
    reap();
    push @Problems, map { "while nginx stopped: $_" }
                    bad_log_lines(error_log_since($off));
    return;
}

sub reload_nginx {
    my ($conf) = @_;
    my $master = master_pid() or die "reload_nginx: nginx is not running\n";
    if (defined $conf) {
        my $text = conf_text($conf);
        spew("$Dir/conf/nginx.conf", $text);
        $Running = $text;
    }
    my @old = worker_pids();
    my $off = error_log_offset();
    kill 'HUP', $master;
    my $result;
    my $done = wait_for(sub {
        my @now = worker_pids();
        if (@now && !grep { alive($_) } @old) {
            return $result = 1;
        }
        if (error_log_since($off) =~ /\[emerg\]/) {
            $result = 0;
            return 1;
        }
        return 0;
    }, $Valgrind ? 60 : 10);
    die "reload_nginx: no new workers and no [emerg] in time\n" unless $done;
    return $result;
}

sub nginx_t {
    my ($conf) = @_;
    my $dir = servroot() . '/conf/t';   # same names, beside the running ones
    mkdir $dir;
    spew("$dir/nginx.conf", conf_text($conf, "$dir/policy.yaml"));
    my ($rc, $out, $err) = run_cmd(nginx_cmd('-t', '-c', "$dir/nginx.conf"));
    return ($rc, $out . $err);
}


# ---------------------------------------------------------------------------
# HTTP client

sub http_get {
    my ($path, $headers) = @_;
    return http_request('GET', $path, $headers);
}

sub http_request {
    my ($method, $path, $headers, $body, %o) = @_;
    my @h = ref $headers eq 'HASH' ? %$headers : @{ $headers || [] };
    my %have;
    for (my $i = 0; $i < @h; $i += 2) { $have{ lc $h[$i] } = 1 }
    my $req = "$method $path " . ($o{protocol} || 'HTTP/1.1') . "\r\n";
    $req .= "Host: localhost\r\n" unless exists $have{host};
    $req .= "Connection: close\r\n" unless exists $have{connection};
    $req .= "Content-Length: " . length($body) . "\r\n"
        if defined $body && !exists $have{'content-length'}
           && !exists $have{'transfer-encoding'};
    while (my ($n, $v) = splice @h, 0, 2) {
        $req .= "$n: $v\r\n";
    }
    $req .= "\r\n" . (defined $body ? $body : '');
    return http_raw($req, $o{timeout}, $o{port});
}

sub http_raw {
    my ($req, $timeout, $port) = @_;
    $timeout = ($timeout || 10) * $Factor;
    my $deadline = time + $timeout;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $port || server_port(),
                                     Proto => 'tcp', Timeout => $timeout)
        or return (undef, {}, '', "connect failed: $!");
    binmode $sock;
    my $sel = IO::Select->new($sock);
    for (my $off = 0; $off < length $req; ) {
        last unless $sel->can_write($deadline - time);
        my $n = syswrite $sock, $req, 65536, $off;
        last unless $n;     # the server may answer before reading it all
        $off += $n;
    }
    my $raw = '';
    while (1) {
        my $left = $deadline - time;
        if ($left <= 0 || !$sel->can_read($left)) {
            close $sock;
            return (undef, {}, '', $raw . "\n[timed out after ${timeout}s]");
        }
        my $n = sysread $sock, my $buf, 65536;
        last unless $n;
        $raw .= $buf;
    }
    close $sock;
    return (parse_response($raw), $raw);
}

sub parse_response {
    my ($raw) = @_;
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return (undef, {}, $raw)
        unless defined $head && $head =~ m{\AHTTP/\d\.\d (\d{3})};
    my $status = $1;
    my %h;
    my (undef, @lines) = split /\r\n/, $head;
    for (@lines) {
        my ($n, $v) = /^([^:]+):\s*(.*?)\s*$/ or next;
        $n = lc $n;
        $h{$n} = exists $h{$n} ? "$h{$n}, $v" : $v;
    }
    $body = '' unless defined $body;
    $body = dechunk($body)
        if ($h{'transfer-encoding'} || '') =~ /chunked/i;
    return ($status, \%h, $body);
}

sub dechunk {
    my ($in) = @_;
    my $out = '';
    while ($in =~ s/\A([0-9a-fA-F]+)[^\r\n]*\r\n//) {
        my $n = hex $1;
        last if $n == 0;
        $out .= substr $in, 0, $n, '';
        $in =~ s/\A\r\n//;
    }
    return $out;
}


# ---------------------------------------------------------------------------
# the error log

sub error_log_offset {
    return $Dir ? (-s "$Dir/logs/error.log" || 0) : 0;
}

sub error_log_since {
    my ($offset) = @_;
    return '' unless $Dir;
    open my $fh, '<', "$Dir/logs/error.log" or return '';
    seek $fh, $offset || 0, 0;
    local $/;
    my $text = <$fh>;
    return defined $text ? $text : '';
}

# A line in the log that tells the developer where each block starts.
sub log_mark {
    my ($what) = @_;
    open my $fh, '>>', servroot() . '/logs/error.log' or return;
    print $fh POSIX::strftime('%Y/%m/%d %H:%M:%S', localtime)
        . " [notice] 0#0: crm-test: $what\n";
}

sub tail {
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    splice @l, 0, @l - $n if @l > $n;
    return join("\n", @l) . "\n";
}

# Lines of the log at level error or worse that a test did not expect.
sub bad_log_lines {
    my ($text, %o) = @_;
    my %ignore = map { $_ => 1 } @{ $o{ignore_levels} || [] };
    my @bad;
    for my $line (split /\n/, $text) {
        my ($level) = $line =~ /\[(error|crit|alert|emerg)\]/ or next;
        next if $ignore{$level};
        next if $level eq 'error'
                && grep { matches($line, $_) } @{ $o{expect} || [] };
        push @bad, $line;
    }
    return @bad;
}

sub error_log_clean {
    my ($offset, %o) = @_;
    my @bad = (splice(@Problems), bad_log_lines(error_log_since($offset), %o));
    my $ok = Test::More::ok(!@bad, $o{name} || 'error log clean');
    Test::More::diag("unexpected in logs/error.log of " . servroot() . ":\n"
                     . join("\n", @bad)) if @bad;
    return $ok;
}


# ---------------------------------------------------------------------------
# PostgreSQL

sub pg_bin {
    my ($name) = @_;
    for my $dir ('/usr/lib/postgresql/15/bin', split /:/, $ENV{PATH} || '') {
        return "$dir/$name" if -x "$dir/$name";
    }
    my ($any) = reverse sort glob "/usr/lib/postgresql/*/bin/$name";
    return $any;
}

sub as_postgres { $> == 0 ? ('runuser', '-u', 'postgres', '--') : () }

sub pg_port { pg_init(); $Pg{port} }

sub conninfo {
    pg_start() unless $Pg{data};     # the first time only: faults stop it
    return "host=127.0.0.1 port=$Pg{port} dbname=crm user=postgres";
}

sub pg_init {
    return if $Pg{data};
    my ($initdb, $pg_ctl) = (pg_bin('initdb'), pg_bin('pg_ctl'));
    die "PostgreSQL server binaries (initdb, pg_ctl) not found\n"
        unless $initdb && $pg_ctl;
    my $pg = servroot() . '/pg';
    mkdir $pg, 0700;
    if ($> == 0) {
        my (undef, undef, $uid, $gid) = getpwnam('postgres')
            or die "no postgres user\n";
        chown $uid, $gid, $pg;
    }
    my ($rc, $out, $err) = run_cmd(cmd => [as_postgres(), $initdb,
        '-D', "$pg/data", '-A', 'trust', '-U', 'postgres', '-E', 'UTF8',
        '--locale=C', '--encoding=UTF8', '--no-sync']);
    die "initdb failed ($rc):\n$out$err" if $rc;
    %Pg = (dir => $pg, data => "$pg/data", port => free_port(),
           pg_ctl => $pg_ctl, running => 0, created => 0);
}

sub pg_start {
    pg_init();
    return 1 if $Pg{running};
    my ($rc, $out, $err) = run_cmd(cmd => [as_postgres(), $Pg{pg_ctl},
        '-D', $Pg{data}, '-w', '-t', 60, '-l', "$Pg{dir}/postgres.log",
        '-o', "-p $Pg{port} -k $Pg{dir} -c listen_addresses=127.0.0.1"
            . " -c fsync=off", 'start']);
    die "pg_ctl start failed ($rc):\n$out$err" . slurp("$Pg{dir}/postgres.log")
        if $rc;
    $Pg{running} = 1;
    if (!$Pg{created}++) {
        psql('CREATE DATABASE crm', 'postgres');
        apply_schema() || die "apply_schema failed\n" if $Opt{schema};
    }
    return 1;
}

sub pg_stop {
    return unless $Pg{running};
    my ($rc, $out, $err) = run_cmd(cmd => [as_postgres(), $Pg{pg_ctl},
        '-D', $Pg{data}, '-m', 'fast', '-w', '-t', 30, 'stop']);
    if ($rc) {
        run_cmd(cmd => [as_postgres(), $Pg{pg_ctl}, '-D', $Pg{data},
                        '-m', 'immediate', '-w', 'stop']);
    }
    $Pg{running} = 0;
    reap();
}

sub psql {
    my ($sql, $db) = @_;
    pg_start() unless $Pg{data};
    my ($rc, $out, $err) = run_cmd(
        cmd => [pg_bin('psql') || 'psql', '-X', '-q', '-A', '-t',
                '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', $Pg{port},
                '-U', 'postgres', '-d', $db || 'crm', '-f', '-'],
        stdin => expand($sql));
    die "psql failed ($rc): $err" if $rc;
    return $out;
}

sub apply_schema {
    my $script = "$Repo/config.sh";
    my ($rc, $out, $err) = run_cmd(cmd => [$script, 'db', conninfo()],
                                   dir => $Repo);
    return 1 if $rc == 0;
    Test::More::diag("$script db failed ($rc):\n$out$err");
    return 0;
}


# ---------------------------------------------------------------------------
# sanitizers: (ok, diagnostics)

sub check_valgrind {
    my (@bad, @other);
    for my $file (sort glob "$Dir/logs/valgrind-*.log") {
        my $text = slurp($file);
        $text =~ s/^==\d+==[ ]?//mg;
        for my $rec (split /\n\s*\n/, $text) {
            next unless $rec =~ /\A\s*(Invalid\ (read|write|free)
                | Conditional\ jump | Use\ of\ uninitialised | Syscall\ param
                | Mismatched\ free | Source\ and\ destination\ overlap
                | [\d,]+\ .*bytes\ in\ [\d,]+\ blocks\ are\ definitely\ lost)/x;
            my $where = basename($file) . ":\n$rec";
            if ($rec =~ /ngx_http_crm|\bcrm_/) { push @bad, $where }
            else { push @other, $where }
        }
    }
    return report('valgrind', \@bad, \@other);
}

sub check_asan {
    my (@bad, @other);
    for my $file (sort glob "$Dir/logs/asan.*") {
        my $text = slurp($file);
        if ($text =~ /ERROR: AddressSanitizer/) {
            push @bad, basename($file) . ":\n$text";
            next;
        }
        for my $rec (split /\n\s*\n/, $text) {
            next unless $rec =~ /^(Direct|Indirect) leak of/m;
            my $where = basename($file) . ":\n$rec";
            # A worker dlclose()s the module as it exits, before LeakSanitizer
            # looks: its frames then read "<unknown module>".
            if ($rec =~ /^Direct/ && $rec =~ /ngx_http_crm|\bcrm_|<unknown module>/) {
                push @bad, $where;
            } else {
                push @other, $where;
            }
        }
    }
    return report('asan', \@bad, \@other);
}

# Records outside ngx_crm (nginx's own exit-time leaks) are not failures:
# one line of diagnostics, and each distinct one as a note (prove -v).
sub report {
    my ($tool, $bad, $other) = @_;
    my %seen;
    my @distinct = grep {
        (my $key = $_) =~ s/\A.*\n//;           # the file name
        $key =~ s/ in loss record \d+ of \d+//;
        $key =~ s/0x[0-9a-f]+//g;                # addresses differ (ASLR)
        !$seen{$key}++
    } @$other;
    Test::More::note("$tool, outside ngx_crm:\n$_") for @distinct;
    Test::More::diag("$tool: " . @$other . " record(s) outside ngx_crm, "
        . @distinct . " distinct, not counted (prove -v shows them)")
        if @$other;
    Test::More::diag("$tool found in ngx_crm:\n" . join("\n\n", @$bad))
        if @$bad;
    return !@$bad;
}


# ---------------------------------------------------------------------------
# the end of a file

sub done_testing {
    finish(0);
    Test::More::done_testing(@_);
}

sub finish {
    my ($exit) = @_;
    return if $Finished++;
    my $tb = Test::More->builder;
    $tb->plan();    # a no-op that tells Test::Base's END not to run_compare()
    stop_nginx();
    pg_stop();
    if ($tb->has_plan || $tb->current_test) {   # not after skip_all
        my $ok = 1;
        $ok = check_valgrind() if $Valgrind && $Dir;
        $ok = check_asan() && $ok if $Asan && $Dir;
        my @bad = splice @Problems;
        Test::More::diag(join "\n", @bad) if @bad;
        Test::More::ok($ok && !@bad, 'clean shutdown');
    }
    return unless $Dir;
    if ($ENV{CRM_TEST_KEEP} || !$tb->is_passing || $exit) {
        Test::More::diag("servroot kept: $Dir (see logs/error.log)");
    } else {
        remove_tree($Dir);
    }
}


# ---------------------------------------------------------------------------
# blocks

sub section {
    my ($block, $name) = @_;
    return $block->{$name} ? $block->{$name}[0] : undef;
}

sub run_tests {
    my @blocks = Test::Base::blocks();
    my $tb = Test::More->builder;
    my $need_module = !$Opt{no_module}
        && grep { !defined section($_, 'no_module') } @blocks;
    if ($need_module && !-f $Module) {
        Test::More::plan(skip_all => "ngx_crm module not built: $Module"
            . " (run ./config.sh build, or set CRM_MODULE)");
    }
    my $need_db = $Opt{db} || $Opt{schema} || grep {
        my $b = $_;
        defined section($b, 'sql') || defined section($b, 'db')
            || grep { (section($b, $_) || '') =~ /\$CRM_CONNINFO\b/ }
                    qw(policy config http_config main_config)
    } @blocks;
    if ($need_db && !pg_bin('initdb')) {
        Test::More::plan(skip_all => 'PostgreSQL server (initdb) not found');
    }
    if (!$tb->has_plan && !$tb->current_test) {
        my $n = 1;   # clean shutdown
        $n += scalar(block_checks($_, {})) for @blocks;
        Test::More::plan(tests => $n);
    }
    pg_start() if $need_db;
    run_block($_) for @blocks;
}

# The block's conf (and policy) as hash ref of sections.
sub block_conf {
    my ($block) = @_;
    return { map { ($_ => section($block, $_)) }
             qw(config http_config main_config policy workers no_module) };
}

sub run_block {
    my ($block) = @_;
    my $name = $block->name;
    my $ctx = {};
    my @checks = block_checks($block, $ctx);
    my $conf = block_conf($block);
    log_mark($name);

    if (defined section($block, 'must_die')) {
        my ($rc, $out) = nginx_t($conf);
        if ($rc == 0) {
            (my $started, my $more) = start_nginx($conf);
            $out .= $more;
            $rc = !$started;
            stop_nginx() if $started;
        }
        $ctx->{died} = $rc != 0;
        $ctx->{log} = $out;
        $_->[1]->() for @checks;
        return;
    }

    # Stop the old nginx first: what it logs while stopping is checked by
    # stop_nginx(); what the new one logs from its start is this block's.
    my $text = make_conf(%$conf);
    my $want = $text . (defined $conf->{policy} ? slurp(policy_file()) : '');
    my $restart = $want ne $Running || defined section($block, 'restart');
    stop_nginx() if $restart;
    my $off = error_log_offset();

    if (defined(my $sql = section($block, 'sql'))) {
        eval { psql($sql); 1 } or $ctx->{sql_error} = $@;
    }
    if ($restart) {
        my ($ok, $out) = start_nginx($conf);
        if (!$ok) {
            Test::More::diag("$name: nginx did not start:\n$out");
            Test::More::fail("$name: $_->[0] (nginx did not start)")
                for @checks;
            return;
        }
    }

    my $timeout = section($block, 'timeout');
    if (defined(my $raw = section($block, 'raw_request'))) {
        @$ctx{qw(status headers body raw)} = http_raw(expand($raw), $timeout);
    } elsif (defined(my $req = section($block, 'request'))) {
        my ($line, $body) = split /\n/, expand($req), 2;
        my ($method, $uri, $proto) =
            $line =~ m{^\s*(\S+)\s+(\S+)(?:\s+(HTTP/\d\.\d))?\s*$}
            or die "$name: bad request line '$line'\n";
        chomp $body if defined $body;
        $body = undef if defined $body && $body eq '' && $method eq 'GET';
        my @h = map { /^\s*([^:\s]+)\s*:\s*(.*?)\s*$/ ? ($1, $2) : () }
                patterns(section($block, 'request_headers')
                         // section($block, 'more_headers'));
        @$ctx{qw(status headers body raw)} = http_request($method, $uri, \@h,
            $body, timeout => $timeout, protocol => $proto);
    }
    if (my $wait = section($block, 'wait')) {
        sleep $wait * $Factor;
    }
    $ctx->{since} = $off;
    $_->[1]->() for @checks;
}

# The assertions of a block, each [label, code emitting one assertion],
# reading what run_block left in $ctx.
sub block_checks {
    my ($block, $ctx) = @_;
    my $name = $block->name;
    my @c;
    my $add = sub { my ($label, $code) = @_; push @c, [$label, $code] };
    my @expect = patterns(section($block, 'error_log'));
    my @absent = patterns(section($block, 'no_error_log'));

    if (defined section($block, 'must_die')) {
        $add->('nginx refuses the configuration', sub {
            Test::More::ok($ctx->{died}, "$name: nginx refuses the configuration")
                or Test::More::diag($ctx->{log});
        });
        for my $p (@expect) {
            $add->("nginx -t says $p", sub {
                Test::More::ok(matches($ctx->{log}, $p), "$name: nginx -t says $p")
                    or Test::More::diag("nginx -t said:\n$ctx->{log}");
            });
        }
        for my $p (@absent) {
            $add->("nginx -t does not say $p", sub {
                Test::More::ok(!matches($ctx->{log}, $p),
                               "$name: nginx -t does not say $p");
            });
        }
        return @c;
    }

    if (defined section($block, 'sql')) {
        $add->('sql', sub {
            Test::More::ok(!$ctx->{sql_error}, "$name: sql")
                or Test::More::diag($ctx->{sql_error});
        });
    }

    if (defined section($block, 'request')
        || defined section($block, 'raw_request')) {
        my $code = section($block, 'error_code');
        $code = 200 unless defined $code;
        $add->('status', sub {
            Test::More::is($ctx->{status}, $code, "$name: status $code")
                or Test::More::diag("response:\n" . ($ctx->{raw} // ''));
        });
        if (defined(my $body = section($block, 'response_body'))) {
            $add->('response body', sub {
                Test::Base::is($ctx->{body}, expand($body), "$name: response body");
            });
        }
        if (defined(my $re = section($block, 'response_body_like'))) {
            if (!ref $re) { chomp $re; $re = qr/$re/s }
            $add->('response body like', sub {
                Test::More::like($ctx->{body} // '', $re, "$name: response body like");
            });
        }
        for my $line (patterns(section($block, 'response_headers'))) {
            if ($line =~ /^\s*!\s*(\S+)/) {
                my $h = lc $1;
                $add->("no header $h", sub {
                    Test::More::ok(!exists $ctx->{headers}{$h}, "$name: no $h header")
                        or Test::More::diag("$h: $ctx->{headers}{$h}");
                });
            } else {
                my ($h, $v) = $line =~ /^\s*([^:\s]+)\s*:\s*(.*?)\s*$/
                    or die "$name: bad response_headers line '$line'\n";
                $add->("header $h", sub {
                    Test::More::is($ctx->{headers}{lc $h}, expand($v), "$name: header $h");
                });
            }
        }
        for my $line (patterns(section($block, 'response_headers_like'))) {
            my ($h, $re) = $line =~ /^\s*([^:\s]+)\s*:\s*(.*?)\s*$/
                or die "$name: bad response_headers_like line '$line'\n";
            $add->("header $h like", sub {
                Test::More::like($ctx->{headers}{lc $h} // '', qr/$re/,
                                 "$name: header $h like $re");
            });
        }
    }

    if (defined(my $db = section($block, 'db'))) {
        my ($sql, $rows) = split /\n/, $db, 2;
        my $norm = sub { my $t = shift // ''; $t =~ s/[ \t]+$//mg; $t =~ s/\s+\z//; $t };
        $add->('db', sub {
            my $got;
            wait_for(sub {
                $got = eval { psql($sql) } // "psql error: $@";
                return $norm->($got) eq $norm->(expand($rows));
            }, 3 * $Factor);
            Test::Base::is($norm->($got), $norm->(expand($rows)), "$name: db $sql");
        });
    }

    for my $p (@expect) {
        $add->("error log has $p", sub {
            my $found = wait_for(sub {
                matches(error_log_since($ctx->{since}), $p)
            }, 3 * $Factor);
            Test::More::ok($found, "$name: error log has $p");
        });
    }
    for my $p (@absent) {
        $add->("error log lacks $p", sub {
            my @hits = grep { matches($_, $p) }
                       split /\n/, error_log_since($ctx->{since});
            Test::More::ok(!@hits, "$name: error log lacks $p")
                or Test::More::diag(join "\n", @hits);
        });
    }
    my @ignore = split ' ', section($block, 'ignore_levels') || '';
    $add->('error log clean', sub {
        error_log_clean($ctx->{since}, name => "$name: error log clean",
                        expect => \@expect, ignore_levels => \@ignore);
    });
    return @c;
}

1;
