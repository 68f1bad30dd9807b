# The feedback functions of sql/012 on a real PostgreSQL, called as the
# module calls them (crm.record_events of feedback lines,
# crm.check_breaches), as staff call them (crm.answer_ticket,
# crm.resolve_ticket) and read as staff read them (crm.open_tickets,
# crm.sla_report, crm.feedback_topics); business time counted across
# weekends, holidays and clock changes.  No nginx.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test no_module => 1, schema => 1;
use CRM::Sql;
use JSON::PP ();

pg_start();
policy('main');

my $T = JSON::PP::true;
my $F = JSON::PP::false;

# an instant as SQL: '2026-03-27 15:00Z'
sub at { return "'$_[0]'::timestamptz" }

sub epoch { return one("SELECT extract(epoch FROM $_[0])::bigint") }

# seconds of business time between two instants of calendar $sla
sub btime {
    my ($sla, $a, $b) = @_;
    return one("SELECT extract(epoch FROM crm.business_time("
               . lit($J->encode($sla)) . ", " . at($a) . ", " . at($b)
               . "))::bigint");
}

sub sla {
    my ($tz, $hours, @holidays) = @_;
    return { timezone => $tz, hours => $hours, holidays => \@holidays };
}

my $office = [ [0, 0], ([540, 1020]) x 5, [0, 0] ];
my $allday = [ ([0, 1440]) x 7 ];
my $sunday = [ [0, 1440], ([0, 0]) x 6 ];


# --- business time -----------------------------------------------------------

my $berlin = sla('Europe/Berlin', $office);
is(btime($berlin, '2026-03-27 15:00Z', '2026-03-30 08:00Z'), 7200,
   'Berlin office hours over the spring weekend: Friday 16-17 and Monday '
   . '9-10, 2 hours');
is(btime($berlin, '2026-10-23 14:00Z', '2026-10-26 09:00Z'), 7200,
   '... over the autumn weekend too');
is(btime($berlin, '2026-03-30 08:00Z', '2026-03-27 15:00Z'), -7200,
   '... and negative backwards');
is(btime(sla('Europe/Berlin', $office, '2026-12-25'),
         '2026-12-24 15:00Z', '2026-12-28 09:00Z'), 7200,
   'a holiday is skipped: Thursday 16-17 and Monday 9-10');
is(btime(sla('Europe/Berlin', $office),
         '2026-12-24 15:00Z', '2026-12-28 09:00Z'), 36000,
   '... and counted without it');
is(btime(sla('Europe/Berlin', $allday), '2026-03-28 00:00Z',
         '2026-03-30 00:00Z'), 172800,
   'around the clock across a clock change: real seconds, 48 hours');
is(btime(sla('Europe/Berlin', $sunday), '2026-03-27 00:00Z',
         '2026-04-01 00:00Z'), 82800,
   'a whole Sunday when clocks go forward is 23 hours');
is(btime(sla('Europe/Berlin', $sunday), '2026-10-23 00:00Z',
         '2026-10-28 00:00Z'), 90000,
   '... and 25 hours when they go back');
is(btime(sla('Europe/Berlin', [ [120, 240], ([0, 0]) x 6 ]),
         '2026-03-27 00:00Z', '2026-04-01 00:00Z'), 3600,
   'hours from 02:00, a time that does not happen, start at the change');
is(btime(sla('Europe/Berlin', [ [120, 180], ([0, 0]) x 6 ]),
         '2026-10-23 00:00Z', '2026-10-28 00:00Z'), 7200,
   'hours from 02:00, a time that happens twice, start at the first');
is(one("SELECT crm.business_time(NULL, now(), now()) IS NULL"), 't',
   'no calendar: no business time');


# --- a feedback line opens a ticket -----------------------------------------

my $now = time;

# a feedback line as the module writes it; due in 8 hours unless told
sub fb {
    my (%f) = @_;
    return ev(kind => 'feedback', policy => 'main', received_at => $now,
              target_at => $now + 4 * 3600, due_at => $now + 8 * 3600,
              conflict => $F, compensation => 0, breach_compensation => 10,
              %f);
}

# a customer who paid an order: only she is compensated
sub paying {
    my ($email) = @_;
    record(ev(kind => 'payment', order_id => "PAID-$email", email => $email,
              total => '10.00', currency => 'EUR'));
}

