#!/usr/bin/env bash
# Throughput, latency and CPU per query through shardgate, measured in one run beside PostgreSQL
# direct (one plain database holding all rows), a zero-logic TCP relay (haproxy, mode tcp, one
# thread: the floor any proxy pays on these shared cores) and pgbouncer (transaction pooling),
# the last two in front of the same direct database. Every figure is printed as a ratio to
# direct; shardgate's also as a share of the relay's ratio.
#
# Sections (SECTIONS, default all): worker (a worker's own CPU per prepared lookup, pgbench
# straight at it: a plain table, the partitioned table under PostgreSQL's plan_cache_mode
# auto, and under the force_generic_plan shardgate's connections use), idle (shardgate's memory per idle client, IDLE_CLIENTS of
# them, default 10000, held open by examples/idle_clients.rs), keyed (pgbench `SELECT v FROM kv WHERE k = :k`, simple,
# extended and prepared protocol at each of CLIENTS), connect (pgbench -C: a connection per
# query), scatter (count, GROUP BY, ORDER BY ... LIMIT over 1M rows on 3 nodes), tpcb (pgbench's
# default script, scale 10), memory (shardgate's peak RSS around sorted reads of all rows).
# CPU per query is read from /proc (utime + stime; for each PostgreSQL server the postmaster,
# its reaped children and its live ones), so it counts kernel time too.
#
# Usage: bash bench/run.sh [seconds per pgbench run, default 5]
#        CLIENTS="1 8 64" SECTIONS="keyed connect scatter tpcb memory" bash bench/run.sh 5
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
CLIENTS=${CLIENTS:-1 8 64}
SECTIONS=${SECTIONS:-worker idle keyed connect scatter tpcb memory}
DATA=target/bench-data
WORK=/tmp/shardgate-bench
has() { [[ " $SECTIONS " == *" $1 "* ]]; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v haproxy >/dev/null || ! command -v pgbouncer >/dev/null || ! command -v bc >/dev/null; then
    as_root apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy pgbouncer bc >/dev/null
fi
cargo build --release -q --bin shardgate --example idle_clients
# 10,000 idle clients need as many descriptors in shardgate and in the program holding them.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
BIN=target/release/shardgate
if [ "$(id -u)" = 0 ]; then AS_PG="runuser -u postgres --"; else AS_PG=""; fi
rm -rf "$WORK" && mkdir -p "$WORK" && chmod 777 "$WORK"

$BIN --config bench/bench.toml local --data "$DATA" --schema config/example-schema.sql >"$WORK/shardgate.log" 2>&1 &
SG=$!
RELAY="" BOUNCER=""
cleanup() {
    [ -n "$RELAY" ] && kill "$RELAY" 2>/dev/null
    [ -n "$BOUNCER" ] && kill "$BOUNCER" 2>/dev/null
    kill -INT $SG 2>/dev/null
    wait $SG 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 240); do
    grep -q "ready on" "$WORK/shardgate.log" 2>/dev/null && break
    sleep 0.5
done
export PGPASSWORD=app-secret
SGQ="psql -X -q -At -h 127.0.0.1 -p 6543 -U app -d app"
DQ="psql -X -q -At -h 127.0.0.1 -p 57001 -U postgres"

# PostgreSQL direct: one plain database on the first worker's server with the same rows, and
# a role that logs in with SCRAM as shardgate's users do (for the connection-cost figures).
if [ "$($DQ -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = 'direct'")" = 0 ]; then
    $DQ -d postgres -c "CREATE DATABASE direct"
    $DQ -d direct -f config/example-schema.sql >/dev/null
fi
$DQ -d postgres -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench') THEN CREATE ROLE bench LOGIN PASSWORD 'app-secret'; END IF; END \$\$"
$DQ -d direct -c "GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench"
HBA=$($DQ -d postgres -c "SHOW hba_file")
if ! as_root grep -q "^host direct bench" "$HBA"; then
    as_root sed -i '1i host direct bench 127.0.0.1/32 scram-sha-256' "$HBA"
    $DQ -d postgres -c "SELECT pg_reload_conf()" >/dev/null
fi
both() { # table name, DDL, INSERT: the same table and rows direct and through shardgate
    if [ "$($DQ -d direct -c "SELECT count(*) FROM pg_tables WHERE tablename = '$1'")" = 0 ]; then
        $DQ -d direct -c "$2" -c "$3" -c "VACUUM ANALYZE $1" -c "GRANT SELECT ON $1 TO bench"
    fi
    if [ "$($SGQ -c "SELECT count(*) FROM pg_tables WHERE tablename = '$1'")" = 0 ]; then
        $SGQ -c "$2" -c "$3" -c "VACUUM ANALYZE $1"
    fi
}
both kv "CREATE TABLE kv (k int PRIMARY KEY, v text)" \
    "INSERT INTO kv SELECT g, md5(g::text) FROM generate_series(1, 20000) g"
both big_events "CREATE TABLE big_events (id bigint PRIMARY KEY, user_id bigint, kind text, amount numeric(10,1), created date)" \
    "INSERT INTO big_events (id, user_id, kind, amount, created) SELECT g, g % 10000, (ARRAY['a','b','c','d','e'])[1 + g % 5], (g % 1000)::numeric / 10, date '2024-01-01' + g % 365 FROM generate_series(1, 1000000) g"

# The relay and pgbouncer, both in front of the direct database.
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen pg
    bind 127.0.0.1:6544
    server direct 127.0.0.1:57001
EOF
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
RELAY=$!
echo '"postgres" ""' >"$WORK/userlist.txt"
cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
direct = host=127.0.0.1 port=57001 dbname=direct user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6545
unix_socket_dir =
auth_type = trust
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = 16
max_client_conn = 4000
logfile = $WORK/pgbouncer.log
EOF
chmod 644 "$WORK"/*
$AS_PG pgbouncer "$WORK/pgbouncer.ini" >/dev/null 2>&1 &
BOUNCER=$!
sleep 1
# runuser execs pgbouncer in place, so $BOUNCER is pgbouncer's own PID.

POSTMASTERS=$(for w in w1 w2 w3; do head -1 "$DATA/$w/data/postmaster.pid"; done)
ticks() { # CPU clock ticks used so far by the given processes (a postmaster with its children)
    local total=0 p c
    for p in "$@"; do
        # Own time, and for a postmaster the reaped backends' time (cutime, cstime).
        total=$((total + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)))
        for c in $(pgrep -P "$p" 2>/dev/null); do
            total=$((total + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
        done
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

cat >"$WORK/keyed.sql" <<'SQL'
\set k random(1, 20000)
SELECT v FROM kv WHERE k = :k;
SQL
# One pgbench run: prints tps, latency (ms), proxy and PostgreSQL CPU per transaction (µs).
measure() { # proxy pid (or -), pgbench args...
    local proxy=$1 out p0 p1 w0 w1 tps lat n
    shift
    p0=0; [ "$proxy" != - ] && p0=$(ticks "$proxy")
    w0=$(ticks $POSTMASTERS)
    out=$(pgbench -n "$@" -T "$SECS" 2>&1) || { echo "pgbench failed: $out" >&2; echo "0 0 0 0"; return; }
    p1=0; [ "$proxy" != - ] && p1=$(ticks "$proxy")
    w1=$(ticks $POSTMASTERS)
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    n=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    [ -z "$n" ] || [ "$n" = 0 ] && n=1
    echo "$tps $lat $(((p1 - p0) * 1000000 / HZ / n)) $(((w1 - w0) * 1000000 / HZ / n))"
}
ratio() { echo "scale=2; $1 / $2" | bc; }
row() { printf "%-8s %-9s %-10s %9s %6s %6s %8s %9s %7s\n" "$@"; }
target_args() { # target, clients, protocol: pgbench connection args
    local j=$(($2 < 2 ? 1 : 2))
    case $1 in
        direct) echo "-h 127.0.0.1 -p 57001 -U postgres -c $2 -j $j -M $3 direct" ;;
        relay) echo "-h 127.0.0.1 -p 6544 -U postgres -c $2 -j $j -M $3 direct" ;;
        pgbouncer) echo "-h 127.0.0.1 -p 6545 -U postgres -c $2 -j $j -M $3 direct" ;;
        shardgate) echo "-h 127.0.0.1 -p 6543 -U app -c $2 -j $j -M $3 app" ;;
    esac
}
target_pid() { case $1 in direct) echo - ;; relay) echo "$RELAY" ;; pgbouncer) echo "$BOUNCER" ;; shardgate) echo $SG ;; esac; }

if has worker; then
    echo "== one worker's CPU per prepared lookup: pgbench -M prepared -c 8 -T $SECS straight at the first worker's server"
    printf "%-52s %10s %8s %8s\n" table tps pg_us vs_plain
    plain=""
    for t in "plain table (database direct)|direct|" \
             "partitioned kv, plan_cache_mode auto|app|-c plan_cache_mode=auto" \
             "partitioned kv, force_generic_plan (shardgate's)|app|-c plan_cache_mode=force_generic_plan"; do
        IFS='|' read -r label db opts <<<"$t"
        PGPASSWORD= PGOPTIONS="$opts" pgbench -n -M prepared -c 8 -j 2 -T 2 -h 127.0.0.1 -p 57001 -U postgres "$db" -f "$WORK/keyed.sql" >/dev/null 2>&1 || true
        read -r tps _ _ wus < <(PGPASSWORD= PGOPTIONS="$opts" measure - -M prepared -c 8 -j 2 -h 127.0.0.1 -p 57001 -U postgres "$db" -f "$WORK/keyed.sql")
        # measure's pg_us spans all three servers; the other two are idle here.
        [ -z "$plain" ] && plain=$wus
        printf "%-52s %10s %8s %8s\n" "$label" "$tps" "$wus" "$(ratio "$wus" "$plain")"
    done
    echo
fi

if has idle; then
    N=${IDLE_CLIENTS:-10000}
    echo "== $N idle clients (tokio-postgres, SCRAM), held open: shardgate's resident memory"
    rss() { awk '/VmRSS/ {print $2}' "/proc/$SG/status"; }
    before=$(rss)
    mkfifo "$WORK/hold"
    target/release/examples/idle_clients 127.0.0.1 6543 app app-secret app "$N" <"$WORK/hold" >"$WORK/idle.out" 2>&1 &
    IDLE=$!
    exec 7>"$WORK/hold"
    t0=$(date +%s)
    while ! grep -q "^open" "$WORK/idle.out" && kill -0 $IDLE 2>/dev/null; do sleep 0.5; done
    t1=$(date +%s)
    after=$(rss)
    opened=$(sed -n 's/^open //p' "$WORK/idle.out")
    exec 7>&-
    wait $IDLE || true
    if [ -n "$opened" ]; then
        echo "opened $opened in $((t1 - t0)) s; VmRSS $before kB before, $after kB with them open: $(((after - before) / opened)) kB per idle client"
    else
        echo "idle clients failed: $(tail -3 "$WORK/idle.out")"
    fi
    echo
fi

if has keyed; then
    echo "== keyed lookups: SELECT v FROM kv WHERE k = :k (20k rows; through shardgate hash-distributed, 6 shards on 3 nodes), pgbench -T $SECS"
    echo "   ratio: tps / direct's; of_relay: ratio / the relay's ratio; proxy_us, pg_us: CPU µs per query (pg_us: all PostgreSQL servers)"
    for target in direct shardgate; do # warm caches, pools and plan caches
        # shellcheck disable=SC2046
        PGPASSWORD=$([ $target = direct ] || echo app-secret) pgbench -n -T 2 $(target_args $target 8 prepared) -f "$WORK/keyed.sql" >/dev/null 2>&1 || true
    done
    row clients mode target tps ratio of_relay lat_ms proxy_us pg_us
    for c in $CLIENTS; do
        for mode in simple extended prepared; do
            dt="" rr=""
            for target in direct relay pgbouncer shardgate; do
                if [ $target = pgbouncer ] && [ $mode = prepared ]; then
                    row "$c" $mode $target - - - - - -   # pgbouncer 1.18 has no prepared statements in transaction pooling
                    continue
                fi
                pw=""; [ $target = shardgate ] && pw=app-secret
                # shellcheck disable=SC2046
                read -r tps lat pus wus < <(PGPASSWORD=$pw measure "$(target_pid $target)" $(target_args $target "$c" $mode) -f "$WORK/keyed.sql")
                [ -z "$dt" ] && dt=$tps
                r=$(ratio "$tps" "$dt")
                share=-
                [ $target = relay ] && rr=$r
                [ $target = shardgate ] && [ -n "$rr" ] && share=$(ratio "$r" "$rr")
                [ $target = direct ] && pus=-
                row "$c" $mode $target "$tps" "$r" "$share" "$lat" "$pus" "$wus"
            done
        done
    done
    echo
    # What the topology itself costs on these cores: the same lookups sent by pgbench straight
    # to the three workers' own partitioned kv at once (8 clients split 3+3+2), no proxy.
    echo "== keyed lookups straight at the three worker servers at once (no proxy), 8 clients: the topology's own ceiling"
    printf "%-9s %10s %8s %8s\n" mode tps ratio pg_us
    for mode in simple extended prepared; do
        read -r dtps _ _ _ < <(measure - $(target_args direct 8 $mode) -f "$WORK/keyed.sql")
        w0=$(ticks $POSTMASTERS)
        pids=""
        for pc in 57001:3 57002:3 57003:2; do
            PGPASSWORD= pgbench -n -M $mode -c "${pc#*:}" -j 1 -T "$SECS" -h 127.0.0.1 -p "${pc%:*}" -U postgres app \
                -f "$WORK/keyed.sql" >"$WORK/spread.${pc%:*}" 2>&1 &
            pids="$pids $!"
        done
        # shellcheck disable=SC2086
        wait $pids || true
        w1=$(ticks $POSTMASTERS)
        n=0 tps=0
        for p in 57001 57002 57003; do
            n=$((n + $(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/spread.$p")))
            tps=$(echo "$tps + $(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/spread.$p")" | bc)
        done
        [ "$n" = 0 ] && n=1
        printf "%-9s %10s %8s %8s\n" $mode "$tps" "$(ratio "$tps" "$dtps")" $(((w1 - w0) * 1000000 / HZ / n))
    done
    echo
fi

if has connect; then
    echo "== connect, one query, disconnect: pgbench -C -c 8 -T $SECS (SCRAM login on both sides)"
    row clients mode target tps ratio of_relay lat_ms proxy_us pg_us
    dt="" rr=""
    for target in direct relay shardgate; do
        case $target in
            direct) args="-h 127.0.0.1 -p 57001 -U bench direct" ;;
            relay) args="-h 127.0.0.1 -p 6544 -U bench direct" ;;
            shardgate) args="-h 127.0.0.1 -p 6543 -U app app" ;;
        esac
        # shellcheck disable=SC2086
        read -r tps lat pus wus < <(measure "$(target_pid $target)" -C -c 8 -j 2 $args -f "$WORK/keyed.sql")
        [ -z "$dt" ] && dt=$tps
        r=$(ratio "$tps" "$dt")
        share=-
        [ $target = relay ] && rr=$r
        [ $target = shardgate ] && share=$(ratio "$r" "$rr")
        [ $target = direct ] && pus=-
        row 8 connect $target "$tps" "$r" "$share" "$lat" "$pus" "$wus"
    done
    echo
fi

if has scatter; then
    echo "== scatter-gather over 1M rows (big_events; through shardgate 6 shards on 3 nodes): pgbench -c 1 -T $SECS per query"
    printf "%-58s %9s %9s %6s %9s %9s %9s\n" query direct_ms sg_ms ratio sg_us direct_pg sg_pg
    for q in "SELECT count(*) FROM big_events" \
             "SELECT kind, count(*), sum(amount), avg(amount) FROM big_events GROUP BY kind" \
             "SELECT user_id, count(*) FROM big_events GROUP BY user_id ORDER BY 2 DESC, 1 LIMIT 5" \
             "SELECT * FROM big_events ORDER BY amount DESC, id LIMIT 10"; do
        echo "$q;" >"$WORK/scatter.sql"
        read -r _ dl _ dus < <(PGPASSWORD= measure - -h 127.0.0.1 -p 57001 -U postgres -c 1 -M extended direct -f "$WORK/scatter.sql")
        read -r _ sl pus wus < <(measure $SG -h 127.0.0.1 -p 6543 -U app -c 1 -M extended app -f "$WORK/scatter.sql")
        printf "%-58.58s %9s %9s %6s %9s %9s %9s\n" "$q" "$dl" "$sl" "$(ratio "$dl" "$sl")" "$pus" "$dus" "$wus"
    done
    echo
fi

if has tpcb; then
    # pgbench -i -s 10 on both sides (through shardgate: all four tables hash-distributed, so
    # most transactions write on two or three nodes and commit in two phases).
    PGPASSWORD= pgbench -i -s 10 -q -h 127.0.0.1 -p 57001 -U postgres direct >/dev/null 2>&1
    pgbench -i -s 10 -q -h 127.0.0.1 -p 6543 -U app app >/dev/null 2>&1
    decisions() { $DQ -d app -c "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE schemaname = 'shardgate' AND relname = 'transactions'"; }
    echo "== TPC-B: pgbench -c 8 -j 2 -T $SECS, scale 10 (default script, simple protocol)"
    read -r dt dl _ dw < <(PGPASSWORD= measure - -c 8 -j 2 -h 127.0.0.1 -p 57001 -U postgres direct)
    before=$(decisions)
    read -r st sl sp sw < <(measure $SG -c 8 -j 2 -h 127.0.0.1 -p 6543 -U app app)
    after=$(decisions)
    sn=$(echo "$st * $SECS" | bc)
    printf "%-10s %10s %10s %6s %9s %9s %9s %9s %9s\n" "" direct_tps sg_tps ratio direct_ms sg_ms sg_us pg_us two_phase
    printf "%-10s %10s %10s %6s %9s %9s %9s %9s %9s\n" tpcb "$dt" "$st" "$(ratio "$st" "$dt")" "$dl" "$sl" "$sp" "$sw/$dw" "$(echo "scale=2; ($after - $before) / $sn" | bc)"
    sums=""
    for q in "sum(abalance) FROM pgbench_accounts" "sum(tbalance) FROM pgbench_tellers" "sum(bbalance) FROM pgbench_branches" "sum(delta) FROM pgbench_history"; do
        sums="$sums $($SGQ -c "SELECT $q")"
    done
    echo "through shardgate, sum(abalance) sum(tbalance) sum(bbalance) sum(delta):$sums"
    echo
fi

if has memory; then
    echo "== shardgate memory"
    hwm() { grep VmHWM "/proc/$SG/status" | awk '{print $2" "$3}'; }
    echo "peak RSS before the sorted reads: $(hwm)"
    $SGQ -c "SELECT * FROM big_events ORDER BY created, id LIMIT 10" >/dev/null
    $SGQ -c "SELECT * FROM big_events ORDER BY amount DESC, id OFFSET 10 LIMIT 10" >/dev/null
    $SGQ -c "SELECT id FROM big_events ORDER BY id" | tail -1 >/dev/null
    echo "peak RSS after ORDER BY ... LIMIT and streaming all 1M rows sorted: $(hwm)"
fi
