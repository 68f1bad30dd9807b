# The C calendar (ngx_http_crm_calendar.c) against an independent
# reference: t/unit/calendar_ref.py, Python's zoneinfo and datetime.  2000
# random cases with a fixed seed: UTC offsets, due times (add) and business
# time between two instants, in zones with daylight time both ways, half
# hours, quarter hours and changed rules, from 1971 to 2099, with random
# opening hours (some ending at 24:00) and holidays.
use strict;
use warnings;
use Test::More;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IPC::Open2;

my $root = abs_path(dirname(abs_path(__FILE__)) . '/..');
my $unit = "$root/t/unit";

system('make', '-s', '-C', $unit, 'calendar_cli') == 0
    or BAIL_OUT('make -C t/unit calendar_cli failed');

my @zones = qw(UTC Europe/Berlin Europe/London America/New_York
    America/Sao_Paulo America/St_Johns Asia/Tehran Asia/Kolkata
    Asia/Kathmandu Australia/Lord_Howe Pacific/Chatham Pacific/Apia
    Africa/Casablanca Europe/Moscow America/Santiago);

srand(20261203);

sub pick { $_[int rand @_] }

sub hours {
    return join ',', map {
        my $r = rand;
        $r < 0.3 ? (0, 0)
      : $r < 0.45 ? (0, 1440)
      : do {
            my $s = 30 * int rand 46;
            my $e = $s + 30 * (1 + int rand((1440 - $s) / 30));
            ($s, $e > 1440 ? 1440 : $e);
        }
    } 1 .. 7;
}

sub holidays {
    my ($t) = @_;
    my @d = sort { $a <=> $b } map {
        my @g = gmtime($t + (int rand 30) * 86400);
        sprintf '%04d%02d%02d', $g[5] + 1900, $g[4] + 1, $g[3];
    } 1 .. int rand 4;
    my %seen;
    @d = grep { !$seen{$_}++ } @d;
    return @d ? join(',', @d) : '-';
}

my @cases;
for my $i (1 .. 2000) {
    my $zone = pick(@zones);
    my $t = 31536000 + int rand(4102444800 - 31536000);
    # a third of the cases around a clock change of this century
    $t = 1774749600 + (int rand 40) * 31557600 / 2 + int(rand 172800) - 86400
        if $i % 3 == 0;
    my $kind = $i % 5 == 0 ? 'offset' : $i % 2 ? 'add' : 'between';
    if ($kind eq 'offset') {
        push @cases, "offset $zone $t";
    } elsif ($kind eq 'add') {
        push @cases, join ' ', 'add', $zone, hours(), holidays($t), $t,
            int rand(14 * 86400);
    } else {
        push @cases, join ' ', 'between', $zone, hours(), holidays($t), $t,
            $t + int(rand(20 * 86400)) - 5 * 86400;
    }
}

sub answers {
    my (@cmd) = @_;
    my $pid = open2(my $out, my $in, @cmd);
    print $in "$_\n" for @cases;
    close $in;
    my @a = map { chomp; $_ } <$out>;
    waitpid $pid, 0;
    return @a;
}

my @c = answers("$unit/calendar_cli");
my @py = answers('python3', "$unit/calendar_ref.py");

is(scalar @c, scalar @cases, 'the C calendar answered every case');
is(scalar @py, scalar @cases, 'the Python reference answered every case');

my @diff = grep { ($c[$_] // '') ne ($py[$_] // '') } 0 .. $#cases;
ok(!@diff, sprintf '%d of %d cases agree', @cases - @diff, scalar @cases)
    or diag join "\n", map { "$cases[$_]\n  C: $c[$_]  Python: $py[$_]" }
                       @diff[0 .. ($#diff < 9 ? $#diff : 9)];

my %kinds;
$kinds{ (split ' ', $_)[0] }++ for @cases;
ok($kinds{offset} > 300 && $kinds{add} > 700 && $kinds{between} > 700,
   "offsets $kinds{offset}, due times $kinds{add}, spans $kinds{between}");
ok((grep { $_ eq '-1' } @c) < @cases / 10,
   'most due times fall within ten years');

done_testing();
