package proxy

import (
	"net"
	"testing"
)

// serveEngine serves p with the engine on a kernel-chosen loopback port
// and returns its URL; the server closes with the test.
func serveEngine(tb testing.TB, p *Proxy, o ServerOptions) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := p.NewServer(o)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	tb.Cleanup(func() { _ = s.Close(); <-done })
	return "http://" + ln.Addr().String()
}
