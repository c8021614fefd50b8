#!/usr/bin/env bash
# Throughput and latency through shardgate as a ratio to PostgreSQL direct, measured in the same
# run on the same machine: keyed lookups (pgbench, simple/extended/prepared protocol), then
# count(*) and GROUP BY over 1M rows on 3 nodes against one PostgreSQL holding the same rows,
# and shardgate's peak memory around ORDER BY ... LIMIT 10 over all rows; first pgbench's
# TPC-B at scale 10 (TPCB=0 skips it, TPCB_ONLY=1 runs only it).
# Usage: bash bench/run.sh [seconds per pgbench run, default 10] [clients, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CLIENTS=${2:-8}
DATA=target/bench-data
cargo build --release -q
BIN=target/release/shardgate
if [ "$(id -u)" = 0 ]; then AS_PG="runuser -u postgres --"; else AS_PG=""; fi

$BIN --config bench/bench.toml local --data "$DATA" --schema config/example-schema.sql >target/bench-shardgate.log 2>&1 &
SG=$!
trap 'kill -INT $SG 2>/dev/null; wait $SG 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    grep -q "ready on" target/bench-shardgate.log 2>/dev/null && break
    sleep 0.5
done
sleep 2
export PGPASSWORD=app-secret
SGQ="psql -X -q -At -h 127.0.0.1 -p 6543 -U app -d app"
DQ="psql -X -q -At -h 127.0.0.1 -p 57001 -U postgres"

# PostgreSQL direct: one plain database on the first worker's server with the same rows.
if [ "$($DQ -d postgres -c "SELECT count(*) FROM pg_database WHERE datname = 'direct'")" = 0 ]; then
    $DQ -d postgres -c "CREATE DATABASE direct"
    $DQ -d direct -f config/example-schema.sql
fi
BIG="INSERT INTO big_events (id, user_id, kind, amount, created) SELECT g, g % 10000, (ARRAY['a','b','c','d','e'])[1 + g % 5], (g % 1000)::numeric / 10, date '2024-01-01' + g % 365 FROM generate_series(1, 1000000) g"
BIGDDL="CREATE TABLE big_events (id bigint PRIMARY KEY, user_id bigint, kind text, amount numeric(10,1), created date)"
if [ "$($DQ -d direct -c "SELECT count(*) FROM pg_tables WHERE tablename = 'big_events'")" = 0 ]; then
    $DQ -d direct -c "$BIGDDL" -c "$BIG" -c "VACUUM ANALYZE big_events"
fi
if [ "$($SGQ -c "SELECT count(*) FROM pg_tables WHERE tablename = 'big_events'")" = 0 ]; then
    $SGQ -c "$BIGDDL" -c "$BIG" -c "VACUUM ANALYZE big_events"
fi
$DQ -d direct -c "VACUUM ANALYZE" >/dev/null

cat >target/bench-keyed.sql <<'SQL'
\set id random(1, 1000)
\set d random(0, 9)
SELECT * FROM user_analytics WHERE user_id = :id AND activity_date = date '2024-01-01' + :d::int;
SQL

