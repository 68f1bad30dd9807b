# The schema version the module requires is the last migration of sql/: a
# migration added without raising NGX_HTTP_CRM_SCHEMA_VERSION would let the
# module run on a database that lacks it.
use strict;
use warnings;
use FindBin;
use Test::More;

my $root = "$FindBin::Bin/..";
my ($last) = sort { $b <=> $a }
             map { m{/(\d{3})_[^/]+\.sql$} ? 0 + $1 : () } glob "$root/sql/*.sql";
open my $h, '<', "$root/ngx_crm_module/ngx_http_crm_pg.h" or die "pg.h: $!";
my ($required) = join('', <$h>) =~ /#define\s+NGX_HTTP_CRM_SCHEMA_VERSION\s+(\d+)/;

ok($last, "the last migration of sql/ is $last");
is($required, $last,
   'NGX_HTTP_CRM_SCHEMA_VERSION (ngx_http_crm_pg.h) is the last migration');

done_testing();
