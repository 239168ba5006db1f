package clientsync_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nova-chat/nova/domain/clientsync"
	"github.com/nova-chat/nova/domain/conversation"
)

var key = clientsync.Key{
	User:         "11111111-1111-1111-1111-111111111111",
	Client:       "22222222-2222-2222-2222-222222222222",
	Conversation: "33333333-3333-3333-3333-333333333333",
}

func TestANewCursorIsAtZero(t *testing.T) {
	c := clientsync.New(key)
	if c.Key() != key || c.AckedSeq() != 0 || c.Version() != 0 || c.PersistedVersion() != 0 || c.HasChanges() || !c.SyncedAt().IsZero() {
		t.Fatalf("new cursor: seq %d version %d changes %v", c.AckedSeq(), c.Version(), c.Changes())
	}
}

func TestAcknowledgeMovesTheCursorForwardAndRecordsIt(t *testing.T) {
	// given a cursor stored at seq 3, version 2
	c := clientsync.FromState(key, 3, time.Unix(100, 0).UTC(), 2)
	at := time.Date(2025, 1, 2, 3, 4, 5, 678901234, time.FixedZone("x", 3600))

	// when seq 7 is acknowledged
	if err := c.Acknowledge(7, at); err != nil {
		t.Fatal(err)
	}

	// then it moves there, one version on, with one event at the microsecond in UTC
	wantAt := at.UTC().Truncate(time.Microsecond)
	if c.AckedSeq() != 7 || c.Version() != 3 || c.PersistedVersion() != 2 || !c.SyncedAt().Equal(wantAt) || c.SyncedAt().Location() != time.UTC {
		t.Fatalf("cursor at seq %d version %d (persisted %d) synced %v", c.AckedSeq(), c.Version(), c.PersistedVersion(), c.SyncedAt())
	}
	want := clientsync.Acknowledged{Key: key, Seq: 7, At: wantAt}
	if ch := c.Changes(); len(ch) != 1 || ch[0] != want || ch[0].EventType() != clientsync.EventAcknowledged {
		t.Fatalf("changes %+v, want %+v", ch, want)
	}
}

func TestAnOlderOrEqualSeqChangesNothing(t *testing.T) {
	at := time.Unix(100, 0).UTC()
	c := clientsync.FromState(key, 5, at, 1)
	for _, seq := range []int64{1, 4, 5} {
		if err := c.Acknowledge(seq, time.Now()); err != nil {
			t.Fatalf("acknowledge %d: %v", seq, err)
		}
	}
	if c.AckedSeq() != 5 || c.Version() != 1 || c.HasChanges() || !c.SyncedAt().Equal(at) {
		t.Fatalf("cursor at seq %d version %d with %d changes, want it unchanged", c.AckedSeq(), c.Version(), len(c.Changes()))
	}
}

func TestASeqBelowOneIsInvalid(t *testing.T) {
	c := clientsync.New(key)
	for _, seq := range []int64{0, -1} {
		if err := c.Acknowledge(seq, time.Now()); !errors.Is(err, conversation.ErrInvalidArgument) {
			t.Fatalf("acknowledge %d: %v, want ErrInvalidArgument", seq, err)
		}
	}
	if c.HasChanges() || c.AckedSeq() != 0 {
		t.Fatal("an invalid seq changed the cursor")
	}
}

func TestSeveralAcknowledgementsBeforeAStoreAreAllRecorded(t *testing.T) {
	c := clientsync.New(key)
	for _, seq := range []int64{2, 1, 6} {
		if err := c.Acknowledge(seq, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if ch := c.Changes(); len(ch) != 2 || ch[0].Seq != 2 || ch[1].Seq != 6 || c.Version() != 2 || c.PersistedVersion() != 0 {
		t.Fatalf("changes %+v version %d", ch, c.Version())
	}
}

func TestParseClientID(t *testing.T) {
	got, err := clientsync.ParseClientID("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE")
	if err != nil || got != "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee" {
		t.Fatalf("parse an upper-case UUID: %q, %v", got, err)
	}
	for _, bad := range []string{"", "not-a-uuid", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeeee", "aaaaaaaaXbbbb-cccc-dddd-eeeeeeeeeeee"} {
		if _, err := clientsync.ParseClientID(bad); !errors.Is(err, conversation.ErrInvalidArgument) {
			t.Errorf("parse %q: %v, want ErrInvalidArgument", bad, err)
		}
	}
}
