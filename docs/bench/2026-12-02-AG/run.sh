#!/bin/bash
# run.sh NAME [RATE] [SECONDS]: runs the script NAME (variant.sh) with pgbench -R RATE -c CLIENTS (default 4) -M prepared on nova_exp
# (setup.sh) and prints the Postgres CPU per transaction, from /proc (every postgres process,
# the exited backends through the postmaster's cutime; 100 ticks a second)
cd "$(dirname "$0")"
name=$1; r=${2:-1000}; t=${3:-20}
s=$(mktemp --suffix=.sql); trap 'rm -f "$s"' EXIT
./variant.sh "$name" > "$s" || exit 2
cpu() { local tot=$(awk '{print $14+$15+$16+$17}' /proc/$(pgrep -x postgres | head -1)/stat); for p in $(pgrep -f "^postgres:"); do [ -r /proc/$p/stat ] && tot=$((tot + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $tot; }
psql -h 127.0.0.1 -U postgres -qc "TRUNCATE events, messages, outbox, outbox2, bench_messages" nova_exp; psql -h 127.0.0.1 -U postgres -qc "VACUUM ANALYZE" nova_exp; psql -h 127.0.0.1 -U postgres -qc "CHECKPOINT"
c0=$(cpu); out=$(pgbench -h 127.0.0.1 -U postgres -n -f $s -R $r -c ${CLIENTS:-4} -j 1 -T $t -M prepared nova_exp 2>&1); c1=$(cpu)
tx=$(echo "$out" | awk '/number of transactions actually processed/{print $NF}' | cut -d/ -f1)
lat=$(echo "$out" | awk '/latency average/{print $4}')
echo "$name tx=$tx lat=${lat}ms pgcpu/txn=$(python3 -c "print(round(($c1-$c0)*10/$tx,3))") ms"
