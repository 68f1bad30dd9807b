# Identity through nginx (issue 7): every crm cookie a request carries
# counts, the first valid one names the customer wherever it stands and
# each invalid one is counted; client X-CRM-* headers are removed only in
# servers where the module acts, so a shop behind a second server of the
# same nginx gets the headers the front set.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;

my $SHOP = CRM::Shop->start->port;
my $BACK = free_port();     # the second server {}: no crm directive

my $policy = <<'YAML';
version: 1
database:
  conninfo: "$CRM_CONNINFO"
  spool: $SPOOL
  timeout: 2s
  connections: 4
identity:
  cookie: crm
  secret_file: $SERVROOT/conf/crm.secret
  max_age: 30d
fields:
  order_id: /order_id
  email: /customer/email
  phone: /customer/phone
  total: /total
loyalty:
  card:
    after_paid_orders: 1
    prefix: "CRM-"
  tiers:
    - name: member
      paid_orders: 1
      discount: 5
  promise:
    valid_for: 30d
    max_discount: 20
surprises:
  probability: 0
YAML

my $decisions = <<'CONF';
    proxy_set_header X-CRM-Discount $crm_discount;
    proxy_set_header X-CRM-Promise $crm_promise;
    proxy_set_header X-CRM-Customer $crm_customer;
    proxy_set_header X-CRM-State $crm_state;
CONF

# the front: the server of the harness; the shop straight or through $BACK
my $config = <<"CONF";
location = /orders {
    crm_capture order;
$decisions
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /payments {
    crm_capture payment;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /front/orders {
    crm_capture order;
$decisions
    proxy_pass http://127.0.0.1:$BACK/orders;
}
location = /front/plain {
    proxy_pass http://127.0.0.1:$BACK/plain;
}
location = /crm { crm_status; }
CONF

# the shop's own server in the same nginx, as behind fastcgi_pass or a cache
sub back {
    my ($inside) = @_;
    return <<"CONF";
    server {
        listen 127.0.0.1:$BACK;
        server_name shop;
$inside
        location / {
            proxy_pass http://127.0.0.1:$SHOP;
        }
    }
CONF
}

open my $f, '>', servroot() . '/conf/crm.secret' or die;
print $f 'k' x 40, "\n";
close $f;

my %conf = (policy => $policy, config => $config, http_config => back(''));
ok(start_nginx(\%conf), 'nginx starts');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 10),
   'connected to PostgreSQL');

# an order: what the shop was told, and the response's status and cookie
sub order {
    my ($path, $id, $email, %o) = @_;
    my $customer = defined $email ? qq({"email":"$email"}) : '{}';
    my $body = qq({"order_id":"$id","customer":$customer,"total":100});
    my ($status, $headers, $resp) = http_request('POST', $path,
        [ 'Content-Type' => 'application/json', @{ $o{headers} || [] } ],
        $body, port => $o{port});
    my %seen = $resp =~ /"x-crm-(\w+)":"([^"]*)"/g;
    $seen{status} = $status;
    $seen{cookie} = $headers->{'set-cookie'};
    return \%seen;
}

sub pay {
    my ($id) = @_;
    my ($s) = http_request('POST', '/payments',
        { 'Content-Type' => 'application/json' },
        qq({"order_id":"$id","total":100}));
    return $s;
}

sub rejected {
    my (undef, undef, $body) = http_get('/crm');
    return $body =~ /"cookies_rejected":(\d+)/ ? $1 : 'none';
}

sub settle {
    wait_for(sub { (http_get('/crm'))[2] =~ /"spool":\{"bytes":0\}/ }, 10);
    select(undef, undef, undef, 0.1);
}

sub db { my $r = psql($_[0]); chomp $r; $r }

# the customer an order was recorded for, as staff see it
sub booked_to {
    my ($id) = @_;
    my $r;
    wait_for(sub {
        $r = db("SELECT customer_id FROM crm.interactions"
                . " WHERE kind = 'order' AND order_id = '$id'");
        $r ne '';
    }, 10);
    return $r;
}

# -- two customers with cookies; a forged cookie ----------------------------

my $off = error_log_offset();

my $o = order('/orders', 'A-1', 'anna@example.com');
my $anna = $o->{customer};
my ($valid) = ($o->{cookie} || '') =~ /^crm=([^;]+)/;
like($anna, qr/^\d+$/, 'anna is a customer');
ok($valid, 'and has her signed cookie');
$o = order('/orders', 'B-1', 'ben@example.com');
my $ben = $o->{customer};
my ($valid_ben) = ($o->{cookie} || '') =~ /^crm=([^;]+)/;
ok($ben && $ben ne $anna && $valid_ben, 'ben is another, with his cookie');

# anna's mac on another customer id: forged
(my $forged = $valid) =~ s/^v1\.\d+\./'v1.' . ($anna + 1000) . '.'/e;
settle();

# -- every crm cookie counts, in one header or several ----------------------

