#!/usr/bin/env bash
# ngx_crm benchmarks: every figure is a ratio against plain nginx (or plain
# PostgreSQL) measured in the same run on the same machine.  Loopback only;
# each wrk run is bounded by CRM_BENCH_SECONDS (5).
#
#   no_module   a location without the module, module loaded / not loaded
#   capture_up  crm_capture feedback + proxy_pass of a note that names nobody
#               (recorded only, no ticket), PostgreSQL up / the same proxy
#               without
#   capture_down  the same with PostgreSQL down
#   feedback    crm_capture feedback answered by the module / return 201 of
#               a fixed JSON body, PostgreSQL up and down
#   write_rate  events written from the spool per second (the notes the
#               "down" instance spooled) / pgbench doing the same INSERT, one a
#               transaction
#   orders      orders/s through crm_capture order (one crm.decide_order()
#               round trip each) / the same proxy without crm_capture
#   latency     p50 and p99 added by the decision at a steady rate
#   decide      orders/s through the module / pgbench running
#               crm.decide_order() alone, as many clients as connections
#   banners     a 20 KB page with a customer's banner / the same page with
#               crm_banner off, and / sub_filter putting a fixed banner in;
#               worker RSS after 1,000,000 banner pages / after 10,000
#               (CRM_BENCH_BANNER_PAGES); CRM_BENCH_ONLY=banners runs these
#               rows alone

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SO=${CRM_MODULE:-$ROOT/build/ngx_http_crm_module.so}
SECS=${CRM_BENCH_SECONDS:-5}
CONNS=${CRM_BENCH_CONNECTIONS:-32}
PGBIN=/usr/lib/postgresql/15/bin
DIR=$(mktemp -d /tmp/crm-bench-XXXX)
chmod 755 "$DIR"

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
    rm -rf "$DIR"
}
trap cleanup EXIT

# --- PostgreSQL ---------------------------------------------------------------
mkdir -p "$DIR/pg"
chown postgres "$DIR/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$DIR/pg/data" -A trust -U postgres >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DIR/pg/data" -w -l "$DIR/pg/log" \
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
    /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" 2>>"$d/logs/stderr.log"
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

# rps PORT PATH [post|note|order [CONNECTIONS]]: requests per second, wrk's
rps() {
    local args=(-t1 -c"${4:-$CONNS}" -d"${SECS}s")
    [ "${3:-}" = post ] && args+=(-s "$ROOT/bench/post.lua")
    [ "${3:-}" = note ] && args+=(-s "$ROOT/bench/note.lua")
    [ "${3:-}" = order ] && args+=(-s "$ROOT/bench/order.lua")
    wrk "${args[@]}" "http://127.0.0.1:$1$2" | awk '/^Requests\/sec/ { print $2 }'
}

