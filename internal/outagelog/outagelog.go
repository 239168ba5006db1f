// Package outagelog logs a dependency's outage once when it starts and once when it ends,
// instead of once per request that meets it (a reconnect storm while Redis is down would
// otherwise write a line per connection, ack and subscribe).
package outagelog

import (
	"log/slog"
	"sync/atomic"
)

// Log reports one kind of failure. The zero value is not usable: use New.
type Log struct {
	log  *slog.Logger
	msg  string // the warning, written when an outage starts
	back string // the notice, written when it ends
	down atomic.Bool
	seen atomic.Int64 // failures during the current outage
}

// New returns a Log that warns msg at the first failure of an outage and says back at the
// first success after it.
func New(log *slog.Logger, msg, back string) *Log {
	if log == nil {
		panic("outagelog.New: nil logger")
	}
	return &Log{log: log, msg: msg, back: back}
}

// Failed records a failure; only the first of an outage is logged, with err and attrs.
func (l *Log) Failed(err error, attrs ...any) {
	l.seen.Add(1)
	if l.down.CompareAndSwap(false, true) {
		l.log.Warn(l.msg, append([]any{"error", err}, attrs...)...)
	}
}

// OK records a success; the first one after an outage is logged with how many failures it held.
func (l *Log) OK() {
	if l.down.Load() && l.down.CompareAndSwap(true, false) {
		l.log.Info(l.back, "failures", l.seen.Swap(0))
	}
}
