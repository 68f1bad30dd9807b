package CRM::Shop;

=head1 NAME

CRM::Shop - a tiny shop upstream for the tests: it answers every request
with what it received, so a test sees what reached the shop.

=head1 SYNOPSIS

    use CRM::Shop;
    my $shop = CRM::Shop->start;          # a free loopback port
    # nginx: proxy_pass http://127.0.0.1:$shop->{port};
    ...
    $shop->stop;                          # also done at exit

Every answer is C<200> (or the status in the request header C<X-Shop-Status>)
with a JSON body:

    {"method":"POST","uri":"/orders","length":123,"md5":"...",
     "body":"<the body when shorter than 4096 bytes>",
     "headers":{"x-crm-state":"ok", ...}}

C<X-Shop-Delay: SECONDS> makes it wait before answering;
C<X-Shop-Header: Name: value> adds that header to the answer.  It serves one
connection at a time per process and forks a process per connection, so
slow answers do not hold the others.

=cut

use strict;
use warnings;

use Digest::MD5 qw(md5_hex);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep);

my @Shops;

sub start {
    my ($class, %opt) = @_;

    my $listen = IO::Socket::INET->new(
        LocalAddr => '127.0.0.1', LocalPort => $opt{port} || 0,
        Proto => 'tcp', Listen => 128, ReuseAddr => 1,
    ) or die "shop: cannot listen: $!\n";

    my $port = $listen->sockport;
    my $pid = fork;
    die "shop: fork: $!\n" unless defined $pid;

    if ($pid == 0) {
        $SIG{CHLD} = 'IGNORE';
        $SIG{TERM} = sub { POSIX::_exit(0) };
        while (my $c = $listen->accept) {
            my $child = fork;
            if (defined $child && $child == 0) {
                close $listen;
                serve($c);
                POSIX::_exit(0);
            }
            close $c;
        }
        POSIX::_exit(0);
    }

    close $listen;
    my $self = bless { pid => $pid, port => $port }, $class;
    push @Shops, $self;
    return $self;
}

sub port { $_[0]{port} }

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'TERM', $self->{pid};
    waitpid $self->{pid}, 0;
    $self->{pid} = 0;
}

END { $_->stop for grep { $_->{pid} } @Shops }

sub json_str {
    my ($s) = @_;
    $s =~ s/(["\\])/\\$1/g;
    $s =~ s/([\x00-\x1f])/sprintf('\\u%04x', ord $1)/ge;
    return qq("$s");
}

# one connection, keep-alive until the peer closes
sub serve {
    my ($c) = @_;
    binmode $c;

    while (1) {
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            my $n = sysread($c, $head, 8192, length $head);
            return unless $n;
        }

        my ($top, $rest) = split /\r\n\r\n/, $head, 2;
        my ($line, @lines) = split /\r\n/, $top;
        my ($method, $uri) = split / /, $line;
        my %h;
        for (@lines) {
            my ($k, $v) = split /:\s*/, $_, 2;
            $h{lc $k} = defined $h{lc $k} ? "$h{lc $k}, $v" : $v;
        }

        my $body = $rest;
        if (defined $h{'content-length'}) {
            while (length $body < $h{'content-length'}) {
                my $n = sysread($c, $body, 65536, length $body);
                return unless $n;
            }
        } elsif (($h{'transfer-encoding'} || '') =~ /chunked/i) {
            $body = dechunk($c, $body);
            return unless defined $body;
        }

        sleep $h{'x-shop-delay'} if $h{'x-shop-delay'};

        my $headers = join ',', map { json_str($_) . ':' . json_str($h{$_}) }
                                sort keys %h;
        my $out = '{"method":' . json_str($method) . ',"uri":' . json_str($uri)
                . ',"length":' . length($body) . ',"md5":"' . md5_hex($body) . '"'
                . (length $body < 4096 ? ',"body":' . json_str($body) : '')
                . ',"headers":{' . $headers . "}}\n";

        my $status = $h{'x-shop-status'} || 200;
        my $close = ($h{connection} || '') =~ /close/i;
        my $extra = defined $h{'x-shop-header'} ? "$h{'x-shop-header'}\r\n" : '';
        print $c "HTTP/1.1 $status X\r\nContent-Type: application/json\r\n" . $extra
               . "Content-Length: " . length($out) . "\r\n"
               . ($close ? "Connection: close\r\n" : '') . "\r\n" . $out;
        return if $close;
    }
}

sub dechunk {
    my ($c, $buf) = @_;
    my $body = '';
    while (1) {
        while ($buf !~ /\r\n/) {
            sysread($c, $buf, 65536, length $buf) or return undef;
        }
        $buf =~ s/^([0-9a-fA-F]+)[^\r]*\r\n// or return undef;
        my $size = hex $1;
        while (length $buf < $size + 2) {
            sysread($c, $buf, 65536, length $buf) or return undef;
        }
        $body .= substr($buf, 0, $size);
        substr($buf, 0, $size + 2) = '';
        return $body if $size == 0;
    }
}

1;