run() { # label, pgbench connection args...
    local out
    out=$(pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" "$@" -f target/bench-keyed.sql 2>&1)
    local tps lat
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    echo "$tps $lat"
}
# Warm both sides (caches, pools, prepared statements) before measuring.
PGPASSWORD= pgbench -n -c "$CLIENTS" -j 2 -T 3 -h 127.0.0.1 -p 57001 -U postgres -f target/bench-keyed.sql direct >/dev/null 2>&1
pgbench -n -c "$CLIENTS" -j 2 -T 3 -h 127.0.0.1 -p 6543 -U app -f target/bench-keyed.sql app >/dev/null 2>&1
tpcb() { # pgbench connection args...: tps, latency of the default TPC-B script
    local out
    out=$(pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" "$@" 2>&1)
    echo "$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p') $(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p') $(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')"
}
if [ "${TPCB:-1}" = 1 ]; then
    # TPC-B: pgbench -i -s 10 on both sides (through shardgate: all four tables hash-distributed,
    # so most transactions write on two or three nodes and commit in two phases).
    PGPASSWORD= pgbench -i -s 10 -q -h 127.0.0.1 -p 57001 -U postgres direct >/dev/null 2>&1
    pgbench -i -s 10 -q -h 127.0.0.1 -p 6543 -U app app >/dev/null 2>&1
    decisions() { $DQ -d app -c "SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables WHERE schemaname = 'shardgate' AND relname = 'transactions'"; }
    echo "== TPC-B: pgbench -c $CLIENTS -j 2 -T $SECS, scale 10 (default script, simple protocol)"
    read -r dt dl df < <(PGPASSWORD= tpcb -h 127.0.0.1 -p 57001 -U postgres direct)
    before=$(decisions)
    out=$(pgbench -n -c "$CLIENTS" -j 2 -T "$SECS" -h 127.0.0.1 -p 6543 -U app app 2>&1)
    sleep 1
    after=$(decisions)
    st=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
    sl=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')
    sf=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
    sn=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    printf "%-10s %12s %12s %10s %12s %12s %8s %8s\n" "" direct_tps sg_tps ratio direct_ms sg_ms failed two_phase
    printf "%-10s %12s %12s %10s %12s %12s %8s %8s\n" tpcb "$dt" "$st" "$(echo "scale=2; $st / $dt" | bc)" "$dl" "$sl" "$df/$sf" "$(echo "scale=2; ($after - $before) / $sn" | bc)"
    sums=""
    for q in "sum(abalance) FROM pgbench_accounts" "sum(tbalance) FROM pgbench_tellers" "sum(bbalance) FROM pgbench_branches" "sum(delta) FROM pgbench_history"; do
        sums="$sums $($SGQ -c "SELECT $q")"
    done
    echo "through shardgate, sum(abalance) sum(tbalance) sum(bbalance) sum(delta):$sums"
    echo
fi
[ "${TPCB_ONLY:-0}" = 1 ] && exit 0

echo "== keyed lookups: pgbench -c $CLIENTS -j 2 -T $SECS (user_analytics by primary key)"
printf "%-10s %12s %12s %10s %12s %12s\n" mode direct_tps sg_tps ratio direct_ms sg_ms
for mode in simple extended prepared; do
    read -r dt dl < <(PGPASSWORD= run -M $mode -h 127.0.0.1 -p 57001 -U postgres direct)
    read -r st sl < <(run -M $mode -h 127.0.0.1 -p 6543 -U app app)
    printf "%-10s %12s %12s %10s %12s %12s\n" "$mode" "$dt" "$st" "$(echo "scale=2; $st / $dt" | bc)" "$dl" "$sl"
done

timeit() { # psql command..., query: prints best-of-3 milliseconds
    local best=""
    for _ in 1 2 3; do
        local t0 t1
        t0=$(date +%s%N)
        "$@" >/dev/null
        t1=$(date +%s%N)
        local ms=$(( (t1 - t0) / 1000000 ))
        if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
    done
    echo "$best"
}
echo
echo "== scatter-gather over 1M rows (best of 3, ms, including psql start)"
printf "%-44s %8s %8s %8s\n" query direct sg ratio
for q in "SELECT count(*) FROM big_events" \
         "SELECT kind, count(*), sum(amount), avg(amount) FROM big_events GROUP BY kind" \
         "SELECT user_id, count(*) FROM big_events GROUP BY user_id ORDER BY 2 DESC, 1 LIMIT 5" \
         "SELECT * FROM big_events ORDER BY amount DESC, id LIMIT 10"; do
    d=$(timeit $DQ -d direct -c "$q")
    s=$(timeit $SGQ -c "$q")
    printf "%-44.44s %8s %8s %8s\n" "$q" "$d" "$s" "$(echo "scale=2; $d / $s" | bc)"
done

echo
echo "== shardgate peak memory (VmHWM) around ORDER BY ... LIMIT 10 over all 1M rows"
hwm() { grep VmHWM "/proc/$SG/status" | awk '{print $2" "$3}'; }
echo "before: $(hwm)"
$SGQ -c "SELECT * FROM big_events ORDER BY created, id LIMIT 10" >/dev/null
$SGQ -c "SELECT * FROM big_events ORDER BY amount DESC, id OFFSET 10 LIMIT 10" >/dev/null
echo "after:  $(hwm)"
echo "(unbounded ORDER BY streams: $($SGQ -c "SELECT count(*) FROM (SELECT 1) s") ok)"
$SGQ -c "SELECT id FROM big_events ORDER BY id" | tail -1 >/dev/null
echo "after streaming all 1M rows sorted: $(hwm)"
