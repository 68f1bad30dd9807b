# Forgetting a customer: after crm.forget_customer() a dump of the whole
# database holds no trace of her e-mail, phone or name, in any encoding the
# module wrote them (JSON, form, raw bytes of bad bodies, spool rejects);
# another customer's data stays; figures stay.  By e-mail, customer id or
# phone; a phone several customers share is refused.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;
use MIME::Base64 qw(encode_base64);

my $SHOP = CRM::Shop->start->port;

my $policy = <<'YAML';
version: 1
database:
  conninfo: "$CRM_CONNINFO"
  spool: $SPOOL
  timeout: 2s
fields:
  order_id: /order_id
  email: /customer/email
  phone: /customer/phone
  name: /customer/name
  birthday: /customer/birthday
  total: /total
  rating: /rating
  message: /message
loyalty:
  card:
    after_paid_orders: 1
    prefix: "CRM-"
YAML

my $config = <<"CONF";
location = /orders {
    crm_capture order;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /payments {
    crm_capture payment;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /feedback {
    crm_capture feedback;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /crm { crm_status; }
CONF

ok(start_nginx({ policy => $policy, config => $config }), 'nginx starts');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 10),
   'connected to PostgreSQL');

sub db { my $r = psql($_[0]); chomp $r; $r }

my $sent = 0;

sub send_body {
    my ($uri, $type, $body) = @_;
    my ($status) = http_request('POST', $uri, { 'Content-Type' => $type },
                                $body);
    $sent++;
    return $status;
}

sub json { send_body($_[0], 'application/json', $_[1]) }
sub form { send_body($_[0], 'application/x-www-form-urlencoded', $_[1]) }

sub written {
    wait_for(sub { db('SELECT count(*) FROM crm.interactions') == $sent
                   && (http_get('/crm'))[2] =~ /"spool":\{"bytes":0\}/ },
             10);
}

# -- her, as the shop's clients write her -------------------------------------

my $EMAIL = 'Zora.Quill+crm@Example.ORG';     # as sent
my $email = lc $EMAIL;                        # as kept
my $PHONE = '+7 (913) 555-01-27';             # as sent
my $phone = '79135550127';                    # as kept
my $NAME = 'Zephyrine Quillfeather';
my ($first, $last) = split / /, $NAME;
my $form_email = 'Zora.Quill%2Bcrm%40Example.ORG';
(my $json_email = $email) =~ s/\@/\\u0040/;
(my $copy_email = $json_email) =~ s/\\/\\\\/;

is(json('/orders', qq({"order_id":"Z-1","customer":{"email":"$EMAIL",)
        . qq("phone":"$PHONE","name":"$NAME","birthday":"1990-04-17"},)
        . qq("total":120})), 200, 'her order');
written();
is(json('/payments', '{"order_id":"Z-1","total":120}'), 200, 'its payment');
is(json('/feedback', qq({"customer":{"email":"\U$EMAIL\E","name":"$NAME"},)
        . '"rating":2,"message":"late"}'), 200,
   'her feedback, e-mail in capitals');
is(json('/feedback', qq({"customer":{"phone":"8 913 555 01 27",)
        . qq("name":"$NAME"},"message":"call me"})), 200,
   'her feedback with only the phone');
is(json('/orders', qq({"order_id":"Z-2","customer":{"email":"$EMAIL",)
        . qq("name":"$NAME")), 200, 'a truncated JSON order naming her');
is(json('/orders', qq({"customer":{"email":"$json_email","name":"$NAME")),
   200, 'a truncated JSON order, its e-mail with a \u0040 escape');
is(form('/orders', "order_id=Z-3&customer.email=$form_email"
        . "&customer.name=Zephyrine+Quillfeather&note=100%zz"), 200,
   'a malformed form naming her URL-encoded');
is(form('/orders', 'order_id=Z-4&customer.email=zora.quill%2bcrm%40example.org'
        . '&customer.name=Zephyrine%20Quillfeather&note=%'), 200,
   'a malformed form, lower-case escapes, %20 for the space');

# -- somebody else, who stays ---------------------------------------------------

my $OTHER = 'other.person@example.net';
json('/orders', qq({"order_id":"O-1","customer":{"email":"$OTHER",)
     . qq("phone":"+44 20 7946 0958","name":"Barnaby Other"},"total":30}));
json('/feedback', qq({"customer":{"email":"$OTHER"},"rating":5}));
json('/orders', qq({"order_id":"O-2","customer":{"email":"$OTHER"));

ok(written(), 'all events are written');
is(db("SELECT count(*) FROM crm.interactions WHERE state = 'bad_body'"), 5,
   'five bad bodies');

my $zora = db("SELECT customer_id FROM crm.customer_overview WHERE email = '$email'");
like($zora, qr/^\d+$/, 'she is a customer');
like(db("SELECT card_number || ' ' || paid_orders FROM crm.customer_overview"
        . " WHERE customer_id = $zora"), qr/^CRM-\d{8} 1$/,
     'with a card and a paid order');
my $card = db("SELECT card_number FROM crm.customer WHERE customer_id = $zora");
db("SELECT crm.add_relative('$email', 'Ottoline Quillfeather', 'daughter',"
   . " '2015-05-05')");

# lines the database could not take, naming her in every way a line can
my $b64 = encode_base64(qq({"customer":{"email":"$EMAIL","name":"$NAME"), '');
my @lines = (
    qq({"kind":"telepathy","event_id":"00000000-0000-7000-8000-000000000001",)
    . qq("email":"$email","name":"$NAME"}),
    qq({"kind":"order","event_id":"not-a-uuid","state":"bad_body",)
    . qq("body":"$b64"}),
    qq(garbage {"email": "$EMAIL", "name": "$NAME"),
    qq(garbage $phone $NAME),
    qq(garbage email=$form_email&name=Zephyrine+Quillfeather),
    qq({"kind":"telepathy","customer_id":$zora,"payload":{"note":"$NAME"}}),
    qq({"kind":"telepathy","phone":"$phone","payload":{"who":"$NAME"}}),
    qq({"kind":"telepathy","payload":{"customer":{"email":"$json_email"}}}),
    qq({"kind":"telepathy","email":"$OTHER"}),
);
(my $batch = join "\n", @lines) =~ s/'/''/g;
db("SELECT crm.record_events_slow('$batch')");
is(db('SELECT count(*) FROM crm.spool_reject'), scalar @lines,
   'every such line is a reject');

# -- the dump ------------------------------------------------------------------

sub dump_db {
    my @cmd = (CRM::Test::as_postgres(), CRM::Test::pg_bin('pg_dump'),
               '--data-only', '-h', '127.0.0.1', '-p', pg_port(),
               '-U', 'postgres', 'crm');
    open my $fh, '-|', @cmd or die "pg_dump: $!";
    local $/;
    my $d = <$fh>;
    close $fh or die "pg_dump failed: $?";
    return $d;
}

# the stable characters of the base64 of $s at offset 0, 1 and 2 of a text
sub base64_forms {
    my ($s) = @_;
    my @f;
    for my $k (0 .. 2) {
        my $b = encode_base64(('.' x $k) . $s, '');
        my $skip = (0, 2, 3)[$k];
        my $keep = int((length($s) + $k) / 3) * 4 - $skip;
        push @f, substr($b, $skip, $keep);
    }
    return @f;
}

# what must not be in the dump: [label, text, case-insensitive]
my @traces = (
    [ 'the e-mail (any case)', $email, 1 ],
    [ 'the e-mail URL-encoded', lc $form_email, 1 ],
    [ 'the e-mail with \u0040', $json_email, 1 ],
    [ 'the e-mail with \u0040 as COPY writes it', $copy_email, 1 ],
    (map { [ "the e-mail's hex ($_)", unpack('H*', $_), 1 ] }
         $email, $EMAIL, $json_email, $form_email, lc $form_email),
    (map { [ "the e-mail's base64 ($_)", $_, 0 ] }
         base64_forms($email), base64_forms($EMAIL)),
    [ 'the phone digits', $phone, 0 ],
    [ 'the phone digits without the country', substr($phone, 1), 0 ],
    [ 'the phone as written', $PHONE, 0 ],
    [ 'the first name', $first, 1 ],
    [ 'the last name', $last, 1 ],
    [ "the first name's hex", unpack('H*', $first), 1 ],
    [ "the last name's hex", unpack('H*', $last), 1 ],
    (map { [ "the last name's base64 ($_)", $_, 0 ] } base64_forms($last)),
    [ 'the card number', $card, 0 ],
);

sub traces_in {
    my ($d) = @_;
    return map { $_->[0] }
           grep { $_->[2] ? index(lc $d, lc $_->[1]) >= 0
                          : index($d, $_->[1]) >= 0 } @traces;
}

my %before = map { $_ => 1 } traces_in(dump_db());
is_deeply([ grep { !$before{$_} } 'the e-mail (any case)',
            'the e-mail URL-encoded', 'the e-mail with \u0040 as COPY writes it',
            "the e-mail's hex ($EMAIL)", "the e-mail's hex ($form_email)",
            "the e-mail's hex ($json_email)", 'the phone digits',
            'the phone as written', 'the first name', 'the last name',
            "the last name's hex", 'the card number' ], [],
          'before: the dump names her in each of those ways')
    or diag(explain([ sort keys %before ]));
ok((grep { /base64/ } keys %before) >= 2,
   '... her e-mail and name also in base64');

# -- forget her ------------------------------------------------------------------

my $events = db('SELECT count(*) FROM crm.interactions');
is(db("SELECT crm.forget_customer('$EMAIL')"), 't',
   'forget_customer(e-mail): true');

my $dump = dump_db();
my @after = traces_in($dump);
is_deeply(\@after, [],
          'after: the dump holds no trace of her e-mail, phone, name or card')
    or diag(explain(\@after));
ok(index($dump, $OTHER) >= 0, "the other customer's e-mail is still there");
ok(index($dump, 'Barnaby Other') >= 0, '... and his name');

is(db("SELECT coalesce(email, '-'), coalesce(phone, '-'), coalesce(name, '-'),"
      . " coalesce(card_number, '-'), paid_orders, total_spent,"
      . " forgotten_at IS NOT NULL FROM crm.customer_overview"
      . " WHERE customer_id = $zora"),
   "-|-|-|-|1|120.00|t",
   'the overview: no e-mail, phone, name or card; figures kept; forgotten_at');
is(db("SELECT coalesce(birthday::text, '-') FROM crm.customer"
      . " WHERE customer_id = $zora"), '-', 'her birthday is gone');
is(db("SELECT count(*) FROM crm.relative WHERE customer_id = $zora"), 0,
   'her relatives are gone');
is(db("SELECT count(*) FROM crm.orders WHERE customer_id = $zora"), 1,
   'her order stays');
is(db('SELECT count(*) FROM crm.interactions'), $events,
   'every event stays, as a row');
is(db("SELECT count(*) FROM crm.interactions WHERE payload IS NOT NULL"
      . " AND customer_id IS DISTINCT FROM $zora"), 3,
   "the other customer's three events keep their bodies");
is(db("SELECT count(*) FROM crm.interactions WHERE order_id = 'Z-1'"
      . " AND kind = 'payment' AND state = 'ok'"), 1,
   'kind, order id and state stay');
is(db('SELECT line FROM crm.spool_reject'), $lines[-1],
   "only the other customer's reject line is left");
is(db("SELECT crm.forget_customer('$email')"), 'f',
   'forgetting her again: false');

# -- by customer id ------------------------------------------------------------------

json('/orders', '{"order_id":"I-1","customer":{"email":"ida@example.com",'
     . '"name":"Ida Idlewild"},"total":10}');
written();
my $ida = db("SELECT customer_id FROM crm.customer WHERE email = 'ida\@example.com'");
is(db("SELECT crm.forget_customer($ida)"), 't',
   'forget_customer(customer_id): true');
is(db("SELECT coalesce(email, '-') || coalesce(name, '-') || (forgotten_at"
      . " IS NOT NULL) FROM crm.customer_overview WHERE customer_id = $ida"),
   '--true', '... e-mail and name erased, forgotten_at set');
unlike(dump_db(), qr/idlewild|ida\@example/i, '... and gone from the dump');
is(db("SELECT crm.forget_customer($ida)"), 'f', '... again: false');

# -- by phone ------------------------------------------------------------------------

json('/orders', '{"order_id":"P-1","customer":{"email":"pia@example.com",'
     . '"phone":"+49 151 2345 6789"}}');
json('/orders', '{"order_id":"S-1","customer":{"email":"sam@example.com",'
     . '"phone":"030 123 4567"}}');
json('/orders', '{"order_id":"S-2","customer":{"email":"sue@example.com",'
     . '"phone":"030-1234567"}}');
written();
my $pia = db("SELECT customer_id FROM crm.customer WHERE email = 'pia\@example.com'");
is(db("SELECT crm.forget_customer('+49 (151) 2345-6789')"), 't',
   'forget_customer(phone) of the one customer with it: true');
is(db("SELECT forgotten_at IS NOT NULL FROM crm.customer WHERE customer_id = $pia"),
   't', '... it is her');
unlike(dump_db(), qr/4915123456789|pia\@example/, '... gone from the dump');

ok(!eval { psql("SELECT crm.forget_customer('0301234567')"); 1 },
   'a phone two customers share: an error');
like($@, qr/ERROR:  crm: 2 customers have the phone 0301234567: forget by customer id/,
     '... naming the phone, telling to forget by customer id');
is(db("SELECT count(*) FROM crm.customer WHERE phone = '0301234567'"
      . " AND forgotten_at IS NULL"), 2, '... and forgetting nobody');

my $sam = db("SELECT customer_id FROM crm.customer WHERE email = 'sam\@example.com'");
is(db("SELECT crm.forget_customer($sam)"), 't', 'forget one of them by id');
is(db("SELECT count(*) FROM crm.interactions WHERE order_id = 'S-2'"
      . " AND payload ->> 'customer' LIKE '%sue\@example.com%'"), 1,
   '... the other one with that phone keeps her order');
is(db("SELECT crm.forget_customer('030 123 45 67')"), 't',
   'now the phone names one customer: forgotten');

# -- nobody -------------------------------------------------------------------------

is(db("SELECT crm.forget_customer('nobody\@example.com')"), 'f',
   'an unknown e-mail: false');
is(db("SELECT crm.forget_customer(987654321)"), 'f', 'an unknown id: false');
is(db("SELECT crm.forget_customer('+1 555 0100 999')"), 'f',
   'an unknown phone: false');
is(db("SELECT crm.forget_customer('12')"), 'f', 'not a phone: false');

is(db(q{SELECT count(*) FROM pg_proc
         WHERE oid IN ('crm.forget_customer(bigint)'::regprocedure,
                       'crm.forget_customer(text)'::regprocedure)
           AND obj_description(oid, 'pg_proc') IS NOT NULL})
   + db(q{SELECT count(*) FROM pg_description
           WHERE objoid = 'crm.customer_overview'::regclass
             AND objsubid = (SELECT attnum FROM pg_attribute
                              WHERE attrelid = 'crm.customer_overview'::regclass
                                AND attname = 'forgotten_at')}), 3,
   'both functions and the new column have a COMMENT');

done_testing();
