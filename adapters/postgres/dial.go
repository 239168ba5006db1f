package postgres

import (
	"net"
	"time"
)

// deadPathTimeout is how soon the kernel gives up on a Postgres connection whose network path
// died without a reset (half-open: a host or NAT that vanished), idle or busy. With Go's
// defaults (keep-alive after 15 s idle, then the TCP retransmission timeout for a request in
// flight) a query on such a connection waits up to a quarter of an hour; a pooled connection
// idle past 1 s is pinged before use, so one dead connection would hold up a request that long.
const deadPathTimeout = 10 * time.Second

// dialer opens Nova's Postgres connections: an idle one is probed after 5 s, every 2 s, and
// dropped after 3 unanswered probes; data unacknowledged for deadPathTimeout drops a busy one
// (TCP_USER_TIMEOUT, on Linux). libpq's keepalives_* and tcp_user_timeout do the same.
func dialer() *net.Dialer {
	return &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 2 * time.Second, Count: 3},
		Control:         setUserTimeout,
	}
}
