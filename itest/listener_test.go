package itest

// The proxy listener's client connection settings through the binary, on
// raw sockets: proxy.idle_timeout closes an idle keep-alive connection,
// proxy.header_timeout answers a slowloris 408 and closes it, and
// proxy.max_connections leaves a connection over the cap waiting in the
// kernel's backlog until a served one closes.

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-gw/outrigger/internal/rawtest"
)

func TestProxyClientConnectionSettings(t *testing.T) {
	t.Run("idle_timeout closes an idle keep-alive connection", func(t *testing.T) {
		g := startGatewayOpts(t, gatewayOpts{Proxy: "  idle_timeout: 300ms\n"}, "")
		c := rawtest.Dial(t, g.ProxyAddr)
		br := bufio.NewReader(c)
		resp, err := rawtest.RoundTrip(c, br, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusNotFound || resp.Close {
			t.Fatalf("response %d, close %v; want a kept-alive 404", resp.StatusCode, resp.Close)
		}
		start := time.Now()
		if err := rawtest.Closed(br, c, 10*time.Second); err != nil {
			t.Fatalf("idle keep-alive connection: %v after %s; want it closed by the gateway", err, time.Since(start))
		}
		t.Logf("idle keep-alive connection closed %.0fms after its response (idle_timeout 300ms)", csMS(time.Since(start)))
	})

	t.Run("header_timeout answers a slowloris 408", func(t *testing.T) {
		g := startGatewayOpts(t, gatewayOpts{Proxy: "  header_timeout: 1s\n"}, "")
		c := rawtest.Dial(t, g.ProxyAddr)
		// One byte every 200 ms: 60 bytes of header would take 12 s.
		req := "GET /x HTTP/1.1\r\nHost: test\r\nX-Slow: " + strings.Repeat("a", 60)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for i := range len(req) {
				if _, err := c.Write([]byte{req[i]}); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("slowloris: %v after %s; want a 408", err, time.Since(start))
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
			t.Fatalf("slowloris: %d close=%v %q; want 408 with Connection: close", resp.StatusCode, resp.Close, body)
		}
		if err := rawtest.Closed(br, c, 5*time.Second); err != nil {
			t.Fatalf("after the 408: %v; want the connection closed", err)
		}
		t.Logf("slowloris answered %d %q after %.0fms (header_timeout 1s; the headers would have taken 12s)", resp.StatusCode, body, csMS(time.Since(start)))
	})

	t.Run("max_connections holds a connection over the cap in the backlog", func(t *testing.T) {
		g := startGatewayOpts(t, gatewayOpts{Proxy: "  max_connections: 2\n"}, "")
		var held []net.Conn
		for i := range 2 {
			c := rawtest.Dial(t, g.ProxyAddr)
			if _, err := rawtest.RoundTrip(c, bufio.NewReader(c), 5*time.Second); err != nil {
				t.Fatalf("connection %d: %v", i+1, err)
			}
			held = append(held, c)
		}
		third := rawtest.Dial(t, g.ProxyAddr) // the kernel completes the handshake
		br := bufio.NewReader(third)
		var ne net.Error
		if _, err := rawtest.RoundTrip(third, br, 500*time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("a third connection while two are open: %v; want no answer yet", err)
		}
		held[0].Close()
		_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("the third connection once one closed: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("the third connection: %d, want 404", resp.StatusCode)
		}
		if _, err := rawtest.RoundTrip(held[1], bufio.NewReader(held[1]), 5*time.Second); err != nil {
			t.Fatalf("the second connection after the cap was reached: %v", err)
		}
		select {
		case <-g.exited:
			t.Fatalf("the gateway exited: %v", g.exitErr)
		default:
		}
	})
}
