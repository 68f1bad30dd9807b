# crm_status names the loaded policy; reload picks up a changed policy and
# survives a broken one.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test;
use Digest::SHA qw(sha256_hex);

my $conf = {
    policy => <<'YAML',
version: 1
database:
  conninfo: "host=127.0.0.1 port=1 dbname=crm"
holdout:
  percent: 5
YAML
    config => 'location = /status { crm_status; }',
};

sub status_json {
    my ($query) = @_;
    my ($code, $h, $body) = http_get('/status' . ($query || ''));
    return ($code, $h, $body);
}

sub file_sha { open my $f, '<', $_[0] or die; local $/; sha256_hex(<$f>) }

ok(start_nginx($conf), 'nginx starts with the policy');
my $file = policy_file();

my ($code, $h, $body) = status_json();
is($code, 200, 'status answers');
is($h->{'content-type'}, 'application/json', 'as JSON');
my ($pid) = worker_pids();
like($body, qr/"pid":$pid,/, 'names the worker pid');
like($body, qr/"file":"\Q$file\E"/, 'names the policy file');
my $sha1 = file_sha($file);
like($body, qr/"sha256":"$sha1"/, 'gives the sha256 of its bytes');
like($body, qr/"loaded_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"/,
     'and when it was loaded');
like($body, qr/"events":\{"captured":0,"written":0,"spooled":0,"replayed":0,"bad_body":0,"rejected":0,"cookies_rejected":0\},"orders":\{"decided":0,"undecided":0,"no_customer":0,"conflict":0\}/,
     'event counters start at zero');

($code, $h, $body) = status_json('?format=prometheus');
is($code, 200, 'prometheus format answers');
like($h->{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'as Prometheus text');
like($body, qr/^crm_policy_info\{file="\Q$file\E",sha256="$sha1"\} 1$/m,
     'policy info line');
like($body, qr/^crm_events_captured_total 0$/m, 'a counter');
like($body, qr/^# TYPE crm_events_captured_total counter$/m, 'typed');
like($body, qr/^crm_info\{version="[\d.]+",pid="$pid"\} 1$/m, 'info line');

# a changed policy: the new workers use it
my $off = error_log_offset();
write_policy($conf->{policy} . "cache:\n  ttl: 10s\n");
my $sha2 = file_sha($file);
isnt($sha2, $sha1, 'the policy changed');
is(reload_nginx(), 1, 'reload with a changed policy: new workers');
my ($pid2) = worker_pids();
isnt($pid2, $pid, 'a new worker');
($code, $h, $body) = status_json();
like($body, qr/"sha256":"$sha2"/, 'the new worker runs the new policy');
error_log_clean($off, name => 'reload logged no error');

# a broken policy: nginx refuses the reload, old workers keep serving
$off = error_log_offset();
write_policy($conf->{policy} . "surprises:\n  probability: 1.5\n");
is(reload_nginx(), 0, 'reload with a broken policy is refused');
like(error_log_since($off), qr/\[emerg\] .*\Q$file\E:\d+:\d+: /,
     'the error names the file, line and column');
is((worker_pids())[0], $pid2, 'the old worker is still there');
($code, $h, $body) = status_json();
is($code, 200, 'and answers');
like($body, qr/"sha256":"$sha2"/, 'with the policy it had');
error_log_clean($off, ignore_levels => ['emerg'],
                name => 'nothing else went wrong');

# fixing the policy and reloading again works
write_policy($conf->{policy});
is(reload_nginx(), 1, 'reload with the policy fixed');
($code, $h, $body) = status_json();
like($body, qr/"sha256":"$sha1"/, 'runs the fixed policy');

done_testing();
