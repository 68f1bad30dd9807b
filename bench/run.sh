#!/usr/bin/env bash
# ngx_crm benchmarks: every row is the module against a baseline measured
# in the same run, interleaved (module, baseline, module, ...) for
# CRM_BENCH_ROUNDS rounds (3), each run after the spool has drained and the
# machine is idle; a row shows the median of each side, its spread (min-max)
# and the ratio of the medians.  Loopback only.
#
#   ./config.sh bench [ROW|GROUP ...]     only the rows named (or whose name
#                                         begins with GROUP_), all by default
#
#   no_module      a location without the module, module loaded / not loaded
#   capture_up     crm_capture feedback + proxy_pass of a note that names
#                  nobody (recorded only), PostgreSQL up / the same proxy
#   capture_down   the same with PostgreSQL down
#   feedback_up    crm_capture feedback answered by the module / return 201
#                  of a fixed JSON body of the same size
#   feedback_down  the same with PostgreSQL down
#   orders         orders/s through crm_capture order, 2 clients / pgbench
#                  sending what an order causes (bench/order.sql: the
#                  decision, then its event and result lines), 2 clients
#   orders_proxy   the same orders / the same proxy without crm_capture
#   orders_hold    the third of three consecutive order runs / the first
#                  (a plan that decays shows here)
#   latency_p50, latency_p99   added by the decision at about 800 orders/s
#   write_rate     events/s the spool writer sends (a backlog spooled while
#                  PostgreSQL was down, taken over by a worker) / one
#                  pgbench client sending the same lines through
#                  crm.record_events() 256 at a time, as the writer does
#                  (bench/batch.sql)
#   rss_capture    worker RSS after CRM_BENCH_RSS (1,000,000) captured
#                  requests / after 10,000
#   banner_off     a 20 KB page with a customer's banner / the same page
#                  with crm_banner off
#   banner_sub     the banner page / sub_filter putting a fixed one in
#   rss_banner     worker RSS after CRM_BENCH_RSS banner pages / 10,000
#
# CRM_BENCH_SECONDS (5) a wrk run, CRM_BENCH_CONNECTIONS (32),
# CRM_BENCH_JSON=FILE: one JSON object a row (name, module, baseline,
# ratio, goal, runs, min, max: min and max of the module side, the
# baseline's under baseline_min, baseline_max).  With more than 2 cores,
# wrk, nginx and PostgreSQL are pinned to cores of their own (taskset).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SO=${CRM_MODULE:-$ROOT/build/ngx_http_crm_module.so}
SECS=${CRM_BENCH_SECONDS:-5}
CONNS=${CRM_BENCH_CONNECTIONS:-32}
ROUNDS=${CRM_BENCH_ROUNDS:-3}
RSS_N=${CRM_BENCH_RSS:-1000000}
JSON=${CRM_BENCH_JSON:-}
PGBIN=/usr/lib/postgresql/15/bin
DIR=$(mktemp -d /tmp/crm-bench-XXXX)
chmod 755 "$DIR"
[ -n "$JSON" ] && : >"$JSON"

ALL_ROWS="no_module capture_up capture_down feedback_up feedback_down orders
orders_proxy orders_hold latency_p50 latency_p99 write_rate rss_capture
banner_off banner_sub rss_banner"