sub open_ticket {
    my ($t) = @_;
    return one("SELECT concat_ws('|', name, email, phone, order_id,"
        . " category, rating, conflict, breached, message,"
        . " extract(epoch FROM due_at)::bigint) FROM crm.open_tickets"
        . " WHERE ticket = " . lit($t));
}

sub counts {
    return one("SELECT (SELECT count(*) FROM crm.ticket) || '/'"
        . " || (SELECT count(*) FROM crm.promise) || '/'"
        . " || (SELECT count(*) FROM crm.spool_reject)");
}

my $line = fb(ticket => 'ABCDEFGHJK23', email => 'anna@example.com',
              phone => '+7 912 000-00-01', name => 'Anna', order_id => 'A-1',
              category => 'delivery', rating => 4,
              message => 'Where is my parcel?');
is(record($line), 1, 'a feedback line is recorded');
is(open_ticket('ABCDEFGHJK23'),
   'Anna|anna@example.com|79120000001|A-1|delivery|4|f|f|Where is my parcel?|'
   . ($now + 8 * 3600),
   'crm.open_tickets shows the ticket with its customer and due time');
my $anna = one("SELECT customer_id FROM crm.ticket"
               . " WHERE ticket = 'ABCDEFGHJK23'");
my $before = counts();
record($line);
is(counts(), $before, 'the same line again changes nothing');
record(fb(ticket => 'ABCDEFGHJK23', email => 'anna@example.com',
          message => 'again'));
is(counts(), $before,
   'the same ticket for the same customer again (a retry) changes nothing');
is(one("SELECT message FROM crm.ticket WHERE ticket = 'ABCDEFGHJK23'"),
   'Where is my parcel?', '... and keeps what she wrote first');

my $steal = batch(fb(ticket => 'ABCDEFGHJK23', email => 'mallory@example.com',
                     message => 'mine now'));
is(one("SELECT crm.record_events_slow(\$b\$$steal\$b\$)"), 1,
   'the same ticket for another customer is rejected');
is(one("SELECT customer_id FROM crm.ticket WHERE ticket = 'ABCDEFGHJK23'"),
   $anna, '... the ticket stays hers');
like(one("SELECT error FROM crm.spool_reject ORDER BY reject_id DESC"
         . " LIMIT 1"), qr/ABCDEFGHJK23 was given to another customer/,
     '... and the line is kept in crm.spool_reject with the reason');

my $forged = batch(fb(ticket => 'abc<script>', email => 'eve@example.com'));
is(one("SELECT crm.record_events_slow(\$b\$$forged\$b\$)"), 1,
   'a ticket number the module never makes is rejected');
is(one("SELECT count(*) FROM crm.ticket WHERE customer_id IN (SELECT"
       . " customer_id FROM crm.customer WHERE email = 'eve\@example.com')"),
   0, '... and opens nothing');

$before = counts();
record(fb(email => 'nobody@example.com', message => 'no ticket'));
is(counts() =~ s{^(\d+)/.*}{$1}r, $before =~ s{^(\d+)/.*}{$1}r,
   'a feedback line without a ticket (nobody to answer) opens none');


record(fb(ticket => 'ANNAQTHER222', email => 'anna@example.com',
          phone => '79990000000', name => 'Mallory'));
is(one("SELECT name || ' ' || phone FROM crm.customer"
       . " WHERE customer_id = $anna"), 'Anna 79120000001',
   'a contact form with her e-mail overwrites neither her name nor phone');


# --- a conflict is settled in the customer's favour -------------------------

paying($_) for qw(kim@example.com lev@example.com mo@example.com);
record(fb(ticket => 'KKKKKKKKKKK2', email => 'kim@example.com',
          category => 'quality', rating => 1, conflict => $T,
          compensation => 15, message => 'Broken'));
my $kim = one("SELECT customer_id FROM crm.ticket"
               . " WHERE ticket = 'KKKKKKKKKKK2'");
is_deeply(ledger($kim, qw(compensation sla_breach)), [ '15:open:-' ],
          'a conflict opens its compensation promise');
is(one("SELECT kind FROM crm.promise_ledger WHERE customer_id = $kim"
       . " AND percent = 15"),
   'compensation', '... of kind compensation');
