package outagelog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestAnOutageIsLoggedOnceWhenItStartsAndOnceWhenItEnds(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), "presence cannot be checked", "presence is checked again")

	l.OK() // nothing to report before any outage
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); l.Failed(errors.New("connection refused"), "user_id", "u1") }()
	}
	wg.Wait()
	l.OK()
	l.OK()
	l.Failed(errors.New("timeout"))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want 3 lines (start, end, second start), got %d:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "presence cannot be checked") || !strings.Contains(lines[0], "connection refused") ||
		!strings.Contains(lines[0], "user_id=u1") {
		t.Errorf("first line %q", lines[0])
	}
	if !strings.Contains(lines[1], "presence is checked again") || !strings.Contains(lines[1], "failures=100") {
		t.Errorf("second line %q", lines[1])
	}
	if !strings.Contains(lines[2], "timeout") {
		t.Errorf("third line %q", lines[2])
	}
}
