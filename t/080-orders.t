# Orders, payments and status through nginx: the customer, the loyalty card,
# the repeat-order promise kept exactly once, tiers, surprises, the signed
# cookie, and what happens when the shop or the database says no.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;
use POSIX ();

my $SHOP = CRM::Shop->start->port;

my $KEY1 = 'k' x 40;      # signs
my $KEY2 = 'o' x 40;      # an older key, still verifies

sub policy {
    my (%o) = @_;
    my $surprises = $o{surprises} || "  probability: 0\n";
    return <<"YAML";
version: 1
database:
  conninfo: "$o{conninfo}"
  spool: \$SPOOL
  timeout: 2s
  connections: 4
identity:
  cookie: crm
  secret_file: \$SERVROOT/conf/crm.secret
  max_age: 30d
  upstream_header: X-Customer-Email
fields:
  order_id: /order_id
  email: /customer/email
  phone: /customer/phone
  name: /customer/name
  total: /total
  status: /status
loyalty:
  card:
    after_paid_orders: 1
    prefix: "CRM-"
  tiers:
    - name: member
      paid_orders: 1
      discount: 5
    - name: gold
      paid_orders: 3
      discount: 10
  promise:
    valid_for: 30d
    max_discount: 20
surprises:
$surprises
YAML
}