is(one("SELECT conflict FROM crm.open_tickets WHERE ticket = 'KKKKKKKKKKK2'"),
   't',
   '... and the ticket shows the conflict');
my $k1 = decide(order_id => 'K-1', email => 'kim@example.com');
is($k1->{discount}, 20, 'her next order gets the compensation (15, with '
   . 'the 5 her paid order promised: max_discount 20)');
record(result($k1, 201));
is_deeply(ledger($kim, qw(compensation sla_breach)), [ '15:kept:K-1' ], '... kept by that order');
is(one("SELECT crm.resolve_ticket('KKKKKKKKKKK2', 'unfounded', true)"), 'f',
   'a compensation already used is not withdrawn');
record(map { fb(ticket => "KKKKKKKKKK${_}3", email => 'kim@example.com',
                rating => 1, conflict => $T, compensation => 15) } 2 .. 4);
is_deeply(ledger($kim, qw(compensation sla_breach)), [ '15:kept:K-1', '15:open:-' ],
          'three more complaints at once: one compensation open at a time');

record(fb(ticket => 'LLLLLLLLLLL2', email => 'lev@example.com',
          rating => 2, conflict => $T, compensation => 15));
my $lev = one("SELECT customer_id FROM crm.ticket"
              . " WHERE ticket = 'LLLLLLLLLLL2'");
is(one("SELECT crm.resolve_ticket('llll llll lll2', 'unfounded', true)"), 't',
   'resolving an unfounded conflict withdraws its open compensation');
is_deeply(ledger($lev, qw(compensation sla_breach)), [ '15:withdrawn:-' ],
          '... the ledger shows it');
is(one("SELECT count(*) FROM crm.open_tickets WHERE ticket = 'LLLLLLLLLLL2'"),
   0, '... and the ticket is no longer open');
record(fb(ticket => 'MMMMMMMMMMM2', email => 'mo@example.com',
          rating => 1, conflict => $F, compensation => 15));
is(one("SELECT count(*) FROM crm.promise p JOIN crm.ticket t"
       . " USING (customer_id) WHERE t.ticket = 'MMMMMMMMMMM2'"
       . " AND p.kind = 'compensation'"), 0,
   'a compensation without a conflict promises nothing');

# an attacker sends complaints from fresh addresses to farm discounts
record(map { fb(ticket => "FARM${_}2222222", email => "farm$_\@example.com",
                rating => 1, conflict => $T, compensation => 15) } 2 .. 4);
is(one("SELECT count(*) || ':' || bool_and(conflict) FROM crm.ticket"
       . " WHERE ticket LIKE 'FARM%'"), '3:true',
   'complaints from addresses that never paid an order: tickets, '
   . 'conflicts');
is(one("SELECT count(*) FROM crm.promise p JOIN crm.customer c"
       . " USING (customer_id) WHERE c.email LIKE 'farm%'"), 0,
   '... and no compensation: a contact form mints no discount');


# --- staff answer -------------------------------------------------------------

my $first = one("SELECT crm.answer_ticket('abcd-efgh-jk23', 'maria',"
                . " 'It left today.')");
ok($first, 'a ticket read out in any case and with dashes is answered');
one("SELECT pg_sleep(0.01)");
is(one("SELECT crm.answer_ticket('ABCDEFGHJK23', 'olga', 'Tracking: 1')"),
   $first, 'a second answer keeps the first response');
is(one("SELECT answered_by || ' ' || count(r.*) FROM crm.ticket t"
       . " JOIN crm.ticket_reply r USING (ticket)"
       . " WHERE t.ticket = 'ABCDEFGHJK23' GROUP BY answered_by"),
   'maria 2', '... by the first to answer; both replies are kept');
ok(!eval { psql("SELECT crm.answer_ticket('ZZZZZZZZZZZZ', 'maria', 'x')");
           1 } && $@ =~ /unknown ticket: ZZZZZZZZZZZZ/,
   'an unknown ticket is an error naming it');
ok(!eval { psql("SELECT crm.answer_ticket('ABCDEFGHJK23', ' ', 'x')"); 1 }
   && $@ =~ /staff must name who answered/,
   'an answer by nobody is an error');


# --- missed due times ---------------------------------------------------------

