# crm.banner_state() of sql/fn_banners.sql on a real PostgreSQL, called as
# the module calls it to fill a customer's banner state: every trigger,
# the policy's order, birthdays of the customer and her relatives with the
# gift promised once per person and year, the holdout's would_show, and
# today's impressions from banner events.  No nginx.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test no_module => 1, schema => 1;
use CRM::Sql;
use JSON::PP ();

pg_start();
policy('main');

my @spec = (
    { id => 'sorry',   when => 'conflict' },
    { id => 'late',    when => 'order_delayed' },
    { id => 'bday',    when => 'birthday', days_before => 2, days_after => 1,
      gift => 15, relatives => JSON::PP::true },
    { id => 'card',    when => 'new_card' },
    { id => 'ready',   when => 'discount_ready' },
    { id => 'gift',    when => 'surprise_sent' },
);

sub state {
    my ($cid, @s) = @_;
    @s = @spec unless @s;
    return json_of("SELECT crm.banner_state($cid, 'main', "
                   . lit($J->encode(\@s)) . "::jsonb)");
}

sub ids { return join ',', map { $_->{id} } @{ $_[0]{banners} } }

sub customer {
    my (%c) = @_;
    my @k = sort keys %c;
    return one("INSERT INTO crm.customer (" . join(', ', @k) . ") VALUES ("
               . join(', ', map { defined $c{$_} ? lit($c{$_}) : 'NULL' } @k)
               . ") RETURNING customer_id");
}

my $today = one("SELECT current_date");

# --- nothing applies ---------------------------------------------------------

my $plain = customer(email => 'plain@example.com', name => 'Pia');
my $s = state($plain);
is(ids($s), '', 'a customer with nothing going on: no banner');
is($s->{name}, 'Pia', '... her name comes along');
is_deeply($s->{shown}, {}, '... nothing shown today');
is(one("SELECT crm.banner_state(999999, 'main', '[]') IS NULL"), 't',
   'an unknown customer: NULL');

# --- each trigger ------------------------------------------------------------

my $ann = customer(email => 'ann@example.com', name => 'Ann <b>',
                   card_number => 'CRM-0007', card_issued_at => 'now',
                   paid_orders => 1, total_spent => 50);
is(ids(state($ann)), 'card', 'a card issued and no order since: new_card');
is_deeply(state($ann)->{banners}[0]{vars}, { card => 'CRM-0007',
                                             tier => 'member' },
          '... with the card and the tier');

CRM::Test::psql("INSERT INTO crm.orders (event_id, customer_id, order_id,"
    . " status, decided, decision, eta, gift) VALUES ('" . uuid() . "', $ann,"
    . " 'A-1', 'delayed', true, '{}', 'Friday', 'tea')");
is(ids(state($ann)), 'late,gift',
   'an order delayed (and it carries a gift): order_delayed and '
   . 'surprise_sent, the card banner gone with the new order');
is_deeply(state($ann)->{banners}[0]{vars}, { order_id => 'A-1',
                                             eta => 'Friday' },
          '... order_delayed names the order and its eta');
is_deeply(state($ann)->{banners}[1]{vars}, { order_id => 'A-1',
                                             gift => 'tea' },
          '... surprise_sent the gift and the order');

CRM::Test::psql("UPDATE crm.orders SET status = 'delivered' WHERE order_id = 'A-1'");
is(ids(state($ann)), 'gift', 'delivered: no longer delayed');

my $p = one("INSERT INTO crm.promise (customer_id, kind, percent, valid_until)"
            . " VALUES ($ann, 'repeat_order', 10, '2099-01-31 12:00Z')"
            . " RETURNING promise_id");
one("INSERT INTO crm.promise (customer_id, kind, percent, valid_until)"
    . " VALUES ($ann, 'repeat_order', 15, '2099-02-28 12:00Z')"
    . " RETURNING promise_id");
$s = state($ann);
is(ids($s), 'ready,gift', 'open promises: discount_ready');
is_deeply($s->{banners}[0]{vars}, { discount => '10',
                                    valid_until => '2099-01-31' },
          '... what the next order gets within max_discount 20 (10, not '
          . '10 + 15), and until when');

