# ./config.sh db on a real PostgreSQL, as an operator runs it on a live
# database: a second run changes nothing, two nodes applying at once both
# succeed with one schema, a module waiting for the schema finds the
# functions with the version, a database built by the migrations of before
# sql/fn_*.sql (which defined the functions themselves) comes out as a fresh
# one, and every function and view of schema crm has a COMMENT.  No nginx.
use FindBin;
use lib "$FindBin::Bin/lib";
use CRM::Test no_module => 1, schema => 1;
use POSIX ();

my $Root = "$FindBin::Bin/..";

pg_start();


# --- helpers -----------------------------------------------------------------

sub conninfo_of { return "host=127.0.0.1 port=" . pg_port() . " dbname=$_[0] user=postgres" }

sub create_db {
    my ($db) = @_;
    psql("DROP DATABASE IF EXISTS $db", 'postgres');
    psql("CREATE DATABASE $db", 'postgres');
    return $db;
}

# ./config.sh db on $db: (exit code, what it said)
sub apply {
    my ($db) = @_;
    my ($rc, $out, $err) = CRM::Test::run_cmd(
        cmd => ["$Root/config.sh", 'db', conninfo_of($db)], dir => $Root);
    return ($rc, $out . $err);
}

# the schema as pg_dump --schema-only writes it (without the random key of
# \restrict, which differs on every run)
sub dump_of {
    my ($db) = @_;
    my ($rc, $out, $err) = CRM::Test::run_cmd(
        cmd => [CRM::Test::pg_bin('pg_dump') || 'pg_dump', '--schema-only',
                '-h', '127.0.0.1', '-p', pg_port(), '-U', 'postgres', $db]);
    die "pg_dump $db failed ($rc): $err" if $rc;
    $out =~ s/^\\(un)?restrict .*\n//mg;
    return $out;
}

