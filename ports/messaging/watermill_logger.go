package messaging

import (
	"context"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// levelGatedLogger is Watermill's slog adapter with the level checked before a line is built.
// The adapter turns a line's fields into slog attributes (a map walk, three allocations) before
// slog drops a disabled line, and the router logs two Trace lines per message. A CPU profile of
// an instance handling its share of a consumer group put 30 of 150 ms in those Trace calls; in
// four alternating quick runs of the benchmark's instances scenario the gate made no difference
// beyond the noise (3.4-3.8 % of a core either way), so this saves allocations, not a target.
type levelGatedLogger struct {
	watermill.LoggerAdapter
	log    *slog.Logger
	levels map[slog.Level]slog.Level // Watermill's level -> the level it is logged at
}

func newWatermillLogger(log *slog.Logger, levels map[slog.Level]slog.Level) watermill.LoggerAdapter {
	return levelGatedLogger{LoggerAdapter: watermill.NewSlogLoggerWithLevelMapping(log, levels), log: log, levels: levels}
}

func (l levelGatedLogger) enabled(level slog.Level) bool {
	if mapped, ok := l.levels[level]; ok {
		level = mapped
	}
	return l.log.Enabled(context.Background(), level)
}

func (l levelGatedLogger) Info(msg string, fields watermill.LogFields) {
	if l.enabled(slog.LevelInfo) {
		l.LoggerAdapter.Info(msg, fields)
	}
}

func (l levelGatedLogger) Debug(msg string, fields watermill.LogFields) {
	if l.enabled(slog.LevelDebug) {
		l.LoggerAdapter.Debug(msg, fields)
	}
}

func (l levelGatedLogger) Trace(msg string, fields watermill.LogFields) {
	if l.enabled(watermill.LevelTrace) {
		l.LoggerAdapter.Trace(msg, fields)
	}
}

// With keeps the gate (the level of a logger With fields is the level of the logger).
func (l levelGatedLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return levelGatedLogger{LoggerAdapter: l.LoggerAdapter.With(fields), log: l.log, levels: l.levels}
}
