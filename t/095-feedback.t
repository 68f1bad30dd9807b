# Feedback through nginx: the module answers a contact form itself with a
# ticket and an honest due time (JSON, or an HTML page for a browser),
# 400 and 422, the ticket in $crm_ticket before an upstream, a retry with
# the same Idempotency-Key, a ticket given while PostgreSQL is down,
# conflicts compensated once, and a missed due time breached exactly once
# with two workers.  Due times are checked against PostgreSQL's own
# business time (sql/fn_calendar.sql) and time zone rules.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;
use JSON::PP ();
use Time::HiRes ();

my $SHOP = CRM::Shop->start->port;
my $J = JSON::PP->new->canonical;

sub policy {
    my (%o) = @_;
    my $hours = $o{hours} || <<'H';
      mon: "09:00-17:00"
      tue: "09:00-17:00"
      wed: "09:00-17:00"
      thu: "09:00-17:00"
      fri: "09:00-17:00"
H
    return <<"YAML";
version: 1
database:
  conninfo: "\$CRM_CONNINFO"
  spool: \$SPOOL
  timeout: 2s
  connections: 2
identity:
  cookie: crm
  secret_file: \$SERVROOT/conf/crm.secret
fields:
  order_id: /order_id
  email: /email
  phone: /phone
  name: /name
  rating: /rating
  category: /category
  message: /message
loyalty:
  promise:
    valid_for: 30d
    max_discount: 20
feedback:
  acknowledge:
    template: "Thank you, {name}. Ticket {ticket}, answer by {due}. {faq} {ask_phone}"
    faq_url: "https://shop.example/faq?a=1&b=2"
    ask_phone: "Leave a phone number."
    due_format: "%a %d %b %H:%M"
  sla:
    target: $o{target}
    limit: $o{limit}
    timezone: $o{tz}
    breach_compensation: 10
    hours:
$hours
  conflict:
    max_rating: 2
    categories: [refund]
    compensation: 15
surprises:
  probability: 0
YAML
}

my $config = <<"CONF";
client_body_buffer_size 4k;
location = /feedback {
    crm_capture feedback;
}
location = /feedback-expires {
    crm_capture feedback;
    expires 1h;
}
location = /contact {
    crm_capture feedback;
    proxy_set_header X-CRM-Ticket \$crm_ticket;
    proxy_set_header X-CRM-State \$crm_state;
    proxy_pass http://127.0.0.1:$SHOP;
    if (\$arg_x) {
        set \$feedback_x 1;
    }
}
location = /orders {
    crm_capture order;
    proxy_set_header X-CRM-Discount \$crm_discount;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /payments {
    crm_capture payment;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /crm { crm_status; }
CONF

CRM::Test::spew(servroot() . '/conf/crm.secret', ('s' x 40) . "\n");

my %conf = (policy => policy(target => '4h', limit => '8h',
                             tz => 'Europe/Berlin'),
            config => $config);

# a FIFO where the secret file should be: nginx -t says so, and does not
# wait for a writer
my $fifo = servroot() . '/conf/fifo.secret';
system('mkfifo', $fifo) == 0 or die "mkfifo: $!";
my $t_started = Time::HiRes::time();
my ($t_rc, $t_out) = nginx_t({ %conf, policy => $conf{policy}
                                 =~ s{\S+/conf/crm\.secret}{$fifo}r });
my $t_took = Time::HiRes::time() - $t_started;
ok($t_took < 20 && $t_rc != 0
   && $t_out =~ /identity\.secret_file ".*fifo\.secret" cannot be read/,
   'a FIFO as identity.secret_file: nginx -t fails, naming it, without '
   . 'waiting for a writer')
    or diag sprintf "exit %s after %.1f s: %s", $t_rc, $t_took, $t_out;
unlink $fifo;
ok(start_nginx(\%conf), 'nginx starts with a feedback location');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 10),
   'connected to PostgreSQL');