# latency PORT PATH: "p50 p99" in ms of orders at a steady rate: 8
# connections, each waiting 10 ms between requests (about 800 orders/s)
latency() {
    CRM_BENCH_DELAY_MS=10 wrk -t1 -c8 -d"${SECS}s" --latency \
        -s "$ROOT/bench/order.lua" "http://127.0.0.1:$1$2" \
        | awk '
            function ms(v) {
                if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
                if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
                if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
                return v
            }
            $1 == "50%" { p50 = ms($2) }
            $1 == "99%" { p99 = ms($2) }
            END { printf "%.2f %.2f", p50, p99 }'
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
/usr/sbin/nginx -p "$DIR/ng-up" -c "$DIR/ng-up/nginx.conf"

nginx_start plain "$P_PLAIN" 0
nginx_start mod "$P_MOD" 1 "$CONNINFO" "$DIR/spool-up"
nginx_start down "$P_DOWN" 1 "host=127.0.0.1 port=$P_DEAD dbname=crm user=postgres connect_timeout=1" "$DIR/spool-down"
# tickets given while PostgreSQL is down, spooled apart from the notes
nginx_start fbdown "$P_FBDOWN" 1 "host=127.0.0.1 port=$P_DEAD dbname=crm user=postgres connect_timeout=1" "$DIR/spool-fbdown"

row() { printf '| %-44s | %12s | %12s | %6s | %6s |\n' "$@"; }

echo
row "benchmark" "module" "baseline" "ratio" "goal"
row "--------------------------------------------" "------------" "------------" "------" "------"

# banners: a customer with an open promise and her cookie, her state warm
cookie=$(curl -s -D - -o /dev/null -H 'Content-Type: application/json' \
    -d '{"order_id":"BN-1","customer":{"email":"anna@bench.example","name":"Anna"},"total":10}' \
    "http://127.0.0.1:$P_MOD/order" | tr -d '\r' | sed -n 's/^Set-Cookie: \(crm=[^;]*\).*/\1/Ip')
for _ in $(seq 100); do
    cid=$(psql -X -At -h 127.0.0.1 -p "$P_PG" -U postgres crm -c \
          "SELECT customer_id FROM crm.customer WHERE email = 'anna@bench.example'")
    [ -n "$cid" ] && break
    sleep 0.1
done
psql -X -q -h 127.0.0.1 -p "$P_PG" -U postgres crm -c \
    "INSERT INTO crm.promise (customer_id, kind, percent, valid_until) VALUES ($cid, 'repeat_order', 10, now() + interval '30 days')"
for _ in $(seq 50); do
    curl -s -H "Cookie: $cookie" "http://127.0.0.1:$P_MOD/bpage" | grep -q 'class="crm"' && break
    sleep 0.1
done
bps() { wrk -t1 -c"$CONNS" -d"${SECS}s" -H "Cookie: $cookie" "http://127.0.0.1:$P_MOD$1" | awk '/^Requests\/sec/ { print $2 }'; }
a=$(bps /bpage); b=$(bps /bpage-off)
row "banner page vs crm_banner off, 20 KB (req/s)" "$a" "$b" "$(ratio "$a" "$b")" ">=0.95"
a=$(bps /bpage); b=$(bps /bpage-sub)
row "banner page vs sub_filter of a fixed one (req/s)" "$a" "$b" "$(ratio "$a" "$b")" ">=1.0"
wpid=$(pgrep -P "$(cat "$DIR/ng-mod/logs/nginx.pid")" | head -1)
wrk -t1 -c"$CONNS" -d600s -H "Cookie: $cookie" \
    "http://127.0.0.1:$P_MOD/bpage" >/dev/null 2>&1 &
wrk_pid=$!
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$wpid/status"; }
pages() { status "$P_MOD" "['banners']['impressions']"; }
while [ "$(pages)" -lt 10000 ]; do sleep 0.2; done
a10k=$(rss)
while [ "$(pages)" -lt "${CRM_BENCH_BANNER_PAGES:-1000000}" ]; do sleep 1; done
a1m=$(rss)
kill "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" 2>/dev/null || true
row "worker RSS after ${CRM_BENCH_BANNER_PAGES:-1000000} banner pages vs 10,000 (KB)" "$a1m" "$a10k" "$(ratio "$a1m" "$a10k")" "<=1.05"
if [ "${CRM_BENCH_ONLY:-}" = banners ]; then
    exit 0
fi

a=$(rps "$P_MOD" /static); b=$(rps "$P_PLAIN" /static)
row "location without crm, module loaded (req/s)" "$a" "$b" "$(ratio "$a" "$b")" ">=0.98"

a=$(rps "$P_MOD" /capture note); b=$(rps "$P_MOD" /proxy note)
row "crm_capture + proxy, PostgreSQL up (req/s)" "$a" "$b" "$(ratio "$a" "$b")" ">=0.9"

a=$(rps "$P_DOWN" /capture note); b=$(rps "$P_DOWN" /proxy note)
row "crm_capture + proxy, PostgreSQL down (req/s)" "$a" "$b" "$(ratio "$a" "$b")" ">=0.95"

# feedback answered by the module (ticket, due time, message) against
# nginx answering a fixed body of the same size with return 201
a=$(rps "$P_MOD" /feedback post); b=$(rps "$P_MOD" /fixed201 post)
row "feedback answered by the module, PostgreSQL up (req/s)" "$a" "$b" "$(ratio "$a" "$b")" ">=0.8"
a=$(rps "$P_FBDOWN" /feedback post); b=$(rps "$P_FBDOWN" /fixed201 post)
row "feedback answered, PostgreSQL down (req/s)" "$a" "$b" "$(ratio "$a" "$b")" ">=0.8"

# the events of the runs before are written first: PostgreSQL shares the
# two cores with everything else
for _ in $(seq 600); do
    [ "$(status "$P_MOD" "['spool']['bytes']")" = 0 ] && break
    sleep 0.1
done

# as many clients as the module has connections, so that the database
# keeps up; the share of orders that got their decision is printed
d0=$(status "$P_MOD" "['orders']['decided']")
u0=$(status "$P_MOD" "['orders']['undecided']")
a=$(rps "$P_MOD" /order order 2); b=$(rps "$P_MOD" /proxy order 2)
d1=$(status "$P_MOD" "['orders']['decided']")
u1=$(status "$P_MOD" "['orders']['undecided']")
decided=$(python3 -c "n=($d1-$d0)+($u1-$u0); print('%.0f%%' % (100.0*($d1-$d0)/n if n else 0))")
row "orders, 2 clients, $decided decided (req/s)" "$a" "$b" "$(ratio "$a" "$b")" ">=0.8"
orders=$a
a=$(rps "$P_MOD" /order order); b=$(rps "$P_MOD" /proxy order)
d2=$(status "$P_MOD" "['orders']['decided']")
u2=$(status "$P_MOD" "['orders']['undecided']")
decided=$(python3 -c "n=($d2-$d1)+($u2-$u1); print('%.0f%%' % (100.0*($d2-$d1)/n if n else 0))")
row "orders, $CONNS clients, $decided decided (req/s)" "$a" "$b" "$(ratio "$a" "$b")" "-"

read -r a50 a99 <<<"$(latency "$P_MOD" /order)"
read -r b50 b99 <<<"$(latency "$P_MOD" /proxy)"
row "order latency p50 at ~800/s (ms)" "$a50" "$b50" "+$(python3 -c "print('%.2f' % ($a50 - $b50))")" "-"
row "order latency p99 at ~800/s (ms)" "$a99" "$b99" "+$(python3 -c "print('%.2f' % ($a99 - $b99))")" "-"

# PostgreSQL alone doing the decisions the module asked for, with the
# policy the module registered
psql -X -q -h 127.0.0.1 -p "$P_PG" -U postgres crm -c \
    "INSERT INTO crm.policy (sha256, doc) SELECT 'bench', doc FROM crm.policy ORDER BY registered_at DESC LIMIT 1 ON CONFLICT DO NOTHING"
b=$("$PGBIN/pgbench" -n -M prepared -h 127.0.0.1 -p "$P_PG" -U postgres -c 2 -j 2 -T "$SECS" \
      -f "$ROOT/bench/decide.sql" crm 2>/dev/null | awk '/^tps/ { printf "%.0f", $3 }')
row "orders/s: module vs pgbench crm.decide_order()" "$orders" "$b" "$(ratio "$orders" "$b")" ">=0.8"

# write rate: the events the "down" instance spooled, sent by a worker
# pointed at the live database (it takes the gone worker's file over)
nginx_stop down
spooled=$(cat "$DIR"/spool-down/*.jsonl | wc -l)
before=$(psql -X -At -h 127.0.0.1 -p "$P_PG" -U postgres crm -c 'SELECT count(*) FROM crm.event')
t0=$(date +%s.%N)
nginx_start replay "$P_DOWN" 1 "$CONNINFO" "$DIR/spool-down"
for _ in $(seq 1200); do
    n=$(psql -X -At -h 127.0.0.1 -p "$P_PG" -U postgres crm -c 'SELECT count(*) FROM crm.event')
    [ $((n - before)) -ge "$spooled" ] && break
    sleep 0.05
done
t1=$(date +%s.%N)
a=$(python3 -c "print('%.0f' % ($spooled / ($t1 - $t0)))")
echo "\\set x 1" >/dev/null
b=$(PGOPTIONS='-c synchronous_commit=off' "$PGBIN/pgbench" -n -h 127.0.0.1 -p "$P_PG" -U postgres -c 2 -j 2 -T "$SECS" \
      -f "$ROOT/bench/insert.sql" crm 2>/dev/null | awk '/^tps/ { printf "%.0f", $3 }')
row "events written/s ($spooled from the spool)" "$a" "$b" "$(ratio "$a" "$b")" ">=0.8"

echo
echo "wrk -t1 -c$CONNS -d${SECS}s on loopback, nginx worker_processes 1, $(nproc) cores;"
echo "PostgreSQL 15 with fsync=off, synchronous_commit=off for both sides."
