#!/bin/bash
# cluster-idle.sh TAG NOVA_BIN [VAR=value ...]: one run of the instances scenario on the Redis
# Cluster topology at four instances (bench -only instances -topologies cluster
# -instance-counts 4), the variables in the environment of the bench and so of its nodes, and
# a 10 s CPU profile of n3 (no subscribers) taken inside the measured window. Prints n3's and
# n4's share of a core, p50 / p99 and the CPU per message. The report stays in
# /tmp/ai-TAG-HHMMSS, the profile beside it. Needs /tmp/novabench (cd bench && go build -o
# /tmp/novabench .) and a quiet machine.
tag=$1; bin=$2; shift 2
out=/tmp/ai-$tag-$(date +%H%M%S)
env "$@" /tmp/novabench -only instances -topologies cluster -instance-counts 4 -centrifugo=false \
	-nova-bin "$bin" -quiet-wait 60s -out "$out" > "$out.log" 2>&1 &
bench=$!
# n3 logs its admin address when it serves; the measured window opens a few seconds later.
for _ in $(seq 600); do
	admin=$(grep -ho '"instance_id":"bench-n3","http":"[^"]*","admin":"[^"]*"' "$out"/logs/*n3*.log 2>/dev/null | tail -1 | sed 's/.*"admin":"//; s/"//')
	[ -n "$admin" ] && break
	sleep 0.5
done
if [ -n "$admin" ]; then
	sleep 8
	curl -s -o "$out-n3.pprof" "http://$admin/debug/pprof/profile?seconds=10"
fi
wait $bench || { echo "$tag: bench failed, see $out.log"; exit 1; }
r=$out/report.txt
echo "$tag $(date +%H:%M) $(grep -E 'instances-4-cluster' "$r" | head -3 | tr -s ' ' | cut -c1-400)"
grep -iE 'without subscribers|n3|n4' "$r" | grep -i cluster | head -6
