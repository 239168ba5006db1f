#!/bin/bash
# run.sh TAG NOVA_BIN [VAR=value ...]: one run of the main latency shape (bench -only latency
# -shapes per-conv -centrifugo=false) with the given nova binary, the variables in the
# environment of the bench and so of its nodes; prints one line of the figures section AH
# compares. The report stays in /tmp/ah-TAG-HHMMSS. Needs /tmp/novabench
# (cd bench && go build -o /tmp/novabench .) and a quiet machine.
tag=$1; bin=$2; shift 2
out=/tmp/ah-$tag-$(date +%H%M%S)
env "$@" /tmp/novabench -only latency -shapes per-conv -centrifugo=false -nova-bin "$bin" -quiet-wait 60s -out "$out" > "$out.log" 2>&1 || { echo "$tag: bench failed, see $out.log"; exit 1; }
r=$out/report.txt
col() { grep -E "$1" "$r" | head -1 | awk -F'|' -v c="$2" '{print $c}' | xargs; }
busy=$(grep 'latency@1000' "$r" | sed 's/; runnable.*//; s/^ *latency@1000 *//')
echo "$tag $(date +%H:%M) p50=$(col '^send->deliver p50' 2) p99=$(col '^send->deliver p99' 2)" \
	"201=[$(col 'HTTP send response p50' 2)] after201=[$(col 'delivered after the 201 p50' 2)]" \
	"round-trip=$(col "send transaction's round trip" 2)" \
	"floor=[$(col "durable floor's tail" 2)] | $busy"