sub db { my $r = psql($_[0]); chomp $r; $r }

sub settle {
    wait_for(sub { (http_get('/crm'))[2] =~ /"spool":\{"bytes":0\}/ }, 10);
    select(undef, undef, undef, 0.1);
}

# a JSON feedback; returns (status, headers, body, decoded body)
sub feedback {
    my ($body, %h) = @_;
    $body = $J->encode($body) if ref $body;
    my ($s, $headers, $resp) = http_request('POST', $h{uri} || '/feedback',
        { 'Content-Type' => 'application/json', %{ $h{headers} || {} } },
        $body);
    my $doc = eval { $J->decode($resp) };
    return ($s, $headers, $resp, $doc);
}

my $BERLIN_SLA = '{"timezone":"Europe/Berlin","hours":[[0,0],[540,1020],'
    . '[540,1020],[540,1020],[540,1020],[540,1020],[0,0]],"holidays":[]}';


# --- the module answers ------------------------------------------------------

my $t0 = time;
my ($s, $h, $raw, $d) = feedback({ email => 'Anna@Example.com',
                                   name => 'Anna', message => 'Hello?' });
my $t1 = time;
is($s, 201, 'a feedback without an upstream is answered 201 by the module');
like($h->{'content-type'}, qr{^application/json}, '... as JSON');
is(join(',', sort keys %{ $d || {} }), 'due,faq,message,ticket',
   '... with ticket, due, message and faq') or diag $raw;
like($d->{ticket}, qr/^[2-9A-HJ-NP-Z]{12}$/,
     'the ticket: 12 characters, no 0, O, 1, I or L');
is($d->{faq}, 'https://shop.example/faq?a=1&b=2', 'faq is faq_url');
like($d->{due}, qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/,
     "due is RFC 3339 with an offset ($d->{due})");

# PostgreSQL's business time from arrival to due is the 8 hours of limit,
# and one second less would not be
my $due = db("SELECT extract(epoch FROM '$d->{due}'::timestamptz)::bigint");
my $ok = 0;
for my $arr ($t0 .. $t1) {
    my $r = db("SELECT extract(epoch FROM crm.business_time('$BERLIN_SLA',"
        . " to_timestamp($arr), to_timestamp($due)))::bigint || ' '"
        . " || extract(epoch FROM crm.business_time('$BERLIN_SLA',"
        . " to_timestamp($arr), to_timestamp($due - 1)))::bigint");
    $ok = 1 if $r eq '28800 28799';
}
ok($ok, 'the due time is 8 business hours after arrival, by PostgreSQL\'s '
   . 'own count (sql/fn_calendar.sql)');
my $local = db("SELECT to_char(to_timestamp($due) AT TIME ZONE"
               . " 'Europe/Berlin', 'YYYY-MM-DD\"T\"HH24:MI:SS')");
my $off = db("SELECT to_char(date_trunc('minute', (to_timestamp($due)"
             . " AT TIME ZONE 'Europe/Berlin') - (to_timestamp($due)"
             . " AT TIME ZONE 'UTC')), 'HH24:MI')");
is($d->{due}, "$local+$off", 'due is local time at Berlin\'s offset then');
my $human = db("SELECT to_char(to_timestamp($due) AT TIME ZONE"
               . " 'Europe/Berlin', 'Dy DD Mon HH24:MI')");
is($d->{message}, "Thank you, Anna. Ticket $d->{ticket}, answer by $human. "
   . "https://shop.example/faq?a=1&b=2 Leave a phone number.",
   'the message: name, ticket, due in due_format, faq, and ask_phone as no '
   . 'phone was given');

settle();
is(db("SELECT customer_id IS NOT NULL AND extract(epoch FROM due_at)"
      . " = $due FROM crm.open_tickets WHERE ticket = '$d->{ticket}'"), 't',
   'crm.open_tickets shows the ticket with the due time she was told');
