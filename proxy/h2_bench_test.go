package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// The HTTP/2 downstream path's cost: an h2c client (x/net's transport, in
// this process, so its allocations are counted too and cancel out of a
// before/after comparison) through the engine's HTTP/2 server and the
// proxy to the raw HTTP/1.1 bench origin.

func benchH2(b *testing.B, parallel bool) {
	p := benchProxy(b, startBenchOrigin(b))
	url := serveEngine(b, p, ServerOptions{IdleTimeout: time.Minute, HeaderTimeout: 10 * time.Second, H2C: true}) + "/x"
	tr := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	get := func(tb testing.TB) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("User-Agent", "bench")
		resp, err := c.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			tb.Fatalf("status %d", resp.StatusCode)
		}
	}
	get(b) // warm the pools
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for i := 0; i < b.N; i++ {
			get(b)
		}
		return
	}
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			get(b)
		}
	})
}

func BenchmarkH2GET(b *testing.B)         { benchH2(b, false) }
func BenchmarkH2GETParallel(b *testing.B) { benchH2(b, true) }
