# The orders functions of sql/002 on a real PostgreSQL, called as the module
# calls them (crm.register_policy, crm.decide_order, crm.record_events), and
# checked as staff see them (crm.customer_overview, crm.promise_ledger,
# crm.surprise_report).  No nginx.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test no_module => 1, schema => 1;
use CRM::Sql;
use JSON::PP ();
use Time::HiRes ();

my $T0 = Time::HiRes::time();

pg_start();


# --- helpers -----------------------------------------------------------------

# the SQL text of a decide_order call, for the forked clients
sub decide_sql {
    my (%o) = @_;
    my $sha = delete $o{policy} || 'main';
    $o{event_id} ||= uuid();
    return "SELECT crm.decide_order(" . lit($J->encode(\%o)) . "::jsonb, "
           . lit($sha) . ")";
}

sub pay { record(ev(kind => 'payment', order_id => @_)) }

sub overview {
    my ($cid) = @_;
    return json_of("SELECT row_to_json(v) FROM crm.customer_overview v"
                   . " WHERE customer_id = $cid");
}

sub promise {
    my ($cid, $percent, $valid) = @_;
    return one("INSERT INTO crm.promise (customer_id, kind, percent,"
        . " valid_until) VALUES ($cid, 'compensation', $percent,"
        . " now() + interval " . lit($valid || '10 days')
        . ") RETURNING promise_id");
}

# the state of orders, promises, customers, gifts and rejects
sub snapshot {
    return one(q{SELECT concat_ws('/',
        (SELECT string_agg(event_id || status || counted || coalesce(eta, ''),
                           ',' ORDER BY event_id) FROM crm.orders),
        (SELECT string_agg(promise_id || status || coalesce(used_by::text, ''),
                           ',' ORDER BY promise_id) FROM crm.promise),
        (SELECT string_agg(customer_id || ':' || paid_orders || ':'
                           || total_spent || coalesce(card_number, ''),
                           ',' ORDER BY customer_id) FROM crm.customer),
        (SELECT string_agg(gift_id || status, ',' ORDER BY gift_id)
           FROM crm.gift),
        (SELECT count(*) FROM crm.spool_reject))});
}


policy('main');


# --- finding the customer ----------------------------------------------------

my $a1 = decide(order_id => 'ID-1', email => 'anna@example.com',
                phone => '79120000001', name => 'Anna',
                birthday => '1990-05-01', total => '10.00',
                currency => 'EUR');
my $anna = $a1->{customer_id};
ok($anna, 'a first order creates the customer');
is_deeply([ @$a1{qw(card tier discount gift)}, $a1->{promises},
            $a1->{holdout} ? 1 : 0, $a1->{repeat} ? 1 : 0 ],
          [ undef, undef, 0, undef, [], 0, 0 ],
          'a new customer: no card, tier, discount or gift');

is(decide(order_id => 'ID-2', email => '  Anna@Example.COM ')->{customer_id},
   $anna, 'found again by e-mail, whatever its case and spaces');
is(decide(order_id => 'ID-3', phone => '+7 912 000-00-01')->{customer_id},
   $anna, 'found by phone, digits only');
is(decide(order_id => 'ID-4', customer_id => $anna)->{customer_id}, $anna,
   'found by the cookie');
is(one("SELECT name || '|' || birthday FROM crm.customer"
       . " WHERE customer_id = $anna"), 'Anna|1990-05-01',
   'name and birthday are not overwritten by orders without them');
decide(order_id => 'ID-5', email => 'anna@example.com', name => 'Anna K.');
is(overview($anna)->{name}, 'Anna K.', 'a name given is taken');
decide(order_id => 'ID-5b', email => 'anna@example.com',
       birthday => '1990-02-30', total => '12,50');
is(one("SELECT birthday || ' ' || coalesce(total::text, '-') FROM crm.customer"
       . " JOIN crm.orders USING (customer_id) WHERE order_id = 'ID-5b'"),
   '1990-05-01 -', 'a date or total that is not one is ignored');
is(one("SELECT count(*) FROM crm.orders WHERE customer_id = $anna"), 6,
   'each order is recorded');

my $boris = decide(order_id => 'ID-6', phone => '79120000002')->{customer_id};
my $bea = decide(order_id => 'ID-7', phone => '79120000002',
                 email => 'bea@example.com')->{customer_id};