# the lines of dump a that b lacks and the other way round, for a diagnosis
sub dump_diff {
    my ($a, $b) = @_;
    my (%a, %b);
    $a{$_}++ for split /\n/, $a;
    $b{$_}++ for split /\n/, $b;
    my @d = ((map { "- $_" } grep { !$b{$_} } sort keys %a),
             (map { "+ $_" } grep { !$a{$_} } sort keys %b));
    return join "\n", @d[0 .. ($#d < 40 ? $#d : 39)];
}

sub same_schema {
    my ($got, $want, $name) = @_;
    ok($got eq $want, $name) or diag(dump_diff($want, $got));
}

# ./config.sh db on $db from $n processes at once: their (rc, output)
sub apply_at_once {
    my ($db, $n) = @_;
    my $dir = CRM::Test::servroot() . '/tmp';
    my @kids;
    for my $i (1 .. $n) {
        my $pid = fork;
        die "fork: $!\n" unless defined $pid;
        if ($pid == 0) {
            open STDOUT, '>', "$dir/race-$i.out";
            open STDERR, '>&', \*STDOUT;
            chdir $Root;
            { exec("$Root/config.sh", "db", conninfo_of($db)) }
            POSIX::_exit(127);
        }
        push @kids, $pid;
    }
    my @res;
    for my $i (1 .. $n) {
        waitpid $kids[$i - 1], 0;
        push @res, [$? >> 8, CRM::Test::slurp("$dir/race-$i.out")];
    }
    return @res;
}

my $fresh = dump_of('crm');       # built by CRM::Test with ./config.sh db
my $last = (sort { $a <=> $b } map { m{/(\d{3})_[^/]+\.sql$} ? 0 + $1 : () }
            glob "$Root/sql/*.sql")[-1];


# -- a second run changes nothing -----------------------------------------------

{
    my ($rc, $out) = apply('crm');
    is($rc, 0, 'a second ./config.sh db succeeds') or diag($out);
    unlike($out, qr/applied \d{3}_/, 'and applies no migration again');
    like($out, qr/applied fn_\w+.* views_staff/,
         'but the functions and views again');
    same_schema(dump_of('crm'), $fresh, 'and the schema is as it was');
    is(psql('SELECT count(*), max(version) FROM crm.schema_version'),
       "$last|$last\n", "one crm.schema_version row a migration, up to $last");
}


# -- two nodes applying at once ----------------------------------------------------

for my $round (1 .. 3) {
    create_db('race');
    my @res = apply_at_once('race', 2);
    is_deeply([map { $_->[0] } @res], [0, 0],
              "round $round: two ./config.sh db at once both succeed")
        or diag(join "\n", map { $_->[1] } @res);
    my @applied = map { scalar(() = $_->[1] =~ /applied \d{3}_/g) } @res;
    is($applied[0] + $applied[1], $last,
       "round $round: each migration applied by one of them");
    same_schema(dump_of('race'), $fresh, "round $round: one schema");
}

{
    my @res = apply_at_once('race', 2);
    is_deeply([map { $_->[0] } @res], [0, 0],
              'two at once on an up-to-date database both succeed')
        or diag(join "\n", map { $_->[1] } @res);
    same_schema(dump_of('race'), $fresh, 'and the schema is as it was');
}


# -- a module waiting for the schema finds its functions with the version ----------

# The module polls crm.schema_version and, once it is new enough, calls the
# functions at once: they must come in the same commit as the last version.
{
    create_db('watch');
    my $poll = <<SQL;
SELECT to_regclass('crm.schema_version') IS NOT NULL AS have \\gset
\\if :have
SELECT coalesce(max(version), 0) >= $last AS done,
       coalesce(max(version), 0) >= $last
       AND (to_regprocedure('crm.register_policy(text, jsonb)') IS NULL
            OR to_regprocedure('crm.decide_order(jsonb, text)') IS NULL
            OR to_regclass('crm.interactions') IS NULL) AS without
  FROM crm.schema_version;
\\endif
SQL
    my $file = CRM::Test::servroot() . '/tmp/watch.sql';
    CRM::Test::spew($file, $poll);
    my @psql = (CRM::Test::pg_bin('psql') || 'psql', '-X', '-q', '-A', '-t',
                '-d', conninfo_of('watch'), '-f', $file);
    my $pid = fork;
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {            # polls as the module does, one session a poll
        my $t0 = time;
        while (time < $t0 + 60) {
            open my $h, '-|', @psql or POSIX::_exit(3);
            my $r = join '', <$h>;
            close $h;
            POSIX::_exit(1) if $r =~ /\|t$/m;
            POSIX::_exit(0) if $r =~ /^t\|/m;
        }
        POSIX::_exit(2);
    }
    select undef, undef, undef, 0.2;        # let it start polling
    my ($rc, $out) = apply('watch');
    is($rc, 0, './config.sh db on a database a module waits on') or diag($out);
    waitpid $pid, 0;
    is($? >> 8, 0, "the version $last comes with its functions and views")
        or diag('exit ' . ($? >> 8) . ': 1, the version without them; 2, no version');
}


# -- a database built by the migrations of before sql/fn_*.sql ---------------------

# The commit before sql/views_staff.sql came: its sql/NNN_*.sql defined the
# functions and views themselves, and later ones replaced earlier ones.
my ($added) = `cd '$Root' && git log --format=%H --diff-filter=A -1 -- sql/views_staff.sql 2>/dev/null`
    =~ /^([0-9a-f]{40})$/m;

SKIP: {
    skip 'not a git checkout: no old sql/ to build from', 1 + 3 * 10
        unless $added;
    my $old = "$added^";
    my @files = grep { m{^sql/\d{3}_\w+\.sql$} }
                split /\n/, `cd '$Root' && git ls-tree --name-only $old sql/`;
    is(scalar @files, 10, 'the old sql/ had migrations 001..010');

    for my $v (1 .. 10) {
        # the database at version $v as the old ./config.sh db left it
        my $db = create_db("old$v");
        for my $f (@files) {
            my ($n, $name) = $f =~ m{/(\d{3})_(\w+)\.sql$};
            last if $n > $v;
            my $sql = `cd '$Root' && git show $old:$f`;
            psql("BEGIN;\n$sql\n;INSERT INTO crm.schema_version (version, name)"
                 . " VALUES ($n, '$name');\nCOMMIT;", $db);
        }
        is(psql('SELECT max(version) FROM crm.schema_version', $db), "$v\n",
           "old version $v: built by the old migrations");
        my ($rc, $out) = apply($db);
        is($rc, 0, "old version $v: ./config.sh db succeeds") or diag($out);
        same_schema(dump_of($db), $fresh,
                    "old version $v: the schema is the fresh one");
    }
}


# -- every function and view has a COMMENT -----------------------------------------

{
    my $none = psql(<<'SQL');
SELECT p.oid::regprocedure::text
  FROM pg_proc p
 WHERE p.pronamespace = 'crm'::regnamespace
   AND obj_description(p.oid, 'pg_proc') IS NULL
UNION ALL
SELECT c.oid::regclass::text
  FROM pg_class c
 WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'v'
   AND obj_description(c.oid, 'pg_class') IS NULL
SQL
    is($none, '', 'every function and view of schema crm has a COMMENT');
    my $n = psql(<<'SQL');
SELECT (SELECT count(*) FROM pg_proc
         WHERE pronamespace = 'crm'::regnamespace)
       || ' ' ||
       (SELECT count(*) FROM pg_class
         WHERE relnamespace = 'crm'::regnamespace AND relkind = 'v')
SQL
    like($n, qr/^[1-9]\d* 9$/, "($n functions and views looked at)");
}


done_testing();