my @cases = (
    [ 'forged first, valid second, one header',
      [ Cookie => "theme=dark; crm=$forged; crm=$valid" ], 1 ],
    [ 'valid first, forged second, one header',
      [ Cookie => "crm=$valid; lang=de; crm=$forged" ], 1 ],
    [ 'forged first, valid second, two headers',
      [ Cookie => "crm=$forged", Cookie => "crm=$valid" ], 1 ],
    [ 'valid first, forged second, two headers',
      [ Cookie => "crm=$valid", Cookie => "crm=$forged" ], 1 ],
    [ 'two forged and a malformed one around the valid one',
      [ Cookie => "crm=$forged; crm=junk", Cookie => "crm=$valid; crm=$forged" ],
      3 ],
);

my $n = 0;
for my $case (@cases) {
    my ($name, $headers, $bad) = @$case;
    $n++;
    my $before = rejected();
    $o = order('/orders', "C-$n", undef, headers => $headers);
    is($o->{customer}, $anna, "$name: the shop is told anna's id");
    is($o->{state}, 'ok', "$name: decided");
    is(rejected(), $before + $bad, "$name: cookies_rejected rose by $bad");
    is(booked_to("C-$n"), $anna, "$name: the order is booked to anna");
}

# two valid cookies: the first one names the customer, none is rejected

my $before = rejected();
$o = order('/orders', 'C-10', undef,
           headers => [ Cookie => "crm=$valid_ben; crm=$valid" ]);
is($o->{customer}, $ben, 'two valid cookies: the first names the customer');
is(rejected(), $before, 'and neither is counted as rejected');

settle();
error_log_clean($off, name => 'cookies: error log clean');

# -- the shop behind a second server of the same nginx ----------------------

$off = error_log_offset();

$o = order('/front/orders', 'F-1', 'bea@example.com');
is($o->{state}, 'ok', 'through the second server: the shop sees the state');
settle();
my $bea = db("SELECT customer_id FROM crm.customer_overview"
             . " WHERE email = 'bea\@example.com'");
is($o->{customer}, $bea, 'and the customer id the front set');
is(pay('F-1'), 200, 'the first order is paid');
settle();
my $promise = db("SELECT promise_id FROM crm.promise_ledger"
                 . " WHERE customer_id = $bea AND status = 'open'");
like($promise, qr/^\d+$/, 'which opened a promise');

$o = order('/front/orders', 'F-2', 'bea@example.com',
           headers => [ 'X-CRM-Discount' => '99' ]);
is($o->{discount}, '5', 'the shop sees the promised 5 the front set');
is($o->{promise}, $promise, 'and the promise');
settle();
is(db("SELECT status, order_id FROM crm.promise_ledger"
      . " WHERE promise_id = $promise"),
   'kept|F-2', 'the ledger keeps the promise the shop was told about');

my (undef, undef, $plain) = http_request('POST', '/front/plain',
    { 'X-CRM-Discount' => '99', 'X-CRM-Tier' => 'gold',
      'X-Other' => 'kept' }, '{}');
like($plain, qr/"uri":"\/plain"/, 'the front passes a plain request on');
unlike($plain, qr/x-crm-/, 'the front removes the client\'s X-CRM-*');
like($plain, qr/"x-other":"kept"/, 'and keeps the others');

(undef, undef, $plain) = http_request('POST', '/plain',
    { 'X-CRM-Discount' => '99', 'X-Other' => 'kept' }, '{}',
    port => $BACK);
like($plain, qr/"x-crm-discount":"99"/,
     'a client hitting the second server directly: its header passes');
like($plain, qr/"x-other":"kept"/, 'with the others');

error_log_clean($off, name => 'second server: error log clean');

# -- crm_banner on at http level: every server acts, unless it says off ----

$off = error_log_offset();

%conf = (policy => $policy, config => $config,
         http_config => "    crm_banner on;\n" . back(''));
is(reload_nginx(\%conf), 1, 'reload with crm_banner on at http level');
(undef, undef, $plain) = http_request('POST', '/plain',
    { 'X-CRM-Discount' => '99' }, '{}', port => $BACK);
like($plain, qr/"uri":"\/plain"/, 'the second server answers');
unlike($plain, qr/x-crm-/, 'and, inheriting crm_banner on, removes X-CRM-*');

%conf = (policy => $policy, config => $config,
         http_config => "    crm_banner on;\n"
                        . back("        crm_banner off;\n"));
is(reload_nginx(\%conf), 1, 'reload with crm_banner off in the second server');
(undef, undef, $plain) = http_request('POST', '/plain',
    { 'X-CRM-Discount' => '99' }, '{}', port => $BACK);
like($plain, qr/"x-crm-discount":"99"/,
     'crm_banner off there: the module does not act, the header passes');
(undef, undef, $plain) = http_request('POST', '/front/plain',
    { 'X-CRM-Discount' => '99' }, '{}');
unlike($plain, qr/x-crm-/, 'the front still removes it');

%conf = (policy => $policy, config => $config,
         http_config => back("        crm_banner off;\n"
                             . "        location = /crm-back { crm_status; }\n"));
is(reload_nginx(\%conf), 1, 'reload with crm_status in the second server');
(undef, undef, $plain) = http_request('POST', '/plain',
    { 'X-CRM-Discount' => '99' }, '{}', port => $BACK);
unlike($plain, qr/x-crm-/, 'crm_status in one location: the server acts');

error_log_clean($off, name => 'crm_banner at http level: error log clean');

done_testing();
