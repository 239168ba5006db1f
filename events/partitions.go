package events

import (
	"hash/fnv"
	"strconv"
)

// MaxPartitions is the most partitions the fan-out stream may have (NOVA_FANOUT_PARTITIONS).
const MaxPartitions = 1024

// Partition is the partition of the fan-out stream that carries the events of conversationID
// when the stream has n partitions: FNV-1a 32 of the id's canonical text (lower-case UUID),
// mod n. One conversation's events are all in one partition, in seq order. n < 2 gives 0.
func Partition(conversationID string, n int) int {
	if n < 2 {
		return 0
	}
	h := fnv.New32a()
	var b [36]byte
	canonical := append(b[:0], conversationID...)
	for i, c := range canonical {
		if 'A' <= c && c <= 'Z' {
			canonical[i] = c + 'a' - 'A'
		}
	}
	_, _ = h.Write(canonical)
	return int(h.Sum32() % uint32(n))
}

// PartitionStream is the fan-out stream of partition p when there are n partitions: Stream
// itself when n < 2, else "stream:fanout:all-conversations:{p}". The braces are literal: a
// Redis Cluster hash tag, so everything Nova keeps for one partition lives in one hash slot.
func PartitionStream(p, n int) string {
	if n < 2 {
		return Stream
	}
	return Stream + PartitionSuffix(p)
}

// PartitionSuffix is ":{p}", the hash-tagged suffix every key of partition p ends with.
func PartitionSuffix(p int) string { return ":{" + strconv.Itoa(p) + "}" }

// Streams lists the fan-out streams when there are n partitions, partition 0 first. A consumer
// group reads every one of them (see docs/EVENTS.md).
func Streams(n int) []string {
	if n < 2 {
		return []string{Stream}
	}
	out := make([]string, n)
	for p := range out {
		out[p] = PartitionStream(p, n)
	}
	return out
}