my @late = map { sprintf 'LATE%08d', $_ } 2 .. 5;
s/0/Q/g for @late;
paying("late$_\@example.com") for 0 .. 3;
record(map {
    fb(ticket => $late[$_], email => "late$_\@example.com",
       received_at => $now - 9 * 3600, target_at => $now - 5 * 3600,
       due_at => $now - 60, breach_compensation => $_ == 3 ? 0 : 10)
} 0 .. 3);
record(fb(ticket => 'ANSWERED2222', email => 'ans@example.com',
          received_at => $now - 9 * 3600, due_at => $now - 60));
one("SELECT crm.answer_ticket('ANSWERED2222', 'maria', 'done')");
record(fb(ticket => 'LATERDUE2222', email => 'soon@example.com'));

my @n = concurrently(("SELECT crm.check_breaches()") x 6);
my $sum = 0;
$sum += $_ for @n;
is($sum, 4, 'six checks at the same moment mark the four late tickets, '
   . 'once (got ' . join(',', @n) . ')');
is(one("SELECT count(*) FROM crm.promise WHERE kind = 'sla_breach'"), 3,
   '... three sla_breach promises, none where breach_compensation is 0');
is(one("SELECT string_agg(t.ticket || ':' || coalesce(p.percent::text, '-')"
       . " || ':' || coalesce(p.status, '-'), ',' ORDER BY t.ticket)"
       . " FROM crm.ticket t LEFT JOIN crm.promise p"
       . " ON p.promise_id = t.breach_promise WHERE t.breached_at IS NOT NULL"),
   join(',', map { "$late[$_]:" . ($_ == 3 ? '-:-' : '10:open') } 0 .. 3),
   '... each to its own customer');
is(one("SELECT crm.check_breaches()"), 0, 'checking again marks none');
is(one("SELECT string_agg(ticket || ':' || breached, ',' ORDER BY ticket)"
       . " FROM crm.open_tickets WHERE ticket IN ('ANSWERED2222',"
       . " 'LATERDUE2222', " . lit($late[0]) . ")"),
   "ANSWERED2222:false,$late[0]:true,LATERDUE2222:false",
   'an answered ticket and one not due yet are not breached');
record(map { fb(ticket => "BATCH${_}222222", email => "batch$_\@example.com",
                due_at => $now - 600 + $_) } 2 .. 4);
is(join(',', map { one("SELECT crm.check_breaches(2)") } 1 .. 3), '2,1,0',
   'a backlog is marked in batches: 2, then the 1 left, then none');
is(one("SELECT string_agg(ticket, ',' ORDER BY ticket) FROM crm.ticket"
       . " WHERE ticket LIKE 'BATCH%' AND breached_at IS NOT NULL"),
   'BATCH2222222,BATCH3222222,BATCH4222222', '... every one of them');
one("SELECT crm.resolve_ticket(ticket, 'closed') FROM crm.ticket");


# --- what staff read ----------------------------------------------------------

policy('allday', 'feedback.sla.hours' => $allday);
record(fb(ticket => 'AHEAD2222222', email => 'two@example.com',
          policy => 'allday', due_at => $now + 7200),
       fb(ticket => 'LAGGED222222', email => 'half@example.com',
          policy => 'allday', due_at => $now - 1800));
my %left = split /[|\n]/, psql("SELECT ticket || '|' || business_minutes_left"
    . " FROM crm.open_tickets WHERE ticket IN ('AHEAD2222222',"
    . " 'LAGGED222222')");
ok($left{AHEAD2222222} >= 118 && $left{AHEAD2222222} <= 120,
   "business minutes left of a ticket due in 2 hours: 120 "
   . "(got $left{AHEAD2222222})");
ok($left{LAGGED222222} >= -31 && $left{LAGGED222222} <= -29,
   "... of one 30 minutes late: -30 (got $left{LAGGED222222})");
is(one("SELECT string_agg(ticket, ',') FROM crm.open_tickets"),
   'LAGGED222222,AHEAD2222222', 'the one due first is on top');
one("SELECT crm.resolve_ticket(ticket, 'closed') FROM crm.ticket");