my $config = <<"CONF";
location = /orders {
    crm_capture order;
    proxy_set_header X-CRM-Discount \$crm_discount;
    proxy_set_header X-CRM-Promise \$crm_promise;
    proxy_set_header X-CRM-Tier \$crm_tier;
    proxy_set_header X-CRM-Card \$crm_card;
    proxy_set_header X-CRM-Gift \$crm_gift;
    proxy_set_header X-CRM-Customer \$crm_customer;
    proxy_set_header X-CRM-State \$crm_state;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /payments {
    crm_capture payment;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /status-updates {
    crm_capture status;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /plain {
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /account {
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /crm { crm_status; }
CONF

sub write_keys {
    open my $f, '>', servroot() . '/conf/crm.secret' or die;
    print $f "# rotated keys: the first signs, all verify\n", @_;
    close $f;
}

write_keys("$KEY1\n", "$KEY2\n");
my %conf = (policy => policy(conninfo => '$CRM_CONNINFO'), config => $config);
ok(start_nginx(\%conf), 'nginx starts');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 10),
   'connected to PostgreSQL');

# one order: returns the shop's view of the decision and the response
sub order {
    my ($id, $email, %o) = @_;
    my $body = qq({"order_id":"$id","customer":{"email":"$email")
             . ($o{name} ? qq(,"name":"$o{name}") : '')
             . qq(},"total":) . ($o{total} || 100) . '}';
    my %h = ('Content-Type' => 'application/json', %{ $o{headers} || {} });
    my ($status, $headers, $resp) = http_request('POST', '/orders', \%h, $body);
    my %seen = $resp =~ /"x-crm-(\w+)":"([^"]*)"/g;
    $seen{status} = $status;
    $seen{cookie} = $headers->{'set-cookie'};
    return \%seen;
}

sub pay {
    my ($id, $total) = @_;
    my ($s) = http_request('POST', '/payments', { 'Content-Type' => 'application/json' },
                           qq({"order_id":"$id","total":$total}));
    return $s;
}

sub set_status {
    my ($id, $status) = @_;
    my ($s) = http_request('POST', '/status-updates', { 'Content-Type' => 'application/json' },
                           qq({"order_id":"$id","status":"$status"}));
    return $s;
}

# waits until the spool is written: events and results are asynchronous
sub settle {
    wait_for(sub { (http_get('/crm'))[2] =~ /"spool":\{"bytes":0\}/ }, 10);
    select(undef, undef, undef, 0.1);
}

sub db { my $r = psql($_[0]); chomp $r; $r }

# -- a first order, its payment, the second order with the promise ------------

my $o = order('A-1', ' Anna@Example.COM ', name => 'Anna');
is($o->{state}, 'ok', 'first order: decided');
is($o->{discount}, '0', 'no discount yet');
like($o->{customer}, qr/^\d+$/, 'the shop is told the customer id');
my $anna = $o->{customer};
like($o->{cookie}, qr/^crm=v1\.$anna\.\d+\.[\w-]{43}; Max-Age=2592000; Path=\/; HttpOnly; SameSite=Lax$/,
     'the signed cookie is set');
my ($cookie) = $o->{cookie} =~ /^(crm=[^;]+)/;
settle();
is(db("SELECT email, name, paid_orders, card_number IS NULL FROM crm.customer_overview WHERE customer_id = $anna"),
   'anna@example.com|Anna|0|t', 'staff see the customer, e-mail normalized');

is(pay('A-1', 100), 200, 'payment goes to the shop');
settle();
like(db("SELECT card_number, tier, paid_orders FROM crm.customer_overview WHERE customer_id = $anna"),
     qr/^CRM-\d{8}\|member\|1$/, 'the payment issued the card and the tier');
is(db("SELECT kind, percent, status FROM crm.promise_ledger WHERE customer_id = $anna"),
   'repeat_order|5|open', 'and opened the repeat-order promise at the tier discount');
my $promise = db("SELECT promise_id FROM crm.promise_ledger WHERE customer_id = $anna");

$o = order('A-2', 'anna@example.com');
is($o->{discount}, '5', 'the second order gets the promised discount');
is($o->{promise}, $promise, 'naming the promise');
like($o->{card}, qr/^CRM-\d{8}$/, 'and the card');
is($o->{tier}, 'member', 'and the tier');
settle();
is(db("SELECT status, order_id FROM crm.promise_ledger WHERE promise_id = $promise"),
   'kept|A-2', 'the promise is kept by that order');

# -- the same order id again: the same decision, nothing changes ---------------

$o = order('A-2', 'anna@example.com');
is("$o->{discount} $o->{promise}", "5 $promise", 'a retried order gets the same decision');
settle();
is(db("SELECT count(*) FROM crm.promise_ledger WHERE customer_id = $anna AND status = 'kept'"),
   '1', 'and keeps nothing twice');

# -- the shop refuses an order: the reservation is released --------------------

pay('A-2', 100);
settle();
my $p2 = db("SELECT promise_id FROM crm.promise_ledger WHERE customer_id = $anna AND status = 'open'");
like($p2, qr/^\d+$/, 'the second payment opened a new promise');
$o = order('A-3', 'anna@example.com', headers => { 'X-Shop-Status' => 422 });
is($o->{status}, 422, 'the shop refuses the order');
is($o->{discount}, '5', 'it had been offered the discount');
ok(!defined $o->{cookie}, 'no cookie on a refused order');
settle();
is(db("SELECT status, order_id IS NULL FROM crm.promise_ledger WHERE promise_id = $p2"),
   'open|t', 'the reservation is released');

# -- the cookie names the customer; forged and rotated cookies ------------------

$o = order('A-4', '', headers => { Cookie => $cookie, 'X-Shop-Status' => 409 });
is($o->{customer}, $anna, 'an order without e-mail is found by the cookie');
my $forged = $cookie;
$forged =~ s/\.(\d+)\./'.' . ($1 + 1) . '.'/e;
$o = order('A-5', '', headers => { Cookie => $forged });
is($o->{state}, 'no_customer', 'a forged cookie names nobody');
like((http_get('/crm'))[2], qr/"cookies_rejected":[1-9]/, 'and is counted');

write_keys("$KEY2\n");     # as if the cookie had been signed by an old key
is(reload_nginx(\%conf), 1, 'reload with only the old key');
$o = order('A-6', '', headers => { Cookie => $cookie, 'X-Shop-Status' => 409 });
isnt($o->{customer}, $anna, 'a key that is gone no longer verifies');
write_keys("$KEY1\n", "$KEY2\n");
is(reload_nginx(\%conf), 1, 'reload with the keys rotated back');

# -- client X-CRM-* headers never reach the shop --------------------------------

my (undef, undef, $plain) = http_request('POST', '/plain',
    { 'X-CRM-Discount' => '99', 'x-crm-tier' => 'gold', 'X-Other' => 'kept' }, '{}');
unlike($plain, qr/x-crm-/, 'X-CRM-* request headers from the client are removed');
like($plain, qr/"x-other":"kept"/, 'other headers stay');
$o = order('A-7', 'anna@example.com', headers => { 'X-CRM-Discount' => '99' });
is($o->{discount}, '5', 'the shop sees the discount nginx decided, not the client\'s');

# -- expiry ---------------------------------------------------------------------

settle();
pay('A-7', 100);
settle();
is(db("SELECT count(*) FROM crm.promise_ledger WHERE customer_id = $anna AND status = 'open'"),
   '1', 'a paid order opens a promise');
psql("UPDATE crm.promise SET valid_until = now() - interval '1 day'"
     . " WHERE customer_id = $anna AND status = 'open'");
$o = order('A-8', 'anna@example.com');
is($o->{discount}, '0', 'an expired promise is never reserved');
is(db("SELECT count(*) FROM crm.promise_ledger WHERE customer_id = $anna AND status = 'expired'"),
   '1', 'the ledger shows it expired');

# -- tier up with payments, down with a refund ------------------------------------

for my $i (1 .. 3) { order("T-$i", 'tom@example.com'); settle(); pay("T-$i", 50); settle(); }
is(db("SELECT tier, paid_orders FROM crm.customer_overview WHERE email = 'tom\@example.com'"),
   'gold|3', 'three paid orders: gold');
set_status('T-3', 'refunded');
settle();
is(db("SELECT tier, paid_orders FROM crm.customer_overview WHERE email = 'tom\@example.com'"),
   'member|2', 'a refund takes it back');
is(db("SELECT status FROM crm.promise_ledger p JOIN crm.customer_overview c USING (customer_id)"
      . " WHERE c.email = 'tom\@example.com' AND p.percent = 10"),
   'withdrawn', 'and withdraws the promise the refunded order opened');

# -- hostile names and e-mails are stored as written ------------------------------

my $evil = q{<script>alert(1)</script>'; DROP TABLE crm.customer; --};
my ($s) = http_request('POST', '/orders', { 'Content-Type' => 'application/json' },
    qq({"order_id":"H-1","customer":{"email":"o'brien+x\@example.com","name":"$evil"}}));
settle();
is(db("SELECT name FROM crm.customer_overview WHERE email = 'o''brien+x\@example.com'"),
   $evil, 'a hostile name is stored as written');

# -- the shop names a logged-in customer in a response header -------------------

my $login = { 'X-Shop-Header' => 'X-Customer-Email: Anna@Example.com' };
my ($ls, $lh) = http_request('GET', '/account', $login);
is($ls, 200, 'the shop answers the account page');
ok(!exists $lh->{'x-customer-email'}, 'the header naming the customer never reaches the client');
my $got;
wait_for(sub {
    my (undef, $h) = http_request('GET', '/account', $login);
    $got = $h->{'set-cookie'};
    defined $got;
}, 10);
like($got, qr/^crm=v1\.$anna\.\d+\.[\w-]{43}; /,
     'the customer it names gets the signed cookie');
like((http_get('/crm'))[2], qr/"cache":\{"entries":[1-9]\d*,"hits":[1-9]\d*,"misses":[1-9]\d*\}/,
     'crm_status shows the cache: the miss that asked, the hit that set the cookie');
like((http_get('/crm?format=prometheus'))[2], qr/^crm_cache_hits_total [1-9]/m,
     '... and so does the Prometheus text');
($ls, $lh) = http_request('GET', '/account',
                          { 'X-Shop-Header' => 'X-Customer-Email: new.login@example.com' });
ok(wait_for(sub { db("SELECT count(*) FROM crm.customer_overview WHERE email = 'new.login\@example.com'") eq '1' }, 10),
   'a customer named for the first time is created');

# -- 20 concurrent orders from one customer, one promise ------------------------------

order('C-0', 'cat@example.com'); settle(); pay('C-0', 10); settle();
my $dir = servroot() . '/tmp';
my @kids;
for my $i (1 .. 20) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        my $r = order("C-$i", 'cat@example.com');
        open my $f, '>', "$dir/conc-$i" or POSIX::_exit(1);
        print $f "$r->{status} $r->{discount}\n";
        close $f;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid $_, 0 for @kids;
my @res = map { open my $f, '<', "$dir/conc-$_"; scalar <$f> } 1 .. 20;
is(scalar(grep { /^200 / } @res), 20, '20 concurrent orders answered');
is(scalar(grep { / 5$/ } @res), 1, 'exactly one of them got the discount');
settle();
is(db("SELECT count(*) FROM crm.promise_ledger p JOIN crm.customer_overview c USING (customer_id)"
      . " WHERE c.email = 'cat\@example.com' AND p.status = 'kept'"),
   '1', 'the promise is kept exactly once');

# -- the database down for an order -----------------------------------------------

pg_stop();
http_get('/crm');
$o = order('D-1', 'dan@example.com');
is($o->{state}, 'db_unavailable', 'the order goes on with no decision');
is($o->{discount}, '0', 'and no discount');
is($o->{status}, 200, 'the shop answers');
pg_start();
ok(wait_for(sub { db("SELECT count(*) FROM crm.interactions WHERE order_id = 'D-1'") eq '1' }, 20),
   'the order is recorded once the database is back');
is(db("SELECT discount, status FROM crm.orders WHERE order_id = 'D-1'"), '0|attempted',
   'recorded without a decision: none is invented afterwards');

done_testing();
