package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// loadShape is the shape of a paced send-to-deliver run, apart from its rate and size: who
// sends and how the subscribers are connected. DESIGN.md holds the latency targets "whatever
// the shape of the load", so the same list of shapes (-shapes) drives Nova's latency scenario
// and the Centrifugo comparison in one run, and the report puts each Nova shape next to the
// same Centrifugo shape.
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
	// conversation nobody sends to: connection j to quiet conversation (channel) j mod
	// idleConversations(IdleConns).
	IdleConns int `json:"idle_conns"`
}

// novaLatencyShape is the main latency run's shape (and the sweep's and the A/B's): a
// goroutine per send, one subscriber connection per conversation, no idle connections.
var novaLatencyShape = loadShape{ConnPerConversation: true}

// maxIdleConversations bounds the quiet conversations (Centrifugo: channels) the idle
// connections of a shape spread over: creating 10,000 Nova conversations would take longer
// than the measurement, and both systems get the same spread.
const maxIdleConversations = 100

// idleConversations is how many quiet conversations n idle connections spread over.
func idleConversations(n int) int { return min(n, maxIdleConversations) }

// defaultShapes is the shape list of a run without -shapes: quick mode one connection per
// conversation and one connection for all; full mode also one sequential sender, 16 senders
// and 10,000 idle subscribed connections beside the active ones.
func defaultShapes(quick bool) []loadShape {
	if quick {
		return []loadShape{novaLatencyShape, {ConnPerConversation: false}}
	}
	return []loadShape{novaLatencyShape, {ConnPerConversation: false}, {ConnPerConversation: true, Senders: 1},
		{ConnPerConversation: true, Senders: 16}, {ConnPerConversation: true, IdleConns: 10_000}}
}

// withMainShape puts novaLatencyShape first (the main latency run is that shape; the other
// shapes are extra runs) and drops repeats, keeping the order of the rest.
func withMainShape(shapes []loadShape) []loadShape {
	out := []loadShape{novaLatencyShape}
	for _, sh := range shapes {
		if !slices.Contains(out, sh) {
			out = append(out, sh)
		}
	}
	return out
}

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

// parseCounts reads a comma-separated list of positive instance counts ("1,2,4").
func parseCounts(list string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 16 {
			return nil, fmt.Errorf("%q is not an instance count from 1 to 16", s)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}