# A Monday and a Tuesday of the office calendar (UTC, 9-17, target 4 hours,
# limit 8): first responses 3h30 (within both), 9h (within neither), 2h
# (within both), none (breached); on Tuesday 2h across the night.
my @seed = (
    [ 'SEEDA2222222', '2026-11-02 09:00Z', '2026-11-02 12:30Z',
      'seed-delivery', 2, $T ],
    [ 'SEEDB2222222', '2026-11-02 10:00Z', '2026-11-03 11:00Z',
      'seed-delivery', 5, $F ],
    [ 'SEEDC2222222', '2026-11-02 11:00Z', '2026-11-02 13:00Z',
      'seed-payment', 4, $F ],
    [ 'SEEDD2222222', '2026-11-02 12:00Z', undef, 'seed-payment', 4, $F ],
    [ 'SEEDE2222222', '2026-11-03 16:00Z', '2026-11-04 10:00Z',
      'seed-delivery', 3, $F ],
);
for my $s (@seed) {
    my ($t, $recv, $ans, $cat, $rating, $conflict) = @$s;
    my $r = epoch(at($recv));
    record(fb(ticket => $t, email => lc($t) . '@example.com',
              received_at => $r, target_at => $r, due_at => $r,
              category => $cat, rating => $rating, conflict => $conflict));
    one("UPDATE crm.ticket SET answered_at = " . at($ans)
        . " WHERE ticket = '$t'") if $ans;
}
# the targets and due times as the module computes them
one(q{UPDATE crm.ticket SET
        target_at = CASE ticket WHEN 'SEEDA2222222' THEN '2026-11-02 13:00Z'
            WHEN 'SEEDB2222222' THEN '2026-11-02 14:00Z'
            WHEN 'SEEDC2222222' THEN '2026-11-02 15:00Z'
            WHEN 'SEEDD2222222' THEN '2026-11-02 16:00Z'
            ELSE '2026-11-04 12:00Z' END::timestamptz,
        due_at = CASE ticket WHEN 'SEEDA2222222' THEN '2026-11-02 17:00Z'
            WHEN 'SEEDB2222222' THEN '2026-11-03 10:00Z'
            WHEN 'SEEDC2222222' THEN '2026-11-03 11:00Z'
            WHEN 'SEEDD2222222' THEN '2026-11-03 12:00Z'
            ELSE '2026-11-04 16:00Z' END::timestamptz
      WHERE ticket LIKE 'SEED%'});
is(one("SELECT crm.check_breaches()"), 1,
   'the unanswered Monday ticket is breached');

is(psql("SELECT concat_ws(' ', day, tickets, answered, within_target,"
        . " within_limit, median_first_response, p90_first_response,"
        . " breaches) FROM crm.sla_report"
        . " WHERE day IN ('2026-11-02', '2026-11-03') ORDER BY day"),
   "2026-11-02 4 0.750 0.500 0.500 03:30:00 07:54:00 1\n"
   . "2026-11-03 1 1.000 1.000 1.000 02:00:00 02:00:00 0\n",
   'crm.sla_report: shares answered, within target and limit, the median '
   . 'and 90th percentile first response in business time, breaches');
is(psql("SELECT concat_ws(' ', category, tickets, avg_rating, csat,"
        . " conflicts, breaches, median_first_response)"
        . " FROM crm.feedback_topics WHERE category LIKE 'seed-%'"),
   "seed-delivery 3 3.33 0.333 1 0 03:30:00\n"
   . "seed-payment 2 4.00 1.000 0 1 02:00:00\n",
   'crm.feedback_topics: the worst rated category first');
is(one("SELECT extract(epoch FROM first_response)::bigint"
       . " FROM crm.ticket_times WHERE ticket = 'SEEDB2222222'"), 9 * 3600,
   'a first response the next day counts business hours only');


# --- forgetting ---------------------------------------------------------------

one("SELECT crm.forget_customer($anna)");
is(one("SELECT coalesce(t.message, '-') || '|' || string_agg("
       . "coalesce(r.reply, '-'), ',') FROM crm.ticket t JOIN"
       . " crm.ticket_reply r USING (ticket) WHERE t.ticket = 'ABCDEFGHJK23'"
       . " GROUP BY t.message"),
   '-|-,-', 'forgetting a customer erases her messages and the replies');
is(one("SELECT count(*) FROM crm.ticket WHERE customer_id = $anna"), 2,
   '... her two tickets stay, for the figures');
is(one("SELECT count(*) FROM crm.ticket_reply WHERE reply IS NOT NULL"
       . " AND ticket <> 'ABCDEFGHJK23'"), 1,
   '... and other customers\' replies stay');

done_testing();