my $cp = one("INSERT INTO crm.promise (customer_id, kind, percent, valid_until)"
             . " VALUES ($ann, 'compensation', 5, now() + interval '1 day')"
             . " RETURNING promise_id");
CRM::Test::psql("INSERT INTO crm.ticket (ticket, event_id, customer_id,"
    . " conflict, received_at, target_at, due_at, compensation) VALUES"
    . " ('ABCDEFGHJK23', '" . uuid() . "', $ann, true, now(), now(), now(),"
    . " $cp)");
$s = state($ann);
is(ids($s), 'sorry,ready,gift', 'an open conflict ticket: conflict first, '
   . 'in the policy\'s order');
is_deeply($s->{banners}[0]{vars}, { ticket => 'ABCDEFGHJK23',
                                    discount => '5' },
          '... with the ticket and its compensation');

CRM::Test::psql("UPDATE crm.ticket SET resolved_at = now()");
$s = state($ann);
is(ids($s), 'sorry,ready,gift',
   'the ticket resolved, its compensation still open: still conflict');
CRM::Test::psql("UPDATE crm.promise SET status = 'kept' WHERE promise_id = $cp");
is(ids(state($ann)), 'ready,gift', '... and gone once kept');

my @order = reverse @spec;
is(ids(state($ann, @order)), 'gift,ready', 'the order is the policy\'s');

# --- birthdays ---------------------------------------------------------------

my $bob = customer(email => 'bob@example.com', name => 'Bob',
                   birthday => one("SELECT (current_date - interval '30 years'"
                                   . " + interval '1 day')::date"));
$s = state($bob);
is(ids($s), 'bday,ready', 'a birthday tomorrow, days_before 2: birthday '
   . '(and its gift is a discount ready)');
my $until = one("SELECT to_char(now() + interval '30 days', 'YYYY-MM-DD')");
is_deeply($s->{banners}[0]{vars}, { relative => 'Bob', discount => '15',
                                    valid_until => $until },
          '... {relative} is his own name, {discount} the gift, '
          . '{valid_until} its end');
is_deeply(ledger($bob, 'birthday'), ['15:open:-'], '... the gift promised');
state($bob) for 1 .. 3;
is_deeply(ledger($bob, 'birthday'), ['15:open:-'],
          'many views: still one gift');
CRM::Test::psql("UPDATE crm.customer SET birthday = current_date - interval"
                . " '30 years' WHERE customer_id = $bob");
is(ids(state($bob)), 'bday,ready',
   'his birthday edited to today: the banner');
is_deeply(ledger($bob, 'birthday'), ['15:open:-'],
          '... but no second gift this year');
CRM::Test::psql("UPDATE crm.customer SET birthday = current_date - interval"
                . " '30 years' + interval '5 days' WHERE customer_id = $bob");
is(ids(state($bob)), 'ready', 'a birthday in 5 days: not yet (the gift '
   . 'still waits)');

CRM::Test::psql("INSERT INTO crm.relative (customer_id, name, birthday)"
    . " VALUES ($bob, 'Mia', current_date - interval '6 years'"
    . " - interval '1 day')");
$s = state($bob);
is_deeply($s->{banners}[0]{vars}, { relative => 'Mia', discount => '15',
                                    valid_until => $until },
          'a relative\'s birthday yesterday, days_after 1: {relative} Mia');
is_deeply(ledger($bob, 'birthday'), ['15:open:-', '15:open:-'],
          '... her own gift, once');
state($bob);
is(scalar @{ ledger($bob, 'birthday') }, 2, '... once');
is(ids(state($bob, { %{ $spec[2] }, relatives => JSON::PP::false })), '',
   'relatives: false: her birthday does not count');

# --- the holdout -------------------------------------------------------------

my $hol = customer(email => 'hol@example.com', name => 'Hol', holdout => 't',
                   birthday => one("SELECT (current_date - interval '20 years')"
                                   . "::date"));
one("INSERT INTO crm.promise (customer_id, kind, percent, valid_until)"
    . " VALUES ($hol, 'repeat_order', 10, now() + interval '9 days')"
    . " RETURNING promise_id");
$s = state($hol);
is(ids($s), 'bday,ready', 'a holdout customer: the triggers hold');
ok($s->{banners}[0]{would_show} && !$s->{banners}[1]{would_show},
   '... the birthday only as would_show, the promise shown as any');
