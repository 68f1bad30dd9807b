# The personal banner (issue 10) through nginx and PostgreSQL: a customer
# known by her signed cookie gets one banner in the shop's HTML pages,
# decided from shared memory (the first view fills it in the background);
# the page around it is untouched byte for byte; every other response (no
# cookie, a forged one, gzip, JSON, 404, HEAD, a page with no place) is
# passed as it was.  Headers of a personal page; no revalidation of one;
# escaping of a hostile name; </body> split across the shop's writes;
# max_per_day; impressions recorded; the holdout's would_show.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test schema => 1;
use CRM::Shop;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep);

my $SHOP = CRM::Shop->start->port;
my $J = JSON::PP->new->canonical;

# --- the shop's pages: a tiny HTML upstream ---------------------------------
#
# GET /p/NAME answers the page NAME below; the page says which conditional
# headers reached it.  /p/split writes the page in pieces with pauses.

my $BODY = "<html><head><title>Shop</title></head>\n<body>\n<h1>Welcome</h1>"
         . "\n<p>Our tea.</p>\n</body>\n</html>\n";

my %PAGES = (
    plain  => [ 'text/html; charset=utf-8', $BODY ],
    marker => [ 'text/html', "<html><body><header><!--crm-banner--></header>"
                             . "<p>x</p></body></html>" ],
    caps   => [ 'text/html', "<HTML><BODY><P>x</P></BODY></HTML>" ],
    none   => [ 'text/html', "<p>no body end here</p>" ],
    json   => [ 'application/json', '{"a":"</body>"}' ],
    gzip   => [ 'text/html', $BODY, 'Content-Encoding: gzip' ],
    cached => [ 'text/html', $BODY,
                "Cache-Control: public, max-age=60, s-maxage=600\r\n"
                . "ETag: \"v1\"\r\nLast-Modified: Tue, 01 Dec 2026 10:00:00 GMT" ],
    big    => [ 'text/html', "<html><body>" . ("<p>tea &amp; cake</p>\n" x 10000)
                             . "</body></html>\n" ],
    huge   => [ 'text/html', "<html><body>" . ("<p>tea &amp; cake</p>\n" x 300000)
                             . "</body></html>\n" ],
    nocache => [ 'text/html', $BODY,
                 "Cache-Control: no-cache,no-store,must-revalidate,max-age=0\r\n"
                 . "Surrogate-Control: max-age=600\r\nCDN-Cache-Control: max-age=600" ],
    manycc => [ 'text/html', $BODY, 'Cache-Control: ' . join(',', ('a') x 1990) ],
);

my $PAGE_PORT = CRM::Test::free_port();
my $page_pid = fork // die "fork: $!";
if ($page_pid == 0) {
    $SIG{$_} = 'DEFAULT' for qw(TERM INT HUP);
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
        LocalPort => $PAGE_PORT, Listen => 64, ReuseAddr => 1) or POSIX::_exit(1);
    $SIG{CHLD} = 'IGNORE';
    while (my $c = $l->accept) {
        next if fork;
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            my $n = sysread($c, $head, 8192, length $head) or POSIX::_exit(0);
        }
        my ($line, @lines) = split /\r\n/, (split /\r\n\r\n/, $head)[0];
        my (undef, $uri) = split / /, $line;
        my %h = map { my ($k, $v) = split /:\s*/, $_, 2; (lc $k, $v) } @lines;
        my ($name) = $uri =~ m{^/p/(\w+)};
        my $cond = join ',', map { "$_=" . ($h{$_} // '') }
                   grep { exists $h{$_} } qw(if-none-match if-modified-since);
        if ($name && $name eq 'split') {
            print $c "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                   . "Connection: close\r\n\r\n";
            $c->autoflush(1);
            for my $piece ("<html><body><p>x</p><", "/bo", "DY", ">\n</ht",
                           "ml>\n") {
                print $c $piece;
                sleep 0.15;
            }
            POSIX::_exit(0);
        }
        my $p = $PAGES{$name || ''};
        my ($status, $type, $body, $extra) = $p ? (200, @$p)
            : (404, 'text/html', "<html><body>not here</body></html>");
        $body =~ s{</h1>}{</h1><!-- seen: $cond -->} if $cond;
        print $c "HTTP/1.1 $status X\r\nContent-Type: $type\r\n"
               . ($extra ? "$extra\r\n" : '')
               . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n"
               . ($uri =~ /^HEAD/ ? '' : $body);
        POSIX::_exit(0);
    }
    POSIX::_exit(0);
}
END { kill 'TERM', $page_pid if $page_pid }

