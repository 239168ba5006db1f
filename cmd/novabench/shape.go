package main

import (
	"fmt"
	"strconv"
	"strings"
)

// loadShape is the shape of a paced send-to-deliver run, apart from its rate and size: who
// sends and how the subscribers are connected. DESIGN.md holds the latency targets "whatever
// the shape of the load", so the same description drives the Centrifugo comparison and is
// meant to drive Nova's latency scenario too.
//
// Nova's latency scenario (scenarios_latency.go) runs novaLatencyShape today.
type loadShape struct {
	// Senders is how many goroutines share the offered rate. 0 is a goroutine per send (open
	// loop with unbounded concurrency, as Nova's latency run does); N > 0 is N goroutines, the
	// k-th send belonging to goroutine k%N, each sending its sends one after the other, so a
	// slow send delays the ones behind it (latency still counts from each intended time).
	Senders int `json:"senders"`
	// ConnPerConversation: one subscriber WebSocket per conversation (channel); false: one
	// WebSocket subscribed to all of them.
	ConnPerConversation bool `json:"conn_per_conversation"`
	// IdleConns are extra subscriber WebSockets on the subscriber node, each subscribed to a
	// conversation nobody sends to.
	IdleConns int `json:"idle_conns"`
}

// novaLatencyShape is what runLatency does: a goroutine per send, one subscriber connection
// per conversation, no idle connections.
var novaLatencyShape = loadShape{ConnPerConversation: true}

// String is the shape's name, which parseShape reads back: "per-conv", "one-conn",
// "per-conv+senders=16", "one-conn+senders=1+idle=1000".
func (s loadShape) String() string {
	name := "one-conn"
	if s.ConnPerConversation {
		name = "per-conv"
	}
	if s.Senders > 0 {
		name += "+senders=" + strconv.Itoa(s.Senders)
	}
	if s.IdleConns > 0 {
		name += "+idle=" + strconv.Itoa(s.IdleConns)
	}
	return name
}

// Describe says the shape in words, for the report.
func (s loadShape) Describe() string {
	var parts []string
	if s.ConnPerConversation {
		parts = append(parts, "one WebSocket per conversation")
	} else {
		parts = append(parts, "one WebSocket subscribed to all conversations")
	}
	switch s.Senders {
	case 0:
		parts = append(parts, "a goroutine per send")
	case 1:
		parts = append(parts, "one sequential sender")
	default:
		parts = append(parts, fmt.Sprintf("%d senders sharing the rate", s.Senders))
	}
	if s.IdleConns > 0 {
		parts = append(parts, fmt.Sprintf("%d idle subscribed connections", s.IdleConns))
	}
	return strings.Join(parts, ", ")
}

// parseShape reads "per-conv" or "one-conn" (default per-conv), then optional "+senders=N"
// and "+idle=N", in any order.
func parseShape(s string) (loadShape, error) {
	sh := loadShape{ConnPerConversation: true}
	s = strings.TrimSpace(s)
	if s == "" {
		return sh, fmt.Errorf("empty shape")
	}
	for _, tok := range strings.Split(s, "+") {
		tok = strings.TrimSpace(tok)
		key, val, hasVal := strings.Cut(tok, "=")
		switch {
		case tok == "per-conv":
			sh.ConnPerConversation = true
		case tok == "one-conn":
			sh.ConnPerConversation = false
		case hasVal && (key == "senders" || key == "idle"):
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return sh, fmt.Errorf("shape %q: %s wants a count >= 0", s, key)
			}
			if key == "senders" {
				sh.Senders = n
			} else {
				sh.IdleConns = n
			}
		default:
			return sh, fmt.Errorf("shape %q: unknown part %q (want per-conv, one-conn, senders=N, idle=N)", s, tok)
		}
	}
	return sh, nil
}

// parseShapes reads a comma-separated list of shapes.
func parseShapes(list string) ([]loadShape, error) {
	var out []loadShape
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		sh, err := parseShape(s)
		if err != nil {
			return nil, err
		}
		out = append(out, sh)
	}
	return out, nil
}
