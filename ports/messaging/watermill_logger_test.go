package messaging

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
)

func TestDisabledWatermillLinesAreNeitherBuiltNorWritten(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	wl := newWatermillLogger(log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}).With(watermill.LogFields{"handler": "h"})

	fields := watermill.LogFields{"message_uuid": "m1"}
	allocs := testing.AllocsPerRun(100, func() {
		wl.Trace("Received message", fields)
		wl.Debug("Subscriber closed", fields)
		wl.Info("Starting handler", fields) // Info is mapped to Debug: off as well
	})
	wl.Error("handler failed", nil, fields)

	if allocs != 0 {
		t.Errorf("disabled lines cost %.0f allocations each round; want none", allocs)
	}
	out := buf.String()
	if strings.Contains(out, "Received message") || strings.Contains(out, "Starting handler") {
		t.Errorf("a disabled line was written:\n%s", out)
	}
	if !strings.Contains(out, "handler failed") || !strings.Contains(out, "handler=h") || !strings.Contains(out, "message_uuid=m1") {
		t.Errorf("the error line, with its fields, is missing:\n%s", out)
	}
}
