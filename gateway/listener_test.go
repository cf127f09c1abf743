package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/outrigger-gw/outrigger/config"
	"github.com/outrigger-gw/outrigger/internal/rawtest"
)

// serveProxy runs a gateway on the proxy section proxyYAML (no routes:
// every request is answered 404) on kernel-chosen loopback ports and
// returns the proxy's address; the gateway stops with the test.
func serveProxy(t *testing.T, proxyYAML string) string {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte("proxy:\n"+proxyYAML+"admin:\n  listen: 127.0.0.1:0\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, Options{Log: zerolog.Nop(), LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, pln, aln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return")
		}
	})
	return pln.Addr().String()
}

// TestIdleConnectionClosed: a keep-alive connection that sends nothing
// after its response is closed by the gateway once idle_timeout passes.
func TestIdleConnectionClosed(t *testing.T) {
	addr := serveProxy(t, "  idle_timeout: 300ms\n")
	c := rawtest.Dial(t, addr)
	br := bufio.NewReader(c)
	resp, err := rawtest.RoundTrip(c, br, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusNotFound || resp.Close {
		t.Fatalf("response: %d, close %v; want a kept-alive 404", resp.StatusCode, resp.Close)
	}
	// The gateway must close the connection well before this deadline.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	n, err := br.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %d bytes, %v after %s; want EOF (closed by the gateway)", n, err, time.Since(start))
	}
}

// TestMaxConnections: with max_connections 2, a third connection is not
// served while two are open, and is served once one of them closes.
func TestMaxConnections(t *testing.T) {
	addr := serveProxy(t, "  max_connections: 2\n")
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c := rawtest.Dial(t, addr)
		if _, err := rawtest.RoundTrip(c, bufio.NewReader(c), 5*time.Second); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		held = append(held, c)
	}
	third := rawtest.Dial(t, addr) // completes in the kernel's backlog
	br := bufio.NewReader(third)
	_, err := rawtest.RoundTrip(third, br, 500*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("third connection while two are open: %v; want no answer (read timeout)", err)
	}
	held[0].Close()
	_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("third connection after one closed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("third connection: status %d, want 404", resp.StatusCode)
	}
	// The second held connection still works: the limit never breaks
	// served connections.
	if _, err := rawtest.RoundTrip(held[1], bufio.NewReader(held[1]), 5*time.Second); err != nil {
		t.Fatalf("second connection: %v", err)
	}
}

// TestSlowlorisAnswered408: a client sending its request headers one byte
// every 200 ms is answered 408 and disconnected once header_timeout
// passes, long before it could finish.
func TestSlowlorisAnswered408(t *testing.T) {
	addr := serveProxy(t, "  header_timeout: 1s\n")
	c := rawtest.Dial(t, addr)
	// 60 bytes at 200 ms: 12 s to send, far beyond the 1 s timeout.
	req := "GET /x HTTP/1.1\r\nHost: test\r\nX-Slow: " + strings.Repeat("a", 60)
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for ; n < len(req); n++ {
			if _, err := c.Write([]byte{req[n]}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer close(stop)
	_ = c.SetReadDeadline(time.Now().Add(8 * time.Second))
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("slowloris: %v; want a 408 response", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close || !strings.Contains(string(body), "Request timeout") {
		t.Fatalf("slowloris: %d close=%v %q; want 408, Connection: close", resp.StatusCode, resp.Close, body)
	}
	// Closed: EOF, or a reset when the sender's next byte beat the FIN.
	if n, err := br.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) ||
		!errors.Is(err, io.EOF) && !rawtest.IsReset(err) {
		t.Fatalf("after the 408: read %d, %v; want the connection closed", n, err)
	}
}

// TestIdleConnectionWithoutRequestClosedSilently: a connection that sends
// nothing is closed once header_timeout passes, without a response.
func TestIdleConnectionWithoutRequestClosedSilently(t *testing.T) {
	addr := serveProxy(t, "  header_timeout: 300ms\n")
	c := rawtest.Dial(t, addr)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 64))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("silent connection: read %d bytes, %v; want EOF", n, err)
	}
}
