package postgres_test

import (
	"context"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPoolConnectionsAreDroppedByTheKernelSoonAfterTheirPathDies(t *testing.T) {
	_, pool, _ := newRepo(t)
	// the pool's own dialer, on a TCP connection of the test's (NOVA_TEST_DATABASE_URL may reach
	// Postgres over a Unix socket, which has no TCP options)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := pool.Config().ConnConfig.DialFunc(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tcp, ok := conn.(*net.TCPConn)
	if !ok {
		t.Fatalf("the pool's dialer gave a %T for tcp", conn)
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	// what the kernel will do over a dead path: drop unacknowledged data after 10 s, probe an
	// idle connection after 5 s, every 2 s, 3 times
	want := map[string]struct{ level, opt, value int }{
		"TCP_USER_TIMEOUT (ms)": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 10000},
		"SO_KEEPALIVE":          {unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		"TCP_KEEPIDLE (s)":      {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 5},
		"TCP_KEEPINTVL (s)":     {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 2},
		"TCP_KEEPCNT":           {unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 3},
	}
	for name, o := range want {
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), o.level, o.opt) }); err != nil || gerr != nil {
			t.Fatalf("%s: %v %v", name, err, gerr)
		}
		if got != o.value {
			t.Errorf("%s = %d, want %d", name, got, o.value)
		}
	}
}