my $policy = <<'YAML';
version: 1
database:
  conninfo: "$CRM_CONNINFO"
  spool: $SPOOL
  timeout: 2s
  connections: 2
cache:
  size: 1m
  ttl: 1s
identity:
  cookie: crm
  secret_file: $SERVROOT/conf/crm.secret
fields:
  order_id: /order_id
  email: /customer/email
  name: /customer/name
loyalty:
  promise:
    valid_for: 30d
    max_discount: 20
surprises:
  probability: 0
banners:
  - id: bday
    when: birthday
    days_before: 1
    days_after: 1
    gift: 10
    max_per_day: 100
    template: '<div class="crm">Happy birthday, {relative}!</div>'
  - id: late
    when: order_delayed
    template: '<div class="crm">Sorry {name}, order {order_id} is late: {eta}.</div>'
  - id: ready
    when: discount_ready
    max_per_day: 13
    template: '<div class="crm">{name}, {discount}% off your next order.</div>'
YAML

my $config = <<"CONF";
location /p/ {
    crm_banner on;
    add_header X-Banner \$crm_banner;
    proxy_pass http://127.0.0.1:$PAGE_PORT;
}
location /off/ {
    proxy_pass http://127.0.0.1:$PAGE_PORT/p/;
}
location /c/ {
    crm_banner on;
    proxy_cache pages;
    proxy_cache_valid 200 1m;
    add_header X-Cache \$upstream_cache_status;
    proxy_pass http://127.0.0.1:$PAGE_PORT/p/;
}
location /s/ {
    crm_banner on;
}
location /e/ {
    crm_banner on;
    expires 1h;
    add_header Cache-Control "public, max-age=600";
    proxy_pass http://127.0.0.1:$PAGE_PORT/p/;
}
location /g/ {
    crm_banner on;
    gzip on;
    gzip_types text/html;
    gzip_min_length 0;
    proxy_pass http://127.0.0.1:$PAGE_PORT/p/;
}
location = /orders {
    crm_capture order;
    proxy_pass http://127.0.0.1:$SHOP;
}
location = /crm { crm_status; }
CONF

CRM::Test::spew(servroot() . '/conf/crm.secret', ('b' x 40) . "\n");

mkdir servroot() . '/html/s';
CRM::Test::spew(servroot() . '/html/s/page.html', $BODY);

ok(start_nginx({ policy => $policy, config => $config,
                 http_config => 'proxy_cache_path ' . servroot()
                                . '/tmp/cache keys_zone=pages:1m;' }),
   'nginx starts with crm_banner on');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 10),
   'connected to PostgreSQL');

sub db { my $r = psql($_[0]); chomp $r; $r }

sub settle {
    wait_for(sub { (http_get('/crm'))[2] =~ /"spool":\{"bytes":0\}/ }, 10);
    select(undef, undef, undef, 0.1);
}

# a new customer through an order; returns (customer id, cookie)
sub customer {
    my ($email, $name) = @_;
    my $body = $J->encode({ order_id => "O-$email", total => 10,
                            customer => { email => $email, name => $name } });
    my (undef, $h) = http_request('POST', '/orders',
        { 'Content-Type' => 'application/json' }, $body);
    my ($cookie) = ($h->{'set-cookie'} || '') =~ /^(crm=[^;]+)/;
    settle();
    my $cid = db("SELECT customer_id FROM crm.customer WHERE email = '$email'");
    return ($cid, $cookie);
}