is_deeply(ledger($hol, 'birthday'), [], '... and no birthday gift');

# --- impressions today -------------------------------------------------------

record(ev(kind => 'banner', customer_id => $ann,
          payload => { banner => 'ready', path => '/' }),
       ev(kind => 'banner', customer_id => $ann,
          payload => { banner => 'ready', path => '/a' }),
       ev(kind => 'banner', customer_id => $ann,
          payload => { banner => 'gift', path => '/' }),
       ev(kind => 'banner', customer_id => $ann,
          payload => { banner => 'ready', would_show => JSON::PP::true }),
       ev(kind => 'banner', customer_id => $ann, received_at => time - 3 * 86400,
          payload => { banner => 'ready', path => '/' }));
is_deeply(state($ann)->{shown}, { ready => 3, gift => 1 },
          'today\'s impressions per banner, from every node\'s events, '
          . 'would_show exposures counted alike (not another day\'s)');
my @rows = split /\n/, CRM::Test::psql("SELECT concat_ws('|', n, id,"
    . " would_show, shown, key, value) FROM crm.banner_rows($ann, 'main', "
    . lit($J->encode(\@spec)) . "::jsonb)");
is_deeply([ sort @rows ], [ sort '0|f|0|name|Ann <b>', '1|ready|f|3|discount|10',
    '1|ready|f|3|valid_until|2099-01-31', '2|gift|f|1|gift|tea',
    '2|gift|f|1|order_id|A-1' ], 'crm.banner_rows: the same as rows');

# --- crm.banner_report -------------------------------------------------------

my $day0 = 1_900_000_000 - 1_900_000_000 % 86400 + 10 * 3600;   # 10:00 UTC
my @treated = map { customer(email => "t$_\@example.com") } 1 .. 3;
my @held = map { customer(email => "h$_\@example.com", holdout => 't') } 1 .. 2;
record(map({ my $c = $_; map { ev(kind => 'banner', customer_id => $c,
                                  received_at => $day0 + 60 * $_,
                                  payload => { banner => 'promo' }) } 1 .. 2 }
           @treated),
       map({ ev(kind => 'banner', customer_id => $_, received_at => $day0,
                payload => { banner => 'promo',
                             would_show => JSON::PP::true }) } @held));
my $n = 0;
for my $o ([ $treated[0], 3600 ], [ $treated[0], 7200 ], [ $treated[1], 86400 * 6 ],
           [ $treated[2], 86400 * 8 ], [ $held[0], 86400 * 9 ]) {
    CRM::Test::psql("INSERT INTO crm.orders (event_id, customer_id, order_id,"
        . " status, decided, decision, created_at) VALUES ('" . uuid()
        . "', $o->[0], 'R-" . ++$n . "', 'paid', true, '{}',"
        . " to_timestamp(" . ($day0 + $o->[1]) . "))");
}
my $r = json_of("SELECT row_to_json(b) FROM crm.banner_report b"
                . " WHERE banner = 'promo'");
is_deeply([ @$r{qw(impressions customers orders_within_7d holdout_exposures
                   holdout_customers holdout_orders_within_7d)} ],
          [ 6, 3, 3, 2, 2, 0 ],
          'crm.banner_report: 6 impressions to 3 customers, 3 orders within '
          . '7 days (two by one customer; one after 8 days not counted); the '
          . 'holdout\'s 2 exposures, no order within 7 days');
is_deeply([ map { 0 + $_ } @$r{qw(rate holdout_rate difference difference_low
                                  difference_high z)} ],
          [ 0.6667, 0, 0.6667, 0.1332, 1.2001, 2.45 ],
          '... rates 2/3 and 0, difference 0.67 with its 95 % interval '
          . '0.13..1.20 and z 2.45');
is($r->{day}, one("SELECT to_timestamp($day0)::date"), '... on its day');

# --- forgotten ---------------------------------------------------------------

CRM::Test::psql("UPDATE crm.customer SET forgotten_at = now() WHERE"
                . " customer_id = $plain");
is(one("SELECT crm.banner_state($plain, 'main', '[]') IS NULL"), 't',
   'a forgotten customer: NULL');

done_testing();
