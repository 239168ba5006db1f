package events_test

import (
	"math"
	"testing"

	"github.com/nova-chat/nova/events"
)

// The partition is FNV-1a 32 of the id's text, mod n (PROTOCOL.md section 5); with n = 2^32-1
// the hash itself shows, so these are the published FNV-1a test vectors.
func TestThePartitionIsFNV1a32OfTheCanonicalIDModN(t *testing.T) {
	for _, v := range []struct {
		text string
		hash uint32
	}{
		{"", 0x811c9dc5},
		{"a", 0xe40c292c},
		{"foobar", 0xbf9cf968},
		{"0192d6a2-0000-7000-8000-0000000000c1", 0x0065de9f},
	} {
		if got := events.Partition(v.text, math.MaxUint32); uint32(got) != v.hash%math.MaxUint32 {
			t.Errorf("%q: %#x, want %#x", v.text, got, v.hash)
		}
		if got, want := events.Partition(v.text, 4), int(v.hash%4); got != want {
			t.Errorf("%q mod 4: %d, want %d", v.text, got, want)
		}
	}
	id := "0192d6a2-0000-7000-8000-0000000000c1"
	if got := events.Partition("0192D6A2-0000-7000-8000-0000000000C1", 1024); got != events.Partition(id, 1024) || got != 671 {
		t.Errorf("upper-case id: partition %d, want 671 like its canonical lower-case text", got)
	}
	if events.Partition(id, 1) != 0 || events.Partition(id, 0) != 0 {
		t.Error("with one partition (or none configured) everything is partition 0")
	}
}

func TestPartitionStreamsAreHashTaggedAndOneStreamKeepsTheOldName(t *testing.T) {
	if got := events.Streams(1); len(got) != 1 || got[0] != "stream:fanout:all-conversations" {
		t.Fatalf("one partition: %v", got)
	}
	got := events.Streams(3)
	want := []string{"stream:fanout:all-conversations:{0}", "stream:fanout:all-conversations:{1}", "stream:fanout:all-conversations:{2}"}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("three partitions: %v, want %v", got, want)
	}
}
