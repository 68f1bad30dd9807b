# The helpers of sql/fn_helpers.sql and crm.tier_of() on a real
# PostgreSQL: what each makes of the values a request carries, as the
# module's C normalizers do, and that the ones PostgreSQL cannot inline
# are plpgsql (a sql function with a FROM is planned at every call, 40 to
# 90 us, several times an order).  No nginx.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test no_module => 1, schema => 1;
use CRM::Sql;

pg_start();

sub call {
    my ($f, $s) = @_;
    return one("SELECT coalesce(crm.$f(" . (defined $s ? lit($s) : 'NULL')
               . ")::text, 'NULL')");
}

my @money = (
    [' 129.90 ', '129.90'], ['1.5e2', '150.00'], ['12.3456789', '12.35'],
    ['-0.005', '-0.01'], ['999999999999.99', '999999999999.99'],
    ['1000000000000', 'NULL'], ['abc', 'NULL'], ['1,5', 'NULL'],
    ['', 'NULL'], [undef, 'NULL'],
);
is(call('parse_money', $_->[0]), $_->[1],
   'parse_money(' . ($_->[0] // 'NULL') . ") is $_->[1]") for @money;

my @dates = (
    ['2024-02-29', '2024-02-29'], ['2023-02-29', 'NULL'],
    [' 1990-05-01T10:00', '1990-05-01'], ['2024-04-31', 'NULL'],
    ['2024-13-01', 'NULL'], ['0000-01-01', 'NULL'], ['1990-5-1', 'NULL'],
    [undef, 'NULL'],
);
is(call('parse_date', $_->[0]), $_->[1],
   'parse_date(' . ($_->[0] // 'NULL') . ") is $_->[1]") for @dates;

my @emails = (
    [" Anna\@EXAMPLE.com\t", 'anna@example.com'],
    ['a b@c', 'NULL'], ['@b', 'NULL'], ['a@', 'NULL'],
    [('a' x 251) . '@b.c', 'NULL'], [undef, 'NULL'],
);
is(call('norm_email', $_->[0]), $_->[1],
   'norm_email(' . (defined $_->[0] ? substr($_->[0], 0, 20) : 'NULL')
   . ") is $_->[1]") for @emails;

is(one("SELECT crm.norm_email(chr(196) || 'NNA\@Example.com')
             = chr(196) || 'nna\@example.com'"), 't',
   'norm_email: only ASCII letters are lower-cased');

my @phones = (
    ['8 912 345-67-89', '79123456789'], ['+7 912 345-67-89', '79123456789'],
    ['1234', 'NULL'], ['12345', '12345'], ['1234567890123456', 'NULL'],
    [undef, 'NULL'],
);
is(call('norm_phone', $_->[0]), $_->[1],
   'norm_phone(' . ($_->[0] // 'NULL') . ") is $_->[1]") for @phones;

# tier_of: the last tier listed whose conditions hold
my $doc = lit('{"loyalty":{"tiers":[{"name":"a","paid_orders":1},'
              . '{"name":"b","paid_orders":3,"spent":100},'
              . '{"name":"c","paid_orders":2,"spent":0}]}}');
my @tiers = ([0, 0, 'NULL'], [1, 0, 'a'], [2, 0, 'c'], [3, 50, 'c'],
             [3, 100, 'c'], [5, 150, 'c']);
for my $t (@tiers) {
    my $v = one("SELECT coalesce(crm.tier_of(${doc}::jsonb, $t->[0], $t->[1])"
                . " ->> 'name', 'NULL')");
    is($v, $t->[2], "tier_of($t->[0] paid, $t->[1] spent) is $t->[2]");
}
my $first = lit('{"loyalty":{"tiers":[{"name":"x","paid_orders":1},'
                . '{"name":"y","paid_orders":3,"spent":100}]}}');
is(one("SELECT crm.tier_of(${first}::jsonb, 3, 100) ->> 'name'"), 'y',
   'tier_of: a later tier reached wins');
is(one("SELECT crm.tier_of(${first}::jsonb, 3, 99) ->> 'name'"), 'x',
   'tier_of: ... not when its spending is not reached');
is(one("SELECT crm.tier_of('{\"loyalty\":{\"tiers\":{}}}', 9, 9) IS NULL"),
   't', 'tier_of: tiers that are not a list reach none');

# none of them is a sql function PostgreSQL would plan at every call
is(one("SELECT string_agg(p.proname || ':' || l.lanname, ' ' ORDER BY p.proname)
          FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
         WHERE p.pronamespace = 'crm'::regnamespace
           AND p.proname IN ('parse_money', 'parse_date', 'norm_email',
                             'norm_phone', 'tier_of')"),
   'norm_email:plpgsql norm_phone:plpgsql parse_date:plpgsql '
   . 'parse_money:plpgsql tier_of:plpgsql',
   'the helpers that cannot be inlined are plpgsql');

done_testing();