is(db("SELECT email || ' ' || message FROM crm.open_tickets"
      . " WHERE ticket = '$d->{ticket}'"), 'anna@example.com Hello?',
   '... her e-mail, normalized, and her message');
my $anna_ticket = $d->{ticket};

($s, $h, $raw, $d) = feedback({ phone => '+49 30 1234567', name => '',
                                message => 'Call me' });
is($s, 201, 'a phone alone is enough');
like($d->{message}, qr/^Thank you\. Ticket [2-9A-HJ-NP-Z]{12}, answer by .*faq\?a=1&b=2$/,
     'an empty name takes its comma along; no ask_phone with a phone');


# --- a browser's form post gets a page ---------------------------------------

my $browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,'
    . '*/*;q=0.8';
($s, $h, $raw) = http_request('POST', '/feedback',
    { 'Content-Type' => 'application/x-www-form-urlencoded',
      Accept => $browser },
    'email=eve%40example.com&name=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22%27'
    . '%26&message=hi');
is($s, 201, 'a browser\'s form post is answered 201');
like($h->{'content-type'}, qr{^text/html; charset=utf-8}, '... with a page');
like($raw, qr{^<!DOCTYPE html>}, '... a whole HTML document');
unlike($raw, qr{<script}i, 'a hostile name does not reach the page as HTML');
like($raw, qr{Thank you, &lt;script&gt;alert\(1\)&lt;/script&gt;&quot;&#39;&amp;\.},
     '... it is escaped') or diag $raw;
like($raw, qr{href="https://shop.example/faq\?a=1&amp;b=2"},
     'the faq link, escaped');
is($h->{'content-security-policy'}, "default-src 'none'",
   'the page may run and load nothing');
is($h->{'cache-control'}, 'no-store', 'and is not cached');
is($h->{vary}, 'Accept', '... and, were it kept, kept apart from the JSON '
   . 'answer');
($s, $h) = feedback({ email => 'exp@example.com' }, uri => '/feedback-expires');
is("$s $h->{'cache-control'}", '201 max-age=3600',
   'a location with "expires 1h": one Cache-Control, the one asked for');

for my $case (['application/json', 'JSON asked for'],
              ['text/html;q=0.5, application/json', 'JSON ranked higher'],
              ['*/*', 'anything'],
              ['', 'no Accept']) {
    my %hh = length $case->[0] ? (Accept => $case->[0]) : ();
    ($s, $h) = feedback({ email => 'x@example.com' }, headers => \%hh);
    like($h->{'content-type'}, qr{^application/json}, "$case->[1]: JSON");
}
($s, $h) = feedback({ email => 'x@example.com' },
                    headers => { Accept => 'application/json;q=0.4, text/*' });
like($h->{'content-type'}, qr{^text/html}, 'text/* above JSON: the page');


# --- what cannot be answered --------------------------------------------------

($s, $h) = http_request('GET', '/feedback', {}, undef);
is("$s " . ($h->{allow} // ''), '405 POST', 'a GET is 405, Allow: POST');
settle();

my $n0 = db("SELECT count(*) FROM crm.interactions WHERE kind = 'feedback'");
($s, $h, $raw, $d) = feedback('{"email":"a@example.com",');
is($s, 400, 'a truncated body: 400');
like($d->{error} // '', qr/^the body cannot be read: ./,
     "... with a JSON error naming what is wrong ($raw)");
($s, $h, $raw, $d) = feedback('');
is($s, 400, 'an empty body: 400');
($s, $h, $raw, $d) = feedback('{"email":"' . ('a' x 20000) . '@example.com"}');
is($s, 400, 'a body over client_body_buffer_size: 400');
like($d->{error}, qr/larger than client_body_buffer_size/, '... saying so');
($s, $h, $raw, $d) = feedback({ name => 'Nobody', message => 'hi' });
is($s, 422, 'no e-mail, phone or cookie: 422');
like($d->{error}, qr/an e-mail address or a phone number is needed/,
     '... saying what is needed');
($s, $h, $raw, $d) = feedback({ email => 'not an e-mail', message => 'hi' });
is($s, 422, 'an e-mail that is not one reaches nobody: 422');
settle();
is(db("SELECT count(*) FROM crm.interactions WHERE kind = 'feedback'")
   - $n0, 5, 'all five are recorded as events');
is(db("SELECT string_agg(state, ',' ORDER BY received_at) FROM"
      . " (SELECT state, received_at FROM crm.interactions"
      . " WHERE kind = 'feedback' ORDER BY received_at DESC LIMIT 5) x"),
   'bad_body,bad_body,bad_body,no_customer,no_customer',
   '... with their states');


# --- a retry gets the same ticket ---------------------------------------------

my @t = map {
    (feedback({ email => 'rita@example.com', message => 'retry' },
              headers => { 'Idempotency-Key' => 'form-77' }))[3]{ticket}
} 1 .. 2;
is($t[0], $t[1], 'the same Idempotency-Key twice: the same ticket');
my $other = (feedback({ email => 'mallory@example.com' },
                      headers => { 'Idempotency-Key' => 'form-77' }))[3];
isnt($other->{ticket}, $t[0],
     'the same key for another customer: another ticket');
settle();
is(db("SELECT count(*) FROM crm.ticket WHERE ticket = '$t[0]'"), 1,
   '... one ticket in PostgreSQL');
is(db("SELECT email FROM crm.open_tickets WHERE ticket = '$t[0]'"),
   'rita@example.com', '... hers');

# without identity.secret_file a retry is still the same ticket (under a
# fixed key, so another one than under the secret)
my $secret = servroot() . '/conf/crm.secret';
rename $secret, "$secret.away" or die "rename: $!";
ok(reload_nginx(), 'reloaded without the secret file');
my @u = map {
    (feedback({ email => 'rita@example.com', message => 'retry' },
              headers => { 'Idempotency-Key' => 'form-77' }))[3]{ticket} // ''
} 1 .. 2;
like($u[0], qr/^[2-9A-HJ-NP-Z]{12}$/, 'no secret file: a ticket');
is($u[1], $u[0], '... and the same Idempotency-Key again: the same ticket');
isnt($u[0], $t[0], '... another one than under the secret');
rename "$secret.away", $secret or die "rename: $!";
ok(reload_nginx(), 'reloaded with the secret file');
is((feedback({ email => 'rita@example.com', message => 'retry' },
             headers => { 'Idempotency-Key' => 'form-77' }))[3]{ticket},
   $t[0], '... the secret\'s ticket again');


# --- with an upstream, the shop answers ---------------------------------------

($s, $h, $raw, $d) = feedback({ email => 'sam@example.com', rating => 4 },
                              uri => '/contact');
is($s, 200, 'with an upstream the shop answers');
like($d->{headers}{'x-crm-ticket'} // '', qr/^[2-9A-HJ-NP-Z]{12}$/,
     '... told the ticket in $crm_ticket');
my $sam = $d->{headers}{'x-crm-ticket'};
($s, $h, $raw, $d) = feedback({ email => 'sam@example.com' },
                              uri => '/contact?x=1');
is($s . ' ' . ($d->{headers}{'x-crm-ticket'} =~ /^\w{12}$/ ? 'ticket' : '-'),
   '200 ticket', 'an "if" block in the location keeps the shop answering');
my $bad = '{"email":"sam@example.com", oops';
($s, $h, $raw, $d) = feedback($bad, uri => '/contact');
is($d->{body}, $bad, 'a bad body passes through untouched');
is($d->{headers}{'x-crm-state'}, 'bad_body', '... with $crm_state bad_body');
is($d->{headers}{'x-crm-ticket'} // '', '', '... and no ticket');
settle();
is(db("SELECT email FROM crm.open_tickets WHERE ticket = '$sam'"),
   'sam@example.com', 'the upstream\'s ticket is opened too');


# --- PostgreSQL down ----------------------------------------------------------

pg_stop();
http_get('/crm');
my $w0 = Time::HiRes::time();
($s, $h, $raw, $d) = feedback({ email => 'dora@example.com' });
my $took = Time::HiRes::time() - $w0;
is($s, 201, 'with PostgreSQL down the customer gets her ticket');
ok($took < 2, sprintf('... at once (%.3f s; database.timeout is 2 s)',
                      $took));
my $dora = $d;
pg_start();
ok(wait_for(sub { db("SELECT count(*) FROM crm.open_tickets"
                     . " WHERE ticket = '$dora->{ticket}'") eq '1' }, 20),
   'once PostgreSQL is back the ticket is in crm.open_tickets');
is(db("SELECT to_char(due_at AT TIME ZONE 'Europe/Berlin',"
      . " 'YYYY-MM-DD\"T\"HH24:MI:SS') FROM crm.ticket"
      . " WHERE ticket = '$dora->{ticket}'"),
   substr($dora->{due}, 0, 19), '... with the due time she was told');


# --- conflicts ------------------------------------------------------------------

# kim and lev paid an order before: a stranger is never compensated
sub paid {
    my ($email) = @_;
    my ($st) = http_request('POST', '/payments',
        { 'Content-Type' => 'application/json' },
        $J->encode({ order_id => "PAID-$email", email => $email,
                     total => '10.00', currency => 'EUR' }));
    return $st;
}
is(paid('kim@example.com') . paid('lev@example.com'), '200200',
   'kim and lev pay an order through the shop');
settle();

($s, $h, $raw, $d) = feedback({ email => 'kim@example.com', rating => 1,
                                message => 'Broken on arrival' });
my $kim_ticket = $d->{ticket};
($s, $h, $raw, $d) = feedback({ email => 'lev@example.com', rating => '5',
                                category => 'Refund' });
my $lev_ticket = $d->{ticket};
feedback({ email => 'mo@example.com', rating => 3, category => 'delivery' });
settle();
is(db("SELECT string_agg(c.email || ':' || t.conflict, ',' ORDER BY c.email)"
      . " FROM crm.open_tickets t JOIN crm.customer c USING (customer_id)"
      . " WHERE c.email IN ('kim\@example.com', 'lev\@example.com',"
      . " 'mo\@example.com')"),
   'kim@example.com:true,lev@example.com:true,mo@example.com:false',
   'a rating at max_rating or under, or a conflict category, is a conflict');
is(db("SELECT string_agg(c.email || ':' || p.kind || ':' || p.percent || ':'"
      . " || p.status, ',' ORDER BY c.email) FROM crm.promise_ledger p"
      . " JOIN crm.customer c USING (customer_id)"
      . " WHERE c.email IN ('kim\@example.com', 'lev\@example.com',"
      . " 'mo\@example.com') AND p.kind <> 'repeat_order'"),
   'kim@example.com:compensation:15:open,lev@example.com:compensation:15:open',
   '... and opens a 15% compensation promise');

# an attacker complains from an address that never paid, to farm a discount
($s, $h, $raw, $d) = feedback({ email => 'farmer@example.com', rating => 1,
                                category => 'refund' });
is($s, 201, 'a complaint from an address that never paid is answered');
settle();
is(db("SELECT conflict FROM crm.open_tickets WHERE ticket = '$d->{ticket}'"),
   't', '... as a conflict');
is(db("SELECT count(*) FROM crm.promise_ledger p JOIN crm.customer c"
      . " USING (customer_id) WHERE c.email = 'farmer\@example.com'"), 0,
   '... and no compensation: nothing to spend on a first order');

sub order {
    my ($id, $email) = @_;
    my (undef, undef, $r) = http_request('POST', '/orders',
        { 'Content-Type' => 'application/json' },
        qq({"order_id":"$id","email":"$email"}));
    return ($J->decode($r)->{headers}{'x-crm-discount'});
}
is(order('K-1', 'kim@example.com'), 20,
   'her next order gets the 15% (with the 5% her paid order promised: '
   . 'max_discount 20)');
is(order('K-2', 'kim@example.com'), 0, '... and the one after does not');
settle();
is(db("SELECT string_agg(p.status || ':' || coalesce(p.order_id, '-'), ',')"
      . " FROM crm.promise_ledger p JOIN crm.customer c USING (customer_id)"
      . " WHERE c.email = 'kim\@example.com' AND p.kind = 'compensation'"),
   'kept:K-1', 'the compensation is kept once, by that order');
is(db("SELECT crm.resolve_ticket('" . lc(join '-', unpack '(A4)*', $lev_ticket)
      . "', 'no refund due', withdraw_compensation => true)"), 't',
   'staff resolve an unfounded conflict, read out in lower case with dashes');
is(db("SELECT status FROM crm.promise_ledger p JOIN crm.customer c"
      . " USING (customer_id) WHERE c.email = 'lev\@example.com'"
      . " AND p.kind = 'compensation'"),
   'withdrawn', '... and its compensation is withdrawn');
ok(db("SELECT crm.answer_ticket('$kim_ticket', 'maria', 'A new one is on"
      . " its way')"), 'staff answer a ticket');
is(db("SELECT answered_at IS NOT NULL FROM crm.open_tickets"
      . " WHERE ticket = '$kim_ticket'"), 't', '... the first response');


# --- a missed due time, two workers ---------------------------------------------

my $allday = join '', map { "      $_: \"00:00-24:00\"\n" }
    qw(mon tue wed thu fri sat sun);
ok(start_nginx({ policy => policy(target => '1s', limit => '3s', tz => 'UTC',
                                  hours => $allday),
                 config => $config, workers => 2 }),
   'nginx with two workers, a 24x7 calendar and a limit of 3 seconds');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 10),
   'connected to PostgreSQL');
is(paid('late@example.com'), 200, 'a customer who paid an order');
($s, $h, $raw, $d) = feedback({ email => 'late@example.com' });
my $late = $d->{ticket};
my $stranger = (feedback({ email => 'stranger@example.com' }))[3]{ticket};
my $late_due = db("SELECT extract(epoch FROM '$d->{due}'::timestamptz)");
ok($late_due - time <= 4, 'due in 3 seconds');
ok(wait_for(sub { db("SELECT breached FROM crm.open_tickets"
                     . " WHERE ticket = '$late'") eq 't' }, 20),
   'unanswered past its due time it is breached within seconds');
select(undef, undef, undef, 5);
is(db("SELECT string_agg(p.kind || ':' || p.percent, ',') FROM"
      . " crm.promise_ledger p JOIN crm.customer c USING (customer_id)"
      . " WHERE c.email = 'late\@example.com' AND p.kind <> 'repeat_order'"),
   'sla_breach:10',
   'exactly one sla_breach promise of breach_compensation, with two workers '
   . 'checking');
ok(wait_for(sub { db("SELECT breached FROM crm.open_tickets"
                     . " WHERE ticket = '$stranger'") eq 't' }, 10),
   'a stranger\'s ticket is breached too');
is(db("SELECT count(*) FROM crm.promise_ledger p JOIN crm.customer c"
      . " USING (customer_id) WHERE c.email = 'stranger\@example.com'"), 0,
   '... with no promise: she never paid an order');
like(CRM::Test::slurp(servroot() . '/logs/error.log'),
     qr/crm: [12] ticket\(s\) passed their due time unanswered/,
     'the error log says so');

error_log_clean(0, expect => [qr/PostgreSQL failed/],
                name => 'no other errors in the error log than PostgreSQL '
                        . 'stopped');

done_testing();
