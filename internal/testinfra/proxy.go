package testinfra

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy on loopback that a test can cut (closing every connection and refusing
// new ones) and restore, to take a dependency away from one process only, or whose open
// connections it can black-hole (Swallow), as a dead network path does.
type Proxy struct {
	t      testing.TB
	target string
	ln     net.Listener
	Port   int

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]*atomic.Bool // every proxied socket, both sides; true: swallowing
}

// StartProxy forwards a free loopback port to target (host:port).
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{t: t, target: target, ln: ln, Port: ln.Addr().(*net.TCPAddr).Port, conns: map[net.Conn]*atomic.Bool{}}
	go p.accept()
	t.Cleanup(func() { _ = ln.Close(); p.Cut() })
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return fmt.Sprintf("127.0.0.1:%d", p.Port) }

// Cut closes every proxied connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.conns = map[net.Conn]*atomic.Bool{}
}

// Swallow turns every connection open now into a half-open one: it stays open, and what either
// side sends is dropped, with no error and no FIN, as over a network path that died (or a NAT
// that forgot the connection). Only a timeout of its own tells a process; connections opened
// afterwards work.
func (p *Proxy) Swallow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, swallowing := range p.conns {
		swallowing.Store(true)
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = client.Close()
			continue
		}
		swallowing := new(atomic.Bool)
		p.conns[client], p.conns[server] = swallowing, swallowing
		p.mu.Unlock()
		go pipe(client, server, swallowing)
		go pipe(server, client, swallowing)
	}
}

// pipe copies src to dst until either closes, dropping what src sends while swallowing: then
// src closing does not reach dst either (a dead path carries no FIN), and dst stays open until
// Cut or the test's end.
func pipe(dst, src net.Conn, swallowing *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if swallowing.Load() {
			if err != nil {
				_ = src.Close()
				return
			}
			continue
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			_ = dst.Close()
			_ = src.Close()
			return
		}
	}
}

// ProxiedDatabaseURL puts a proxy the test can cut between a process and the database at dbURL:
// it returns the URL through the proxy, and the proxy.
func ProxiedDatabaseURL(t testing.TB, dbURL string) (string, *Proxy) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := StartProxy(t, u.Host)
	via := *u
	via.Host = proxy.Addr()
	return via.String(), proxy
}
