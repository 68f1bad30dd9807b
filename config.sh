#!/usr/bin/env bash
# ngx_crm: the one entry script.  ./config.sh help lists the commands.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD="$ROOT/build"
NGINX_DEV_SRC=/usr/share/nginx/src

# Debian 12 packages for the build, the tests, the fuzzer and the demo.
DEPS=(
    build-essential clang libclang-rt-14-dev
    nginx nginx-dev libpq-dev libyaml-dev libssl-dev
    postgresql-15 postgresql-client-15
    libtest-base-perl valgrind wrk curl python3 tzdata pgbouncer strace
)

say() { printf 'config.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
    cat <<'USAGE'
usage: ./config.sh COMMAND

  deps    install the Debian 12 packages the build, tests and fuzzer need
  build   build build/ngx_http_crm_module.so against Debian's nginx 1.22.1
          (NGINX_SRC=dir: a whole nginx with the module built in, build/nginx;
           CRM_BUILD_ASAN=1: build/asan/ngx_http_crm_module.so with ASan)
  test    the whole suite (prove -r t/); one file: ./config.sh test t/020-x.t
          CRM_TEST_VALGRIND=1 or CRM_TEST_ASAN=1 run nginx under valgrind/ASan
  db [conninfo]
          apply the sql/ migrations in order, then its functions and views,
          idempotently (default conninfo: $CRM_CONNINFO, else libpq's defaults)
  fuzz [policy|body|cookie|template|calendar|inject]
          a libFuzzer+ASan+UBSan harness for CRM_FUZZ_SECONDS (600)
  bench   the benchmarks in bench/, a table of ratios against plain nginx
  demo    a throwaway PostgreSQL, a demo shop and nginx with the module;
          prints the URLs and a walkthrough; Ctrl-C stops it all
USAGE
}

# deps: installs only what is missing; quiet when everything is there.
cmd_deps() {
    local missing=() p
    for p in "${DEPS[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
                | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "run as root to install: ${missing[*]}"
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# Prints the newest modification time of the module's inputs.
sources_stamp() {
    find "$ROOT/config" "$ROOT/ngx_crm_module" -type f -printf '%T@\n' \
        | sort -n | tail -1
}

# build_dynamic OUTDIR CC_OPT LD_OPT: the module against nginx-dev's tree,
# configured with Debian's own conf_flags so its signature matches the
# installed binary.
build_dynamic() {
    local out=$1 ccopt=$2 ldopt=$3 tree="$1/nginx-src"
    mkdir -p "$out"
    # configured again when config changed or the checkout moved
    if [ ! -f "$tree/configure" ] || [ "$ROOT/config" -nt "$tree/.configured" ] \
        || [ "$(cat "$tree/.configured" 2>/dev/null)" != "$ROOT $ccopt" ]
    then
        rm -rf "$tree"
        cp -a "$NGINX_DEV_SRC" "$tree"
        # shellcheck disable=SC1091
        . "$tree/conf_flags"
        (cd "$tree" && ./configure "${NGX_CONF_FLAGS[@]}" \
            --with-cc-opt="$ccopt" --with-ld-opt="$ldopt" \
            --add-dynamic-module="$ROOT" >"$out/configure.log" 2>&1) \
            || { tail -20 "$out/configure.log"; die "configure failed: $out/configure.log"; }
        echo "$ROOT $ccopt" >"$tree/.configured"
    fi
    make -s -C "$tree" -f objs/Makefile modules >"$out/make.log" 2>&1 \
        || { cat "$out/make.log"; die "make modules failed"; }
    # a new file, not a rewrite: a running nginx keeps the one it mapped
    cp "$tree/objs/ngx_http_crm_module.so" "$out/.ngx_http_crm_module.so.new"
    mv -f "$out/.ngx_http_crm_module.so.new" "$out/ngx_http_crm_module.so"
}

# Checks that /usr/sbin/nginx loads the module and accepts the example.
verify_load() {
    local so=$1 dir
    dir=$(mktemp -d)
    mkdir -p "$dir/logs"
    head -c 48 /dev/urandom | base64 > "$dir/crm.secret"
    cat >"$dir/nginx.conf" <<CONF
load_module $so;
error_log $dir/logs/error.log;
pid $dir/logs/nginx.pid;
events { }
http {
    client_body_temp_path $dir/tmp;
    crm_policy $ROOT/examples/crm.yaml;
    server { listen 127.0.0.1:1; location / { crm_capture order; } }
}
CONF
    if ! /usr/sbin/nginx -t -q -p "$dir" -c "$dir/nginx.conf"; then
        rm -rf "$dir"
        die "/usr/sbin/nginx does not load $so"
    fi
    rm -rf "$dir"
}

cmd_build() {
    if [ -n "${NGINX_SRC:-}" ]; then
        [ -x "$NGINX_SRC/configure" ] || die "NGINX_SRC=$NGINX_SRC has no configure"
        mkdir -p "$BUILD"
        # shellcheck disable=SC2086
        (cd "$NGINX_SRC" && ./configure --with-debug --with-http_ssl_module \
            --with-compat ${NGINX_CONFIGURE_OPTS:-} --add-module="$ROOT" \
            >"$BUILD/static-configure.log" 2>&1 && make -s -j"$(nproc)" \
            >"$BUILD/static-make.log" 2>&1) \
            || die "static build in $NGINX_SRC failed: $BUILD/static-*.log"
        cp "$NGINX_SRC/objs/nginx" "$BUILD/nginx"
        "$BUILD/nginx" -V 2>&1 | grep -q 'add-module' \
            || die "$BUILD/nginx was not built with the module"
        say "built $BUILD/nginx with ngx_http_crm_module compiled in"
        return
    fi

    local stamp_file="$BUILD/.stamp" so="$BUILD/ngx_http_crm_module.so"
    if [ -f "$so" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$(sources_stamp)" ]
    then
        :
    else
        build_dynamic "$BUILD" \
            "-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC -D_FORTIFY_SOURCE=2" \
            "-Wl,-z,relro -Wl,-z,now -fPIC"
        verify_load "$so"
        sources_stamp >"$stamp_file"
    fi

    if [ -n "${CRM_BUILD_ASAN:-}" ]; then
        build_dynamic "$BUILD/asan" \
            "-g -O1 -fno-omit-frame-pointer -fsanitize=address -fPIC" \
            "-fsanitize=address -fPIC"
    fi
}

cmd_test() {
    cmd_deps
    if [ -n "${CRM_TEST_ASAN:-}" ]; then
        CRM_BUILD_ASAN=1 cmd_build
        export CRM_MODULE="$BUILD/asan/ngx_http_crm_module.so"
    else
        cmd_build
    fi
    cd "$ROOT"
    if [ $# -gt 0 ]; then
        prove -I t/lib "$@"
    else
        prove -I t/lib -r t/
    fi
}

# fuzz [policy|body|cookie|template|calendar|inject]: one libFuzzer harness (policy by default) for
# CRM_FUZZ_SECONDS, on a scratch copy of its seeds
cmd_fuzz() {
    cmd_deps
    local what=${1:-policy} corpus
    case "$what" in policy|body|cookie|template|calendar|inject) ;;
        *) die "fuzz: policy, body, cookie, template, calendar or inject" ;; esac
    corpus=$(mktemp -d)
    [ "$what" = policy ] && cp "$ROOT"/t/unit/fuzz_corpus/* "$corpus/"
    if [ "$what" = calendar ]; then
        local z
        for z in UTC Europe/Berlin America/New_York Australia/Lord_Howe \
                 Asia/Tehran Pacific/Apia; do
            cp "/usr/share/zoneinfo/$z" "$corpus/${z//\//_}"
        done
    fi
    make -s -C "$ROOT/t/unit" "fuzz_$what"
    "$ROOT/t/unit/fuzz_$what" -max_total_time="${CRM_FUZZ_SECONDS:-600}" \
        -print_final_stats=1 \
        $([ -f "$ROOT/t/unit/fuzz_$what.dict" ] && echo "-dict=$ROOT/t/unit/fuzz_$what.dict") \
        "$corpus"
    rm -rf "$corpus"
}

# db: brings a database to the schema of sql/, safely while nginx runs.
# Each migration sql/NNN_name.sql (tables, indexes, data) newer than
# crm.schema_version is applied once, in one transaction with its version
# row; the functions and views, SQL_REPEATABLE in that order (each file's
# dependencies before it), are applied every time, in one transaction: the
# last migration's, so that a module which waits for that version finds
# them with it, else their own.  Each transaction takes the advisory lock
# 'ngx_crm schema' first and reads crm.schema_version again under it, so
# two nodes applying at once take turns instead of both applying a
# migration.
SQL_REPEATABLE=(fn_helpers fn_policy fn_calendar fn_customers fn_orders
                fn_payments fn_feedback fn_banners fn_events fn_forget views_staff)

db_lock_sql() {
    echo "SELECT pg_advisory_xact_lock(hashtext('ngx_crm schema')) AS locked \gset"
}

# the migration in psql variable file (version, name), unless applied
db_migration_sql() {
    cat <<'SQL'
SELECT to_regclass('crm.schema_version') IS NOT NULL AS have_table \gset
\if :have_table
SELECT coalesce(max(version), 0) >= :version AS done
  FROM crm.schema_version \gset
\else
\set done false
\endif
\if :done
\else
\i :file
INSERT INTO crm.schema_version (version, name) VALUES (:version, :'name');
\echo applied
\endif
SQL
}

db_repeatable_sql() {
    local base
    for base in "${SQL_REPEATABLE[@]}"; do
        echo "\\i '$ROOT/sql/$base.sql'"
    done
}

cmd_db() {
    local conninfo=${1:-${CRM_CONNINFO:-}} f base version have out last=
    local -a psql=(psql -X -q -v ON_ERROR_STOP=1 -d "$conninfo") pending=()
    command -v psql >/dev/null || die "psql not found: ./config.sh deps"
    for f in "$ROOT"/sql/*.sql; do
        base=$(basename "$f" .sql)
        [[ $base == [0-9][0-9][0-9]_* ]] && continue
        [[ " ${SQL_REPEATABLE[*]} " == *" $base "* ]] \
            || die "sql/$base.sql is neither a migration nor in SQL_REPEATABLE"
    done
    have=$("${psql[@]}" -At -c "SELECT to_regclass('crm.schema_version') IS NOT NULL") \
        || die "cannot reach the database ($conninfo)"
    if [ "$have" = t ]; then
        have=$("${psql[@]}" -At -c "SELECT coalesce(max(version), 0) FROM crm.schema_version")
    else
        have=0
    fi
    for f in "$ROOT"/sql/[0-9][0-9][0-9]_*.sql; do
        base=$(basename "$f" .sql)
        [ "$((10#${base%%_*}))" -gt "$have" ] && pending+=("$f") && last=$f
    done
    for f in "${pending[@]}"; do
        base=$(basename "$f" .sql)
        version=$((10#${base%%_*}))
        out=$({ db_lock_sql; db_migration_sql
                if [ "$f" = "$last" ]; then db_repeatable_sql; fi; } \
              | "${psql[@]}" -At --single-transaction -v version="$version" \
                    -v name="${base#*_}" -v file="$f" -f -) \
            || die "migration $base failed"
        [ "$out" = applied ] && say "applied $base"
    done
    if [ -z "$last" ]; then
        { db_lock_sql; db_repeatable_sql; } \
            | "${psql[@]}" --single-transaction -f - >/dev/null \
            || die "functions and views failed"
    fi
    say "applied ${SQL_REPEATABLE[*]}"
}

cmd_bench() {
    cmd_deps
    cmd_build
    "$ROOT/bench/run.sh" "$@"
}

cmd_demo() {
    cmd_deps
    cmd_build
    exec "$ROOT/examples/demo.sh" "$@"
}

case "${1:-help}" in
    deps)  shift; cmd_deps "$@" ;;
    build) shift; cmd_deps; cmd_build "$@" ;;
    test)  shift; cmd_test "$@" ;;
    fuzz)  shift; cmd_fuzz "$@" ;;
    db)    shift; cmd_db "$@" ;;
    bench) shift; cmd_bench "$@" ;;
    demo)  shift; cmd_demo "$@" ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
esac