sub page {
    my ($path, %h) = @_;
    return http_request($h{method} || 'GET', $path,
                        { %{ $h{headers} || {} } }, undef);
}

# a page view that fills the state, then one that shows it
sub warm {
    my ($path, $cookie) = @_;
    page($path, headers => { Cookie => $cookie });
    sleep 0.3;
}

my ($anna, $cookie) = customer('anna@example.com', 'Anna <script>alert(1)</script>');
ok($anna && $cookie, "a customer ($anna) with her signed cookie");

# --- nothing applies yet, and no cookie at all ------------------------------

my ($s, $h, $b) = page('/p/plain', headers => { Cookie => $cookie });
is($b, $BODY, 'the first view: no banner (the state is filled meanwhile)');
sleep 0.3;
($s, $h, $b) = page('/p/plain', headers => { Cookie => $cookie });
is($b, $BODY, 'nothing applies to her: the page as the shop sent it');
is($h->{'content-length'}, length $BODY, '... Content-Length kept');

# --- a promise: discount_ready ----------------------------------------------

db("INSERT INTO crm.promise (customer_id, kind, percent, valid_until)"
   . " VALUES ($anna, 'repeat_order', 10, now() + interval '9 days')");
sleep 1.2;                       # cache.ttl 1s: the next view refreshes it
warm('/p/plain', $cookie);
($s, $h, $b) = page('/p/plain', headers => { Cookie => $cookie });
my $banner = '<div class="crm">Anna &lt;script&gt;alert(1)&lt;/script&gt;, '
           . '10% off your next order.</div>';
(my $want = $BODY) =~ s{</body>}{$banner</body>};
is($b, $want, 'an open promise: the banner right before </body>, the name '
   . 'HTML-escaped, every other byte as the shop sent it');
is($h->{'x-banner'}, 'ready', '$crm_banner is its id for add_header');
ok(!exists $h->{'content-length'}, 'no Content-Length on a page that grew');
like($h->{'cache-control'} || '', qr/^private\b/, 'Cache-Control: private');
like($h->{vary} || '', qr/\bCookie\b/, 'Vary: Cookie');

($s, $h, $b) = page('/p/cached', headers => { Cookie => $cookie });
like($b, qr{\Q$banner\E</body>}, 'a cacheable page gets it too');
is($h->{'cache-control'}, 'private, max-age=60',
   '... the shop\'s Cache-Control merged: public and s-maxage dropped, '
   . 'private added');
is($h->{etag}, 'W/"v1"', '... its ETag made weak');
ok(!exists $h->{'last-modified'}, '... Last-Modified removed');

my $nav = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';
($s, $h, $b) = page('/p/cached', headers => { Cookie => $cookie,
    Accept => $nav, 'If-None-Match' => 'W/"v1"',
    'If-Modified-Since' => 'Tue, 01 Dec 2026 10:00:00 GMT' });
is($s, 200, 'a browser revalidating a personal page is answered in full, '
   . 'no 304');
unlike($b, qr/seen:/, '... and its conditions never reached the shop');
like($b, qr{\Q$banner\E</body>}, '... with the banner as it is now');

($s, $h, $b) = page('/p/cached', headers => { 'If-None-Match' => '"v1"' });
like($b, qr/seen: if-none-match="v1"/,
     'without a cookie the conditions reach the shop as before');
($s, $h, $b) = page('/p/cached', headers => { Cookie => $cookie,
    Accept => 'image/avif,image/webp,*/*', 'If-None-Match' => '"v1"' });
like($b, qr/seen: if-none-match="v1"/,
     'with the cookie, a request that is no page view (an image, a script) '
     . 'keeps its conditions');

# --- where it goes ------------------------------------------------------------

