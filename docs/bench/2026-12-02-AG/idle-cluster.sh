#!/bin/bash
# idle-cluster.sh [NOVA_BINARY]: two nova instances, no load, on a private 3-master Redis Cluster
# (ports 47001-47003, NOVA_FANOUT_PARTITIONS=8); prints the second instance's CPU over 30 s and
# the commands a second both instances sent the masters meanwhile
set -e
BIN=${1:-nova}; D=/tmp/cl; rm -rf $D; mkdir -p $D
addrs=""
for p in 47001 47002 47003; do mkdir -p $D/$p; redis-server --port $p --bind 127.0.0.1 --save "" --appendonly no --cluster-enabled yes --cluster-config-file $D/$p/nodes.conf --dir $D/$p --daemonize yes --logfile $D/$p/log; addrs="$addrs 127.0.0.1:$p"; done
sleep 0.5; redis-cli --cluster create $addrs --cluster-yes > $D/create.log
sleep 2
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS nova_idle" -c "CREATE DATABASE nova_idle"
for n in 1 2; do
DATABASE_URL="postgres://postgres@127.0.0.1:5432/nova_idle?sslmode=disable" REDIS_URL="127.0.0.1:47001,127.0.0.1:47002,127.0.0.1:47003" NOVA_FANOUT_PARTITIONS=8 NOVA_HTTP_ADDR=127.0.0.1:4708$n NOVA_ADMIN_ADDR=127.0.0.1:4709$n NOVA_INSTANCE_ID=idle$n NOVA_JWT_SECRET=0123456789abcdef0123456789abcdef $BIN serve > $D/nova$n.log 2>&1 &
echo $! > $D/nova$n.pid
done
sleep 8
pid=$(cat $D/nova2.pid); t0=$(awk '{print $14+$15}' /proc/$pid/stat)
for p in 47001 47002 47003; do redis-cli -p $p info commandstats > $D/cs0-$p; done; sleep 30; for p in 47001 47002 47003; do redis-cli -p $p info commandstats > $D/cs1-$p; done
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "node 2 idle CPU: $(( (t1-t0) )) ticks over 30 s = $(python3 -c "print(round(($t1-$t0)/30,2))") % of a core"
python3 - "$D" <<'PY'
import collections, re, sys
tot = collections.Counter()
for p in (47001, 47002, 47003):
    def calls(f):
        return {m.group(1): int(m.group(2)) for m in re.finditer(r'cmdstat_(\S+):calls=(\d+)', open(f).read())}
    a, b = calls(f"{sys.argv[1]}/cs0-{p}"), calls(f"{sys.argv[1]}/cs1-{p}")
    for k in b:
        tot[k] += b[k] - a.get(k, 0)
for k, v in tot.most_common(8):
    print(f"{k:20s} {v / 30:.1f}/s")
PY
kill $(cat $D/nova1.pid) $(cat $D/nova2.pid); for p in 47001 47002 47003; do redis-cli -p $p shutdown nosave >/dev/null 2>&1 || true; done
