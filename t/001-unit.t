#!/usr/bin/perl

# The C unit tests of t/unit (pure C, no nginx): builds them with
# `make -C t/unit` and passes their TAP on, numbered as one test file, so
# `prove t/001-unit.t` shows every unit result.
#
# CRM_TEST_VALGRIND=1 runs each program under valgrind; a leak or an
# invalid access fails the file.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);

my $root = abs_path(dirname(abs_path(__FILE__)) . '/..');
my $unit = "$root/t/unit";
my @programs = qw(policy body cookie template calendar inject inject_portable);

$ENV{CRM_ROOT} = $root;

my $n = 0;

my $build = qx{make -s -C \Q$unit\E all 2>&1};

if ($? != 0) {
    print "not ok 1 - make -C t/unit\n";
    print map { "# $_\n" } split /\n/, $build;
    print "1..1\n";
    exit 1;
}

my @valgrind = $ENV{CRM_TEST_VALGRIND}
    ? qw(valgrind -q --leak-check=full --error-exitcode=99)
    : ();

for my $program (@programs) {
    my @cmd = (@valgrind, "$unit/$program");

    my $failed = 0;

    open(my $out, '-|', @cmd) or die "cannot run $cmd[0]: $!\n";

    while (my $line = <$out>) {
        chomp $line;

        if ($line =~ /^(not )?ok\s+\d+(.*)$/) {
            $n++;
            $failed++ if defined $1;
            print(($1 // ''), "ok $n$2\n");

        } elsif ($line =~ /^1\.\.\d+/) {
            next;

        } elsif ($line =~ /^Bail out!/) {
            print "$line\n";
            exit 255;

        } else {
            print "$line\n";
        }
    }

    close($out);

    # exit 1 after failed tests says nothing new; anything else does

    if ($? != 0 && ($? & 127 || $? >> 8 != 1 || !$failed)) {
        my $status = $? & 127 ? "signal " . ($? & 127) : "status " . ($? >> 8);
        $n++;
        print "not ok $n - t/unit/$program exited with $status\n";
    }
}

print "1..$n\n";
