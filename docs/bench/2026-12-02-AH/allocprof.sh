#!/bin/bash
# allocprof.sh OUT: run beside a bench whose -out is OUT; waits for the sending node n2 to log its
# admin address, then, 30 s later (inside the 1,000/s load), saves a 15 s allocation profile of
# it to OUT/allocs-n2.pprof. Read it with
#   go tool pprof -sample_index=alloc_space -top NOVA_BIN OUT/allocs-n2.pprof
out=$1
for _ in $(seq 1 600); do
	admin=$(grep -ho '"admin":"[^"]*"' "$out/logs/nova-02-n2.log" 2>/dev/null | head -1 | cut -d'"' -f4)
	[ -n "$admin" ] && break
	sleep 0.5
done
[ -n "$admin" ] || { echo "allocprof.sh: n2 never logged its admin address under $out/logs" >&2; exit 1; }
sleep 30
curl -sf -o "$out/allocs-n2.pprof" "http://$admin/debug/pprof/allocs?seconds=15" && echo "saved $out/allocs-n2.pprof"
