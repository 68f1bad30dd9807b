#!/usr/bin/env bash
# ngx_crm demo: a shop owner's first five minutes.  `./config.sh demo` runs it
# (after deps and build); it can also be run directly, as root, on Debian 12.
#
# It starts, all under .run/ and all stopped again by Ctrl-C:
#   - a throwaway PostgreSQL 15 cluster (its files in /tmp/ngx-crm-demo-*,
#     linked as .run/pg, so that the postgres user can reach them wherever
#     the repository is), with database crm and the schema of sql/;
#   - the demo shop, examples/shop.py, on 127.0.0.1;
#   - nginx with the module, examples/nginx.conf and a demo policy
#     (.run/crm.yaml, written from the keys documented in examples/crm.yaml);
# then prints the URLs and a walkthrough of curl commands and waits.
#
# Environment:
#   CRM_MODULE=path          the module to load (build/ngx_http_crm_module.so)
#   CRM_DEMO_WALKTHROUGH=1   run the walkthrough itself, print what it gives,
#                            stop everything and exit (0 when every step got
#                            the answer it expects)
#   CRM_DEMO_DIR=dir         where to run (.run in the repository, or
#                            /tmp/ngx-crm-demo-run when www-data cannot
#                            reach the repository)
#   CRM_DEMO_PORT, CRM_DEMO_SHOP_PORT, CRM_DEMO_PG_PORT
#                            ports (default 8080, 8081, 55432 when free, else
#                            any free port)

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${CRM_DEMO_DIR:-$ROOT/.run}
PGBIN=/usr/lib/postgresql/15/bin
NGINX=/usr/sbin/nginx
MODULE=${CRM_MODULE:-$ROOT/build/ngx_http_crm_module.so}
WALK=${CRM_DEMO_WALKTHROUGH:-}

PG_PID='' SHOP_PID='' NGINX_PID='' PGDIR='' CLEANED=''