ok($bea && $bea != $boris,
   'a new e-mail with a known phone is another customer: the e-mail decides');
is(decide(order_id => 'ID-8', email => 'bea@example.com')->{customer_id},
   $bea, '... found again by that e-mail');
is(overview($boris)->{email} // '', '',
   '... and the phone\'s first customer got no e-mail');
is(decide(order_id => 'ID-8b', phone => '8 912 000-00-02')->{customer_id},
   $boris, 'a shared phone alone names its first customer');
my $pia = decide(order_id => 'ID-12', phone => '79120000003')->{customer_id};
isnt(decide(order_id => 'ID-13', customer_id => $pia,
            email => 'pia@example.com')->{customer_id}, $pia,
     'a new e-mail with a known cookie is another customer');
is(overview($pia)->{email} // '', '', '... and is not attached to the cookie\'s');

my $nobody = decide(order_id => 'ID-9');
ok(!defined $nobody->{customer_id} && $nobody->{discount} == 0,
   'nothing names a customer: no customer, no discount');
is(one("SELECT count(*) FROM crm.orders WHERE order_id = 'ID-9'"), 0,
   '... and nothing recorded');


# --- the card, the repeat-order promise, keeping and releasing ---------------

policy('card2', 'loyalty.card.after_paid_orders' => 2);

my $c1 = decide(policy => 'card2', order_id => 'C-1',
                email => 'carl@example.com', total => '40.00');
my $carl = $c1->{customer_id};
record(result($c1, 201));
is(one("SELECT status FROM crm.orders WHERE order_id = 'C-1'"), 'placed',
   'order_result 201: the order is placed');
pay('C-1', policy => 'card2');
my $o = overview($carl);
is_deeply([ @$o{qw(paid_orders tier card_number open_discount)},
            0 + $o->{total_spent} ],
          [ 1, 'member', undef, 5, 40 ],
          'first payment: member, no card yet (after_paid_orders 2), a 5% '
          . 'promise');
is_deeply(ledger($carl), [ '5:open:-' ],
          'the ledger shows the repeat_order promise open');
is(one("SELECT kind FROM crm.promise_ledger WHERE customer_id = $carl"),
   'repeat_order', '... of kind repeat_order');

my $c2 = decide(policy => 'card2', order_id => 'C-2',
                email => 'carl@example.com', total => '60.00');
is($c2->{discount}, 5, 'the next order gets the promised 5%');
is(scalar @{ $c2->{promises} }, 1, '... one promise reserved');
is($c2->{tier}, 'member', '... and the tier');
is_deeply(ledger($carl), [ '5:reserved:C-2' ], 'the ledger shows it reserved');
record(result($c2, 201));
is_deeply(ledger($carl), [ '5:kept:C-2' ],
          'order_result 201: kept, with the order id');
pay('C-2', policy => 'card2');
$o = overview($carl);
like($o->{card_number}, qr/^CRM-\d{8}$/,
     'second payment: the card is issued, prefix and 8 digits');
is_deeply([ $o->{paid_orders}, 0 + $o->{total_spent}, $o->{open_discount} ],
          [ 2, 100, 5 ], '... two paid orders, 100 spent, a new promise');

my $c3 = decide(policy => 'card2', order_id => 'C-3',
                email => 'carl@example.com');
is($c3->{card}, $o->{card_number}, 'the decision carries the card');
is($c3->{discount}, 5, 'the new promise is reserved');
record(result($c3, 500));
is_deeply(ledger($carl), [ '5:kept:C-2', '5:open:-' ],
          'order_result 500: released, open again');
is(one("SELECT status || '|' || coalesce(order_id, '-') FROM crm.orders"
       . " WHERE refused_order_id = 'C-3'"), 'refused|-',
   '... the order refused, its order id given up');
my $c4 = decide(policy => 'card2', order_id => 'C-4',
                email => 'carl@example.com');
is($c4->{discount}, 5, 'a released promise is reserved by the next order');
record(result($c4, 499));
is_deeply(ledger($carl), [ '5:kept:C-2', '5:open:-' ],
          'a client gone (499) releases it too');
record(result($c4, 201));
is_deeply(ledger($carl), [ '5:kept:C-2', '5:open:-' ],
          'a late 201 for a refused order changes nothing');

my $card_before = $o->{card_number};
record(ev(kind => 'payment', order_id => 'C-9', email => 'carl@example.com',
          total => '15.00', policy => 'card2'));
$o = overview($carl);
is_deeply([ $o->{paid_orders}, 0 + $o->{total_spent}, $o->{card_number} ],
          [ 3, 115, $card_before ],
          'a payment for an unknown order creates it paid; the card stays');
is(one("SELECT status || decided FROM crm.orders WHERE order_id = 'C-9'"),
   'paidfalse', '... staff see it paid, not decided');


# --- the same order again ----------------------------------------------------

my $before = snapshot();
my $c5 = decide(order_id => 'C-5', email => 'carl@example.com');
my $mid = snapshot();
my $c5b = decide(order_id => 'C-5', email => 'carl@example.com',
                 total => '99.00');
ok($c5b->{repeat} && !$c5->{repeat}, 'the same order_id again: "repeat"');
delete @$_{qw(repeat event_id created)} for $c5, $c5b;
is_deeply($c5b, $c5, '... with the same decision');
is(snapshot(), $mid, '... and nothing changed');
isnt($mid, $before, '(the first call did change things)');

my $k1 = decide(idempotency_key => 'K-1', email => 'carl@example.com');
my $k2 = decide(idempotency_key => 'K-1', email => 'carl@example.com');
ok($k2->{repeat} && $k2->{discount} == $k1->{discount},
   'the same Idempotency-Key without an order id: the same decision');
is(one("SELECT count(*) FROM crm.orders WHERE idempotency_key = 'K-1'"), 1,
   '... recorded once');


# --- expiry, abandonment, max_discount ---------------------------------------

my $dora = decide(order_id => 'D-1', email => 'dora@example.com')
    ->{customer_id};
promise($dora, 10, '-1 day');
is_deeply(ledger($dora), [ '10:expired:-' ],
          'a promise past valid_until shows expired at once');
is(decide(order_id => 'D-2', email => 'dora@example.com')->{discount}, 0,
   'an expired promise is never reserved');
is(one("SELECT status FROM crm.promise WHERE customer_id = $dora"),
   'expired', '... and is marked expired');

promise($dora, 7);
my $d3 = decide(order_id => 'D-3', email => 'dora@example.com');
is($d3->{discount}, 7, 'reserved by an order');
psql("UPDATE crm.orders SET created_at = now() - interval '16 minutes'"
     . " WHERE order_id = 'D-3'");
my $d4 = decide(order_id => 'D-4', email => 'dora@example.com');
is($d4->{discount}, 7,
   'an order unanswered for 15 minutes lets the next order have it');
is(one("SELECT status FROM crm.orders WHERE order_id = 'D-3'"), 'abandoned',
   '... the unanswered order is abandoned');
is_deeply(ledger($dora), [ '10:expired:-', '7:reserved:D-4' ],
          '... the ledger shows it reserved by the new order');
record(result($d3, 201));
is(one("SELECT status FROM crm.orders WHERE order_id = 'D-3'"), 'placed',
   'a late 201 places the abandoned order');
is_deeply(ledger($dora), [ '10:expired:-', '7:reserved:D-4' ],
          '... but does not take back the promise another order holds');

my $eve = decide(order_id => 'E-1', email => 'eve@example.com')
    ->{customer_id};
promise($eve, 10, '1 day');
promise($eve, 8, '2 days');
promise($eve, 5, '3 days');
promise($eve, 2, '4 days');
my $e2 = decide(order_id => 'E-2', email => 'eve@example.com');
is($e2->{discount}, 20,
   'max_discount 20: whole promises, first to expire first, up to 20');
is_deeply(ledger($eve), [ '10:reserved:E-2', '8:reserved:E-2', '5:open:-',
                          '2:reserved:E-2' ],
          '... the one that does not fit stays open');
is(overview($eve)->{open_discount}, 5, 'customer_overview: 5% still open');


# --- tiers up and down; a refund takes back what the order earned ------------

my ($finn, @f);
for my $i (1 .. 3) {
    $f[$i] = decide(order_id => "F-$i", email => 'finn@example.com',
                    total => '100.00');
    record(result($f[$i], 201));
    pay("F-$i");
}
$finn = $f[1]{customer_id};
is_deeply([ map { $_->{discount} } @f[1 .. 3] ], [ 0, 5, 5 ],
          'each order used the promise the previous payment opened');
$o = overview($finn);
is_deeply([ @$o{qw(tier paid_orders open_discount)}, 0 + $o->{total_spent} ],
          [ 'gold', 3, 10, 300 ],
          'three paid orders and 300 spent: gold, and a 10% promise');
is_deeply(ledger($finn), [ '5:kept:F-2', '5:kept:F-3', '10:open:-' ],
          'the ledger: two kept, the gold promise open');

record(ev(kind => 'status', order_id => 'F-3', status => 'refunded'));
$o = overview($finn);
is_deeply([ @$o{qw(tier paid_orders)}, 0 + $o->{total_spent} ],
          [ 'member', 2, 200 ], 'refunded: back to member, two paid orders');
is_deeply(ledger($finn), [ '5:kept:F-2', '5:open:-', '10:withdrawn:-' ],
          '... its promise withdrawn, the one it used open again');
my $snap = snapshot();
record(ev(kind => 'status', order_id => 'F-3', status => 'refunded'));
record(ev(kind => 'status', order_id => 'F-3', status => 'cancelled'));
is(snapshot(), $snap, 'refunding or cancelling again changes nothing');

record(ev(kind => 'status', order_id => 'F-2', status => 'delayed',
          eta => '2030-01-02'));
is(one("SELECT status || ' ' || eta FROM crm.orders WHERE order_id = 'F-2'"),
   'delayed 2030-01-02', 'a delayed status with its eta');
record(ev(kind => 'status', order_id => 'F-2', status => 'lost-in-space'));
is(one("SELECT status FROM crm.orders WHERE order_id = 'F-2'"), 'delayed',
   'an unknown status is only stored');
is(one("SELECT count(*) FROM crm.interactions WHERE order_id = 'F-2'"
       . " AND kind = 'status'"), 2, '... in crm.interactions');


# --- 20 orders at once from one customer, one promise ------------------------

my $gina = decide(order_id => 'G-0', email => 'gina@example.com')
    ->{customer_id};
promise($gina, 10);
my @g = map { { event_id => uuid(), order_id => "G-$_",
                email => 'gina@example.com' } } 1 .. 20;
my @out = concurrently(map { decide_sql(%$_) } @g);
my @got = grep { $J->decode($out[$_])->{discount} > 0 } 0 .. $#out;
is(scalar(grep { defined && /customer_id/ } @out), 20,
   '20 concurrent orders of one customer are all decided');
is(scalar @got, 1, 'exactly one of them gets the promise');
record(map { result($_, 201) } @g);
is_deeply(ledger($gina), [ "10:kept:G-" . ($got[0] + 1) ],
          'after all 20 placed, the ledger shows it kept once, by that order');


# --- surprises: the daily budget under 20 concurrent orders ------------------

policy('budget', 'surprises.probability' => 1,
       'surprises.min_paid_orders' => 0, 'surprises.daily_budget' => 10,
       'surprises.gifts' => [ { name => 'mug', cost => 3 } ]);
psql("DELETE FROM crm.gift_budget");
@out = concurrently(map {
    decide_sql(policy => 'budget', order_id => "B-$_",
               email => "budget$_\@example.com")
} 1 .. 20);
is(scalar(grep { ($J->decode($_)->{gift} // '') eq 'mug' } @out), 3,
   'daily_budget 10, a 3.00 gift, 20 orders at once: exactly 3 gifts');
is(one("SELECT spent FROM crm.gift_budget"), '9.00',
   '... 9.00 of the budget spent');
my ($gifted) = grep { ($J->decode($out[$_ - 1])->{gift} // '') eq 'mug' }
    1 .. 20;
record(ev(kind => 'order_result', order_id => "B-$gifted", status => 502,
          event_id => one("SELECT event_id FROM crm.orders"
                          . " WHERE order_id = 'B-$gifted'")));
is(one("SELECT spent FROM crm.gift_budget"), '6.00',
   'a refused order gives its gift\'s cost back to the budget');
my $late = decide(policy => 'budget', order_id => 'B-21',
                  email => 'budget21@example.com');
is($late->{gift}, 'mug', '... and the next order may have it');

policy('holdout', 'holdout.percent' => 100, 'surprises.probability' => 1,
       'surprises.min_paid_orders' => 0, 'surprises.daily_budget' => 0);
my $h = decide(policy => 'holdout', order_id => 'H-1',
               email => 'hugo@example.com');
ok($h->{holdout} && !defined $h->{gift},
   'holdout 100: the customer is in the holdout group, no gift');
ok(overview($h->{customer_id})->{holdout}, 'customer_overview shows holdout');
my $report = json_of("SELECT json_object_agg(cohort, row_to_json(r))"
                     . " FROM crm.surprise_report r");
is_deeply([ map { $report->{holdout}{$_} } qw(customers gifts) ], [ 1, 0 ],
          'surprise_report: one holdout customer, no gifts');
is_deeply([ map { $report->{treated}{$_} } qw(gifts gift_cost) ], [ 3, 9 ],
          'surprise_report: the treated got the 3 gifts, 9.00');


# --- surprises: min_paid_orders and cooldown ---------------------------------

policy('gifts', 'surprises.probability' => 1,
       'surprises.daily_budget' => 0);
my $i1 = decide(policy => 'gifts', order_id => 'I-1',
                email => 'ida@example.com');
ok(!defined $i1->{gift}, 'no gift before min_paid_orders');
record(result($i1, 201));
pay('I-1', total => '10.00');
my $i2 = decide(policy => 'gifts', order_id => 'I-2',
                email => 'ida@example.com');
is($i2->{gift}, 'tea', 'after a paid order: a gift');
record(result($i2, 201));
ok(!defined decide(policy => 'gifts', order_id => 'I-3',
                   email => 'ida@example.com')->{gift},
   'none again within the cooldown');
psql("UPDATE crm.gift SET created_at = now() - interval '31 days'"
     . " WHERE customer_id = $i1->{customer_id}");
my $i4 = decide(policy => 'gifts', order_id => 'I-4',
                email => 'ida@example.com');
is($i4->{gift}, 'tea', 'after the cooldown: a gift again');
record(result($i4, 500));
is(decide(policy => 'gifts', order_id => 'I-5',
          email => 'ida@example.com')->{gift}, 'tea',
   'the gift of a refused order does not count for the cooldown');
is(one("SELECT string_agg(status, ',' ORDER BY gift_id) FROM crm.gift"
       . " WHERE customer_id = $i1->{customer_id}"), 'sent,released,reserved',
   'staff see each gift sent, released or reserved');


# --- the spool: orders not decided, batches twice, unknown kinds -------------

my $jan = decide(order_id => 'J-0', email => 'jan@example.com')
    ->{customer_id};
promise($jan, 10);
my $j1 = ev(kind => 'order', order_id => 'J-1', decided => JSON::PP::false,
            email => 'jan@example.com', total => '20.00',
            payload => { id => 'J-1' });
record($j1);
is(one("SELECT decided || ' ' || status || ' ' || discount || ' ' || total"
       . " FROM crm.orders WHERE order_id = 'J-1'"), 'false attempted 0 20.00',
   'an order that was not decided is recorded without discount');
is_deeply(ledger($jan), [ '10:open:-' ], '... the promise stays open');
is(one("SELECT customer_id FROM crm.interactions"
       . " WHERE event_id = '$j1->{event_id}'"), $jan,
   '... and crm.interactions names the customer');
my $j1b = decide(order_id => 'J-1', email => 'jan@example.com');
ok($j1b->{repeat} && $j1b->{discount} == 0,
   'deciding it afterwards gives what the shop got: nothing');

my $j2 = decide(order_id => 'J-2', email => 'jan@example.com',
                total => '30.00');
my $b = batch(
    ev(kind => 'order', order_id => 'J-2', decided => JSON::PP::true,
       customer_id => $jan, payload => { id => 'J-2' }),
    result($j2, 201),
    ev(kind => 'payment', order_id => 'J-2'),
    ev(kind => 'status', order_id => 'J-2', status => 'shipped'),
    ev(kind => 'feedback', payload => { rating => 5 }),
    ev(kind => 'order', order_id => 'J-3', email => 'jan@example.com',
       decided => JSON::PP::false),
    ev(kind => 'status', order_id => 'J-3', status => 'cancelled'),
    '{"kind":"telepathy","event_id":"' . uuid() . '"}');
my $events = one("SELECT count(*) FROM crm.event");
is(record($b), 6, 'a batch: six new interactions');
is(one("SELECT count(*) FROM crm.event") - $events, 6,
   '... all in crm.interactions');
is(one("SELECT string_agg(status, ',' ORDER BY order_id) FROM crm.orders"
       . " WHERE order_id IN ('J-2', 'J-3')"), 'shipped,cancelled',
   '... applied in order');
is(one("SELECT count(*) FROM crm.spool_reject WHERE line LIKE"
       . " '%telepathy%'"), 1, 'an unknown kind goes to crm.spool_reject');
$snap = snapshot();
$events = one("SELECT count(*) FROM crm.event");
is(record($b), 0, 'the same batch again: nothing new');
is(snapshot(), $snap, '... and nothing changed');
is(one("SELECT count(*) FROM crm.event"), $events, '... not even an event');
my $slow = one("SELECT crm.record_events_slow(\$b\$$b\$b\$)");
is($slow . snapshot(), "0$snap", 'nor through record_events_slow');


# --- staff functions ---------------------------------------------------------

my $rel = one("SELECT crm.add_relative('Anna\@Example.com', 'Mia',"
              . " 'daughter', '2015-03-01')");
like($rel, qr/^\d+$/, 'add_relative returns the id');
is(one("SELECT name || ' ' || relation || ' ' || birthday FROM crm.relative"
       . " WHERE customer_id = $anna"), 'Mia daughter 2015-03-01',
   '... of a relative of that customer');
ok(!eval { psql("SELECT crm.add_relative('nobody\@example.com', 'X',"
                . " 'friend', NULL)"); 1 },
   'add_relative for an unknown e-mail fails');

my $orders = one("SELECT count(*) FROM crm.orders WHERE customer_id = $anna");
is(one("SELECT crm.forget_customer('anna\@example.com')"), 't',
   'forget_customer: true');
$o = overview($anna);
is_deeply([ @$o{qw(email phone name)} ], [ undef, undef, undef ],
          '... e-mail, phone and name erased');
is(one("SELECT coalesce(birthday::text, '-') || ' ' || (SELECT count(*)"
       . " FROM crm.relative WHERE customer_id = $anna) FROM crm.customer"
       . " WHERE customer_id = $anna"), '- 0',
   '... birthday and relatives too');
is(one("SELECT count(*) FROM crm.orders WHERE customer_id = $anna"), $orders,
   '... the orders stay');
ok(!defined decide(order_id => 'ID-10', customer_id => $anna)->{customer_id},
   '... and the cookie no longer finds the customer');
is(one("SELECT crm.forget_customer('anna\@example.com')"), 'f',
   'forgetting again: false');

is(one(q{SELECT count(*) FROM (VALUES
        ('crm.customer_overview'), ('crm.promise_ledger'),
        ('crm.surprise_report')) v(n)
      WHERE obj_description(n::regclass, 'pg_class') IS NULL})
   + one(q{SELECT count(*) FROM pg_proc
      WHERE pronamespace = 'crm'::regnamespace
        AND proname IN ('decide_order', 'register_policy', 'record_events',
                        'record_events_slow', 'add_relative',
                        'forget_customer')
        AND obj_description(oid, 'pg_proc') IS NULL}), 0,
   'every staff view and module function has a COMMENT');

# -- an order that never got an answer: the ledger shows its promise free --

{
    my $d0 = decide(order_id => 'UN-0', email => 'una@example.com');
    my $una = $d0->{customer_id};
    my $p = promise($una, 7);
    my $d = decide(order_id => 'UN-1', email => 'una@example.com');
    is($d->{discount}, 7, 'an order reserves the promise');
    is_deeply(ledger($una), ['7:reserved:UN-1'], 'the ledger shows it reserved');
    psql("UPDATE crm.orders SET created_at = now() - interval '16 minutes'"
         . " WHERE order_id = 'UN-1'");
    is_deeply(ledger($una), ['7:open:-'],
              'no answer for 15 minutes: the ledger shows it open again');
    is(decide(order_id => 'UN-2', email => 'una@example.com')->{discount}, 7,
       'and the next order gets it');
}

diag(sprintf 'took %.1f s', Time::HiRes::time() - $T0);

done_testing();