($s, $h, $b) = page('/p/marker', headers => { Cookie => $cookie });
is($b, "<html><body><header>$banner<!--crm-banner--></header><p>x</p>"
       . "</body></html>", 'at the <!--crm-banner--> marker when there is one');
($s, $h, $b) = page('/p/caps', headers => { Cookie => $cookie });
is($b, "<HTML><BODY><P>x</P>$banner</BODY></HTML>", '</BODY> in capitals');
($s, $h, $b) = page('/p/split', headers => { Cookie => $cookie });
is($b, "<html><body><p>x</p>$banner</boDY>\n</html>\n",
   '</body> split over three writes of the shop, with pauses');
($s, $h, $b) = page('/p/big', headers => { Cookie => $cookie });
is($b, $PAGES{big}[1] =~ s{</body>}{$banner</body>}r,
   'a 200 KB page: the banner before its </body>, the rest intact');

($s, $h, $b) = page('/s/page.html', headers => { Cookie => $cookie });
is($b, $BODY =~ s{</body>}{$banner</body>}r,
   'a static file (sendfile): the banner too');
($s, $h, $b) = page('/s/page.html', headers => { Cookie => $cookie,
                                                 Range => 'bytes=0-9' });
is($s, 206, 'a range of it: 206');
is($b, substr($BODY, 0, 10), '... untouched');

($s, $h, $b) = page('/c/cached', headers => { Cookie => $cookie });
like($b, qr{\Q$banner\E</body>}, 'through proxy_cache: her banner');
($s, $h, $b) = page('/c/cached');
is($h->{'x-cache'}, 'HIT', 'the next request without a cookie is a cache hit');
unlike($b, qr/class="crm"/, '... and the cached copy holds no banner');
($s, $h, $b) = page('/c/cached', headers => { Cookie => $cookie });
like($b, qr{\Q$banner\E</body>}, '... while her hit gets hers');

# --- passed untouched -----------------------------------------------------------

