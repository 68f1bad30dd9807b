package CRM::Sql;

=head1 NAME

CRM::Sql - calling the module's SQL functions from a test as the module
calls them: spool lines, policies, one-value queries.

=head1 SYNOPSIS

    use CRM::Test no_module => 1, schema => 1;
    use CRM::Sql;
    pg_start();
    policy('main', 'holdout.percent' => 10);   # crm.register_policy
    record(ev(kind => 'payment', order_id => 'A1'));  # crm.record_events
    my $n = one('SELECT count(*) FROM crm.ticket');
    my $d = decide(order_id => 'A2', email => 'a@example.com');
    record(result($d, 201));                  # the shop's answer
    ledger($d->{customer_id});                # ['5:kept:A2']
    my @last = concurrently($sql1, $sql2);    # at the same moment

=cut

use strict;
use warnings;

use Exporter 'import';
use JSON::PP ();
use POSIX ();
use Time::HiRes ();
use CRM::Test ();

our @EXPORT = qw(lit one json_of uuid policy ev batch record decide result
                 ledger concurrently $J);

our $J = JSON::PP->new->canonical;

my $Uuid = 0;

# a SQL string literal
sub lit { my ($s) = @_; $s =~ s/'/''/g; return "'$s'" }

# the one value a query returns
sub one { my $r = CRM::Test::psql($_[0]); chomp $r; return $r }

sub json_of { return $J->decode(one($_[0])) }

# a fresh event id, in order
sub uuid { return sprintf '00000000-0000-4000-8000-%012d', ++$Uuid }

# Registers the policy as the module builds it from examples/crm.yaml, with
# changes: policy('main', 'loyalty.card.prefix' => 'X-').
sub policy {
    my ($sha, %set) = @_;
    my $doc = {
        loyalty => {
            card => { after_paid_orders => 1, prefix => 'CRM-' },
            tiers => [
                { name => 'member', paid_orders => 1, spent => 0,
                  discount => 5 },
                { name => 'gold', paid_orders => 3, spent => 300,
                  discount => 10 },
            ],
            promise => { valid_for_s => 2592000, max_discount => 20 },
        },
        surprises => { probability => 0, min_paid_orders => 1,
                       cooldown_s => 2592000, daily_budget => 100,
                       gifts => [ { name => 'tea', cost => 2.5 } ] },
        holdout => { percent => 0 },
        timezone => 'UTC',
        feedback => { sla => {
            timezone => 'UTC', target_s => 4 * 3600, limit_s => 8 * 3600,
            hours => [ [0, 0], ([540, 1020]) x 5, [0, 0] ],
            holidays => [] } },
    };
    for my $path (keys %set) {
        my @p = split /\./, $path;
        my $h = $doc;
        $h = $h->{$_} for @p[0 .. $#p - 1];
        $h->{ $p[-1] } = $set{$path};
    }
    CRM::Test::psql("SELECT crm.register_policy(" . lit($sha) . ", "
                    . lit($J->encode($doc)) . ")");
    return $sha;
}

# a spool line: what the module always writes, plus %e
sub ev {
    my (%e) = @_;
    $e{event_id} ||= uuid();
    $e{received_at} ||= Time::HiRes::time();
    if ($e{kind} ne 'order_result') {
        $e{node} ||= 'test';
        $e{state} ||= 'ok';
    }
    return \%e;
}

sub batch { return join "\n", map { ref $_ ? $J->encode($_) : $_ } @_ }

# crm.record_events of these lines; returns its count
sub record {
    my $b = batch(@_);
    return one("SELECT crm.record_events(\$batch\$$b\$batch\$)");
}

# the decision for an order, plus its event_id
sub decide {
    my (%o) = @_;
    my $sha = delete $o{policy} || 'main';
    $o{event_id} ||= uuid();
    my $d = json_of("SELECT crm.decide_order(" . lit($J->encode(\%o))
                    . "::jsonb, " . lit($sha) . ")");
    $d->{event_id} = $o{event_id};
    $d->{order_id} = $o{order_id};
    return $d;
}

sub result {
    my ($d, $status) = @_;
    return ev(kind => 'order_result', event_id => $d->{event_id},
              order_id => $d->{order_id}, status => $status);
}

# the customer's promises as staff see them: "percent:status:order_id";
# with kinds, only promises of those kinds
sub ledger {
    my ($cid, @kinds) = @_;
    my $only = @kinds ? " AND kind IN (" . join(', ', map { lit($_) } @kinds)
                        . ")" : '';
    return [ split /\n/, CRM::Test::psql("SELECT percent || ':' || status"
        . " || ':' || coalesce(order_id, '-') FROM crm.promise_ledger"
        . " WHERE customer_id = $cid$only ORDER BY promise_id") ];
}

# Runs each SQL text in its own psql at the same moment: all wait on an
# advisory lock that one more session holds until every one is waiting.
# Returns the last output line of each.
my $Par = 0;

sub concurrently {
    my (@sql) = @_;
    my $dir = CRM::Test::servroot() . "/tmp/par-" . ++$Par;
    mkdir $dir;
    my @psql = ('psql', '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1',
                '-h', '127.0.0.1', '-p', CRM::Test::pg_port(),
                '-U', 'postgres', '-d', 'crm');
    my $spawn = sub {
        my ($out, @args) = @_;
        my $pid = fork;
        die "fork: $!" unless defined $pid;
        return $pid if $pid;
        open STDOUT, '>', "$out.out";
        open STDERR, '>', "$out.err";
        { exec @psql, @args };
        POSIX::_exit(127);
    };
    my $gate = $spawn->("$dir/gate",
        '-c', "SELECT pg_advisory_lock(7070)", '-c', "SELECT pg_sleep(60)");
    my $locks = sub {
        return one("SELECT count(*) FROM pg_locks WHERE locktype ="
                   . " 'advisory' AND objid = 7070 AND $_[0]");
    };
    CRM::Test::wait_for(sub { $locks->('granted') == 1 }, 10)
        or die "the gate did not take its lock";
    my @pids = map {
        $spawn->("$dir/$_", '-c', "SELECT pg_advisory_lock_shared(7070)",
                 '-c', $sql[$_])
    } 0 .. $#sql;
    CRM::Test::wait_for(sub { $locks->('NOT granted') == @sql }, 10)
        or die "the clients did not all wait";
    one("SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
        . " WHERE locktype = 'advisory' AND objid = 7070 AND granted"
        . " AND mode = 'ExclusiveLock'");
    waitpid $_, 0 for $gate, @pids;
    return map {
        open my $fh, '<', "$dir/$_.out" or die;
        my @l = grep { length } map { chomp; $_ } <$fh>;
        $l[-1];
    } 0 .. $#sql;
}

1;
