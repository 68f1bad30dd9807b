#!/usr/bin/perl

# Unit tests of the signed customer cookie (ngx_crm_module/
# ngx_http_crm_cookie.c): compiles t/unit/cookie.c with it and libcrypto
# into a temporary directory and passes the program's TAP through.
# CRM_TEST_VALGRIND=1 runs it under valgrind, whose errors and leaks then
# fail the test.  CC picks the compiler (cc).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);

my $root = dirname(dirname(abs_path(__FILE__)));
my $dir = tempdir('crm-unit-cookie-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $bin = "$dir/cookie";

my @cc = (
    $ENV{CC} || 'cc',
    qw(-Wall -Wextra -Werror -O1 -g),
    '-I', "$root/ngx_crm_module",
    "$root/t/unit/cookie.c", "$root/ngx_crm_module/ngx_http_crm_cookie.c",
    '-o', $bin, '-lcrypto',
);

# valgrind 3.19 (Debian 12) cannot read clang 14's default DWARF 5
push @cc, '-gdwarf-4' if $ENV{CRM_TEST_VALGRIND};

if (system(@cc) != 0) {
    print "Bail out! cannot compile t/unit/cookie.c: @cc\n";
    exit 255;
}

my @run = ($bin);

if ($ENV{CRM_TEST_VALGRIND}) {
    unshift @run, 'valgrind', '-q', '--error-exitcode=99',
        '--leak-check=full', '--errors-for-leak-kinds=definite,indirect';
}

open(my $tap, '-|', @run) or die "cannot run $bin: $!\n";

$| = 1;
print while <$tap>;

close($tap);

# a failed close sets $?; $! too when the close itself failed
my $status = $? >> 8;

if ($? & 127) {
    print "# $bin killed by signal ", $? & 127, "\n";
    exit 255;
}

if ($status == 99) {
    print "# valgrind found errors in $bin\n";
}

exit $status;