for my $case ([ 'none', 'a page with no </body> and no marker' ],
              [ 'json', 'JSON' ],
              [ 'gzip', 'a gzip-compressed page' ],
              [ 'nothing', 'a 404' ]) {
    my ($name, $what) = @$case;
    my ($s1, $h1, $b1) = page("/p/$name", headers => { Cookie => $cookie });
    my ($s2, $h2, $b2) = page("/off/$name");
    # a page with no place is only known at its end: its headers are
    # already those of a personal page, its bytes are the shop's
    ok($s1 == $s2 && $b1 eq $b2 && $b1 !~ /class="crm"/
       && ($name eq 'none' || ($h1->{'content-length'} // '')
                              eq ($h2->{'content-length'} // '')),
       "$what: passed as crm_banner off passes it");
}
($s, $h, $b) = page('/p/plain', method => 'HEAD', headers => { Cookie => $cookie });
is($h->{'content-length'}, length $BODY, 'HEAD: untouched');
($s, $h, $b) = page('/p/plain');
is($b, $BODY, 'no cookie: untouched');
is($h->{'content-length'}, length $BODY, '... Content-Length kept');
(my $forged = $cookie) =~ s/.$/$& eq 'A' ? 'B' : 'A'/e;
($s, $h, $b) = page('/p/plain', headers => { Cookie => $forged });
is($b, $BODY, 'a forged cookie: untouched');

# --- the cap and the impressions ----------------------------------------------

settle();
my $shown = db("SELECT count(*) FROM crm.event WHERE kind = 'banner'"
               . " AND customer_id = $anna AND payload ->> 'banner' = 'ready'");
cmp_ok($shown, '>=', 1, "impressions recorded as banner events ($shown)");

my $before = $shown;
my @views = map { (page('/p/plain', headers => { Cookie => $cookie }))[2]
                  =~ /class="crm"/ ? 1 : 0 } 1 .. 4;
is(join('', @views), '1000', 'max_per_day 13: 12 pages had it (the page '
   . 'with no place gave its count back), the 13th shows it, then no more');
settle();
is(db("SELECT count(*) FROM crm.event WHERE kind = 'banner'"
      . " AND customer_id = $anna"), $before + 1, '... and only that one recorded');

# --- the holdout: would_show ------------------------------------------------------

my ($hol, $hcookie) = customer('hol@example.com', 'Hol');
db("UPDATE crm.customer SET holdout = true WHERE customer_id = $hol");
db("INSERT INTO crm.orders (event_id, customer_id, order_id, status, decided,"
   . " decision, eta) VALUES (gen_random_uuid(), $hol, 'H-1', 'delayed', true,"
   . " '{}', 'Friday')");
warm('/p/plain', $hcookie);
($s, $h, $b) = page('/p/plain', headers => { Cookie => $hcookie });
like($b, qr{Sorry Hol, order H-1 is late: Friday\.</div></body>},
     'a holdout customer still sees that her order is late (not a gift)');

# --- birthdays: the gift once; the holdout's would_show ------------------------

my ($bob, $bcookie) = customer('bob@example.com', 'Bob');
db("UPDATE crm.customer SET birthday = current_date - interval '40 years'"
   . " WHERE customer_id = $bob");
warm('/p/plain', $bcookie);
my @bviews = map { (page('/p/plain', headers => { Cookie => $bcookie }))[2] }
             1 .. 3;
is(scalar(grep { m{<div class="crm">Happy birthday, Bob!</div></body>} }
          @bviews), 3, 'his birthday: the birthday banner, on every view');
is(db("SELECT count(*) FROM crm.promise WHERE customer_id = $bob"
      . " AND kind = 'birthday' AND percent = 10"), 1,
   '... and one gift of 10 % promised, however many views');

db("UPDATE crm.customer SET birthday = current_date - interval '30 years'"
   . " WHERE customer_id = $hol");
sleep 1.2;
warm('/p/plain', $hcookie);
($s, $h, $b) = page('/p/plain', headers => { Cookie => $hcookie });
is($b, $BODY, 'a holdout customer\'s birthday: no banner at all (the one '
   . 'she would have seen is the birthday\'s)');
ok(!defined $h->{'x-banner'} || $h->{'x-banner'} eq '',
   '... $crm_banner empty');
settle();
cmp_ok(db("SELECT count(*) FROM crm.event WHERE kind = 'banner' AND"
          . " customer_id = $hol AND payload ->> 'banner' = 'bday' AND"
          . " (payload ->> 'would_show')::boolean"), '>=', 1,
       '... recorded as a would_show exposure');
is(db("SELECT count(*) FROM crm.promise WHERE customer_id = $hol"
      . " AND kind = 'birthday'"), 0, '... and no gift');

# --- headers the shop or nginx set; gzip; a slow client -------------------------

my ($cleo, $ccookie) = customer('cleo@example.com', 'Cleo');
db("INSERT INTO crm.promise (customer_id, kind, percent, valid_until)"
   . " VALUES ($cleo, 'repeat_order', 10, now() + interval '9 days')");
warm('/p/plain', $ccookie);
my $cbanner = '<div class="crm">Cleo, 10% off your next order.</div>';
($s, $h, $b) = page('/p/nocache', headers => { Cookie => $ccookie });
like($b, qr{\Q$cbanner\E</body>}, 'Cleo gets her banner');
is($h->{'cache-control'}, 'private, no-cache, no-store, must-revalidate, max-age=0',
   '... the shop\'s four directives kept, each with ", " (more bytes than '
   . 'it sent)');
ok(!exists $h->{'surrogate-control'} && !exists $h->{'cdn-cache-control'},
   '... Surrogate-Control and CDN-Cache-Control removed');
($s, $h, $b) = page('/p/manycc', headers => { Cookie => $ccookie });
ok($s == 200 && $b =~ /\Q$cbanner\E/
   && ($h->{'cache-control'} || '') =~ /^private, a, a, /,
   'a Cache-Control of 1990 directives: merged whole, no crash');
($s, $h, $b) = page('/e/plain', headers => { Cookie => $ccookie });
like($h->{'cache-control'} || '', qr/^private, max-age=3600, max-age=600$/,
     'expires and add_header Cache-Control in the location: still private, '
     . 'their public dropped');
like($b, qr{\Q$cbanner\E</body>}, '... with the banner');

settle();
my $before_gz = db("SELECT count(*) FROM crm.event WHERE kind = 'banner'"
                   . " AND customer_id = $cleo");
my ($gs, $gh, $gz) = http_request('GET', '/g/plain',
    { Cookie => $ccookie, 'Accept-Encoding' => 'gzip' }, undef);
is($gh->{'content-encoding'}, 'gzip', 'gzip on in the location: compressed');
my $unz = '';
{
    require IO::Uncompress::Gunzip;
    IO::Uncompress::Gunzip::gunzip(\$gz => \$unz);
}
is($unz, $BODY =~ s{</body>}{$cbanner</body>}r,
   '... after the banner was put in');
settle();
is(db("SELECT count(*) FROM crm.event WHERE kind = 'banner'"
      . " AND customer_id = $cleo"), $before_gz + 1,
   '... and its impression recorded');

# a client that reads a 6 MB page only after 2 s still gets all of it
{
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => CRM::Test::server_port())
        or die "connect: $!";
    print $sock "GET /p/huge HTTP/1.0\r\nHost: localhost\r\nCookie: $ccookie\r\n"
              . "\r\n";
    sleep 2;
    my ($got, $t0) = ('', Time::HiRes::time());
    $sock->blocking(0);
    while (Time::HiRes::time() - $t0 < 10 * CRM::Test::timeout_factor()) {
        my $n = sysread($sock, $got, 1 << 20, length $got);
        last if defined $n && $n == 0;
        sleep 0.01 unless $n;
    }
    my ($body) = $got =~ /\r\n\r\n(.*)\z/s;
    ok(length($body // '') == length($PAGES{huge}[1]) + length($cbanner)
       && $body =~ /\Q$cbanner\E<\/body><\/html>\n\z/,
       sprintf('a client reading a 6 MB banner page after 2 s gets it all '
               . '(%d bytes in %.1f s)', length($body // ''),
               Time::HiRes::time() - $t0));
}

# a client that leaves before the banner's bytes were sent: no impression
{
    use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF inet_aton
                  pack_sockaddr_in);
    settle();
    my $before = db("SELECT count(*) FROM crm.event WHERE kind = 'banner'"
                    . " AND customer_id = $cleo");
    socket(my $sock, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
    # a small window: the kernels cannot take the whole 6 MB page for it
    setsockopt($sock, SOL_SOCKET, SO_RCVBUF, 4096) or die "setsockopt: $!";
    connect($sock, pack_sockaddr_in(CRM::Test::server_port(),
                                    inet_aton('127.0.0.1')))
        or die "connect: $!";
    syswrite($sock, "GET /p/huge HTTP/1.0\r\nHost: localhost\r\n"
                    . "Cookie: $ccookie\r\n\r\n");
    my $got = '';
    while (length $got < 65536) {
        my $n = sysread($sock, $got, 65536, length $got);
        last unless $n;
    }
    close $sock;
    cmp_ok(length $got, '>=', 65536, 'a client reads 64 KB of the 6 MB page and leaves');
    sleep 1;
    settle();
    is(db("SELECT count(*) FROM crm.event WHERE kind = 'banner'"
          . " AND customer_id = $cleo"), $before,
       '... before the banner\'s bytes were sent: no impression recorded');
}

# --- crm_status -------------------------------------------------------------------

my $st = $J->decode((http_get('/crm'))[2]);
cmp_ok($st->{banners}{impressions}, '>=', 11,
       "crm_status: impressions ($st->{banners}{impressions})");
cmp_ok($st->{banner_ids}{ready}{shown}, '>=', 7, '... by banner id');
cmp_ok($st->{banner_ids}{bday}{would_show}, '>=', 1,
       '... would_show exposures by banner id');
my $sk = $st->{banners};
ok($sk->{no_cookie} >= 2 && $sk->{compressed} >= 1 && $sk->{no_place} >= 1
   && $sk->{capped} >= 3 && $sk->{not_html} >= 1 && $sk->{cache_miss} >= 1,
   '... and the pages skipped, by reason')
    or diag $J->encode($sk);

error_log_clean(0, name => 'error log clean');

# --- a second node: a change made elsewhere shows within 2 s ------------------
#
# node B: the same policy with its own spool and a cache.ttl of an hour, so
# that only the NOTIFY of the change can make it look the customer up again

my $dir = servroot();
my $PORT_B = CRM::Test::free_port();
mkdir "$dir/b"; mkdir "$dir/b/logs"; mkdir "$dir/b/conf";
(my $policy_b = CRM::Test::slurp(CRM::Test::policy_file()))
    =~ s{^(\s*spool:\s*)\S+}{$1$dir/spool-b}m;
$policy_b =~ s{^(\s*ttl:\s*)\S+}{${1}1h}m;
CRM::Test::spew("$dir/b/conf/policy.yaml", $policy_b);
my $conf_b = CRM::Test::slurp("$dir/conf/nginx.conf");
$conf_b =~ s{listen 127\.0\.0\.1:\d+}{listen 127.0.0.1:$PORT_B};
$conf_b =~ s{crm_policy \S+;}{crm_policy $dir/b/conf/policy.yaml;};
CRM::Test::spew("$dir/b/conf/nginx.conf", $conf_b);
sub nginx_b { return CRM::Test::nginx_in("$dir/b", @_) }
my ($rc_b) = nginx_b();
END { nginx_b('-s', 'stop') if $dir && -f "$dir/b/logs/nginx.pid" }
is($rc_b, 0, 'a second nginx node on the same PostgreSQL');

sub page_b {
    my ($path, $c) = @_;
    return (http_request('GET', $path, { Cookie => $c }, undef,
                         port => $PORT_B))[2];
}

ok(wait_for(sub { page_b('/p/plain', $bcookie) =~ /Happy birthday, Bob!/ },
            10), 'node B shows Bob his birthday banner');
db("UPDATE crm.customer SET birthday = NULL WHERE customer_id = $bob");
my $t0 = Time::HiRes::time();
ok(wait_for(sub { page_b('/p/plain', $bcookie) =~ /Bob, 10% off/ }, 5),
   'staff remove his birthday in psql: node B shows the next banner (his '
   . 'gift, ready) without waiting for its hour-long cache.ttl');
my $took = Time::HiRes::time() - $t0;
cmp_ok($took, '<', 2, sprintf('... within 2 s (%.2f s)', $took));

# --- a reload keeps the state; PostgreSQL down ---------------------------------

is(reload_nginx(), 1, 'reload: new workers');
($s, $h, $b) = page('/p/plain', headers => { Cookie => $bcookie });
like($b, qr/Bob, 10% off/,
     'after a reload his state is still in shared memory: no miss');
pg_stop();
sleep 1.2;
($s, $h, $b) = page('/p/plain', headers => { Cookie => $bcookie });
like($b, qr/Bob, 10% off/,
     'PostgreSQL down: a customer whose state is cached still gets it');
($s, $h, $b) = page('/p/plain', headers => { Cookie => $cookie });
is($s, 200, '... and every page is served');
pg_start();
nginx_b('-s', 'stop');
ok(wait_for(sub { !-f "$dir/b/logs/nginx.pid" }, 30), 'node B stops');
ok(wait_for(sub { (http_get('/crm'))[2] =~ /"up":[1-9]/ }, 30),
   'PostgreSQL back: connected again');
# the lookups sent while it was down end (database.timeout 2s) before the
# end of the file stops nginx
sleep 2.5 * CRM::Test::timeout_factor();

done_testing();