# wanted ROW: the row was named on the command line, or its group, or none
wanted() {
    local a
    [ $# -gt 0 ] || return 1
    [ ${#ARGS[@]} -eq 0 ] && return 0
    for a in "${ARGS[@]}"; do
        case "$1" in "$a"|"$a"_*) return 0 ;; esac
    done
    return 1
}
ARGS=("$@")
for a in "${ARGS[@]}"; do
    ok=0
    for r in $ALL_ROWS; do case "$r" in "$a"|"$a"_*) ok=1 ;; esac; done
    [ "$ok" = 1 ] || { echo "bench: no row named $a; rows: $(echo $ALL_ROWS)" >&2; exit 2; }
done

# cores: wrk and the upstream, nginx under test, PostgreSQL
NCPU=$(nproc)
if [ "$NCPU" -gt 2 ]; then
    PIN_WRK="taskset -c 0"
    PIN_NGINX="taskset -c 1"
    PIN_PG="taskset -c 2-$((NCPU - 1))"
    PINNED="pinned: wrk and the upstream on core 0, nginx on core 1, PostgreSQL on 2-$((NCPU - 1))"
else
    PIN_WRK="" PIN_NGINX="" PIN_PG=""
    PINNED="not pinned: $NCPU cores shared by wrk, nginx and PostgreSQL"
fi

port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

P_UP=$(port); P_PLAIN=$(port); P_MOD=$(port); P_DOWN=$(port); P_PG=$(port)
P_DEAD=$(port); P_FBDOWN=$(port)

# the banner of the banner rows, and what sub_filter puts in instead
BANNER_TPL='<div class="crm">{name}, {discount}% off your next order until {valid_until}.</div>'
BANNER_HTML='<div class="crm">Anna, 10% off your next order until 2027-01-01.</div>'
head -c 32 /dev/urandom | base64 >"$DIR/crm.secret"

cleanup() {
    local d
    for d in "$DIR"/ng-*; do
        [ -f "$d/logs/nginx.pid" ] && /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" -s stop 2>/dev/null || true
    done
    [ -d "$DIR/pg/data" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/pg/data" -m immediate stop >/dev/null 2>&1 || true
    [ -s "$DIR/pgbench.log" ] && tail -5 "$DIR/pgbench.log" >&2
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- PostgreSQL ---------------------------------------------------------------
mkdir -p "$DIR/pg"
chown postgres "$DIR/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$DIR/pg/data" -A trust -U postgres >/dev/null
$PIN_PG runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/pg/data" -w -l "$DIR/pg/log" \
    -o "-p $P_PG -k $DIR/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off" start >/dev/null
CONNINFO="host=127.0.0.1 port=$P_PG dbname=crm user=postgres"
psql -X -q -h 127.0.0.1 -p "$P_PG" -U postgres -c 'CREATE DATABASE crm'
"$ROOT/config.sh" db "$CONNINFO" 2>/dev/null

# --- nginx instances ---------------------------------------------------------
# nginx NAME PORT LOAD(0/1) POLICY_CONNINFO SPOOL
nginx_start() {
    local name=$1 port=$2 load=$3 conninfo=${4:-} spool=${5:-} d="$DIR/ng-$1"
    mkdir -p "$d/logs"
    {
        [ "$load" = 1 ] && echo "load_module $SO;"
        cat <<CONF
worker_processes 1;
error_log $d/logs/error.log error;
pid $d/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    upstream shop { server 127.0.0.1:$P_UP; keepalive 32; }
CONF
        if [ -n "$conninfo" ]; then
            printf 'version: 1\ndatabase:\n  conninfo: "%s"\n  spool: %s\n  connections: 2\nfields:\n  email: /customer/email\n  name: /customer/name\nidentity:\n  cookie: crm\n  secret_file: %s\nbanners:\n  - id: ready\n    when: discount_ready\n    max_per_day: 0\n    template: %s\n' \
                "$conninfo" "$spool" "$DIR/crm.secret" "'$BANNER_TPL'" >"$d/crm.yaml"
            echo "    crm_policy $d/crm.yaml;"
        fi
        cat <<CONF
    server {
        listen 127.0.0.1:$port;
        location = /static { return 200 "ok\n"; }
        location = /proxy {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://shop;
        }
CONF
        [ -n "$conninfo" ] && cat <<CONF
        location = /order {
            crm_capture order;
            proxy_set_header X-CRM-Discount \$crm_discount;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://shop;
        }
        location = /capture {
            crm_capture feedback;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://shop;
        }
        location = /feedback { crm_capture feedback; }
        location = /fixed201 {
            default_type application/json;
            return 201 '{"ticket":"ABCDEFGHJK23","due":"2026-12-03T17:00:00+00:00","message":"Thank you, Anna. Your ticket is ABCDEFGHJK23; we will answer by 2026-12-03 17:00.","faq":""}';
        }
        location = /bpage {
            crm_banner on;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://shop/page.html;
        }
        location = /bpage-off {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://shop/page.html;
        }
        location = /bpage-sub {
            sub_filter '</body>' '$BANNER_HTML</body>';
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://shop/page.html;
        }
        location = /crm { crm_status; }
CONF
        echo "    }"
        echo "}"
    } >"$d/nginx.conf"
    $PIN_NGINX /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" 2>>"$d/logs/stderr.log"
    for _ in $(seq 50); do
        curl -s -o /dev/null "http://127.0.0.1:$port/static" && return 0
        sleep 0.1
    done
    echo "bench: nginx $name did not start" >&2
    cat "$d/logs/error.log" >&2
    exit 1
}

nginx_stop() {
    local d="$DIR/ng-$1"
    /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" -s quit 2>/dev/null
    for _ in $(seq 100); do [ -f "$d/logs/nginx.pid" ] || return 0; sleep 0.1; done
}

status() {
    curl -s "http://127.0.0.1:$1/crm" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d$2)"
}

ratio() { python3 -c "print('%.3f' % ($1 / $2))"; }

# the upstream the proxies talk to: plain nginx; a 20 KB shop page
mkdir -p "$DIR/ng-up/logs" "$DIR/ng-up/html"
python3 -c "
import sys
rows = ''.join('<li><a href=\"/product/%d\">Tea %d</a> <b>4.%02d EUR</b></li>\n' % (i, i, i % 100) for i in range(400))
sys.stdout.write('<!DOCTYPE html>\n<html><head><title>Shop</title></head>\n<body>\n<ul>\n' + rows[:19800] + '</ul>\n</body>\n</html>\n')
" >"$DIR/ng-up/html/page.html"
cat >"$DIR/ng-up/nginx.conf" <<CONF
worker_processes 1;
error_log $DIR/ng-up/logs/error.log error;
pid $DIR/ng-up/logs/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $DIR/ng-up/body;
    server {
        listen 127.0.0.1:$P_UP;
        keepalive_requests 100000;
        location = /page.html { root $DIR/ng-up/html; }
        location / { return 200 '{"order":"accepted"}'; }
    }
}
CONF
$PIN_WRK /usr/sbin/nginx -p "$DIR/ng-up" -c "$DIR/ng-up/nginx.conf"


# --- measuring -----------------------------------------------------------------

psql_crm() { psql -X -q -At -h 127.0.0.1 -p "$P_PG" -U postgres crm "$@"; }

# wrk_rps PORT PATH [post|note|order [CONNECTIONS [SECONDS]]]: requests/s
wrk_rps() {
    local args=(-t1 -c"${4:-$CONNS}" -d"${5:-$SECS}s")
    [ "${3:-}" = post ] && args+=(-s "$ROOT/bench/post.lua")
    [ "${3:-}" = note ] && args+=(-s "$ROOT/bench/note.lua")
    [ "${3:-}" = order ] && args+=(-s "$ROOT/bench/order.lua")
    [ "${3:-}" = cookie ] && args+=(-H "Cookie: $COOKIE")
    CRM_BENCH_RUN="$(date +%s%N)" $PIN_WRK wrk "${args[@]}" "http://127.0.0.1:$1$2" \
        | awk '/^Requests\/sec/ { print $2 }'
}

# latency PORT PATH WHICH: p50 or p99 in ms of orders at a steady rate: 8
# connections, each waiting 10 ms between requests (about 800 orders/s)
latency() {
    CRM_BENCH_RUN="$(date +%s%N)" CRM_BENCH_DELAY_MS=10 $PIN_WRK wrk -t1 -c8 -d"${SECS}s" --latency \
        -s "$ROOT/bench/order.lua" "http://127.0.0.1:$1$2" \
        | awk -v which="$3" '
            function ms(v) {
                if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
                if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
                if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
                return v
            }
            $1 == which "%" { printf "%.3f", ms($2) }'
}

# pgbench_tps SCRIPT CLIENTS: transactions/s, unnamed statements as the
# module sends them
pgbench_tps() {
    $PIN_WRK "$PGBIN/pgbench" -n -M extended -h 127.0.0.1 -p "$P_PG" -U postgres \
        -c "$2" -j "$2" -T "$SECS" -f "$1" crm 2>>"$DIR/pgbench.log" \
        | awk '/^tps/ { printf "%.0f", $3 }'
}

# settle: the module's spool written out, then the machine idle (at least
# 85 % of a half second idle, or 20 s have passed)
settle() {
    local i
    for i in $(seq 600); do
        [ "$(status "$P_MOD" "['spool']['bytes']")" = 0 ] && break
        sleep 0.1
    done
    python3 - <<'PY'
import time
def cpu():
    f = [int(x) for x in open('/proc/stat').readline().split()[1:]]
    return f[3] + f[4], sum(f)
for _ in range(40):
    i0, t0 = cpu(); time.sleep(0.5); i1, t1 = cpu()
    if t1 > t0 and (i1 - i0) / (t1 - t0) >= 0.85:
        break
PY
}

# steal: the share of CPU time the hypervisor took since the last call
steal_mark() { awk '/^cpu / { print $9, $2+$3+$4+$5+$6+$7+$8+$9 }' /proc/stat; }

# row NAME GOAL TEXT MODULE-CMD BASELINE-CMD [added]: ROUNDS interleaved
# runs of each side; "added" shows module - baseline instead of the ratio
row() {
    local name=$1 goal=$2 text=$3 mod=$4 base=$5 kind=${6:-ratio} i a b ms="" bs=""
    wanted "$name" || return 0
    for i in $(seq "$ROUNDS"); do
        settle; a=$(eval "$mod")
        settle; b=$(eval "$base")
        ms="$ms $a"; bs="$bs $b"
    done
    report "$name" "$goal" "$text" "$ms" "$bs" "$kind"
}

# report NAME GOAL TEXT "MODULE RUNS" "BASELINE RUNS" KIND
report() {
    python3 - "$@" "$JSON" <<'PY'
import json, statistics, sys
name, goal, text, ms, bs, kind, out = sys.argv[1:8]
m = [float(x) for x in ms.split()]
b = [float(x) for x in bs.split()]
mm, bm = statistics.median(m), statistics.median(b)
if kind == 'added':
    r = mm - bm
    shown = '%+.2f ms' % r
else:
    r = mm / bm if bm else 0.0
    shown = '%.3f' % r
fmt = (lambda v: '%.0f' % v) if max(m + b) >= 100 else (lambda v: '%.2f' % v)
cell = lambda med, xs: '%s (%s-%s)' % (fmt(med), fmt(min(xs)), fmt(max(xs)))
print('| %-13s | %-52s | %22s | %22s | %8s | %6s |'
      % (name, text, cell(mm, m), cell(bm, b), shown, goal))
sys.stdout.flush()
if out:
    with open(out, 'a') as f:
        f.write(json.dumps({'name': name, 'text': text, 'module': mm,
                            'baseline': bm, 'ratio': round(r, 4),
                            'goal': goal, 'runs': len(m), 'min': min(m),
                            'max': max(m), 'baseline_min': min(b),
                            'baseline_max': max(b), 'kind': kind}) + '\n')
PY
}

# rss_row NAME TEXT PATH SCRIPT COUNTER: worker RSS after RSS_N requests
# counted by COUNTER in crm_status, against after 10,000
rss_row() {
    local name=$1 text=$2 path=$3 script=$4 counter=$5 wpid wrk_pid n0 a10k a1m
    wanted "$name" || return 0
    settle
    wpid=$(pgrep -P "$(cat "$DIR/ng-mod/logs/nginx.pid")" | head -1)
    n0=$(status "$P_MOD" "$counter")
    local args=(-t1 -c"$CONNS" -d3600s)
    [ "$script" = cookie ] && args+=(-H "Cookie: $COOKIE") || args+=(-s "$ROOT/bench/$script.lua")
    $PIN_WRK wrk "${args[@]}" "http://127.0.0.1:$P_MOD$path" >/dev/null 2>&1 &
    wrk_pid=$!
    while [ $(( $(status "$P_MOD" "$counter") - n0 )) -lt 10000 ]; do sleep 0.2; done
    a10k=$(awk '/^VmRSS/ { print $2 }' "/proc/$wpid/status")
    while [ $(( $(status "$P_MOD" "$counter") - n0 )) -lt "$RSS_N" ]; do sleep 1; done
    a1m=$(awk '/^VmRSS/ { print $2 }' "/proc/$wpid/status")
    kill "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" 2>/dev/null || true
    report "$name" "<=1.05" "$text" "$a1m" "$a10k" ratio
}
# --- the module registers its policy; tables analyzed before it connects ------
# Sessions that plan crm.decide_order() against empty tables keep a generic
# plan of sequential scans, and orders/s decays run after run: so the module
# starts once to register its policy, pgbench makes a few thousand orders,
# ANALYZE, and only then does the module connect for the measurements.

nginx_start mod "$P_MOD" 1 "$CONNINFO" "$DIR/spool-up"
for _ in $(seq 100); do
    [ -n "$(psql_crm -c 'SELECT 1 FROM crm.policy LIMIT 1')" ] && break
    sleep 0.1
done
nginx_stop mod
psql_crm -c "INSERT INTO crm.policy (sha256, doc) SELECT 'bench', doc FROM crm.policy ORDER BY registered_at DESC LIMIT 1 ON CONFLICT DO NOTHING"
SECS=3 pgbench_tps "$ROOT/bench/order.sql" 2 >/dev/null
psql_crm -c 'ANALYZE'

nginx_start plain "$P_PLAIN" 0
nginx_start mod "$P_MOD" 1 "$CONNINFO" "$DIR/spool-up"
nginx_start down "$P_DOWN" 1 "host=127.0.0.1 port=$P_DEAD dbname=crm user=postgres connect_timeout=1" "$DIR/spool-down"
# tickets given while PostgreSQL is down, spooled apart from the notes
nginx_start fbdown "$P_FBDOWN" 1 "host=127.0.0.1 port=$P_DEAD dbname=crm user=postgres connect_timeout=1" "$DIR/spool-fbdown"

read -r steal0 total0 <<<"$(steal_mark)"
started=$(date +%s)

echo
echo "ngx_crm bench, $(date -u '+%Y-%m-%d %H:%M UTC'), $ROUNDS rounds interleaved, median (min-max); $PINNED"
printf '| %-13s | %-52s | %22s | %22s | %8s | %6s |\n' row benchmark module baseline ratio goal
printf '|%s|%s|%s|%s|%s|%s|\n' ---------------  ------------------------------------------------------ \
    ------------------------ ------------------------ ---------- --------

row no_module ">=0.98" "location without crm, module loaded (req/s)" \
    'wrk_rps $P_MOD /static' 'wrk_rps $P_PLAIN /static'
row capture_up ">=0.9" "crm_capture + proxy, PostgreSQL up (req/s)" \
    'wrk_rps $P_MOD /capture note' 'wrk_rps $P_MOD /proxy note'
row capture_down ">=0.95" "crm_capture + proxy, PostgreSQL down (req/s)" \
    'wrk_rps $P_DOWN /capture note' 'wrk_rps $P_DOWN /proxy note'
row feedback_up ">=0.8" "feedback answered vs return 201, PostgreSQL up" \
    'wrk_rps $P_MOD /feedback post' 'wrk_rps $P_MOD /fixed201 post'
row feedback_down ">=0.8" "feedback answered vs return 201, PostgreSQL down" \
    'wrk_rps $P_FBDOWN /feedback post' 'wrk_rps $P_FBDOWN /fixed201 post'

# orders: as many clients as the module has connections, so that the
# database keeps up
row orders ">=0.8" "orders/s, 2 clients, vs pgbench bench/order.sql" \
    'wrk_rps $P_MOD /order order 2' 'pgbench_tps $ROOT/bench/order.sql 2'
row orders_proxy "-" "orders/s, 2 clients, vs the proxy alone" \
    'wrk_rps $P_MOD /order order 2' 'wrk_rps $P_MOD /proxy order 2'
if wanted orders_hold; then
    settle; h1=$(wrk_rps "$P_MOD" /order order 2)
    settle; h2=$(wrk_rps "$P_MOD" /order order 2)
    settle; h3=$(wrk_rps "$P_MOD" /order order 2)
    report orders_hold ">=0.9" "orders/s, third of three runs in a row vs first" \
        "$h3" "$h1" ratio
fi
row latency_p50 "-" "order latency p50 at ~800/s (ms)" \
    'latency $P_MOD /order 50' 'latency $P_MOD /proxy 50' added
row latency_p99 "<+1 ms" "order latency p99 at ~800/s (ms)" \
    'latency $P_MOD /order 99' 'latency $P_MOD /proxy 99' added

# write rate: a backlog spooled while PostgreSQL was down, taken over by a
# worker pointed at the live database; pgbench sends batches of the same
# lines (bench/batch.sql)
backlog() {
    local d="$DIR/backlog"
    [ -d "$d" ] && return 0
    mkdir -p "$d"
    wrk_rps "$P_DOWN" /capture note >/dev/null
    nginx_stop down
    cat "$DIR"/spool-down/*.jsonl | grep '"kind":"feedback"' \
        | sed 's/"event_id":"[0-9a-f-]*"/"event_id":"@ID@"/' >"$d/lines"
    psql_crm -c 'CREATE TABLE IF NOT EXISTS bench_lines (n int, x text)'
    psql_crm -c 'TRUNCATE bench_lines'
    head -n 256 "$d/lines" | python3 -c '
import csv, sys
w = csv.writer(sys.stdout)
for n, l in enumerate(sys.stdin):
    w.writerow([n, l.rstrip("\n")])' \
        | psql_crm -c "COPY bench_lines FROM STDIN WITH (FORMAT csv)"
}
# replay: events/s one worker writes from a copy of the backlog, with fresh ids
replay() {
    local n sp before t0 t1
    sp=$(mktemp -d "$DIR/spool-replay-XXXX")
    python3 -c "
import sys, uuid
with open(sys.argv[1]) as f, open(sys.argv[2], 'w') as o:
    for l in f:
        o.write(l.replace('@ID@', str(uuid.uuid4()), 1))
" "$DIR/backlog/lines" "$sp/worker-1-1.jsonl"
    chown -R nobody "$sp"
    n=$(wc -l <"$sp/worker-1-1.jsonl")
    before=$(psql_crm -c 'SELECT count(*) FROM crm.event')
    t0=$(date +%s.%N)
    nginx_start replay "$P_DOWN" 1 "$CONNINFO" "$sp" >/dev/null
    while [ "$(psql_crm -c 'SELECT count(*) FROM crm.event')" -lt $((before + n)) ]; do
        sleep 0.05
    done
    t1=$(date +%s.%N)
    nginx_stop replay
    rm -rf "$DIR/ng-replay"
    python3 -c "print('%.0f' % ($n / ($t1 - $t0)))"
}
if wanted write_rate; then
    backlog
    row write_rate ">=0.8" "events written/s by the spool writer vs pgbench" \
        'replay' 'echo $(( $(pgbench_tps $ROOT/bench/batch.sql 1) * 256 ))'
fi

rss_row rss_capture "worker RSS after $RSS_N captured requests vs 10,000 (KB)" \
    /capture note "['events']['captured']"

# banners: a customer with an open promise and her cookie, her state warm
if wanted banner_off || wanted banner_sub || wanted rss_banner; then
    COOKIE=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' \
        -d '{"order_id":"BN-1","customer":{"email":"anna@bench.example","name":"Anna"},"total":10}' \
        "http://127.0.0.1:$P_MOD/order" | tr -d '\r' | sed -n 's/^Set-Cookie: \(crm=[^;]*\).*/\1/Ip')
    for _ in $(seq 100); do
        cid=$(psql_crm -c "SELECT customer_id FROM crm.customer WHERE email = 'anna@bench.example'")
        [ -n "$cid" ] && break
        sleep 0.1
    done
    psql_crm -c "INSERT INTO crm.promise (customer_id, kind, percent, valid_until) VALUES ($cid, 'repeat_order', 10, now() + interval '30 days')"
    for _ in $(seq 50); do
        curl -s -H "Cookie: $COOKIE" "http://127.0.0.1:$P_MOD/bpage" | grep -q 'class="crm"' && break
        sleep 0.1
    done
fi
row banner_off ">=0.95" "banner page vs crm_banner off, 20 KB (req/s)" \
    'wrk_rps $P_MOD /bpage cookie' 'wrk_rps $P_MOD /bpage-off cookie'
row banner_sub ">=1.0" "banner page vs sub_filter of a fixed one (req/s)" \
    'wrk_rps $P_MOD /bpage cookie' 'wrk_rps $P_MOD /bpage-sub cookie'
rss_row rss_banner "worker RSS after $RSS_N banner pages vs 10,000 (KB)" \
    /bpage cookie "['banners']['impressions']"

read -r steal1 total1 <<<"$(steal_mark)"
echo
echo "wrk -t1 -c$CONNS -d${SECS}s on loopback, nginx worker_processes 1, $NCPU cores ($PINNED);"
echo "PostgreSQL 15 with fsync=off, synchronous_commit=off for both sides; $(( $(date +%s) - started )) s;"
python3 -c "print('the hypervisor took %.1f %% of the CPU time during the run (steal)' % (100.0 * ($steal1 - $steal0) / max(1, $total1 - $total0)))"