say() { printf 'demo: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# ---------------------------------------------------------------- checks

[ "$(id -u)" -eq 0 ] || die "run as root (it runs PostgreSQL as the postgres user)"
for tool in "$PGBIN/initdb" "$PGBIN/postgres" "$PGBIN/pg_isready" "$NGINX" \
            psql curl python3 setpriv runuser; do
    command -v "$tool" >/dev/null \
        || die "$tool not found: run ./config.sh deps"
done
getent passwd postgres >/dev/null || die "no postgres user: run ./config.sh deps"
getent passwd www-data >/dev/null || die "no www-data user (Debian's nginx user)"
if [ ! -f "$MODULE" ]; then
    [ -z "${CRM_MODULE:-}" ] || die "CRM_MODULE=$CRM_MODULE does not exist"
    say "building the module: ./config.sh build"
    "$ROOT/config.sh" build
fi
case "$RUN" in /*) ;; *) RUN=$PWD/$RUN ;; esac
# nginx's workers (www-data) must reach the run directory: a checkout under
# /root is not searchable by others, so the demo runs in /tmp instead
if [ -z "${CRM_DEMO_DIR:-}" ] \
    && ! runuser -u www-data -- test -x "$ROOT" 2>/dev/null; then
    RUN=/tmp/ngx-crm-demo-run
    say "$ROOT is not reachable by www-data (nginx's workers): running in $RUN"
fi
case "$RUN$MODULE" in
    *[[:space:]\|\'\"]*) die "run from a path without spaces, quotes or |: $RUN" ;;
esac

# ---------------------------------------------------------------- helpers

# alive PID PATTERN: PID is a live process whose command line has PATTERN.
alive() {
    local pid=$1 pattern=$2 cmd
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    cmd=$(tr "\\0" " " 2>/dev/null <"/proc/$pid/cmdline") || return 1
    [ -n "$cmd" ] && [[ $cmd == *"$pattern"* ]]
}

# stop PID PATTERN SIGNAL NAME: sends SIGNAL and waits up to 30 s for the
# process to go (then KILL).  Reaps it when it is our child.
stop() {
    local pid=$1 pattern=$2 sig=$3 name=$4 i
    alive "$pid" "$pattern" || { wait "$pid" 2>/dev/null || true; return 0; }
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        alive "$pid" "$pattern" || break
        sleep 0.1
    done
    if alive "$pid" "$pattern"; then
        say "$name ($pid) did not stop; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Our nginx processes, workers included (a worker whose master was killed
# has lost it): nginx runs in $RUN/nginx, and workers keep that directory.
our_nginx() {
    local pid
    for pid in $(pgrep -x nginx || true); do
        [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$RUN/nginx" ] && echo "$pid"
    done
    return 0
}

stop_nginx_strays() {
    local pid
    for pid in $(our_nginx); do
        stop "$pid" "nginx" TERM "nginx ($pid)"
    done
}

# Stops what a previous run left (its pid files), and removes its files.
stop_leftovers() {
    local pid dir
    [ -e "$RUN" ] || [ -L "$RUN" ] || return 0
    say "clearing the previous demo's $RUN"
    pid=$(cat "$RUN/nginx/nginx.pid" 2>/dev/null || true)
    stop "$pid" "$RUN/nginx" QUIT "a previous demo's nginx"
    stop_nginx_strays
    pid=$(cat "$RUN/shop.pid" 2>/dev/null || true)
    stop "$pid" "examples/shop.py" TERM "a previous demo's shop"
    if [ -L "$RUN/pg" ]; then
        dir=$(readlink "$RUN/pg")
        pid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null || true)
        stop "$pid" "$dir/data" INT "a previous demo's PostgreSQL"
        case "$dir" in /tmp/ngx-crm-demo-*) rm -rf "$dir" ;; esac
    fi
    rm -rf "$RUN"
}

# ours: a pgrep pattern for this demo's nginx, shop and PostgreSQL, and no
# other demo's (several may run from one repository, e.g. under the tests).
ours() {
    printf '%s' "$RUN/nginx|$ROOT/examples/shop.py ${SHOP_PORT:-none}( |\$)|${PGDIR:-/nonexistent}/data"
}

cleanup() {
    [ -n "$CLEANED" ] && return 0
    CLEANED=1
    trap - INT TERM HUP
    say "stopping nginx, the shop and PostgreSQL"
    stop "$NGINX_PID" "$RUN/nginx" QUIT nginx
    stop_nginx_strays
    stop "$SHOP_PID" "examples/shop.py" TERM "the shop"
    [ -n "$PGDIR" ] && stop "$PG_PID" "$PGDIR/data" INT PostgreSQL
    local left
    left=$(our_nginx; pgrep -af "$(ours)" || true)
    [ -z "$left" ] || say "still running: $left"
    # The cluster is thrown away; .run keeps the logs and configuration.
    case "$PGDIR" in /tmp/ngx-crm-demo-*) rm -rf "$PGDIR" ;; esac
    [ -z "$PGDIR" ] || rm -f "$RUN/pg"
    say "stopped; logs are in $RUN"
}

# shellcheck disable=SC2317  # run by the traps
on_signal() {
    echo >&2
    cleanup
    exit "$1"
}

# free_ports DEFAULT...: one free 127.0.0.1 port for each, the default when
# it is free, all different.
free_ports() {
    python3 - "$@" <<'PY'
import socket, sys
held, out = [], []
for want in sys.argv[1:]:
    for port in (int(want), 0):
        s = socket.socket()
        # as the servers do: a port whose old connections linger is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        held.append(s)
        out.append(str(s.getsockname()[1]))
        break
print(" ".join(out))
PY
}

# wait_for WHAT SECONDS PID COMMAND...: runs COMMAND until it succeeds.
wait_for() {
    local what=$1 secs=$2 pid=$3 i
    shift 3
    for ((i = 0; i < secs * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    say "$what did not come up in ${secs}s"
    return 1
}

# ---------------------------------------------------------------- start

stop_leftovers
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP
trap cleanup EXIT

mkdir -p "$RUN/nginx/tmp"
chmod 0755 "$RUN"
# nginx workers run as www-data and write their spool under $RUN/nginx: every
# directory above it must let them through (a checkout under /root does not).
runuser -u www-data -- test -x "$RUN/nginx" 2>/dev/null \
    || die "www-data (nginx's workers) cannot reach $RUN: a directory above it is not searchable by others (chmod o+x it, or run with CRM_DEMO_DIR=/tmp/ngx-crm-demo)"

read -r PORT SHOP_PORT PGPORT < <(free_ports "${CRM_DEMO_PORT:-8080}" \
    "${CRM_DEMO_SHOP_PORT:-8081}" "${CRM_DEMO_PG_PORT:-55432}")
[ -n "$PGPORT" ] || die "could not find free ports"
URL=http://127.0.0.1:$PORT
CONNINFO="host=127.0.0.1 port=$PGPORT dbname=crm user=postgres"
PSQL=(psql -X -q -P pager=off -h 127.0.0.1 -p "$PGPORT" -U postgres)

# PostgreSQL: a cluster of its own, run in the foreground as our child (so
# that we reap it), as the postgres user.
PGDIR=$(mktemp -d /tmp/ngx-crm-demo-XXXXXX)
chown postgres:postgres "$PGDIR"
chmod 0700 "$PGDIR"
ln -s "$PGDIR" "$RUN/pg"
say "PostgreSQL 15: a new cluster in $RUN/pg, port $PGPORT"
(cd / && runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -U postgres \
    -A trust -E UTF8 --no-locale) >"$RUN/initdb.log" 2>&1 \
    || { cat "$RUN/initdb.log" >&2; die "initdb failed"; }
(cd "$PGDIR" && exec setpriv --reuid=postgres --regid=postgres --init-groups \
    "$PGBIN/postgres" -D "$PGDIR/data" -p "$PGPORT" -k "$PGDIR" \
    -c listen_addresses=127.0.0.1 -c fsync=off) \
    </dev/null >>"$RUN/postgres.log" 2>&1 &
PG_PID=$!
wait_for PostgreSQL 60 "$PG_PID" "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" \
    || { cat "$RUN/postgres.log" >&2; die "PostgreSQL did not start"; }
"${PSQL[@]}" -d postgres -c 'CREATE DATABASE crm' >/dev/null
"$ROOT/config.sh" db "$CONNINFO" 2>&1 | sed 's/^/  /' >&2
[ "${PIPESTATUS[0]}" -eq 0 ] || die "the schema could not be applied"

# The policy: a small one for the demo; examples/crm.yaml documents every key.
head -c 48 /dev/urandom | base64 -w0 >"$RUN/crm.secret"
echo >>"$RUN/crm.secret"
chown root:www-data "$RUN/crm.secret"
chmod 0640 "$RUN/crm.secret"
cat >"$RUN/crm.yaml" <<YAML
# The demo's policy, written by examples/demo.sh; every key is documented in
# examples/crm.yaml.
version: 1

database:
  conninfo: "$CONNINFO connect_timeout=2"
  connections: 2
  timeout: 250ms
  spool: "$RUN/nginx/spool"       # events wait here while PostgreSQL is away

identity:
  cookie: crm
  secret_file: "$RUN/crm.secret"  # signs the customer cookie
  max_age: 365d

fields:                           # where the demo shop's requests carry their data
  order_id: /order_id
  email: /customer/email
  phone: /customer/phone
  name: /customer/name
  birthday: /customer/birthday
  total: /total
  currency: /currency
  status: /status
  eta: /eta

loyalty:
  card:
    after_paid_orders: 1          # the card comes with the first paid order
    prefix: DEMO-
  tiers:
    - name: member                # from the first paid order: 5 % off the next
      paid_orders: 1
      discount: 5
    - name: gold                  # from the third: 10 %
      paid_orders: 3
      discount: 10
  promise:
    valid_for: 30d                # a promised discount stays open 30 days
    max_discount: 20

banners:                          # the first that applies is shown
  - id: delayed
    when: order_delayed
    template: '<div class="crm-banner" style="border:2px solid #c60;background:#fff4e5;padding:1em;margin:1em 0">Sorry, {name}: order {order_id} is late. It will be with you by {eta}.</div>'
    max_per_day: 0
  - id: welcome-card
    when: new_card
    template: '<div class="crm-banner">Welcome to the club, {name}! Your card is {card}: you are a {tier} now.</div>'
    max_per_day: 0
  - id: discount
    when: discount_ready
    template: '<div class="crm-banner">{name}, your {discount}% discount is waiting for your next order (until {valid_until}).</div>'
    max_per_day: 0
YAML

# The shop.
python3 "$ROOT/examples/shop.py" "$SHOP_PORT" </dev/null >>"$RUN/shop.log" 2>&1 &
SHOP_PID=$!
echo "$SHOP_PID" >"$RUN/shop.pid"
wait_for "the shop" 15 "$SHOP_PID" curl -sf -o /dev/null "http://127.0.0.1:$SHOP_PORT/" \
    || { cat "$RUN/shop.log" >&2; die "the shop did not start"; }

# nginx, in the foreground as our child.
sed -e "s|@PREFIX@|$RUN/nginx|g" -e "s|@PORT@|$PORT|g" \
    -e "s|@SHOP_PORT@|$SHOP_PORT|g" -e "s|@MODULE@|$MODULE|g" \
    -e "s|@POLICY@|$RUN/crm.yaml|g" \
    "$ROOT/examples/nginx.conf" >"$RUN/nginx/nginx.conf"
"$NGINX" -t -q -p "$RUN/nginx/" -c "$RUN/nginx/nginx.conf" \
    || die "nginx -t failed on $RUN/nginx/nginx.conf"
(cd "$RUN/nginx" && exec "$NGINX" -p "$RUN/nginx/" -c "$RUN/nginx/nginx.conf" \
    -g 'daemon off;') </dev/null >>"$RUN/nginx/stderr.log" 2>&1 &
NGINX_PID=$!
wait_for nginx 15 "$NGINX_PID" curl -sf -o /dev/null "$URL/crm-status" \
    || { cat "$RUN/nginx/error.log" >&2; die "nginx did not start"; }

# ---------------------------------------------------------------- walkthrough

printf -v JAR '%q' "$RUN/anna.cookies"
J='-H "Content-Type: application/json"'
# Each step: what it shows|the HTTP status|a text the answer must contain
# ("" for none)|the command.  Answers of /api/ steps must also say
# "X-CRM-State: ok": the module found the customer and decided.
STEPS=(
  "Anna's first order: a new customer, no discount yet|201|\"discount_percent\": 0,|curl -si -b $JAR -c $JAR $J -d '{\"order_id\":\"D-1\",\"customer\":{\"email\":\"anna@example.com\",\"name\":\"Anna\",\"phone\":\"+49 30 1234567\"},\"total\":100.00}' $URL/api/orders"
  "she pays: her loyalty card, and a promise of 5% off her next order|200||curl -si -b $JAR -c $JAR $J -d '{\"order_id\":\"D-1\",\"total\":100.00}' $URL/api/payments"
  "her second order: the promise is kept, see discount_percent and charged|201|\"discount_percent\": 5,|curl -si -b $JAR -c $JAR $J -d '{\"order_id\":\"D-2\",\"customer\":{\"email\":\"anna@example.com\",\"name\":\"Anna\"},\"total\":80.00}' $URL/api/orders"
  "the first order is shipped|200||curl -si $J -d '{\"order_id\":\"D-1\",\"status\":\"shipped\"}' $URL/api/orders/status"
  "her second order is late: the shop says so, with the new date|200||curl -si $J -d '{\"order_id\":\"D-2\",\"status\":\"delayed\",\"eta\":\"2026-12-01\"}' $URL/api/orders/status"
  "a customer who sends X-CRM-Discount himself gets nothing for it|201|\"discount_percent\": 0,|curl -si -H 'X-CRM-Discount: 90' $J -d '{\"order_id\":\"D-3\",\"customer\":{\"email\":\"bob@example.com\",\"name\":\"Bob\"},\"total\":50.00}' $URL/api/orders"
  "Anna's account page, with her personal banner before </body> (the first page she opens, the shop's home page, has none: it fills her banner state in the background)|200|class=\"crm-banner\"|curl -s -o /dev/null -b $JAR $URL/ && sleep 0.5 && curl -si -b $JAR $URL/account"
  "what the module did: its counters|200||curl -s $URL/crm-status"
)
QUERIES=(
  "SELECT kind, order_id, state FROM crm.interactions ORDER BY received_at"
  "SELECT * FROM crm.customer_overview"
  "SELECT * FROM crm.promise_ledger"
)

# query SQL: runs one staff query, or says which view is not there yet.
query() {
    local sql=$1 rel
    rel=$(grep -o 'crm\.[a-z_]*' <<<"$sql" | head -1)
    if [ "$("${PSQL[@]}" -d crm -At -c "SELECT to_regclass('$rel') IS NOT NULL")" != t ]
    then
        printf '(%s does not exist yet in this database: it comes with the orders and payments features of the module)\n\n' "$rel"
        return 0
    fi
    "${PSQL[@]}" -d crm -c "$sql"
}

# Events are written to PostgreSQL just after their request: waits (at most
# a few seconds) until N of them are in crm.interactions.
wait_events() {
    local n=$1 i have
    for ((i = 0; i < 50; i++)); do
        have=$("${PSQL[@]}" -d crm -At -c 'SELECT count(*) FROM crm.interactions' 2>/dev/null || echo 0)
        [ "$have" -ge "$n" ] && return 0
        sleep 0.1
    done
    say "only $have of $n events reached crm.interactions; see $RUN/nginx/error.log"
    return 1
}

psql_line="psql -h 127.0.0.1 -p $PGPORT -U postgres crm"

if [ -z "$WALK" ]; then
    cat <<EOF

  ngx_crm demo is running.

  the shop, through nginx:  $URL/
  the module's status:      $URL/crm-status   (?format=prometheus)
  the shop on its own:      http://127.0.0.1:$SHOP_PORT/
  logs:                     $RUN/nginx/error.log, $RUN/shop.log

  Try it (copy and paste):

EOF
    n=0
    for step in "${STEPS[@]}"; do
        n=$((n + 1))
        IFS='|' read -r what _ _ cmd <<<"$step"
        printf '  # %d. %s\n  %s\n\n' "$n" "$what" "$cmd"
    done
    cat <<EOF
  What the staff see, in PostgreSQL:

  $psql_line -c '${QUERIES[0]}'
  $psql_line -c '${QUERIES[1]}' -c '${QUERIES[2]}'

  The configuration: $RUN/nginx/nginx.conf (from examples/nginx.conf)
  and the policy:    $RUN/crm.yaml

  Press Ctrl-C to stop everything.
EOF
    set +e
    wait -n "$NGINX_PID" "$SHOP_PID" "$PG_PID"
    rc=$?
    set -e
    # Only a child that died gets here (a signal runs its trap and exits).
    for p in nginx:"$NGINX_PID" shop:"$SHOP_PID" PostgreSQL:"$PG_PID"; do
        kill -0 "${p#*:}" 2>/dev/null || say "${p%%:*} stopped unexpectedly (exit $rc); see $RUN"
    done
    exit 1
fi

# CRM_DEMO_WALKTHROUGH=1: run the steps, check each answer, show the data.
failed=0 n=0 events=0
for step in "${STEPS[@]}"; do
    n=$((n + 1))
    IFS='|' read -r what want expect cmd <<<"$step"
    printf '\n# %d. %s\n$ %s\n' "$n" "$what" "$cmd"
    out=$(eval "$cmd" 2>&1) || true
    printf '%s\n' "$out" | tr -d '\r'
    if [[ $cmd == *"-si"* ]]; then
        got=$(head -1 <<<"$out" | awk '{print $2}')
    else
        got=$(curl -s -o /dev/null -w '%{http_code}' "$URL/crm-status")
    fi
    if [ "$got" != "$want" ]; then
        say "step $n: expected HTTP $want, got ${got:-nothing}"
        failed=1
    fi
    if [ -n "$expect" ] && [[ $out != *"$expect"* ]]; then
        say "step $n: the answer does not say $expect"
        failed=1
    fi
    # CRM_DEMO_SCREENSHOT=FILE: the banner page as a browser shows it
    # (Debian's chromium, headless), from the very bytes nginx sent
    if [[ -n ${CRM_DEMO_SCREENSHOT:-} && $out == *crm-banner* ]]; then
        sed '1,/^\r\{0,1\}$/d' <<<"$out" >"$RUN/account.html"
        if command -v chromium >/dev/null; then
            chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
                --window-size=900,520 --screenshot="$CRM_DEMO_SCREENSHOT" \
                "file://$RUN/account.html" >/dev/null 2>&1 \
                || say "step $n: chromium could not take the screenshot"
        else
            say "step $n: no chromium here: no screenshot"
        fi
    fi
    if [[ $cmd == */api/* ]] && ! grep -qx 'X-CRM-State: ok' <<<"${out//$'\r'/}"; then
        say "step $n: the module did not decide: $(grep -i '^X-CRM-State:' <<<"$out" | tr -d '\r' || echo 'no X-CRM-State header')"
        failed=1
    fi
    # Each API request is one event; a customer does not order again within
    # milliseconds of paying, so let the payment be written first.
    if [[ $cmd == */api/* ]]; then
        events=$((events + 1))
        wait_events "$events" || failed=1
    fi
done

printf '\n# What the staff see, in PostgreSQL (%s)\n' "$psql_line"
for q in "${QUERIES[@]}"; do
    printf '\n$ %s -c "%s"\n' "$psql_line" "$q"
    query "$q" || failed=1
done

cleanup
if [ -n "$(our_nginx)" ] \
        || pgrep -af "$(ours)" >&2; then
    say "processes were left running"
    failed=1
fi
[ "$failed" -eq 0 ] || die "the walkthrough failed"
say "walkthrough done"
exit 0
